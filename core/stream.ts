/**
 * Stream: the public handle on one named stream of a fabric. It validates every call, tracks the
 * fabric's closed state, and turns the transport's log into followers; the transport does the I/O.
 *
 * Guarantees (docs/guarantees.md): sequences are dense per stream; a batch is visible whole or
 * not at all; a follower sees every event from its start exactly once, in order, with no gap
 * between history and live; a trimmed start throws `TruncatedError`, never a silent skip.
 */
import {
  AbortError,
  ClosedError,
  InvalidArgumentError,
  StreamResetError,
  show,
  TruncatedError,
} from './errors.js';
import { Chunk, EventLog } from './event-log.js';
import { Follower, type FollowerStart } from './follower.js';
import type { StreamBounds, TransportStream } from './transport.js';
import type {
  EventInput,
  FollowOptions,
  PublishOptions,
  ReadOptions,
  StreamInfo,
  StreamOptions,
  WeftEvent,
} from './types.js';
import {
  checkCount,
  checkKeys,
  checkPublishOptions,
  checkSignal,
  checkStart,
  checkTopic,
} from './validate.js';

const BATCH_KEYS = ['signal'];
const READ_KEYS = ['from', 'last', 'limit', 'signal'];
const FOLLOW_KEYS = ['from', 'last', 'epoch', 'signal'];
const SIGNAL_KEYS = ['signal'];
/** Events a remote stream's local mirror keeps for followers that fall behind (older ones come from the transport). */
const MIRROR_RETAIN = 10_000;
/** Events fetched per history read of a remote follower. */
const HISTORY_PAGE = 1_000;
/** The log a remote follower holds before its start is resolved (never appended to). */
const PENDING = new EventLog<WeftEvent>();

/** Counters of one stream in this process. */
export interface StreamMetrics {
  stream: string;
  /** Newest sequence this process has seen. */
  lastSeq: number;
  /** Followers open now. */
  followers: number;
  /** Events delivered to followers (all of them, since the stream was opened here). */
  delivered: number;
  /** How far the slowest follower is behind `lastSeq`, in events. */
  maxLag: number;
  /** The slowest follower's position, when there is one. */
  slowestPosition: number | undefined;
}

/** What a stream needs from its fabric. */
export interface StreamOwner {
  readonly isClosed: boolean;
}

export class Stream<T = unknown> {
  readonly name: string;
  readonly options: Readonly<StreamOptions>;
  #ts: TransportStream;
  #owner: StreamOwner;
  #mirrorLog: Promise<EventLog<WeftEvent>> | undefined;
  #mirrorSync: EventLog<WeftEvent> | undefined;
  #watch: { stop(): void } | undefined;

  /** @internal Use `fabric.stream(name)`. */
  constructor(owner: StreamOwner, ts: TransportStream, options: StreamOptions) {
    this.name = ts.name;
    this.options = Object.freeze({ ...options });
    this.#ts = ts;
    this.#owner = owner;
  }

