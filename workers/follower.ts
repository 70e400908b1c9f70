/**
 * WorkerFollower: `stream.follow()` inside a worker: the stream's events, read from the broadcast
 * ring the main thread copies them into.
 *
 * Guarantee: every event from the start position on, exactly once, in sequence order; the
 * iteration ends when the stream closes, throws the stream's error when it fails, throws
 * LaggedError when this follower fell a whole broadcast ring behind under the 'error' policy (with
 * the 'block' policy publishers wait instead), and stops at `break`, `return()` or an abort, which
 * free its slot at once (the other followers lose nothing). One consumer at a time.
 */
import {
  AbortError,
  ErrorCode,
  InvalidArgumentError,
  InvalidOperationError,
  show,
  TruncatedError,
  WeftError,
} from '../core/errors.js';
import type { WeftEvent } from '../core/types.js';
import { checkKeys, checkSignal, checkStart } from '../core/validate.js';
import {
  BroadcastReader,
  layout,
  RequestError,
  type ShardProducer,
  type SlowReaderPolicy,
} from '../transports/sab/internal.js';

export interface WorkerFollowOptions {
  /**
   * Where to start: 'end' (events published after this call), or a sequence number (the main
   * thread replays what it still retains from there; older than that throws TruncatedError).
   * @default 'end'
   */
  from?: 'end' | number;
  /** When this follower falls a whole broadcast ring behind: publishers wait ('block') or it throws LaggedError ('error'). @default the transport's `slowReader` */
  slowReader?: SlowReaderPolicy;
  signal?: AbortSignal;
}

const FOLLOW_KEYS = ['from', 'slowReader', 'signal'];
const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });
/** Backstop for wake-ups: a waiting follower re-checks at least this often. */
const WAIT_SLICE_MS = 100;

export class WorkerFollower<T = unknown> implements AsyncIterableIterator<WeftEvent<T>> {
  readonly stream: string;
  readonly #reader: BroadcastReader;
  readonly #signal: AbortSignal | undefined;
  #buffer: WeftEvent[] = [];
  #index = 0;
  #iterating = false;
  #pending = false;
  #done = false;
  #last = 0;
  #failOnce: Error | undefined;
  readonly #closed: Promise<Error | undefined>;
  #settle!: (e: Error | undefined) => void;
  #abortWait: (() => void) | undefined;

  /**
   * @internal Use `workerFabric().stream(name).follow()`.
   * @throws InvalidArgumentError for bad options; TruncatedError when `from` is no longer retained;
   *   WeftError when the transport has no broadcast ring or every follower slot is taken.
   */
  constructor(producer: ShardProducer, name: string, streamId: number, options?: WorkerFollowOptions) {
    checkKeys('follow options', options, FOLLOW_KEYS);
    const signal = checkSignal('follow options.signal', options?.signal);
    const from = options?.from === undefined ? 'end' : checkStart('follow options.from', options.from);
    if (from === 'start') {
      throw new InvalidArgumentError(
        "follow options.from in a worker must be 'end' or a sequence number (use 1 for the oldest), got 'start'",
      );
    }
    const data = producer.data;
    const policy = options?.slowReader ?? data.slowReader;
    if (policy !== 'block' && policy !== 'error') {
      throw new InvalidArgumentError(
        `follow options.slowReader must be 'block' or 'error', got ${show(policy)}`,
      );
    }
    if (data.broadcast === null) {
      throw new WeftError(
        ErrorCode.UNSUPPORTED,
        'worker followers need options.followRingBytes > 0 on the sab fabric',
      );
    }
    this.stream = name;
    this.#signal = signal;
    this.#closed = new Promise((resolve) => {
      this.#settle = resolve;
    });
    this.#reader = new BroadcastReader(
      data.broadcast,
      data.followRingBytes,
      data.maxFollowers,
      producer.control,
      streamId,
      name,
      policy,
    );
    if (signal?.aborted) {
      this.#failOnce = new AbortError(signal.reason);
      this.#finish(this.#failOnce);
      return;
    }
    this.#reader.join();
    // Only after the cursor is placed: anything claimed later is copied after it (B5).
    const start = from === 'end' ? producer.control.claimed(streamId) + 1 : from;
    this.#reader.expected = start;
    try {
      producer.request(layout.REQ_FOLLOW, undefined, streamId, start);
    } catch (e) {
      this.#reader.leave();
      if (e instanceof RequestError && e.code === layout.REQ_ERR_TRUNCATED) {
        throw new TruncatedError(name, start, producer.lastReplyArg);
      }
      if (e instanceof RequestError && e.code === layout.REQ_ERR_NO_FOLLOW_RING) {
        throw new WeftError(ErrorCode.UNSUPPORTED, 'worker followers need options.followRingBytes > 0');
      }
      throw e;
    }
    signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** The sequence of the last event delivered (0 before the first). */
  get position(): number {
    return this.#last;
  }
  get done(): boolean {
    return this.#done;
  }
  /** Resolves when the follower finishes: undefined for a clean end, else the error. Never rejects. */
  get closed(): Promise<Error | undefined> {
    return this.#closed;
  }

  [Symbol.asyncIterator](): this {
    if (this.#iterating)
      throw new InvalidOperationError(`follower of '${this.stream}' is already being iterated`);
    this.#iterating = true;
    return this;
  }

  async next(): Promise<IteratorResult<WeftEvent<T>>> {
    if (this.#pending) {
      throw new InvalidOperationError(
        `follower of '${this.stream}': next() called while another next() is pending`,
      );
    }
    if (this.#done) {
      const e = this.#failOnce;
      this.#failOnce = undefined;
      if (e !== undefined) throw e;
      return DONE;
    }
    if (this.#index < this.#buffer.length) return this.#take();
    this.#pending = true;
    try {
      for (;;) {
        const r = this.#reader.read(1024);
        if (r.kind === 'events') {
          this.#buffer = r.events;
          this.#index = 0;
          return this.#take();
        }
        if (r.kind === 'end') {
          this.#finish(r.error);
          if (r.error !== undefined) throw r.error;
          return DONE;
        }
        if (this.#reader.closed && !this.#reader.hasData) {
          this.#finish(undefined);
          return DONE;
        }
        await this.#wait();
        if (this.#done) {
          const e = this.#failOnce;
          this.#failOnce = undefined;
          if (e !== undefined) throw e;
          return DONE;
        }
      }
    } catch (e) {
      this.#finish(e as Error);
      this.#failOnce = undefined;
      throw e;
    } finally {
      this.#pending = false;
    }
  }

  #take(): IteratorResult<WeftEvent<T>> {
    const e = this.#buffer[this.#index++]!;
    this.#last = e.seq;
    return { done: false, value: e as WeftEvent<T> };
  }

  /** Waits for the writer, the abort signal, or the backstop timer. */
  #wait(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#abortWait = resolve;
      this.#reader.wait(WAIT_SLICE_MS).then(resolve, resolve);
    }).finally(() => {
      this.#abortWait = undefined;
    });
  }

  /** Stops following and frees the slot at once. */
  async return(): Promise<IteratorResult<WeftEvent<T>>> {
    this.#finish(undefined);
    return DONE;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.return();
  }

  #onAbort = (): void => {
    const e = new AbortError(this.#signal?.reason);
    this.#failOnce = e;
    this.#finish(e);
    this.#abortWait?.();
  };

  #finish(error: Error | undefined): void {
    if (this.#done) return;
    this.#done = true;
    this.#reader.leave();
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#settle(error);
  }
}
