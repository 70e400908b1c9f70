/**
 * SabStream: one stream of the `sab` transport on the main thread. Its log is a core EventLog that
 * main-thread followers read directly; workers' records and main-thread publishes meet here.
 *
 * Guarantee: the log holds the stream's events in claim order, dense, each once. Every publisher
 * (a worker shard or the main thread) claims its sequences from the stream's shared counter (I8);
 * what arrives out of order waits in a Resequencer until the sequences below it arrive, and a
 * batch is appended in one synchronous step, so it is visible whole. A sequence whose publisher
 * died after claiming it is filled with a GapNotice event (gap.ts), never skipped.
 * Constraint: main thread only; driven by the drain (drain.ts) and by core's Stream.
 */
import { ClosedError, StreamResetError } from '../../core/errors.js';
import { EventLog } from '../../core/event-log.js';
import { Resequencer } from '../../core/resequencer.js';
import { expire, hasRetention, readRetained, retain } from '../../core/retention.js';
import type { StreamBounds, TransportStream } from '../../core/transport.js';
import type { EventInput, RetentionOptions, WeftEvent } from '../../core/types.js';
import type { Control } from './control.js';
import { GapNotice, type GapReason } from './gap.js';
import { STREAM_CLOSED, STREAM_FAILED } from './ring-layout.js';

/** What a stream needs from its transport. */
export interface StreamHost {
  readonly control: Control;
  readonly reorderWindow: number;
  /** Asks the drain to look at closing streams and missing sequences soon. */
  kick(): void;
}

export function newEpoch(): string {
  const c = globalThis.crypto;
  if (c?.randomUUID !== undefined) return c.randomUUID().slice(0, 18).replace(/-/g, '');
  return Math.random().toString(16).slice(2, 18);
}

interface Waiter {
  readonly last: number;
  readonly first: number;
  readonly resolve: (first: number) => void;
  readonly reject: (e: Error) => void;
}
interface LostRange {
  readonly first: number;
  readonly count: number;
  readonly notice: GapNotice;
}

/** One life of a stream; replaced as a whole when a TTL drops the stream. */
class Generation {
  readonly log = new EventLog<WeftEvent>();
  readonly epoch = newEpoch();
  closed = false;
  failure: Error | undefined;
  lastAppend = Date.now();
  /** Created at the first out-of-order arrival; until then `expected` is the next sequence. */
  reseq: Resequencer<WeftEvent> | undefined;
  expected = 1;
  /** 0 while open; else the first sequence that will never be claimed. */
  closeAt = 0;
  ended = false;
  readonly endWaiters: (() => void)[] = [];
  /** Main-thread publishes not visible yet (a gap below them), in claim order. */
  readonly waiters: Waiter[] = [];
  waitersHead = 0;
  /** Lost ranges that did not fit the reorder window yet. */
  readonly lost: LostRange[] = [];
  /** Ranges pushed into the resequencer (pruned lazily): what the gap search must not fill. */
  readonly held: { first: number; count: number }[] = [];
}

export class SabStream implements TransportStream {
  readonly name: string;
  /** Index in the shared directory. */
  readonly id: number;
  /** True while only the drain opened it (a worker published first): `fabric.stream()` may still set retention. */
  implicit: boolean;
  /** Worker followers read it: a main-thread append wakes the drain, which copies it to them. */
  watched = false;
  #retention: RetentionOptions;
  #retained: boolean;
  #host: StreamHost;
  #gen = new Generation();
  #ttlTimer: ReturnType<typeof setTimeout> | undefined;
  #shutdown = false;

  constructor(host: StreamHost, name: string, id: number, retention: RetentionOptions, implicit: boolean) {
    this.#host = host;
    this.name = name;
    this.id = id;
    this.implicit = implicit;
    this.#retention = retention;
    this.#retained = false;
    this.setRetention(retention);
  }

