/**
 * Resequencer: takes items tagged with sequence numbers, in any order and with duplicates, and
 * releases each of them exactly once, in sequence order, holding at most `window` items.
 *
 * The rule (stream mode): every call releases up to the highest sequence for which every lower
 * sequence (from `next`) has arrived or been skipped; nothing above a missing sequence leaves
 * before that sequence arrives or is skipped. Duplicates (a sequence already held) and stale items
 * (below `next`: already released or skipped) are dropped and counted in `stats`, never released
 * twice. A gap is held until it fills, until a push beyond the window forces it (`onOverflow`:
 * throw `WindowFullError` or skip), or until it has been missing for `gapTimeoutMs`
 * (`onGapTimeout`: skip, or fail with `GapError`); every skipped run is reported once to `onGap`.
 * Memory: at most `window - 1` items held in stream mode, `window` in batch mode, in arrays
 * allocated once at construction; push is O(1) amortized (no sort, no per-item allocation).
 *
 * Batch mode (efr's batch resequencer): collects `window` distinct items, then releases them
 * sorted, gaps allowed; items below the last released one are stale.
 *
 * No timers: the caller drives time. `push()` and `poll()` read the `now` clock and apply
 * `gapTimeoutMs`; call `poll()` on your own schedule when pushes may stop while a gap is open.
 */
import { ErrorCode, InvalidArgumentError, show, WeftError } from './errors.js';

/** `stream` releases as soon as a contiguous run exists; `batch` releases sorted batches of `window`. */
export type ResequencerMode = 'stream' | 'batch';

/** What a push at or beyond `next + window` does (stream mode). */
export type OverflowPolicy = 'reject' | 'skip';

/** What a gap that has been missing for `gapTimeoutMs` does (stream mode). */
export type GapTimeoutPolicy = 'skip' | 'reject';

/** A run of sequences that will never be released: `from..to`, both inclusive. */
export interface ResequencerGap {
  from: number;
  to: number;
  /** Why it was skipped: a push beyond the window, a timeout, `flush()`, or a batch release. */
  reason: 'overflow' | 'timeout' | 'flush' | 'batch';
}

export interface ResequencerOptions {
  /** The first sequence expected. @default 1 */
  start?: number;
  /**
   * Stream mode: accepted sequences are `next .. next + window - 1`. Batch mode: the batch size.
   * At most 2^24. @default 1024
   */
  window?: number;
  /** @default 'stream' */
  mode?: ResequencerMode;
  /**
   * Stream mode only. `reject`: the push throws `WindowFullError` and changes nothing. `skip`:
   * the gaps below the item are skipped (reported to `onGap`) so that the item fits.
   * @default 'reject'
   */
  onOverflow?: OverflowPolicy;
  /**
   * Called once for every run of sequences that is skipped, synchronously, after the state has
   * advanced and before the call that skipped returns. It must not throw (an exception propagates
   * out of that call and the items it released are lost to the caller) and must not call back into
   * the same resequencer (what that call releases would reach you before the outer call's items).
   */
  onGap?: (gap: ResequencerGap) => void;
  /**
   * Stream mode only. How long the oldest missing sequence may stay missing (counted from the
   * arrival of the oldest item held above it), in the units of `now`. Applied by `push()` and
   * `poll()` only. @default Infinity (wait forever)
   */
  gapTimeoutMs?: number;
  /**
   * Stream mode only. `skip`: release past the gap and report it to `onGap`. `reject`: the
   * resequencer fails; this and every later `push()`/`poll()` throws `GapError` until `reset()`.
   * @default 'skip'
   */
  onGapTimeout?: GapTimeoutPolicy;
  /** The clock for `gapTimeoutMs`; only read when a timeout is set. @default Date.now */
  now?: () => number;
}

/** Counters since construction (not cleared by `reset()`). */
export interface ResequencerStats {
  /** Items released by push, poll and flush. */
  released: number;
  /** Items dropped because their sequence was already held. */
  duplicates: number;
  /** Items dropped because their sequence was below `next` (already released or skipped). */
  stale: number;
  /** Runs of missing sequences skipped (each reported once to `onGap`). */
  gapsSkipped: number;
  /** Missing sequences skipped, summed over those runs. */
  seqsSkipped: number;
}

