/**
 * SabPublisherPool: sharded publishers in worker threads. Each shard is one piscina pool of one
 * thread with its own publish ring, so `run({ shard })` always lands on the same ring and a
 * shard's events keep their order by construction.
 *
 * Guarantee: `run()` settles after the drain has taken every record the task committed; it
 * rejects with the worker's error when it throws or dies (the other shards go on; sequences the
 * dead worker claimed but never committed become GapNotice events). `close()` waits for running
 * tasks, drains what they committed, and stops the workers.
 */
import type { TransferListItem } from 'node:worker_threads';
import type { Piscina as PiscinaPool } from 'piscina';
import { AbortError, ClosedError, InvalidArgumentError, show } from '../../core/errors.js';
import type { PublisherPool, PublisherPoolOptions } from '../../core/transport.js';
import { checkKeys, checkSignal } from '../../core/validate.js';
import { checkRingBytes } from './options.js';
import type { Shard } from './shard.js';
import type { SabTransport } from './transport.js';
import { makeWorkerData } from './worker-data.js';
import { workerExecArgv, workerHref } from './worker-paths.js';

export interface SabPublisherPoolOptions extends PublisherPoolOptions {
  /** The worker module: an absolute path or file URL. It publishes through `workerFabric()`. */
  filename: string | URL;
  /** Number of shards: worker threads, each with its own ring (1 to 256). */
  shards: number;
  /** Bytes of each shard's ring (a power of two). @default the transport's `ringBytes` */
  ringBytes?: number;
  /** The export of the worker module to run. @default 'default' */
  name?: string;
  /** The workers' execArgv. @default the tsx preload for a `.ts` module, else Node's default */
  execArgv?: string[];
  /** Called with errors that belong to no task (a worker that failed while idle). @default the transport's onError */
  onError?: (error: Error, shard: number) => void;
}

const POOL_KEYS = ['filename', 'shards', 'ringBytes', 'name', 'execArgv', 'onError'];
const RUN_KEYS = ['signal', 'transferList'];

