/**
 * `weft/workers`: the fabric as seen from inside a publisher worker (a module started by
 * `fabric.publishers({ filename, shards })` on a `sab` fabric). Same shape as everywhere else:
 * `workerFabric().stream(name).publish(data)`, `publishBatch(items)`, `follow()`.
 *
 * Guarantee: a worker's events reach the main thread's streams in the order it published them,
 * in one dense order with every other publisher (sequences are claimed from each stream's shared
 * counter when the record is committed); a batch is visible whole or not at all; a full ring makes
 * `publish` wait (this thread blocks in Atomics.wait) and `tryPublish` return false, never drop.
 * Constraint: worker threads only. `publish()` calls of one turn are coalesced into one record per
 * stream (committed in a microtask, or at once when the batch reaches `maxBatchEvents`).
 */
import { workerData } from 'node:worker_threads';
import { AbortError, ClosedError, ErrorCode, InvalidArgumentError, show, WeftError } from '../core/errors.js';
import type { EventInput, PublishOptions } from '../core/types.js';
import { checkKeys, checkName, checkPublishOptions, checkSignal, checkTopic } from '../core/validate.js';
import {
  layout,
  type SabWorkerData,
  ShardProducer,
  WORKER_DATA_KEY,
  WRITE_CLOSED,
  WRITE_NO_ROOM,
} from '../transports/sab/internal.js';
import { WorkerFollower, type WorkerFollowOptions } from './follower.js';

export { GapNotice, isGapNotice } from '../transports/sab/internal.js';
export { WorkerFollower, type WorkerFollowOptions } from './follower.js';

const TRY_KEYS = ['topic'];
const BATCH_KEYS = ['signal'];
const WRITABLE_KEYS = ['signal', 'bytes'];

/** Events a coalesced batch takes before it is committed at once (not waiting for the microtask). */
const MAX_BATCH_EVENTS = 1024;

let singleton: WorkerFabric | undefined;

/**
 * The fabric handle of this worker thread (one per thread).
 * @throws WeftError WEFT_ERR_UNSUPPORTED outside a worker started by `fabric.publishers()`.
 */
export function workerFabric(): WorkerFabric {
  if (singleton !== undefined) return singleton;
  const data = (workerData as Record<string, unknown> | null | undefined)?.[WORKER_DATA_KEY] as
    | SabWorkerData
    | undefined;
  if (data === undefined) {
    throw new WeftError(
      ErrorCode.UNSUPPORTED,
      'workerFabric() works only in a worker started by fabric.publishers() on a sab fabric',
    );
  }
  singleton = new WorkerFabric(new ShardProducer(data));
  return singleton;
}

/** `publish()` calls of one turn for one stream, kept as the body value the encoder takes. */
interface PendingBatch {
  /** `[topics, data0, data1, ...]`: index 0 is filled in at commit time. */
  body: unknown[];
  /** The first event's topic, and the per-event topics once they differ. */
  topic0: string | undefined;
  topics: (string | null)[] | undefined;
  resolves: ((seq: number) => void)[];
  rejects: ((e: unknown) => void)[];
  bytes: number;
}

function topicsOf(p: PendingBatch): string | null | (string | null)[] {
  return p.topics ?? p.topic0 ?? null;
}

export class WorkerFabric {
  /** This worker's shard number in its pool (0 .. shards - 1). */
  readonly shard: number;
  /** Number of shards in the pool. */
  readonly shards: number;
  /** @internal */
  readonly producer: ShardProducer;
  readonly #streams = new Map<string, WorkerStream<unknown>>();
  #dirty: WorkerStream<unknown>[] = [];
  #flushScheduled = false;

  /** @internal Use `workerFabric()`. */
  constructor(producer: ShardProducer) {
    this.producer = producer;
    this.shard = producer.data.shardNumber;
    this.shards = producer.data.shards;
  }

  /** Bytes of this worker's ring. */
  get ringBytes(): number {
    return this.producer.capacity;
  }

  /** True once the fabric on the main thread is closing or closed (publishing throws ClosedError). */
  get isClosed(): boolean {
    return this.producer.control.state !== layout.STATE_OPEN;
  }

  /**
   * The stream named `name` (created on the main thread at its first publish from here).
   * @throws InvalidArgumentError for a bad name.
   */
  stream<T = unknown>(name: string): WorkerStream<T> {
    let s = this.#streams.get(name);
    if (s === undefined) {
      checkName('stream name', name);
      s = new WorkerStream<unknown>(this, name);
      this.#streams.set(name, s);
    }
    return s as WorkerStream<T>;
  }