/** A stream-mode push at or beyond `next + window` with `onOverflow: 'reject'`. Nothing changed. */
export class WindowFullError extends WeftError {
  readonly seq: number;
  readonly next: number;
  readonly window: number;
  constructor(seq: number, next: number, window: number) {
    super(
      ErrorCode.WINDOW_FULL,
      `sequence ${seq} is beyond the resequencer window: next expected is ${next} and window is ${window}, ` +
        `so the highest acceptable sequence is ${next + window - 1}`,
    );
    this.name = 'WindowFullError';
    this.seq = seq;
    this.next = next;
    this.window = window;
  }
}

/** Sequences `from..to` stayed missing for `gapTimeoutMs` with `onGapTimeout: 'reject'`. */
export class GapError extends WeftError {
  readonly from: number;
  readonly to: number;
  readonly waitedMs: number;
  constructor(from: number, to: number, waitedMs: number, gapTimeoutMs: number) {
    super(
      ErrorCode.GAP,
      `sequence${from === to ? ` ${from} has` : `s ${from}..${to} have`} been missing for ${waitedMs} ms ` +
        `(gapTimeoutMs is ${gapTimeoutMs}); the resequencer has failed, call reset() to start a new run`,
    );
    this.name = 'GapError';
    this.from = from;
    this.to = to;
    this.waitedMs = waitedMs;
  }
}

const MAX_WINDOW = 2 ** 24;
const OPTION_KEYS: readonly string[] = [
  'start',
  'window',
  'mode',
  'onOverflow',
  'onGap',
  'gapTimeoutMs',
  'onGapTimeout',
  'now',
];
const STREAM_ONLY: readonly string[] = ['onOverflow', 'gapTimeoutMs', 'onGapTimeout'];

/**
 * The result of every call that releases nothing. Shared and frozen: released arrays belong to
 * the caller only when non-empty, which is why push/poll return `readonly T[]`.
 */
const NOTHING: readonly never[] = Object.freeze([]);

/** Internal kinds, fixed at construction so that push() dispatches on one small integer. */
const STREAM = 0;
const STREAM_TIMED = 1;
const BATCH = 2;

/**
 * Puts sequence-numbered items back in order, exactly once each, in bounded memory.
 * See the module comment for the rule; docs/resequencer.md for the policies and figures.
 *
 * Storage (both modes): a ring of power-of-two capacity indexed by `seq & mask` (an index, never
 * a position). `#tags[index]` holds the sequence stored there; a slot holds sequence `s` iff
 * `#tags[s & mask] === s && s >= #next`, so releasing never has to clear a presence flag.
 * Invariant (stream): the slot of `#next` is never occupied, so `size > 0` means a gap at `#next`.
 */
export class Resequencer<T> {
  readonly #kind: number;
  readonly #window: number;
  readonly #start: number;
  readonly #mask: number;
  readonly #tags: Float64Array;
  readonly #items: (T | undefined)[];
  readonly #skipOnOverflow: boolean;
  readonly #onGap: ((gap: ResequencerGap) => void) | undefined;
  readonly #gapTimeoutMs: number;
  readonly #rejectOnGapTimeout: boolean;
  readonly #now: () => number;

  #next: number;
  #size = 0;
  #pendingGaps: ResequencerGap[] = [];
  #failure: GapError | undefined;

  // Arrival order of held items (timed stream mode only): a FIFO of (seq, time) by position.
  // Entries of released items are dropped lazily from the head; the head entry is then the
  // oldest held item. Each sequence enters once per run, so it holds < 2 * window entries.
  readonly #arrivalSeq: Float64Array;
  readonly #arrivalTime: Float64Array;
  readonly #arrivalMask: number;
  #arrivalHead = 0;
  #arrivalTail = 0;

  // Batch mode: the range of held sequences, and the rare items whose slot was taken by
  // another held sequence (possible when a batch spans more than the ring).
  #batchMin = Number.POSITIVE_INFINITY;
  #batchMax = 0;
  #spill: Map<number, T> | undefined;

  #released = 0;
  #duplicates = 0;
  #stale = 0;
  #gapsSkipped = 0;
  #seqsSkipped = 0;