/** Opens a pool (loads piscina on first use, so the transport stays light without pools). */
export async function openPool(
  transport: SabTransport,
  options: PublisherPoolOptions,
): Promise<SabPublisherPool> {
  checkKeys('publishers options', options, POOL_KEYS);
  const o = options as SabPublisherPoolOptions;
  const href = workerHref('publishers options.filename', o.filename);
  if (typeof o.shards !== 'number' || !Number.isSafeInteger(o.shards) || o.shards < 1 || o.shards > 256) {
    throw new InvalidArgumentError(
      `publishers options.shards must be an integer from 1 to 256, got ${show(o.shards)}`,
    );
  }
  let ringBytes = transport.options.ringBytes;
  if (o.ringBytes !== undefined) {
    try {
      ringBytes = checkRingBytes('publishers options.ringBytes', o.ringBytes);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  }
  if (o.name !== undefined && typeof o.name !== 'string') {
    throw new InvalidArgumentError(`publishers options.name must be a string, got ${show(o.name)}`);
  }
  if (
    o.execArgv !== undefined &&
    (!Array.isArray(o.execArgv) || o.execArgv.some((a) => typeof a !== 'string'))
  ) {
    throw new InvalidArgumentError(
      `publishers options.execArgv must be an array of strings, got ${show(o.execArgv)}`,
    );
  }
  if (o.onError !== undefined && typeof o.onError !== 'function') {
    throw new InvalidArgumentError(`publishers options.onError must be a function, got ${show(o.onError)}`);
  }
  const execArgv = workerExecArgv(href, o.execArgv);
  const { Piscina } = await import('piscina');
  return new SabPublisherPool(transport, Piscina, {
    href,
    shards: o.shards,
    ringBytes,
    name: o.name,
    execArgv,
    onError: o.onError,
  });
}

interface Resolved {
  href: string;
  shards: number;
  ringBytes: number;
  name: string | undefined;
  execArgv: string[] | undefined;
  onError: ((error: Error, shard: number) => void) | undefined;
}

export class SabPublisherPool implements PublisherPool {
  readonly shards: number;
  /** Resolves once the pool has closed (or was destroyed) and its rings are drained. */
  readonly closed: Promise<void>;
  readonly #transport: SabTransport;
  readonly #pools: PiscinaPool[] = [];
  readonly #rings: Shard[] = [];
  readonly #running: number[];
  readonly #seen = new WeakSet<object>();
  readonly #onError: ((error: Error, shard: number) => void) | undefined;
  #next = 0;
  #closing: Promise<void> | undefined;
  #settle!: () => void;

  constructor(transport: SabTransport, Piscina: typeof PiscinaPool, o: Resolved) {
    this.#transport = transport;
    this.shards = o.shards;
    this.#onError = o.onError;
    this.#running = new Array<number>(o.shards).fill(0);
    this.closed = new Promise((resolve) => {
      this.#settle = resolve;
    });
    const t = transport;
    const broadcast = t.broadcaster;
    for (let k = 0; k < o.shards; k++) {
      const ring = t.drainer.addShard(o.ringBytes);
      this.#rings.push(ring);
      const pool = new Piscina({
        filename: o.href,
        ...(o.name === undefined ? {} : { name: o.name }),
        minThreads: 1,
        maxThreads: 1,
        idleTimeout: Number.POSITIVE_INFINITY,
        concurrentTasksPerWorker: 1,
        ...(o.execArgv === undefined ? {} : { execArgv: o.execArgv }),
        workerData: makeWorkerData({
          control: t.control.sab,
          shard: ring.sab,
          shardIndex: ring.index,
          shardNumber: k,
          shards: o.shards,
          ringBytes: o.ringBytes,
          broadcast: broadcast?.sab ?? null,
          followRingBytes: broadcast?.capacity ?? 0,
          maxFollowers: broadcast?.maxReaders ?? 0,
          slowReader: t.options.slowReader,
        }),
      });
      pool.on('error', (e: Error) => this.#report(e, k));
      pool.on('workerCreate', () => this.#track(k));
      pool.on('workerDestroy', () => this.#track(k));
      this.#pools.push(pool);
      this.#track(k);
    }
  }

  /** Watches every thread of shard `k` for its exit: the only moment its ring may be recovered. */
  #track(k: number): void {
    const pool = this.#pools[k];
    if (pool === undefined) return;
    for (const worker of pool.threads) {
      if (this.#seen.has(worker)) continue;
      this.#seen.add(worker);
      const threadId = worker.threadId;
      worker.once('exit', () => {
        this.#transport.drainer.onThreadExit(this.#rings[k]!, threadId);
        this.#transport.broadcaster?.onThreadExit(threadId);
        this.#track(k);
      });
    }
  }

  #report(error: Error, shard: number): void {
    if (this.#onError !== undefined) this.#onError(error, shard);
    else this.#transport.onError(error);
  }

  /**
   * Runs `task` in a worker: the one of `task.shard` when given, else the least busy shard.
   * Resolves with the task's result once the drain has taken what it committed. `transferList`
   * moves what must not be cloned (MessagePorts, ArrayBuffers) to the worker, as with postMessage.
   * @throws InvalidArgumentError for a bad shard, ClosedError after close(), AbortError, or the
   *   worker's own error.
   */
  async run(
    task: { shard?: number; [key: string]: unknown },
    options?: { signal?: AbortSignal; transferList?: readonly TransferListItem[] },
  ): Promise<unknown> {
    checkKeys('run options', options, RUN_KEYS);
    const signal = checkSignal('run options.signal', options?.signal);
    const transferList = options?.transferList;
    if (transferList !== undefined && !Array.isArray(transferList)) {
      throw new InvalidArgumentError(`run options.transferList must be an array, got ${show(transferList)}`);
    }
    if (task === null || typeof task !== 'object' || Array.isArray(task)) {
      throw new InvalidArgumentError(`run task must be an object, got ${show(task)}`);
    }
    let k = task.shard;
    if (k === undefined) k = this.#leastBusy();
    else if (typeof k !== 'number' || !Number.isSafeInteger(k) || k < 0 || k >= this.shards) {
      throw new InvalidArgumentError(
        `run task.shard must be an integer from 0 to ${this.shards - 1}, got ${show(k)}`,
      );
    }
    if (signal?.aborted) throw new AbortError(signal.reason);
    if (this.#closing !== undefined) throw new ClosedError('publisher pool is closed');
    const pool = this.#pools[k]!;
    const ring = this.#rings[k]!;
    this.#running[k]!++;
    try {
      const result = await pool.run(task, {
        ...(signal === undefined ? {} : { signal }),
        ...(transferList === undefined ? {} : { transferList: [...transferList] as never }),
      });
      await ring.whenTaken();
      return result;
    } catch (e) {
      // Settle after what the task committed before failing is in the streams too.
      await ring.whenTaken();
      if (signal?.aborted && (e as Error)?.name === 'AbortError') throw new AbortError(signal.reason);
      throw e;
    } finally {
      this.#running[k]!--;
    }
  }

  #leastBusy(): number {
    let best = this.#next;
    for (let i = 0; i < this.shards; i++) {
      const k = (this.#next + i) % this.shards;
      if (this.#running[k]! < this.#running[best]!) best = k;
    }
    this.#next = (best + 1) % this.shards;
    return best;
  }

  /** Waits for running tasks, drains what they committed, stops the workers. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown(false);
    return this.#closing;
  }

  /** Terminates the workers at once (running tasks reject), then drains what they committed. */
  destroy(): Promise<void> {
    this.#closing ??= this.#shutdown(true);
    return this.#closing;
  }

  async #shutdown(force: boolean): Promise<void> {
    await Promise.all(this.#pools.map((p) => (force ? p.destroy() : p.close())));
    await Promise.all(this.#rings.map((r) => r.whenIdle()));
    for (const r of this.#rings) this.#transport.drainer.removeShard(r);
    this.#settle();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
