/**
 * Follower: the async iterator a user gets from `stream.follow()`.
 *
 * Guarantee: it yields every event of the stream from its start position exactly once, in
 * sequence order, with no gap between history and live events; it ends when the stream closes,
 * throws the stream's terminal error, or throws `LaggedError` when retention trimmed events it had
 * not taken yet (never a silent skip). One consumer at a time: a second concurrent `next()` or a
 * second iteration throws `InvalidOperationError`. `break`, `return()` or aborting the signal
 * releases it at once: it leaves the log's waiter list and drops its chunk reference.
 */
import { AbortError, InvalidOperationError, LaggedError } from './errors.js';
import type { Chunk, EventLog, LogPosition, Parked } from './event-log.js';
import type { WeftEvent } from './types.js';

/** Where a follower begins, as resolved by the stream (sync for in-process logs, async for remote ones). */
export type FollowerStart = LogPosition<WeftEvent>;

enum Mode {
  None = 0,
  Events = 1,
  Batches = 2,
}
enum Step {
  Item = 0,
  Wait = 1,
  End = 2,
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

export class Follower<T = unknown> implements AsyncIterableIterator<WeftEvent<T>>, Parked {
  /** @internal owned by the log (L5). */
  parkIndex = -1;
  readonly stream: string;
  #log: EventLog<WeftEvent>;
  #chunk: Chunk<WeftEvent> | null = null;
  #index = 0;
  /** A future start: wait until the log holds this sequence (nothing older is delivered). */
  #waitFor = 0;
  #starting = false;
  #startError: Error | undefined;
  /** An abort that happened while no next() was pending: the next call rejects with it once. */
  #failOnce: Error | undefined;
  #mode = Mode.None;
  #done = false;
  #resolve: ((r: IteratorResult<never>) => void) | null = null;
  #reject: ((e: unknown) => void) | null = null;
  #item: WeftEvent | readonly WeftEvent[] | undefined;
  #last = 0;
  #delivered = 0;
  #signal: AbortSignal | undefined;
  #closed: Promise<Error | undefined>;
  #ready: Promise<void> = Promise.resolve();
  #settleClosed!: (e: Error | undefined) => void;

  /** Remote followers: re-positions a follower the local log left behind, through the transport's history. */
  #refill: ((seq: number) => Promise<FollowerStart>) | undefined;