  /** @throws InvalidArgumentError naming the option and the bad value, for any bad or unknown option. */
  constructor(options?: ResequencerOptions) {
    const o = checkOptions(options);
    this.#window = o.window;
    this.#start = o.start;
    this.#next = o.start;
    this.#skipOnOverflow = o.onOverflow === 'skip';
    this.#onGap = o.onGap;
    this.#gapTimeoutMs = o.gapTimeoutMs;
    this.#rejectOnGapTimeout = o.onGapTimeout === 'reject';
    this.#now = o.now;
    const batch = o.mode === 'batch';
    this.#kind = batch ? BATCH : o.gapTimeoutMs === Number.POSITIVE_INFINITY ? STREAM : STREAM_TIMED;
    // Batch: twice the window, so that a batch spanning up to 2 * window sequences sweeps in place.
    const capacity = nextPowerOfTwo(batch ? 2 * o.window : o.window);
    this.#mask = capacity - 1;
    this.#tags = new Float64Array(capacity);
    this.#items = Array.from({ length: capacity }, () => undefined);
    const arrivals = this.#kind === STREAM_TIMED ? 2 * capacity : 0;
    this.#arrivalSeq = new Float64Array(arrivals);
    this.#arrivalTime = new Float64Array(arrivals);
    this.#arrivalMask = arrivals - 1;
  }

  /** Items held (received, not yet released). At most `window` (`window - 1` in stream mode). */
  get size(): number {
    return this.#size;
  }

  /**
   * The lowest sequence that can still be released: everything below it was released or skipped.
   * Stream mode: the next expected sequence. Batch mode: one past the last released sequence.
   */
  get next(): number {
    return this.#next;
  }

  /** A snapshot of the counters. */
  get stats(): ResequencerStats {
    return {
      released: this.#released,
      duplicates: this.#duplicates,
      stale: this.#stale,
      gapsSkipped: this.#gapsSkipped,
      seqsSkipped: this.#seqsSkipped,
    };
  }