  /** Sets retention once (for a stream a worker opened first). */
  setRetention(retention: RetentionOptions): void {
    this.#retention = retention;
    this.#retained = hasRetention(retention);
    if (retention.ttlMs !== undefined && this.#ttlTimer === undefined) this.#armTtl(retention.ttlMs);
  }

  get log(): EventLog<WeftEvent> {
    return this.#gen.log;
  }
  get epoch(): string {
    return this.#gen.epoch;
  }
  /** The next sequence the log will take. */
  get next(): number {
    const gen = this.#gen;
    return gen.reseq === undefined ? gen.expected : gen.reseq.next;
  }
  get isClosed(): boolean {
    return this.#gen.closed;
  }
  /** Lost ranges wait for room in the reorder window. */
  get hasLost(): boolean {
    return this.#gen.lost.length > 0;
  }
  get isEnded(): boolean {
    return this.#gen.ended;
  }
  /** Sequences claimed so far (for a closed stream: those claimed before it closed). */
  get claimedCount(): number {
    const gen = this.#gen;
    return gen.closeAt > 0 ? gen.closeAt - 1 : this.#host.control.claimed(this.id);
  }

  // ------------------------------------------------------------------ main-thread publishing

  appendOne(data: unknown, topic: string | undefined): number | Promise<number> {
    const gen = this.#gen;
    if (gen.closed) throw this.#closedError(gen);
    const first = this.#host.control.claim(this.id, 1);
    if (first < 0) throw this.#closedError(gen);
    const event: WeftEvent = { stream: this.name, seq: first, time: Date.now(), topic, data };
    if (gen.reseq === undefined && first === gen.expected) {
      this.#release(gen, [event]);
      return first;
    }
    return this.#pushMain(gen, [event], first);
  }

  append(batch: readonly EventInput[]): number | Promise<number> {
    const gen = this.#gen;
    if (gen.closed) throw this.#closedError(gen);
    const n = batch.length;
    const first = this.#host.control.claim(this.id, n);
    if (first < 0) throw this.#closedError(gen);
    const time = Date.now();
    const name = this.name;
    const events = new Array<WeftEvent>(n);
    for (let i = 0; i < n; i++) {
      const e = batch[i]!;
      events[i] = { stream: name, seq: first + i, time, topic: e.topic, data: e.data };
    }
    if (gen.reseq === undefined && first === gen.expected) {
      this.#release(gen, events);
      return first;
    }
    return this.#pushMain(gen, events, first);
  }

  /** A main-thread batch that arrived above a gap (a worker's claim in flight): resolves once visible. */
  #pushMain(gen: Generation, events: WeftEvent[], first: number): number | Promise<number> {
    this.accept(events);
    const last = first + events.length - 1;
    if (gen.log.nextSeq > last) return first;
    return new Promise<number>((resolve, reject) => {
      gen.waiters.push({ last, first, resolve, reject });
    });
  }

  // ------------------------------------------------------------------ the drain's side

  /** Whether a batch `first .. first + count - 1` can be taken now without overflowing the window. */
  fits(first: number, count: number): boolean {
    const next = this.next;
    return first <= next || first + count - 1 < next + this.#host.reorderWindow;
  }