  constructor(
    stream: string,
    log: EventLog<WeftEvent>,
    start: FollowerStart | Promise<FollowerStart>,
    signal?: AbortSignal,
    refill?: (seq: number) => Promise<FollowerStart>,
  ) {
    this.stream = stream;
    this.#log = log;
    this.#refill = refill;
    this.#closed = new Promise((resolve) => {
      this.#settleClosed = resolve;
    });
    if (signal !== undefined) {
      this.#signal = signal;
      if (signal.aborted) this.#failOnce = new AbortError(signal.reason);
      else signal.addEventListener('abort', this.#onAbort, { once: true });
    }
    if (this.#failOnce !== undefined) {
      this.#finish(this.#failOnce);
    } else if (start instanceof Promise) {
      this.#starting = true;
      this.#ready = start.then(
        (s) => this.#begin(s),
        (e: unknown) => this.#begin({ error: e instanceof Error ? e : new Error(String(e)) }),
      );
    } else {
      this.#begin(start);
    }
  }

  /**
   * Resolves when the start position is known (at once for in-process transports; after a round
   * trip for remote ones). Publishing after `await follower.ready()` is sure to be seen, whatever
   * the transport. Never rejects: a start error is thrown by the first `next()`.
   */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** The sequence of the last event this follower delivered (0 before the first). */
  get position(): number {
    return this.#last;
  }
  /** Events this follower has delivered. */
  get delivered(): number {
    return this.#delivered;
  }
  /** True once the follower has finished (ended, failed, aborted or returned). */
  get done(): boolean {
    return this.#done;
  }
  /** Resolves when the follower finishes: `undefined` for a clean end, else the error. Never rejects. */
  get closed(): Promise<Error | undefined> {
    return this.#closed;
  }

  [Symbol.asyncIterator](): this {
    this.#claim(Mode.Events);
    return this;
  }

  /** The next event. Fast path: an event already in the chunk resolves at once. */
  next(): Promise<IteratorResult<WeftEvent<T>>> {
    const c = this.#chunk;
    if (c !== null && this.#resolve === null && this.#mode !== Mode.Batches) {
      const i = this.#index;
      const events = c.events;
      if (i < events.length) {
        this.#index = i + 1;
        const e = events[i]!;
        this.#last = e.seq;
        this.#delivered++;
        return Promise.resolve({ done: false, value: e as WeftEvent<T> });
      }
    }
    return this.#slow(Mode.Events) as Promise<IteratorResult<WeftEvent<T>>>;
  }

  /**
   * Iterates in batches: each step yields every event already available in the current chunk at
   * once (at least one). The arrays are shared with other followers: do not mutate them.
   */
  batches(): AsyncIterableIterator<readonly WeftEvent<T>[]> {
    this.#claim(Mode.Batches);
    return {
      next: () => this.#slow(Mode.Batches) as Promise<IteratorResult<readonly WeftEvent<T>[]>>,
      return: () => this.return() as Promise<IteratorResult<readonly WeftEvent<T>[]>>,
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  /**
   * Non-blocking next (Consul's NextNoBlock): the next event if one is available now, else `undefined`.
   * @throws the stream's terminal error, `LaggedError`, or the start error, like `next()` would.
   */
  tryNext(): WeftEvent<T> | undefined {
    if (this.#done || this.#resolve !== null) return undefined;
    const step = this.#advance(Mode.Events);
    if (step === Step.Item) {
      const e = this.#item as WeftEvent<T>;
      this.#item = undefined;
      return e;
    }
    return undefined;
  }

  /** Stops following: the pending `next()` (if any) resolves done; resources are released at once. */
  return(): Promise<IteratorResult<WeftEvent<T>>> {
    const resolve = this.#resolve;
    this.#finish(undefined);
    if (resolve !== null) resolve(DONE);
    return Promise.resolve(DONE);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.return();
  }

  #claim(mode: Mode): void {
    if (this.#mode !== Mode.None) {
      throw new InvalidOperationError(`follower of '${this.stream}' is already being iterated`);
    }
    this.#mode = mode;
  }

  #slow(mode: Mode): Promise<IteratorResult<unknown>> {
    if (this.#resolve !== null) {
      return Promise.reject(
        new InvalidOperationError(
          `follower of '${this.stream}': next() called while another next() is pending`,
        ),
      );
    }
    if (this.#done) {
      const e = this.#failOnce;
      if (e === undefined) return Promise.resolve(DONE);
      this.#failOnce = undefined;
      return Promise.reject(e);
    }
    if (this.#mode === Mode.None) this.#mode = mode;
    else if (this.#mode !== mode) {
      return Promise.reject(
        new InvalidOperationError(
          `follower of '${this.stream}' is iterated per ${mode === Mode.Events ? 'batch' : 'event'}`,
        ),
      );
    }
    let step: Step;
    try {
      step = this.#advance(mode);
    } catch (e) {
      return Promise.reject(e);
    }
    if (step === Step.Item) {
      const value = this.#item;
      this.#item = undefined;
      return Promise.resolve({ done: false, value });
    }
    if (step === Step.End) return Promise.resolve(DONE);
    return new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  /**
   * Finds the next item; parks on the log when there is none yet. Throws (after finishing the
   * follower) on a start error, a lag, or the log's terminal error.
   */
  #advance(mode: Mode): Step {
    for (;;) {
      if (this.#startError !== undefined) {
        const e = this.#startError;
        this.#finish(e);
        throw e;
      }
      if (this.#starting) return Step.Wait;
      const log = this.#log;
      const c = this.#chunk;
      if (c === null) {
        // A future start (L1: nothing older than #waitFor is delivered).
        if (log.nextSeq > this.#waitFor) {
          if (this.#waitFor < log.firstSeq) return this.#lag(this.#waitFor);
          const at = log.locate(this.#waitFor);
          this.#chunk = at.chunk;
          this.#index = at.index;
          continue;
        }
        return this.#atEnd(log);
      }
      const i = this.#index;
      const events = c.events;
      if (i < events.length) {
        if (mode === Mode.Events) {
          this.#index = i + 1;
          const e = events[i]!;
          this.#last = e.seq;
          this.#delivered++;
          this.#item = e;
        } else {
          // A sealed chunk's array never changes (L2): hand it out whole when we start at its head.
          const batch = i === 0 && c.next !== null ? events : events.slice(i);
          this.#index = events.length;
          this.#last = batch[batch.length - 1]!.seq;
          this.#delivered += batch.length;
          this.#item = batch;
        }
        return Step.Item;
      }
      if (c.next !== null) {
        this.#chunk = c.next;
        this.#index = 0;
        continue;
      }
      if (c.trimmed) {
        // Retention passed this chunk (L4): either we lagged, or we stood exactly at its end.
        const seq = c.first + i;
        if (seq < log.firstSeq) return this.#lag(seq);
        const at = log.locate(seq);
        this.#chunk = at.chunk;
        this.#index = at.index;
        continue;
      }
      if (c.link !== null) {
        // The end of a snapshot chain (L7): continue in the live log, or load the next page of history.
        const link = c.link;
        this.#chunk = null;
        if ('log' in link) {
          this.#log = link.log;
          this.#waitFor = link.seq;
          continue;
        }
        this.#starting = true;
        link.load().then(
          (s) => this.#begin(s),
          (e: unknown) => this.#begin({ error: e instanceof Error ? e : new Error(String(e)) }),
        );
        return Step.Wait;
      }
      return this.#atEnd(log);
    }
  }

  #atEnd(log: EventLog<WeftEvent>): Step {
    if (log.ended) {
      const e = log.error;
      this.#finish(e);
      if (e !== undefined) throw e;
      return Step.End;
    }
    log.park(this);
    return Step.Wait;
  }

  #lag(seq: number): Step {
    if (this.#refill !== undefined) {
      // The local log trimmed past us, but the transport still has history: continue from there.
      this.#chunk = null;
      this.#starting = true;
      this.#refill(seq).then(
        (s) => this.#begin(s),
        (e: unknown) => this.#begin({ error: e instanceof Error ? e : new Error(String(e)) }),
      );
      return Step.Wait;
    }
    const e = new LaggedError(this.stream, seq, this.#log.firstSeq);
    this.#finish(e);
    throw e;
  }

  /** @internal Called by the log's shared wake-up (L5), or when an async start resolves. */
  wake(): void {
    const resolve = this.#resolve;
    if (resolve === null || this.#done) return;
    const reject = this.#reject!;
    let step: Step;
    try {
      step = this.#advance(this.#mode);
    } catch (e) {
      this.#resolve = this.#reject = null;
      reject(e);
      return;
    }
    if (step === Step.Wait) return;
    this.#resolve = this.#reject = null;
    if (step === Step.End) {
      resolve(DONE);
      return;
    }
    const value = this.#item as never;
    this.#item = undefined;
    resolve({ done: false, value });
  }

  #begin(start: FollowerStart): void {
    this.#starting = false;
    if (this.#done) return;
    if ('error' in start) {
      if (this.#startError === undefined) this.#startError = start.error;
    } else if ('chunk' in start) {
      this.#chunk = start.chunk;
      this.#index = start.index;
      if (start.log !== undefined) this.#log = start.log;
    } else {
      this.#chunk = null;
      this.#waitFor = start.waitFor;
      if (start.log !== undefined) this.#log = start.log;
    }
    this.wake();
  }

  #onAbort = (): void => {
    const reject = this.#reject;
    const e = new AbortError(this.#signal?.reason);
    this.#resolve = this.#reject = null;
    if (reject !== null)
      reject(e); // reject first, tear down second (style point 8)
    else this.#failOnce = e; // the next call rejects with it
    this.#finish(e);
  };

  #finish(error: Error | undefined): void {
    if (this.#done) return;
    this.#done = true;
    this.#log.unpark(this);
    this.#chunk = null;
    this.#resolve = this.#reject = null;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#settleClosed(error);
  }
}
