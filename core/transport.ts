/**
 * The Transport contract: what a backend (memory, sab, websocket, redis) must do, and nothing more.
 *
 * A transport is a shared log. For each stream it appends a batch atomically and assigns the dense
 * sequence numbers, reads a range of retained history, feeds new events to one local watcher,
 * trims by retention, and closes or fails the stream for everyone. Everything else is core's and
 * is written once (style point 3): local fan-out through the linked list (one watcher per stream per
 * process, however many followers), the history-then-live hand-off of `follow`, validation,
 * AbortSignal handling, open/closed state, and the errors users see.
 *
 * Division of duties (style point 5):
 * - Core validates every argument before calling a transport; a transport trusts its inputs.
 * - Core checks `signal.aborted` before a call and rejects at once; a transport honours the signal
 *   only for I/O already in flight.
 * - Core tracks the fabric's open/closed state and raises `ClosedError` for calls after
 *   `fabric.close()`; a transport raises `ClosedError` when the *stream* was closed (it may have been
 *   closed by another process) and `TruncatedError` when asked for a trimmed position.
 * - A transport never swallows a background error: it ends the affected log with it (followers
 *   throw it) or reports it through `closed`.
 */
import type { EventLog } from './event-log.js';
import type { EventInput, RetentionOptions, StartPosition, WeftEvent } from './types.js';

/** What a transport can do: read by core, by the conformance suite and by the docs table (style point 4). */
export interface TransportSupports {
  /** Order of a stream's events as every follower sees them. */
  readonly order: 'total';
  /** Retained history can be read and followed from a past position. */
  readonly replay: boolean;
  /** Publishers and followers may live in other worker threads. */
  readonly crossThread: boolean;
  /** Publishers and followers may live in other processes or machines. */
  readonly crossProcess: boolean;
  /** Which retention options are enforced. */
  readonly retention: { readonly maxLength: boolean; readonly maxAgeMs: boolean; readonly ttlMs: boolean };
  /** Streams carry an epoch that changes when the stream is recreated. */
  readonly epochs: boolean;
  /** Consumer-group operations for sinks. */
  readonly groups: boolean;
  /** Largest encoded event accepted, in bytes, where there is a limit. */
  readonly maxEventBytes?: number;
}

/** The state of a stream as a transport sees it. */
export interface StreamBounds {
  readonly epoch: string;
  /** Oldest retained sequence; equals `next` when nothing is retained. */
  readonly first: number;
  /** The sequence the next append will get. */
  readonly next: number;
  readonly closed: boolean;
}

/** A transport's handle on one stream. Obtained once per stream name per fabric. */
export interface TransportStream {
  readonly name: string;
  /**
   * The stream's log when it lives in this process (memory, sab): core reads and follows it
   * directly, and `watch` is not used. `undefined` for remote transports.
   * It may change when the stream is dropped and recreated (TTL); read it at each use.
   */
  readonly log: EventLog<WeftEvent> | undefined;
  /** The stream's epoch when known without I/O (in-process logs); `undefined` otherwise. */
  readonly epoch: string | undefined;
  /**
   * Appends a batch atomically: all its events become visible together, with dense sequences.
   * Returns the first sequence of the batch (a number when the append completed synchronously).
   * @throws ClosedError when the stream was closed or failed.
   */
  append(batch: readonly EventInput[], signal?: AbortSignal): number | Promise<number>;
  /** Optional fast path for one event (saves the batch allocation); same contract as `append`. */
  appendOne?(data: unknown, topic: string | undefined, signal?: AbortSignal): number | Promise<number>;
  /**
   * Up to `limit` retained events with `seq >= from`, oldest first (empty when `from >= next`).
   * @throws TruncatedError when `from` is older than the oldest retained event.
   */
  read(from: number, limit: number, signal?: AbortSignal): Promise<WeftEvent[]>;
  bounds(signal?: AbortSignal): Promise<StreamBounds>;
  /**
   * Remote transports: start feeding `log` (core's local list for this stream) with every event
   * after `after`, in order, until `stop()`; end the log with an error when the feed fails for good.
   */
  watch?(log: EventLog<WeftEvent>, after: number): { stop(): void };
  /** Closes the stream for every process: followers drain and finish; appends throw ClosedError. */
  close(): Promise<void>;
  /** Fails the stream for every process: followers drain and throw `error`. */
  fail(error: Error): Promise<void>;
}