  /** Commits every coalesced `publish()` now (waiting for room when a ring is full). */
  flush(): void {
    this.#flushScheduled = false;
    const dirty = this.#dirty;
    if (dirty.length === 0) return;
    this.#dirty = [];
    for (const s of dirty) this.flushStream(s);
  }

  readonly #flushAll = (): void => this.flush();

  /** @internal */
  enqueue(stream: WorkerStream<unknown>, data: unknown, topic: string | undefined): Promise<number> {
    let p = stream.pending;
    if (p === undefined) {
      p = stream.pending = {
        body: [null],
        topic0: topic,
        topics: undefined,
        resolves: [],
        rejects: [],
        bytes: 0,
      };
      this.#dirty.push(stream);
    } else if (p.topics !== undefined) {
      p.topics.push(topic ?? null);
    } else if (topic !== p.topic0) {
      p.topics = new Array<string | null>(p.body.length - 1).fill(p.topic0 ?? null);
      p.topics.push(topic ?? null);
    }
    const batch = p;
    const promise = new Promise<number>((resolve, reject) => {
      batch.resolves.push(resolve);
      batch.rejects.push(reject);
    });
    batch.body.push(data);
    batch.bytes += approxBytes(data);
    if (batch.body.length > MAX_BATCH_EVENTS || batch.bytes >= this.producer.capacity >>> 3) {
      this.flushStream(stream);
    } else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(this.#flushAll);
    }
    return promise;
  }

  /** @internal Commits `stream`'s coalesced batch (blocking when the ring is full). */
  flushStream(stream: WorkerStream<unknown>): void {
    const p = stream.pending;
    if (p === undefined) return;
    stream.pending = undefined;
    let first: number;
    try {
      p.body[0] = topicsOf(p);
      first = this.producer.writeBody(stream.id(), p.body, p.body.length - 1, true);
    } catch (e) {
      for (const reject of p.rejects) reject(e);
      return;
    }
    if (first === WRITE_CLOSED) {
      const e = stream.closedError();
      for (const reject of p.rejects) reject(e);
      return;
    }
    const resolves = p.resolves;
    for (let i = 0; i < resolves.length; i++) resolves[i]!(first + i);
  }

  /** @internal Non-blocking commit of `stream`'s coalesced batch plus one more event. */
  tryFlushStream(stream: WorkerStream<unknown>, data: unknown, topic: string | undefined): boolean {
    const p = stream.pending;
    let value: unknown[];
    if (p === undefined) {
      value = [topic ?? null, data];
    } else {
      value = p.body.slice();
      value.push(data);
      const topics =
        p.topics?.slice() ??
        (topic === p.topic0 ? undefined : new Array(p.body.length - 1).fill(p.topic0 ?? null));
      if (topics !== undefined) topics.push(topic ?? null);
      value[0] = topics ?? p.topic0 ?? null;
    }
    const first = this.producer.writeBody(stream.id(), value, value.length - 1, false);
    if (first === WRITE_NO_ROOM) return false;
    stream.pending = undefined;
    if (first === WRITE_CLOSED) {
      if (p !== undefined) for (const reject of p.rejects) reject(stream.closedError());
      throw stream.closedError();
    }
    if (p !== undefined) for (let i = 0; i < p.resolves.length; i++) p.resolves[i]!(first + i);
    return true;
  }
}

export class WorkerStream<T = unknown> {
  readonly name: string;
  /** @internal */
  pending: PendingBatch | undefined;
  readonly #fabric: WorkerFabric;
  #id = -1;

  /** @internal Use `workerFabric().stream(name)`. */
  constructor(fabric: WorkerFabric, name: string) {
    this.#fabric = fabric;
    this.name = name;
  }

