/**
 * SabTransport: the `sab` transport's main-thread object. It owns the shared control block (the
 * stream directory and the counters), the streams' logs, the drain, the publisher pools and the
 * broadcast ring for worker followers.
 *
 * Guarantee: a complete fabric on the main thread (publish, read, follow, close, retention) whose
 * streams also take events from worker threads, in one dense order per stream.
 * Constraint: one transport per fabric; the main thread is the only one that adds stream names.
 */
import { ClosedError, InvalidOperationError } from '../../core/errors.js';
import type { PublisherPool, PublisherPoolOptions, Transport } from '../../core/transport.js';
import type { RetentionOptions } from '../../core/types.js';
import { Broadcaster } from './broadcast.js';
import { Control } from './control.js';
import { Drainer, type DrainHost } from './drain.js';
import type { ResolvedSabOptions } from './options.js';
import { sabSupports } from './options.js';
import { openPool, type SabPublisherPool } from './pool.js';
import { REQ_ERR_CLOSED, REQ_ERR_NO_FOLLOW_RING, STATE_CLOSED, STATE_CLOSING } from './ring-layout.js';
import { SabStream, type StreamHost } from './stream.js';

export class SabTransport implements Transport, StreamHost, DrainHost {
  readonly name = 'sab';
  readonly supports = sabSupports;
  readonly closed: Promise<Error | undefined>;
  readonly options: ResolvedSabOptions;
  readonly control: Control;
  readonly drainer: Drainer;
  readonly broadcaster: Broadcaster | undefined;
  readonly #onError: ((error: Error) => void) | undefined;
  readonly #streams = new Map<string, SabStream>();
  readonly #byId: SabStream[] = [];
  readonly #pools = new Set<SabPublisherPool>();
  #settle!: (e: Error | undefined) => void;
  #isClosed = false;
  #closing: Promise<void> | undefined;

  constructor(options: ResolvedSabOptions, onError?: (error: Error) => void) {
    this.options = options;
    this.#onError = onError;
    this.closed = new Promise((resolve) => {
      this.#settle = resolve;
    });
    this.control = Control.create(options.maxStreams);
    this.drainer = new Drainer(this);
    this.broadcaster =
      options.followRingBytes > 0
        ? new Broadcaster(this, options.followRingBytes, options.maxFollowers)
        : undefined;
    this.drainer.start();
  }

  /** Ring gauges for `fabric.metrics()`: shards, and bytes committed but not yet drained (occupancy). */
  metrics(): Record<string, number> {
    let occupancy = 0;
    let capacity = 0;
    for (const shard of this.drainer.shards) {
      occupancy += shard.reader.available();
      capacity += shard.capacity;
    }
    return {
      ring_shards: this.drainer.shards.length,
      ring_occupancy_bytes: occupancy,
      ring_capacity_bytes: capacity,
      streams: this.#streams.size,
    };
  }

  get reorderWindow(): number {
    return this.options.reorderWindow;
  }
  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Opens (creating if needed) a stream: registered in the shared directory so workers find it. */
  stream(name: string, retention: RetentionOptions): SabStream {
    const open = this.#streams.get(name);
    if (open !== undefined) {
      if (open.implicit) {
        open.implicit = false;
        open.setRetention(retention);
      }
      return open;
    }
    const s = this.#open(name, retention, false);
    if (s === undefined) {
      throw new InvalidOperationError(
        `sab transport: the stream directory is full (options.maxStreams is ${this.control.maxStreams}); cannot open '${name}'`,
      );
    }
    return s;
  }

  #open(name: string, retention: RetentionOptions, implicit: boolean): SabStream | undefined {
    const id = this.control.register(name);
    if (id < 0) return undefined;
    const s = new SabStream(this, name, id, retention, implicit);
    this.#streams.set(name, s);
    this.#byId[id] = s;
    if (this.#isClosed) s.shutdown();
    return s;
  }

  // ------------------------------------------------------------------ DrainHost / StreamHost

  streamById(id: number): SabStream {
    const s = this.#byId[id];
    if (s !== undefined) return s;
    // Registered by this thread (I12), so always known; kept for safety.
    return this.#open(this.control.nameOf(id), {}, true)!;
  }

  registerName(name: string): number {
    const open = this.#streams.get(name);
    if (open !== undefined) return open.id;
    if (this.#isClosed) return -2;
    const s = this.#open(name, {}, true);
    return s === undefined ? -1 : s.id;
  }

  follow(streamId: number, from: number): { code: number; arg: number } {
    if (this.broadcaster === undefined) return { code: REQ_ERR_NO_FOLLOW_RING, arg: 0 };
    if (this.#isClosed) return { code: REQ_ERR_CLOSED, arg: 0 };
    return this.broadcaster.follow(this.streamById(streamId), from);
  }

  get broadcastHasWork(): boolean {
    return this.broadcaster?.hasWork === true;
  }

  pumpBroadcast(): { progress: boolean; blocked: boolean } {
    return this.broadcaster === undefined ? NOTHING_TO_PUMP : this.broadcaster.pump();
  }

  kick(): void {
    this.drainer.kick();
  }

  onError(error: Error): void {
    if (this.#onError !== undefined) this.#onError(error);
    else process.emitWarning(error);
  }

  // ------------------------------------------------------------------ pools

  async publishers(options: PublisherPoolOptions): Promise<PublisherPool> {
    if (this.#isClosed) throw new ClosedError('fabric is closed');
    const pool = await openPool(this, options);
    this.#pools.add(pool);
    pool.closed.then(() => this.#pools.delete(pool));
    return pool;
  }

  // ------------------------------------------------------------------ close

  /**
   * Closes every stream (later claims fail everywhere), stops the publisher pools that are still
   * open (their workers are terminated: close a pool first to let its tasks finish), drains what
   * was committed, reports what was claimed but never committed as lost, and ends every log.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#isClosed = true;
    this.control.setState(STATE_CLOSING);
    const streams = [...this.#streams.values()];
    for (const s of streams) void s.close();
    await Promise.all([...this.#pools].map((p) => p.destroy()));
    await this.drainer.finish(streams, this.options.closeTimeoutMs);
    for (const s of streams) s.shutdown();
    this.broadcaster?.shutdown();
    this.control.setState(STATE_CLOSED);
    await this.drainer.stop();
    this.#settle(undefined);
  }
}

const NOTHING_TO_PUMP = Object.freeze({ progress: false, blocked: false });