export interface Transport {
  /** The registered name: 'memory', 'sab', 'websocket', 'redis'. */
  readonly name: string;
  readonly supports: TransportSupports;
  /** Opens (creating if needed) a stream. Called once per stream name per fabric; cheap. */
  stream(name: string, retention: RetentionOptions): TransportStream;
  /** Consumer-group operations (when `supports.groups`): what core's sinks are built on. */
  readonly groups?: GroupOperations;
  /** Transport-specific counters and gauges by name (e.g. `ring_occupancy_bytes`, `reconnects_total`). */
  metrics?(): Record<string, number>;
  /** Worker-thread publishers (transports with `supports.crossThread`): see `fabric.publishers()`. */
  publishers?(options: PublisherPoolOptions): Promise<PublisherPool>;
  /** Releases every resource; idempotent. Streams' local logs end (followers finish). */
  close(): Promise<void>;
  /** Resolves when the transport has closed: `undefined`, or the error that closed it. Never rejects. */
  readonly closed: Promise<Error | undefined>;
}

/** The options a transport factory receives: the whole fabric config (it validates its own keys). */
export interface TransportConfig {
  readonly transport: string;
  readonly [key: string]: unknown;
}

export interface TransportFactory {
  /** Option keys this transport accepts besides `transport` (unknown keys are rejected by core). */
  readonly options: readonly string[];
  /** URL schemes that select this transport, e.g. `['redis:', 'rediss:']`. */
  readonly schemes?: readonly string[];
  create(config: TransportConfig): Transport | Promise<Transport>;
}

/** Options of `fabric.publishers()`: the user's worker module and the number of shards. */
export interface PublisherPoolOptions {
  /** The worker module (an absolute file URL or path); it publishes through `workerFabric()`. */
  filename: string | URL;
  /** Number of publisher shards (worker threads), each with its own ring. */
  shards: number;
  /** Transport-specific options (ring size, ...). */
  readonly [option: string]: unknown;
}

/** A pool of sharded publishers in worker threads. */
export interface PublisherPool {
  readonly shards: number;
  /** Runs one task in a worker; `task.shard` picks the shard when given. Rejects when the worker throws or dies. */
  run(task: { shard?: number; [key: string]: unknown }, options?: { signal?: AbortSignal }): Promise<unknown>;
  /** Waits for running tasks, drains what they committed, stops the workers. */
  close(): Promise<void>;
}

/** One entry handed to a consumer of a group. */
export interface GroupEntry {
  readonly event: WeftEvent;
  /** 1 on the first delivery, 2 on the first redelivery, ... */
  readonly deliveries: number;
}

/**
 * Consumer groups (Redis Streams, JetStream, pulse/ponos sinks): a named cursor per (group, stream)
 * shared by competing consumers, with a pending list of delivered-but-unacked entries.
 * Core's `Sink` is written once on top of these; filtering, dead letters and the consume loop are core's.
 */
export interface GroupOperations {
  /** Creates the group on `stream` at `from` when it does not exist; an existing group keeps its cursor. */
  ensure(group: string, stream: string, from: StartPosition): Promise<void>;
  /**
   * Up to `count` entries of `stream` never delivered to this group, now pending for `consumer`.
   * Waits up to `blockMs` (0: do not wait) when there are none; resolves `[]` on timeout or abort.
   */
  read(
    group: string,
    consumer: string,
    stream: string,
    count: number,
    blockMs: number,
    signal?: AbortSignal,
  ): Promise<GroupEntry[]>;
  /** Entries pending longer than `minIdleMs` (for any consumer), moved to `consumer`, delivery count + 1. */
  claim(
    group: string,
    consumer: string,
    stream: string,
    minIdleMs: number,
    count: number,
  ): Promise<GroupEntry[]>;
  /** Removes entries from the pending list. Unknown or already acked sequences are ignored (ack is idempotent). */
  ack(group: string, stream: string, seqs: readonly number[]): Promise<void>;
  /**
   * Makes pending entries claimable at once (a nack, or a consumer leaving), keeping their delivery
   * count, but only those still pending for `consumer`: an entry another consumer has claimed since
   * is left alone (a stale holder must not release someone else's delivery).
   */
  release(group: string, consumer: string, stream: string, seqs: readonly number[]): Promise<void>;
  /**
   * Resolves when `stream` may have new entries for the group, or after `timeoutMs`, or on abort.
   * Lets one consumer wait on several streams; a transport may resolve early (spurious wake-ups are fine).
   */
  wait(group: string, streams: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<void>;
}
