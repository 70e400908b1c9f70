/** The shapes every transport and every user shares. */

/** An event as delivered: shared by every follower (treat it as immutable). */
export interface WeftEvent<T = unknown> {
  /** The stream it was published to. */
  readonly stream: string;
  /** Its sequence number in the stream: 1, 2, 3 ... dense. */
  readonly seq: number;
  /** When it was appended, in milliseconds since the epoch (the appender's clock). */
  readonly time: number;
  /** The topic it was published under, if any. */
  readonly topic: string | undefined;
  readonly data: T;
}

/** One event to publish. */
export interface EventInput<T = unknown> {
  data: T;
  topic?: string | undefined;
}

/** Retention of a stream. Every field is optional; none set means "keep everything". */
export interface RetentionOptions {
  /**
   * Keep at most this many events; a follower that falls further behind throws `LaggedError`.
   * `0` keeps no history and cuts no follower (eventstream's model: each follower holds what it has not read yet).
   */
  maxLength?: number | undefined;
  /** Drop events older than this many milliseconds. */
  maxAgeMs?: number | undefined;
  /** Drop the whole stream when nothing was appended for this many milliseconds (go-event-log's TTLAfterLastAdd). */
  ttlMs?: number | undefined;
}

export type StreamOptions = RetentionOptions;

/** Where a follow starts: the oldest retained event, only what comes after the call, or a sequence. */
export type StartPosition = 'start' | 'end' | number;

export interface ReadOptions {
  /** First sequence to return. Older than the oldest retained: `TruncatedError`. */
  from?: StartPosition | undefined;
  /** Only the newest `last` events. Exclusive with `from`. */
  last?: number | undefined;
  /** At most this many events. */
  limit?: number | undefined;
  signal?: AbortSignal | undefined;
}

export interface FollowOptions {
  /** @default 'end' */
  from?: StartPosition | undefined;
  /** Start at the `last`-th newest retained event. Exclusive with `from`. */
  last?: number | undefined;
  /** The stream identity the caller saw before (see `StreamInfo.epoch`); a different one throws `StreamResetError`. */
  epoch?: string | undefined;
  signal?: AbortSignal | undefined;
}

export interface PublishOptions {
  topic?: string | undefined;
  signal?: AbortSignal | undefined;
}

export interface StreamInfo {
  readonly stream: string;
  /** The stream's identity: it changes when the stream is dropped (TTL) and created again. */
  readonly epoch: string;
  /** Oldest retained sequence (equals `last + 1` when nothing is retained). */
  readonly first: number;
  /** Newest sequence appended, 0 before the first. */
  readonly last: number;
  /** Retained events. */
  readonly length: number;
  readonly closed: boolean;
}