  /**
   * Takes a batch of consecutive events (the caller checked `fits`). Stale or duplicate sequences
   * (already released or already held) are dropped by the resequencer.
   */
  accept(events: WeftEvent[]): void {
    const gen = this.#gen;
    const n = events.length;
    if (n === 0) return;
    const first = events[0]!.seq;
    if (gen.reseq === undefined) {
      if (first === gen.expected) {
        this.#release(gen, events);
        return;
      }
      gen.reseq = new Resequencer<WeftEvent>({ start: gen.expected, window: this.#host.reorderWindow });
    }
    const reseq = gen.reseq;
    let out: WeftEvent[] | undefined;
    for (let i = 0; i < n; i++) {
      const e = events[i]!;
      const released = reseq.push(e.seq, e);
      if (released.length === 0) continue;
      if (out === undefined) out = released as WeftEvent[];
      else for (let k = 0; k < released.length; k++) out.push(released[k]!);
    }
    if (out !== undefined) this.#release(gen, out);
    if (reseq.size > 0 && first + n - 1 >= reseq.next) gen.held.push({ first, count: n });
  }

  /**
   * Marks `count` sequences from `first` as lost: each becomes an event carrying `notice`. Held
   * back until it fits the window; sequences that did arrive are kept (the markers are dropped).
   */
  acceptLost(first: number, count: number, reason: GapReason, shard: number, cause?: Error): void {
    const notice = new GapNotice(this.name, first, first + count - 1, reason, shard, cause);
    this.#gen.lost.push({ first, count, notice });
    this.retryLost();
  }

  /** Pushes the lost ranges that fit now. Returns true when something was pushed. */
  retryLost(): boolean {
    const gen = this.#gen;
    let pushed = false;
    while (gen.lost.length > 0) {
      const r = gen.lost[0]!;
      if (!this.fits(r.first, r.count)) break;
      gen.lost.shift();
      const time = Date.now();
      const events = new Array<WeftEvent>(r.count);
      for (let i = 0; i < r.count; i++) {
        events[i] = { stream: this.name, seq: r.first + i, time, topic: undefined, data: r.notice };
      }
      this.accept(events);
      pushed = true;
    }
    return pushed;
  }

  /** Whether a lost range waiting to be pushed covers `seq`; and the lowest first above it. */
  lostAround(seq: number): { covers: boolean; above: number } {
    let above = Number.POSITIVE_INFINITY;
    for (const r of this.#gen.lost) {
      if (r.first <= seq && seq < r.first + r.count) return { covers: true, above };
      if (r.first > seq && r.first < above) above = r.first;
    }
    return { covers: false, above };
  }

  /** The lowest sequence held above `seq` in the resequencer (Infinity when none). */
  heldAbove(seq: number): number {
    const gen = this.#gen;
    const next = this.next;
    let min = Number.POSITIVE_INFINITY;
    let keep = 0;
    for (let i = 0; i < gen.held.length; i++) {
      const r = gen.held[i]!;
      if (r.first + r.count <= next) continue; // released: prune
      gen.held[keep++] = r;
      const lo = Math.max(r.first, seq + 1);
      if (lo < r.first + r.count && lo < min) min = lo;
    }
    gen.held.length = keep;
    return min;
  }

  #release(gen: Generation, events: WeftEvent[]): void {
    const log = gen.log;
    if (gen.ended) return; // a shut-down stream drops what is still arriving
    if (events.length === 1) log.appendOne(events[0]!);
    else log.append(events);
    if (gen.reseq === undefined) gen.expected += events.length;
    const time = events[events.length - 1]!.time;
    gen.lastAppend = Date.now();
    if (this.#retained) retain(log, this.#retention, time);
    if (gen.waitersHead < gen.waiters.length) this.#resolveWaiters(gen);
    if (gen.closeAt > 0) this.#checkEnd(gen);
    if (this.watched) this.#host.control.ring();
  }

  #resolveWaiters(gen: Generation): void {
    const next = gen.log.nextSeq;
    const ws = gen.waiters;
    while (gen.waitersHead < ws.length && ws[gen.waitersHead]!.last < next) {
      const w = ws[gen.waitersHead]!;
      ws[gen.waitersHead++] = undefined as unknown as Waiter;
      w.resolve(w.first);
    }
    if (gen.waitersHead === ws.length) {
      ws.length = 0;
      gen.waitersHead = 0;
    }
  }

  // ------------------------------------------------------------------ reads

  async read(from: number, limit: number): Promise<WeftEvent[]> {
    return readRetained(this.name, expire(this.#gen.log, this.#retention), from, limit);
  }

  async bounds(): Promise<StreamBounds> {
    const log = expire(this.#gen.log, this.#retention);
    const gen = this.#gen;
    return { epoch: gen.epoch, first: log.firstSeq, next: log.nextSeq, closed: gen.closed };
  }

  // ------------------------------------------------------------------ close and fail

  /**
   * Closes the stream for every thread: later claims fail (I8); the log ends once every sequence
   * claimed before the close is in it (or marked lost). Resolves when it has ended.
   */
  close(): Promise<void> {
    return this.#end(undefined);
  }

  fail(error: Error): Promise<void> {
    return this.#end(error);
  }

  #end(error: Error | undefined): Promise<void> {
    const gen = this.#gen;
    if (!gen.closed) {
      gen.closed = true;
      gen.failure = error;
      const claimed = this.#host.control.closeCounter(this.id, error ? STREAM_FAILED : STREAM_CLOSED);
      gen.closeAt = claimed + 1;
      this.#checkEnd(gen);
      if (!gen.ended) this.#host.kick();
    }
    if (gen.ended) return Promise.resolve();
    return new Promise((resolve) => gen.endWaiters.push(resolve));
  }

  #checkEnd(gen: Generation): void {
    if (gen.ended || gen.closeAt === 0) return;
    const next = gen.reseq === undefined ? gen.expected : gen.reseq.next;
    if (next < gen.closeAt) return;
    this.#finish(gen, gen.failure);
  }

  #finish(gen: Generation, error: Error | undefined): void {
    gen.ended = true;
    gen.log.end(error);
    if (this.watched) this.#host.control.ring();
    for (const w of gen.waiters.splice(gen.waitersHead)) {
      if (w !== undefined) w.reject(this.#closedError(gen));
    }
    gen.waitersHead = 0;
    for (const resolve of gen.endWaiters.splice(0)) resolve();
  }

  /**
   * Ends the stream as the transport closes, after the final drain: followers finish (or throw the
   * stream's failure). Sequences still missing were reported as lost by the drain before this.
   */
  shutdown(): void {
    this.#shutdown = true;
    clearTimeout(this.#ttlTimer);
    this.#ttlTimer = undefined;
    const gen = this.#gen;
    gen.closed = true;
    if (!gen.ended) this.#finish(gen, gen.failure);
  }

  #closedError(gen: Generation): ClosedError {
    const e = new ClosedError(`stream '${this.name}' is ${gen.failure ? 'failed' : 'closed'}`);
    if (gen.failure) (e as { cause?: unknown }).cause = gen.failure;
    return e;
  }

  // ------------------------------------------------------------------ TTL

  /**
   * One timer per stream, re-armed lazily. The stream is dropped only when it is quiescent: no
   * claim in flight anywhere (the counter equals what the log holds, swapped to 0 atomically).
   */
  #armTtl(ttlMs: number): void {
    const check = (): void => {
      if (this.#shutdown) return;
      const gen = this.#gen;
      const idle = Date.now() - gen.lastAppend;
      if (idle >= ttlMs && !gen.closed && this.#quiescent(gen)) {
        const next = new Generation();
        this.#gen = next;
        gen.ended = true;
        gen.log.end(
          new StreamResetError(
            this.name,
            gen.epoch,
            next.epoch,
            `was dropped after ${ttlMs} ms without appends`,
          ),
        );
        this.#ttlTimer = setTimeout(check, ttlMs);
      } else {
        this.#ttlTimer = setTimeout(check, Math.max(1, ttlMs - idle));
      }
      this.#ttlTimer.unref?.();
    };
    this.#ttlTimer = setTimeout(check, ttlMs);
    this.#ttlTimer.unref?.();
  }

  #quiescent(gen: Generation): boolean {
    if ((gen.reseq !== undefined && gen.reseq.size > 0) || gen.lost.length > 0) return false;
    const released = gen.log.nextSeq - 1;
    return this.#host.control.restartCounter(this.id, released);
  }
}