  /** @internal The directory id (registering the name on first use; may block briefly). */
  id(): number {
    if (this.#id < 0) this.#id = this.#fabric.producer.idOf(this.name);
    return this.#id;
  }

  /** @internal */
  closedError(): ClosedError {
    const failed = this.#fabric.producer.control.streamState(this.#id) === layout.STREAM_FAILED;
    return new ClosedError(`stream '${this.name}' is ${failed ? 'failed' : 'closed'}`);
  }

  /**
   * Publishes one event; resolves with its sequence number once it is committed to the ring
   * (coalesced with the other publishes of this turn into one record).
   * @throws (rejects) ClosedError, InvalidArgumentError, AbortError, FrameError (data msgpackr cannot encode).
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
    return this.#fabric.enqueue(this as WorkerStream<unknown>, data, topic);
  }

  /**
   * Publishes several events as one record: all become visible at once, or none. Commits earlier
   * coalesced publishes of this stream first (order), then this batch, waiting for room if needed.
   */
  publishBatch(items: readonly EventInput<T>[], options?: { signal?: AbortSignal }): Promise<number[]> {
    try {
      checkKeys('publishBatch options', options, BATCH_KEYS);
      const signal = checkSignal('publishBatch options.signal', options?.signal);
      const batch = checkBatch(items);
      if (signal?.aborted) throw new AbortError(signal.reason);
      if (batch.length === 0) return Promise.resolve([]);
      const self = this as WorkerStream<unknown>;
      this.#fabric.flushStream(self);
      const first = this.#fabric.producer.write(this.id(), batch, true);
      if (first === WRITE_CLOSED) throw this.closedError();
      const seqs = new Array<number>(batch.length);
      for (let i = 0; i < seqs.length; i++) seqs[i] = first + i;
      return Promise.resolve(seqs);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Publishes one event now without waiting: false when the ring has no room for it (nothing is
   * published; a batch larger than the ring never fits). Coalesced publishes of this stream go first.
   * @throws ClosedError, InvalidArgumentError, FrameError.
   */
  tryPublish(data: T, options?: { topic?: string }): boolean {
    checkKeys('tryPublish options', options, TRY_KEYS);
    const topic =
      options?.topic === undefined ? undefined : checkTopic('tryPublish options.topic', options.topic);
    return this.#fabric.tryFlushStream(this as WorkerStream<unknown>, data, topic);
  }

  /**
   * Resolves when this worker's ring has room for `bytes` more (default: a quarter of the ring):
   * the awaitable partner of `tryPublish` (it waits with Atomics.waitAsync, not blocking the thread).
   * @throws (rejects) ClosedError when the fabric closes first, AbortError, InvalidArgumentError.
   */
  async writable(options?: { bytes?: number; signal?: AbortSignal }): Promise<void> {
    checkKeys('writable options', options, WRITABLE_KEYS);
    const signal = checkSignal('writable options.signal', options?.signal);
    const producer = this.#fabric.producer;
    const bytes = options?.bytes ?? producer.capacity >>> 2;
    if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 1 || bytes > producer.capacity) {
      throw new InvalidArgumentError(
        `writable options.bytes must be an integer from 1 to ${producer.capacity}, got ${show(bytes)}`,
      );
    }
    await producer.writable(bytes, signal);
  }

  /**
   * Follows the stream from this worker (through the broadcast ring): live events from now
   * (`from: 'end'`, the default), or from a sequence the main thread still retains (it replays).
   */
  follow(options?: WorkerFollowOptions): WorkerFollower<T> {
    return new WorkerFollower<T>(this.#fabric.producer, this.name, this.id(), options);
  }
}

/** Validates a batch without copying it (the encoder reads `data` and `topic` synchronously). */
function checkBatch(items: unknown): readonly EventInput[] {
  if (!Array.isArray(items)) {
    throw new InvalidArgumentError(`publishBatch items must be an array, got ${show(items)}`);
  }
  let lastTopic: string | undefined;
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as EventInput | undefined;
    if (item === null || typeof item !== 'object' || !('data' in item)) {
      checkKeys(`publishBatch items[${i}]`, item, ['data', 'topic']);
      throw new InvalidArgumentError(`publishBatch items[${i}] must have a 'data' field, got ${show(item)}`);
    }
    for (const key in item) {
      if (key !== 'data' && key !== 'topic') checkKeys(`publishBatch items[${i}]`, item, ['data', 'topic']);
    }
    const topic = item.topic;
    if (topic !== undefined && topic !== lastTopic) {
      checkTopic(`publishBatch items[${i}].topic`, topic);
      lastTopic = topic;
    }
  }
  return items as readonly EventInput[];
}

function approxBytes(data: unknown): number {
  if (typeof data === 'string') return data.length + 8;
  if (data instanceof Uint8Array) return data.byteLength + 8;
  return 32;
}