  /**
   * Adds one item. Returns the items this push released, in sequence order: a fresh array the
   * caller owns, or a shared frozen empty array when nothing was released (do not mutate it).
   * With a gap timeout, items released by an expired gap are included (after this item is placed).
   * @throws InvalidArgumentError when `seq` is not an integer >= 1 (nothing changes).
   * @throws WindowFullError in stream mode with `onOverflow: 'reject'` when
   *   `seq >= next + window` (nothing changes).
   * @throws GapError with `onGapTimeout: 'reject'` once a gap has timed out (the item is not taken).
   */
  push(seq: number, item: T): readonly T[] {
    if (!Number.isSafeInteger(seq) || seq < 1) throw badSeq(seq);
    if (this.#kind === STREAM) return this.#pushStream(seq, item);
    return this.#kind === BATCH ? this.#pushBatch(seq, item) : this.#pushTimed(seq, item);
  }

  /**
   * Applies the gap timeout at the current time and returns what that releases (usually nothing).
   * Call it on your own timer when pushes may pause while a gap is open; it is cheap when nothing
   * is held. Without `gapTimeoutMs` (and in batch mode) it always returns the empty array.
   * @throws GapError with `onGapTimeout: 'reject'` once a gap has timed out.
   */
  poll(): readonly T[] {
    if (this.#kind !== STREAM_TIMED) return NOTHING;
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#size === 0) return NOTHING;
    const now = this.#now();
    if (this.#rejectOnGapTimeout) {
      this.#checkGapTimeout(now);
      return NOTHING;
    }
    const out: T[] = [];
    this.#expireGaps(now, out);
    this.#emitGaps();
    return out.length === 0 ? NOTHING : out;
  }

  /**
   * Releases everything held, in order, skipping the gaps between (each reported to `onGap`),
   * and moves `next` past the last released item; later arrivals below it are stale. Works in a
   * failed resequencer too (to drain it). Returns a fresh array.
   */
  flush(): T[] {
    const out: T[] = [];
    if (this.#size === 0) return out;
    if (this.#kind === BATCH) this.#releaseBatch(out, 'flush');
    else this.#releaseBelow(Number.POSITIVE_INFINITY, out, 'flush');
    this.#emitGaps();
    return out;
  }

  /**
   * Starts a new run at `start` (as on a new source connection): drops what is held (call
   * `flush()` first to keep it) and clears a `GapError` failure. Counters are kept.
   * @throws InvalidArgumentError when `start` is not an integer >= 1 (nothing changes).
   */
  reset(start: number = this.#start): void {
    if (!Number.isSafeInteger(start) || start < 1) {
      throw new InvalidArgumentError(`start must be an integer >= 1, got ${show(start)}`);
    }
    // The tags of released slots are below the old `next` but may be above the new one.
    this.#tags.fill(0);
    this.#items.fill(undefined);
    this.#next = start;
    this.#size = 0;
    this.#failure = undefined;
    this.#arrivalHead = this.#arrivalTail = 0;
    this.#batchMin = Number.POSITIVE_INFINITY;
    this.#batchMax = 0;
    this.#spill?.clear();
  }

  // ---- stream mode ----

  #pushStream(seq: number, item: T): readonly T[] {
    const ahead = seq - this.#next;
    if (ahead < 0) {
      this.#stale++;
      return NOTHING;
    }
    if (ahead >= this.#window) return this.#overflow(seq, item);
    if (ahead === 0) {
      const out = [item];
      this.#next = seq + 1;
      if (this.#size !== 0) this.#drainRun(out);
      this.#released++;
      return out;
    }
    const index = seq & this.#mask;
    if (this.#tags[index] === seq) {
      this.#duplicates++;
      return NOTHING;
    }
    this.#tags[index] = seq;
    this.#items[index] = item;
    this.#size++;
    return NOTHING;
  }

  /** Releases the held run starting at `#next` (whose item is not held) into `out`. */
  #drainRun(out: T[]): void {
    const tags = this.#tags;
    const items = this.#items;
    const mask = this.#mask;
    let next = this.#next;
    let index = next & mask;
    let n = 0;
    while (tags[index] === next) {
      out.push(items[index] as T);
      items[index] = undefined;
      n++;
      index = ++next & mask;
    }
    this.#next = next;
    this.#size -= n;
    this.#released += n;
  }

  #overflow(seq: number, item: T): readonly T[] {
    if (!this.#skipOnOverflow) throw new WindowFullError(seq, this.#next, this.#window);
    const out: T[] = [];
    this.#releaseBelow(seq - this.#window + 1, out, 'overflow');
    this.#drainRun(out);
    // Now next <= seq < next + window: the drained run stopped at a missing sequence <= seq.
    const more = this.#pushStream(seq, item);
    for (let i = 0; i < more.length; i++) out.push(more[i] as T);
    // The timed path records the item's arrival first and emits at its end.
    if (this.#kind === STREAM) this.#emitGaps();
    return out;
  }

  /**
   * Releases every held item below `target` in order, queues the gaps between them, and sets
   * `#next` to `target` (or, for an infinite target, one past the last released item).
   * O(min(target - next, window)): held sequences all lie below `next + window`.
   */
  #releaseBelow(target: number, out: T[], reason: ResequencerGap['reason']): void {
    const tags = this.#tags;
    const items = this.#items;
    const mask = this.#mask;
    let remaining = this.#size;
    let seq = this.#next;
    let gapFrom = seq;
    for (; remaining !== 0 && seq < target; seq++) {
      const index = seq & mask;
      if (tags[index] !== seq) continue;
      if (gapFrom < seq) this.#queueGap(gapFrom, seq - 1, reason);
      out.push(items[index] as T);
      items[index] = undefined;
      remaining--;
      gapFrom = seq + 1;
    }
    if (target !== Number.POSITIVE_INFINITY) {
      if (gapFrom < target) this.#queueGap(gapFrom, target - 1, reason);
      gapFrom = target;
    }
    this.#released += this.#size - remaining;
    this.#size = remaining;
    this.#next = gapFrom;
  }

  // ---- stream mode with a gap timeout ----

  #pushTimed(seq: number, item: T): readonly T[] {
    if (this.#failure !== undefined) throw this.#failure;
    let now = Number.NaN;
    if (this.#size !== 0) {
      now = this.#now();
      if (this.#rejectOnGapTimeout) this.#checkGapTimeout(now);
    }
    const duplicates = this.#duplicates;
    let out = this.#pushStream(seq, item);
    if (this.#size !== 0) {
      if (seq >= this.#next && this.#tags[seq & this.#mask] === seq && duplicates === this.#duplicates) {
        if (Number.isNaN(now)) now = this.#now();
        this.#recordArrival(seq, now);
      }
      if (!this.#rejectOnGapTimeout) {
        const expired: T[] = [];
        this.#expireGaps(now, expired);
        if (expired.length !== 0) out = out.length === 0 ? expired : out.concat(expired);
      }
    }
    this.#emitGaps();
    return out;
  }

  #recordArrival(seq: number, now: number): void {
    this.#dropReleasedArrivals();
    const index = this.#arrivalTail++ & this.#arrivalMask;
    this.#arrivalSeq[index] = seq;
    this.#arrivalTime[index] = now;
  }

  /** Pops arrivals of released items; afterwards the head is the oldest held item (if any). */
  #dropReleasedArrivals(): void {
    const next = this.#next;
    while (
      this.#arrivalHead !== this.#arrivalTail &&
      (this.#arrivalSeq[this.#arrivalHead & this.#arrivalMask] as number) < next
    ) {
      this.#arrivalHead++;
    }
  }

  /** How long `#next` has been missing: since the oldest held item (all held are above it) arrived. */
  #missingFor(now: number): number {
    this.#dropReleasedArrivals();
    // Empty only if the clock threw between placing an item and recording it: treat as fresh.
    if (this.#arrivalHead === this.#arrivalTail) return 0;
    return now - (this.#arrivalTime[this.#arrivalHead & this.#arrivalMask] as number);
  }

  #checkGapTimeout(now: number): void {
    const waited = this.#missingFor(now);
    if (waited < this.#gapTimeoutMs) return;
    this.#failure = new GapError(this.#next, this.#firstHeld() - 1, waited, this.#gapTimeoutMs);
    throw this.#failure;
  }

  /** Skips expired head gaps, one at a time, until the oldest held item is younger than the timeout. */
  #expireGaps(now: number, out: T[]): void {
    while (this.#size !== 0 && this.#missingFor(now) >= this.#gapTimeoutMs) {
      const first = this.#firstHeld();
      this.#queueGap(this.#next, first - 1, 'timeout');
      this.#next = first;
      this.#drainRun(out);
    }
  }

  /** The lowest held sequence; only called when `size > 0` (so it exists within the window). */
  #firstHeld(): number {
    let seq = this.#next + 1;
    while (this.#tags[seq & this.#mask] !== seq) seq++;
    return seq;
  }

  // ---- batch mode ----

  #pushBatch(seq: number, item: T): readonly T[] {
    const next = this.#next;
    if (seq < next) {
      this.#stale++;
      return NOTHING;
    }
    const index = seq & this.#mask;
    const tag = this.#tags[index] as number;
    if (tag === seq) {
      this.#duplicates++;
      return NOTHING;
    }
    if (tag < next) {
      this.#tags[index] = seq;
      this.#items[index] = item;
    } else {
      // The slot holds another sequence of this batch: the batch spans more than the ring.
      const spill = (this.#spill ??= new Map());
      if (spill.has(seq)) {
        this.#duplicates++;
        return NOTHING;
      }
      spill.set(seq, item);
    }
    if (seq < this.#batchMin) this.#batchMin = seq;
    if (seq > this.#batchMax) this.#batchMax = seq;
    if (++this.#size < this.#window) return NOTHING;
    const out: T[] = [];
    this.#releaseBatch(out, 'batch');
    this.#emitGaps();
    return out;
  }

  /**
   * Releases the whole batch sorted. When it spans no more than the ring (the usual case) this is
   * a sweep over `min..max` in place, O(window); otherwise the held items are sorted.
   */
  #releaseBatch(out: T[], reason: ResequencerGap['reason']): void {
    const tags = this.#tags;
    const items = this.#items;
    const mask = this.#mask;
    const min = this.#batchMin;
    const max = this.#batchMax;
    let expected = this.#next;
    if ((this.#spill === undefined || this.#spill.size === 0) && max - min <= mask) {
      for (let seq = min; seq <= max; seq++) {
        const index = seq & mask;
        if (tags[index] !== seq) continue;
        if (expected < seq) this.#queueGap(expected, seq - 1, reason);
        out.push(items[index] as T);
        items[index] = undefined;
        expected = seq + 1;
      }
      this.#endBatch(this.#size, max);
      return;
    }
    const held: { seq: number; item: T }[] = [];
    const next = this.#next;
    for (let index = 0; index <= mask; index++) {
      const seq = tags[index] as number;
      if (seq < next) continue;
      held.push({ seq, item: items[index] as T });
      items[index] = undefined;
    }
    if (this.#spill !== undefined) {
      for (const [seq, item] of this.#spill) held.push({ seq, item });
      this.#spill.clear();
    }
    held.sort((a, b) => a.seq - b.seq);
    for (const { seq, item } of held) {
      if (expected < seq) this.#queueGap(expected, seq - 1, reason);
      out.push(item);
      expected = seq + 1;
    }
    this.#endBatch(held.length, max);
  }

  #endBatch(released: number, max: number): void {
    // Every tag in the ring is now <= max < next, i.e. free.
    this.#next = max + 1;
    this.#released += released;
    this.#size = 0;
    this.#batchMin = Number.POSITIVE_INFINITY;
    this.#batchMax = 0;
  }

  // ---- gaps ----

  #queueGap(from: number, to: number, reason: ResequencerGap['reason']): void {
    this.#gapsSkipped++;
    this.#seqsSkipped += to - from + 1;
    if (this.#onGap !== undefined) this.#pendingGaps.push({ from, to, reason });
  }

  /** Reports queued gaps; called once the state is consistent, just before a public call returns. */
  #emitGaps(): void {
    const gaps = this.#pendingGaps;
    if (gaps.length === 0) return;
    this.#pendingGaps = [];
    const onGap = this.#onGap as (gap: ResequencerGap) => void;
    for (const gap of gaps) onGap(gap);
  }
}

function badSeq(seq: unknown): InvalidArgumentError {
  return new InvalidArgumentError(`seq must be an integer >= 1, got ${show(seq)}`);
}

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

interface CheckedOptions {
  start: number;
  window: number;
  mode: ResequencerMode;
  onOverflow: OverflowPolicy;
  onGap: ((gap: ResequencerGap) => void) | undefined;
  gapTimeoutMs: number;
  onGapTimeout: GapTimeoutPolicy;
  now: () => number;
}

function checkOptions(options: ResequencerOptions | undefined): CheckedOptions {
  if (options !== undefined && (options === null || typeof options !== 'object' || Array.isArray(options))) {
    throw new InvalidArgumentError(`options must be an object, got ${show(options)}`);
  }
  const o: Record<string, unknown> = { ...options };
  for (const key of Object.keys(o)) {
    if (!OPTION_KEYS.includes(key)) {
      throw new InvalidArgumentError(
        `options.${key} is not a resequencer option (got ${show(o[key])}; known: ${OPTION_KEYS.join(', ')})`,
      );
    }
  }
  const start = o.start ?? 1;
  if (typeof start !== 'number' || !Number.isSafeInteger(start) || start < 1) {
    throw new InvalidArgumentError(`options.start must be an integer >= 1, got ${show(start)}`);
  }
  const window = o.window ?? 1024;
  if (typeof window !== 'number' || !Number.isSafeInteger(window) || window < 1) {
    throw new InvalidArgumentError(`options.window must be a positive integer, got ${show(window)}`);
  }
  if (window > MAX_WINDOW) {
    throw new InvalidArgumentError(`options.window must be at most ${MAX_WINDOW} (2^24), got ${window}`);
  }
  const mode = o.mode ?? 'stream';
  if (mode !== 'stream' && mode !== 'batch') {
    throw new InvalidArgumentError(`options.mode must be 'stream' or 'batch', got ${show(mode)}`);
  }
  if (mode === 'batch') {
    for (const key of STREAM_ONLY) {
      if (o[key] !== undefined) {
        throw new InvalidArgumentError(
          `options.${key} applies to mode 'stream' only, got ${show(o[key])} with mode 'batch' ` +
            `(a batch never overflows; call flush() on your own deadline)`,
        );
      }
    }
  }
  const onOverflow = o.onOverflow ?? 'reject';
  if (onOverflow !== 'reject' && onOverflow !== 'skip') {
    throw new InvalidArgumentError(`options.onOverflow must be 'reject' or 'skip', got ${show(onOverflow)}`);
  }
  const onGap = o.onGap;
  if (onGap !== undefined && typeof onGap !== 'function') {
    throw new InvalidArgumentError(`options.onGap must be a function, got ${show(onGap)}`);
  }
  const gapTimeoutMs = o.gapTimeoutMs ?? Number.POSITIVE_INFINITY;
  if (typeof gapTimeoutMs !== 'number' || Number.isNaN(gapTimeoutMs) || gapTimeoutMs <= 0) {
    throw new InvalidArgumentError(
      `options.gapTimeoutMs must be a number > 0 (Infinity to wait forever), got ${show(gapTimeoutMs)}`,
    );
  }
  const onGapTimeout = o.onGapTimeout ?? 'skip';
  if (onGapTimeout !== 'skip' && onGapTimeout !== 'reject') {
    throw new InvalidArgumentError(
      `options.onGapTimeout must be 'skip' or 'reject', got ${show(onGapTimeout)}`,
    );
  }
  const now = o.now ?? Date.now;
  if (typeof now !== 'function') {
    throw new InvalidArgumentError(`options.now must be a function returning a number, got ${show(now)}`);
  }
  return {
    start,
    window,
    mode,
    onOverflow,
    onGap: onGap as ((gap: ResequencerGap) => void) | undefined,
    gapTimeoutMs,
    onGapTimeout,
    now: now as () => number,
  };
}