  /**
   * Appends one event and resolves with its sequence number.
   * @throws ClosedError (stream or fabric closed), InvalidArgumentError, AbortError.
   */
  publish(data: T, options?: PublishOptions): Promise<number> {
    let topic: string | undefined;
    if (options !== undefined) {
      try {
        topic = checkPublishOptions(options);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    if (this.#owner.isClosed) return Promise.reject(this.#closedError());
    try {
      const ts = this.#ts;
      const first =
        ts.appendOne !== undefined
          ? ts.appendOne(data, topic, options?.signal)
          : ts.append([{ data, topic }], options?.signal);
      return typeof first === 'number' ? Promise.resolve(first) : first;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Appends several events atomically: all become visible at once, or none. Resolves with their
   * sequence numbers (consecutive).
   */
  async publishBatch(items: readonly EventInput<T>[], options?: { signal?: AbortSignal }): Promise<number[]> {
    checkKeys('publishBatch options', options, BATCH_KEYS);
    const signal = checkSignal('publishBatch options.signal', options?.signal);
    if (!Array.isArray(items)) {
      throw new InvalidArgumentError(`publishBatch items must be an array, got ${show(items)}`);
    }
    const batch: EventInput[] = new Array(items.length);
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      checkKeys(`publishBatch items[${i}]`, item, ['data', 'topic']);
      if (item === undefined || !('data' in item)) {
        throw new InvalidArgumentError(
          `publishBatch items[${i}] must have a 'data' field, got ${show(item)}`,
        );
      }
      batch[i] = {
        data: item.data,
        topic:
          item.topic === undefined ? undefined : checkTopic(`publishBatch items[${i}].topic`, item.topic),
      };
    }
    if (signal?.aborted) throw new AbortError(signal.reason);
    if (this.#owner.isClosed) throw this.#closedError();
    if (batch.length === 0) return [];
    const first = await this.#ts.append(batch, signal);
    const seqs = new Array<number>(batch.length);
    for (let i = 0; i < seqs.length; i++) seqs[i] = first + i;
    return seqs;
  }

  /**
   * Retained events, oldest first: all of them, the newest `last`, or from `from` on (at most `limit`).
   * @throws TruncatedError when `from` is older than the oldest retained event.
   */
  async read(options?: ReadOptions): Promise<WeftEvent<T>[]> {
    checkKeys('read options', options, READ_KEYS);
    const signal = checkSignal('read options.signal', options?.signal);
    const limit =
      options?.limit === undefined
        ? Number.POSITIVE_INFINITY
        : checkCount('read options.limit', options.limit);
    const from = options?.from === undefined ? undefined : checkStart('read options.from', options.from);
    const last = options?.last === undefined ? undefined : checkCount('read options.last', options.last);
    if (from !== undefined && last !== undefined) {
      throw new InvalidArgumentError(
        `read options: give 'from' or 'last', not both (got from ${show(from)}, last ${last})`,
      );
    }
    if (signal?.aborted) throw new AbortError(signal.reason);
    this.#checkOpen();
    const bounds = await this.#ts.bounds(signal);
    let start: number;
    if (last !== undefined) start = Math.max(bounds.first, bounds.next - last);
    else if (from === undefined || from === 'start') start = bounds.first;
    else if (from === 'end') return [];
    else start = from;
    if (start < bounds.first) throw new TruncatedError(this.name, start, bounds.first);
    // A transport may answer in pages: read on until the limit or the end seen in `bounds`.
    const end = Math.min(bounds.next, start + limit);
    let out: WeftEvent[] = [];
    for (let at = start; at < end; ) {
      const page = await this.#ts.read(at, end - at, signal);
      if (page.length === 0) break;
      out = out.length === 0 ? page : out.concat(page);
      at += page.length;
    }
    return out as WeftEvent<T>[];
  }

  /**
   * Follows the stream: history from the start position, then every new event, until the stream
   * closes (done), fails (throws its error), the signal aborts, or the loop breaks.
   * Default start: 'end' (only events published after this call).
   */
  follow(options?: FollowOptions): Follower<T> {
    checkKeys('follow options', options, FOLLOW_KEYS);
    const signal = checkSignal('follow options.signal', options?.signal);
    const from = options?.from === undefined ? undefined : checkStart('follow options.from', options.from);
    const last = options?.last === undefined ? undefined : checkCount('follow options.last', options.last);
    if (from !== undefined && last !== undefined) {
      throw new InvalidArgumentError(
        `follow options: give 'from' or 'last', not both (got from ${show(from)}, last ${last})`,
      );
    }
    if (options?.epoch !== undefined && typeof options.epoch !== 'string') {
      throw new InvalidArgumentError(`follow options.epoch must be a string, got ${show(options.epoch)}`);
    }
    const log = this.#ts.log;
    const position = from ?? (last === undefined ? 'end' : undefined);
    if (log === undefined) {
      // A remote transport: one local mirror per stream, fed by one watcher, however many followers.
      // The bounds request goes out now, so 'end' means "after this call" on the transport's order.
      const start = this.#owner.isClosed
        ? { error: this.#closedError() }
        : this.#remoteStart(this.#ts.bounds(), position, last, options?.epoch);
      return this.#track(
        new Follower<T>(this.name, PENDING, start, signal, (seq) => this.#positionRemote(seq)),
      );
    }
    let start: FollowerStart;
    if (this.#owner.isClosed) start = { error: this.#closedError() };
    else if (options?.epoch !== undefined && options.epoch !== this.#ts.epoch) {
      start = { error: new StreamResetError(this.name, options.epoch, this.#ts.epoch, 'was recreated') };
    } else start = startIn(this.name, log, position, last);
    return this.#track(new Follower<T>(this.name, log, start, signal));
  }

  /** Live followers, for metrics (lag, delivered); a follower leaves the set when it finishes. */
  #followers = new Set<Follower<T>>();
  #deliveredByFinished = 0;

  #track(f: Follower<T>): Follower<T> {
    this.#followers.add(f);
    void f.closed.then(() => {
      this.#followers.delete(f);
      this.#deliveredByFinished += f.delivered;
    });
    return f;
  }

  /**
   * Counters for this stream as seen from this process (cheap: computed when asked).
   * `lastSeq` is the newest sequence this process has seen (for remote streams: its local mirror).
   */
  metrics(): StreamMetrics {
    let delivered = this.#deliveredByFinished;
    let maxLag = 0;
    let slowest: number | undefined;
    const last = this.#ts.log?.nextSeq ?? this.#mirrorNext;
    for (const f of this.#followers) {
      delivered += f.delivered;
      if (f.position > 0 || f.delivered > 0) {
        const lag = Math.max(0, last - 1 - f.position);
        if (lag >= maxLag) {
          maxLag = lag;
          slowest = f.position;
        }
      }
    }
    return {
      stream: this.name,
      lastSeq: last - 1,
      followers: this.#followers.size,
      delivered,
      maxLag,
      slowestPosition: slowest,
    };
  }

  get #mirrorNext(): number {
    return this.#mirrorSync?.nextSeq ?? 1;
  }

  /** The local mirror of a remote stream: started by the first follower, fed by `watch`. */
  #mirror(): Promise<EventLog<WeftEvent>> {
    // A mirror whose feed ended with an error (stream dropped or recreated, transport down too long)
    // cannot serve new followers: start a new one. A cleanly ended one (closed stream) stays.
    const current = this.#mirrorSync;
    if (current?.ended && current.error !== undefined && !this.#owner.isClosed) {
      this.#watch?.stop();
      this.#mirrorLog = undefined;
      this.#mirrorSync = undefined;
      this.#watch = undefined;
    }
    if (this.#mirrorLog !== undefined) return this.#mirrorLog;
    const ts = this.#ts;
    const ready = (async () => {
      const b = await ts.bounds();
      const log = new EventLog<WeftEvent>({ start: b.next, retain: MIRROR_RETAIN });
      this.#mirrorSync = log;
      if (ts.watch === undefined) throw new InvalidArgumentError(`transport of '${this.name}' cannot follow`);
      this.#watch = ts.watch(log, b.next - 1);
      if (this.#owner.isClosed) this.shutdown();
      return log;
    })();
    ready.catch(() => {
      if (this.#mirrorLog === ready) this.#mirrorLog = undefined; // let a later follow retry
    });
    this.#mirrorLog = ready;
    return ready;
  }

  async #remoteStart(
    atCall: Promise<StreamBounds>,
    from: 'start' | 'end' | number | undefined,
    last: number | undefined,
    epoch: string | undefined,
  ): Promise<FollowerStart> {
    let [b] = await Promise.all([atCall, this.#mirror()]);
    if (epoch !== undefined && epoch !== b.epoch) {
      return { error: new StreamResetError(this.name, epoch, b.epoch, 'was recreated') };
    }
    for (let attempt = 0; ; attempt++) {
      let seq: number;
      if (last !== undefined) seq = Math.max(b.first, b.next - last);
      else if (from === 'start' || from === undefined) seq = b.first;
      else if (from === 'end') seq = b.next;
      else seq = from;
      if (seq < b.first) return { error: new TruncatedError(this.name, seq, b.first) };
      try {
        return await this.#positionRemote(seq);
      } catch (e) {
        // 'start' and 'last' are relative: when retention moved under us, take the new oldest.
        if (!(e instanceof TruncatedError) || typeof from === 'number' || attempt >= 3) throw e;
        b = await this.#ts.bounds();
      }
    }
  }

  /** Places a remote follower at `seq`: in the mirror when it holds it, else on a page of history linked onward (L7). */
  async #positionRemote(seq: number): Promise<FollowerStart> {
    const mirror = await this.#mirror();
    if (seq >= mirror.firstSeq) {
      if (seq > mirror.nextSeq) return { waitFor: seq, log: mirror };
      return { ...mirror.locate(seq), log: mirror };
    }
    const page = await this.#ts.read(seq, HISTORY_PAGE);
    if (page.length === 0) return { waitFor: seq, log: mirror };
    const next = seq + page.length;
    const chunk = new Chunk<WeftEvent>(seq, page);
    chunk.link =
      next >= mirror.firstSeq ? { log: mirror, seq: next } : { load: () => this.#positionRemote(next) };
    return { chunk, index: 0 };
  }

  /** @internal Stops the remote watcher and ends the local mirror (followers finish). Called by `fabric.close()`. */
  shutdown(): void {
    this.#watch?.stop();
    this.#watch = undefined;
    void this.#mirrorLog?.then(
      (log) => log.end(),
      () => {},
    );
  }

  /** The stream's identity and bounds. */
  async info(options?: { signal?: AbortSignal }): Promise<StreamInfo> {
    checkKeys('info options', options, SIGNAL_KEYS);
    this.#checkOpen();
    const b = await this.#ts.bounds(options?.signal);
    return {
      stream: this.name,
      epoch: b.epoch,
      first: b.first,
      last: b.next - 1,
      length: b.next - b.first,
      closed: b.closed,
    };
  }

  /** Closes the stream for everyone: every follower finishes after what was published; publishing throws ClosedError. */
  async close(): Promise<void> {
    if (this.#owner.isClosed) return;
    await this.#ts.close();
  }

  /** Fails the stream for everyone: every follower throws `error` after what was published (Consul's AppendErr). */
  async fail(error: Error): Promise<void> {
    if (!(error instanceof Error))
      throw new InvalidArgumentError(`fail() needs an Error, got ${show(error)}`);
    this.#checkOpen();
    await this.#ts.fail(error);
  }

  #checkOpen(): void {
    if (this.#owner.isClosed) throw this.#closedError();
  }
  #closedError(): ClosedError {
    return new ClosedError(`fabric is closed (stream '${this.name}')`);
  }
}

/** Resolves a follow start against an in-process log (synchronously, so 'end' means "after this call"). */
export function startIn(
  stream: string,
  log: EventLog<WeftEvent>,
  from: 'start' | 'end' | number | undefined,
  last: number | undefined,
): FollowerStart {
  if (from === 'end') {
    const tail = log.tail;
    return { chunk: tail, index: tail.events.length };
  }
  let seq: number;
  if (last !== undefined) seq = Math.max(log.firstSeq, log.nextSeq - last);
  else if (from === 'start' || from === undefined) seq = log.firstSeq;
  else seq = from;
  if (seq < log.firstSeq) return { error: new TruncatedError(stream, seq, log.firstSeq) };
  if (seq > log.nextSeq) return { waitFor: seq };
  return log.locate(seq);
}
