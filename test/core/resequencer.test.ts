import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, InvalidArgumentError, WeftError } from '../../core/errors.js';
import {
  GapError,
  Resequencer,
  type ResequencerGap,
  type ResequencerOptions,
  type ResequencerStats,
  WindowFullError,
} from '../../core/resequencer.js';

// Pin a failing run with WEFT_FC_SEED=<seed> (fast-check prints seed and path on failure).
const seed = process.env.WEFT_FC_SEED === undefined ? undefined : Number(process.env.WEFT_FC_SEED);
const params = <T>(numRuns: number): fc.Parameters<T> =>
  seed === undefined ? { numRuns } : { numRuns, seed };

const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** A permutation of 1..n with copies of some of its sequences inserted at arbitrary places. */
const permutationWithDuplicates = (maxN: number) =>
  fc.integer({ min: 1, max: maxN }).chain((n) =>
    fc
      .tuple(
        fc.shuffledSubarray(range(1, n), { minLength: n, maxLength: n }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: n })), { maxLength: n }),
      )
      .map(([perm, dups]) => {
        const order = [...perm];
        for (const [at, seq] of dups) order.splice(at % (order.length + 1), 0, seq);
        return { n, order, duplicates: dups.length };
      }),
  );

/**
 * Bounded disorder: item i is keyed i + jitter (jitter in 0..window-1) and items are sorted by key.
 * Each item then lands at most window-1 places from its own, and never arrives before an item
 * window or more below it, so every push fits the stream window.
 */
const boundedDisorder = fc.integer({ min: 1, max: 32 }).chain((window) =>
  fc.integer({ min: 1, max: 300 }).chain((n) =>
    fc.array(fc.integer({ min: 0, max: window - 1 }), { minLength: n, maxLength: n }).map((jitter) => {
      const order = range(1, n).sort(
        (a, b) => a + (jitter[a - 1] ?? 0) - (b + (jitter[b - 1] ?? 0)) || a - b,
      );
      return { window, n, order };
    }),
  ),
);

function expectWeftError(fn: () => unknown, code: string, ...fragments: string[]): WeftError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(WeftError);
  const error = caught as WeftError;
  expect(error.code).toBe(code);
  for (const fragment of fragments) expect(error.message).toContain(fragment);
  return error;
}

describe('Resequencer, stream mode: properties', () => {
  it('releases any permutation of 1..n, with duplicates, as exactly 1..n in order within a window >= n', () => {
    fc.assert(
      fc.property(permutationWithDuplicates(200), fc.nat(8), ({ n, order, duplicates }, extra) => {
        const window = n + extra;
        const r = new Resequencer<number>({ window });
        const released: number[] = [];
        for (const seq of order) {
          released.push(...r.push(seq, seq));
          expect(r.size).toBeLessThan(window);
        }
        expect(released).toEqual(range(1, n));
        expect(r.size).toBe(0);
        expect(r.next).toBe(n + 1);
        const stats = r.stats;
        expect(stats.released).toBe(n);
        // A copy of a held sequence is a duplicate; a copy of a released one is stale.
        expect(stats.duplicates + stats.stale).toBe(duplicates);
        expect(stats.gapsSkipped).toBe(0);
      }),
      params(300),
    );
  });

  it('flush() at any point returns exactly the held items, in order, and nothing is ever released twice', () => {
    fc.assert(
      fc.property(permutationWithDuplicates(120), fc.nat(), ({ n, order }, cut) => {
        const r = new Resequencer<number>({ window: n });
        const k = cut % (order.length + 1);
        const released: number[] = [];
        for (const seq of order.slice(0, k)) released.push(...r.push(seq, seq));
        // The model: the held items are the distinct pushed sequences above the released prefix.
        const expectedHeld = [...new Set(order.slice(0, k))]
          .filter((s) => s > released.length)
          .sort((a, b) => a - b);
        expect(r.size).toBe(expectedHeld.length);
        const flushed = r.flush();
        expect(flushed).toEqual(expectedHeld);
        expect(r.size).toBe(0);
        released.push(...flushed);
        for (const seq of order.slice(k)) released.push(...r.push(seq, seq));
        released.push(...r.flush());
        // Strictly increasing: in order and each at most once (skipped ones never come back).
        for (let i = 1; i < released.length; i++)
          expect(released[i]).toBeGreaterThan(released[i - 1] as number);
        const { stats } = r;
        expect(stats.released).toBe(released.length);
        expect(stats.seqsSkipped + stats.released).toBe(Math.max(0, ...released));
      }),
      params(300),
    );
  });

  it('releases a bounded-disorder arrival order exactly once, in order, with a window smaller than n', () => {
    fc.assert(
      fc.property(boundedDisorder, ({ window, n, order }) => {
        const r = new Resequencer<number>({ window, onOverflow: 'reject' });
        const released: number[] = [];
        for (const seq of order) {
          released.push(...r.push(seq, seq));
          expect(r.size).toBeLessThan(window);
        }
        expect(released).toEqual(range(1, n));
        expect(r.stats).toEqual({ released: n, duplicates: 0, stale: 0, gapsSkipped: 0, seqsSkipped: 0 });
      }),
      params(300),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Model-based test: the naive model is a sorted set (a Map sorted on demand) plus a next counter.

interface ModelConfig {
  window: number;
  onOverflow: 'reject' | 'skip';
  gapTimeoutMs?: number;
  onGapTimeout?: 'skip' | 'reject';
}

type Outcome = { out: string[] } | { error: 'overflow' | 'gap'; from?: number; to?: number };

class NaiveResequencer {
  readonly held = new Map<number, { item: string; arrivedAt: number }>();
  next = 1;
  clock = 0;
  failed = false;
  counter = 0;
  readonly stats: ResequencerStats = { released: 0, duplicates: 0, stale: 0, gapsSkipped: 0, seqsSkipped: 0 };
  readonly gaps: ResequencerGap[] = [];
  constructor(readonly config: ModelConfig) {}

  #sortedHeld(): number[] {
    return [...this.held.keys()].sort((a, b) => a - b);
  }
  #gap(from: number, to: number, reason: ResequencerGap['reason']): void {
    this.stats.gapsSkipped++;
    this.stats.seqsSkipped += to - from + 1;
    this.gaps.push({ from, to, reason });
  }
  #take(seq: number, out: string[]): void {
    out.push((this.held.get(seq) as { item: string }).item);
    this.held.delete(seq);
    this.stats.released++;
  }
  #drain(out: string[]): void {
    while (this.held.has(this.next)) this.#take(this.next++, out);
  }
  #expired(): boolean {
    if (this.config.gapTimeoutMs === undefined || this.held.size === 0) return false;
    const oldest = Math.min(...[...this.held.values()].map((h) => h.arrivedAt));
    return this.clock - oldest >= this.config.gapTimeoutMs;
  }
  #gapError(): Outcome {
    this.failed = true;
    return { error: 'gap', from: this.next, to: (this.#sortedHeld()[0] as number) - 1 };
  }
  #expire(out: string[]): void {
    if (this.config.onGapTimeout === 'reject') return;
    while (this.#expired()) {
      const first = this.#sortedHeld()[0] as number;
      this.#gap(this.next, first - 1, 'timeout');
      this.next = first;
      this.#drain(out);
    }
  }
  #releaseBelow(target: number, out: string[], reason: ResequencerGap['reason']): void {
    let from = this.next;
    for (const seq of this.#sortedHeld()) {
      if (seq >= target) break;
      if (from < seq) this.#gap(from, seq - 1, reason);
      this.#take(seq, out);
      from = seq + 1;
    }
    if (target !== Number.POSITIVE_INFINITY) {
      if (from < target) this.#gap(from, target - 1, reason);
      from = target;
    }
    this.next = from;
  }

  push(seq: number, item: string): Outcome {
    if (this.failed) return { error: 'gap' };
    if (this.config.onGapTimeout === 'reject' && this.#expired()) return this.#gapError();
    const out: string[] = [];
    if (seq < this.next) {
      this.stats.stale++;
    } else if (this.held.has(seq)) {
      this.stats.duplicates++;
    } else {
      if (seq >= this.next + this.config.window) {
        if (this.config.onOverflow === 'reject') return { error: 'overflow' };
        this.#releaseBelow(seq - this.config.window + 1, out, 'overflow');
        this.#drain(out);
      }
      this.held.set(seq, { item, arrivedAt: this.clock });
      this.#drain(out);
    }
    this.#expire(out);
    return { out };
  }
  poll(): Outcome {
    if (this.config.gapTimeoutMs === undefined) return { out: [] };
    if (this.failed) return { error: 'gap' };
    if (this.config.onGapTimeout === 'reject') return this.#expired() ? this.#gapError() : { out: [] };
    const out: string[] = [];
    this.#expire(out);
    return { out };
  }
  reset(start: number): void {
    this.held.clear();
    this.next = start;
    this.failed = false;
  }
  flush(): Outcome {
    const out: string[] = [];
    this.#releaseBelow(Number.POSITIVE_INFINITY, out, 'flush');
    return { out };
  }
}

interface Real {
  r: Resequencer<string>;
  gaps: ResequencerGap[];
  clock: { now: number };
}

function outcomeOf(call: () => readonly string[]): Outcome {
  try {
    return { out: [...call()] };
  } catch (e) {
    if (e instanceof WindowFullError) return { error: 'overflow' };
    if (e instanceof GapError) return { error: 'gap', from: e.from, to: e.to };
    throw e;
  }
}

function checkAgainstModel(m: NaiveResequencer, real: Real, expected: Outcome, actual: Outcome): void {
  if ('error' in actual && 'error' in expected && expected.from === undefined) {
    expect(actual.error).toBe(expected.error); // a repeated (sticky) GapError: bounds already checked
  } else {
    expect(actual).toEqual(expected);
  }
  expect(real.r.size).toBe(m.held.size);
  expect(real.r.size).toBeLessThan(m.config.window);
  expect(real.r.next).toBe(m.next);
  expect(real.r.stats).toEqual(m.stats);
  expect(real.gaps).toEqual(m.gaps);
}

type Cmd = fc.Command<NaiveResequencer, Real>;

class PushCommand implements Cmd {
  #seq: number | undefined;
  constructor(
    readonly offset: number,
    readonly advanceMs: number,
  ) {}
  check(): boolean {
    return true;
  }
  run(m: NaiveResequencer, real: Real): void {
    const seq = Math.max(1, m.next + this.offset);
    this.#seq = seq;
    m.clock += this.advanceMs;
    real.clock.now = m.clock;
    const item = `${seq}#${m.counter++}`;
    const expected = m.push(seq, item);
    checkAgainstModel(
      m,
      real,
      expected,
      outcomeOf(() => real.r.push(seq, item)),
    );
  }
  toString(): string {
    const at = this.advanceMs === 0 ? '' : ` after ${this.advanceMs}ms`;
    return `push(next${this.offset < 0 ? '' : '+'}${this.offset}${this.#seq === undefined ? '' : ` = ${this.#seq}`})${at}`;
  }
}

class FlushCommand implements Cmd {
  check(): boolean {
    return true;
  }
  run(m: NaiveResequencer, real: Real): void {
    checkAgainstModel(
      m,
      real,
      m.flush(),
      outcomeOf(() => real.r.flush()),
    );
  }
  toString(): string {
    return 'flush()';
  }
}

class ResetCommand implements Cmd {
  #start: number | undefined;
  constructor(readonly back: number) {}
  check(): boolean {
    return true;
  }
  run(m: NaiveResequencer, real: Real): void {
    const start = Math.max(1, m.next - this.back);
    this.#start = start;
    m.reset(start);
    real.r.reset(start);
    checkAgainstModel(m, real, { out: [] }, { out: [] });
  }
  toString(): string {
    return `reset(next-${this.back}${this.#start === undefined ? '' : ` = ${this.#start}`})`;
  }
}

class PollCommand implements Cmd {
  constructor(readonly advanceMs: number) {}
  check(): boolean {
    return true;
  }
  run(m: NaiveResequencer, real: Real): void {
    m.clock += this.advanceMs;
    real.clock.now = m.clock;
    checkAgainstModel(
      m,
      real,
      m.poll(),
      outcomeOf(() => real.r.poll()),
    );
  }
  toString(): string {
    return `poll() after ${this.advanceMs}ms`;
  }
}

function commandsFor(window: number) {
  return fc.commands(
    [
      fc
        .tuple(fc.integer({ min: -2, max: window + 2 }), fc.integer({ min: 0, max: 3 }))
        .map(([offset, ms]) => new PushCommand(offset, ms)),
      fc.constant(new FlushCommand()),
      fc.integer({ min: 0, max: 12 }).map((ms) => new PollCommand(ms)),
      fc.integer({ min: 0, max: 2 * window }).map((back) => new ResetCommand(back)),
    ],
    { maxCommands: 80 },
  );
}

function modelRun(config: ModelConfig, numRuns: number): void {
  fc.assert(
    fc.property(commandsFor(config.window), (cmds) => {
      const setup = () => {
        const clock = { now: 0 };
        const gaps: ResequencerGap[] = [];
        const options: ResequencerOptions = {
          window: config.window,
          onOverflow: config.onOverflow,
          onGap: (gap) => gaps.push(gap),
          now: () => clock.now,
        };
        if (config.gapTimeoutMs !== undefined) options.gapTimeoutMs = config.gapTimeoutMs;
        if (config.onGapTimeout !== undefined) options.onGapTimeout = config.onGapTimeout;
        return {
          model: new NaiveResequencer(config),
          real: { r: new Resequencer<string>(options), gaps, clock },
        };
      };
      fc.modelRun(setup, cmds);
    }),
    params(numRuns),
  );
}

describe('Resequencer, stream mode: model-based (fc.commands against a sorted set + next counter)', () => {
  it('matches the model with onOverflow skip and a gap timeout that skips', () => {
    modelRun({ window: 6, onOverflow: 'skip', gapTimeoutMs: 10, onGapTimeout: 'skip' }, 400);
  });
  it('matches the model with onOverflow reject and no gap timeout', () => {
    modelRun({ window: 5, onOverflow: 'reject' }, 300);
  });
  it('matches the model with a gap timeout that rejects', () => {
    modelRun({ window: 8, onOverflow: 'skip', gapTimeoutMs: 10, onGapTimeout: 'reject' }, 300);
  });
  it('matches the model with a window of 1', () => {
    modelRun({ window: 1, onOverflow: 'skip', gapTimeoutMs: 5, onGapTimeout: 'skip' }, 100);
  });
});

describe('Resequencer, stream mode: examples', () => {
  it('releases a contiguous run as soon as the missing sequence arrives', () => {
    const r = new Resequencer<string>({ start: 1, window: 1024, mode: 'stream' });
    expect(r.push(3, 'c')).toEqual([]);
    expect(r.push(2, 'b')).toEqual([]);
    expect(r.size).toBe(2);
    expect(r.push(1, 'a')).toEqual(['a', 'b', 'c']);
    expect(r.next).toBe(4);
    expect(r.size).toBe(0);
  });

  it('drops duplicates and stale sequences, counts them, and keeps the first copy', () => {
    const r = new Resequencer<string>({ window: 8 });
    r.push(2, 'first');
    expect(r.push(2, 'second')).toEqual([]);
    expect(r.push(1, 'a')).toEqual(['a', 'first']);
    expect(r.push(1, 'again')).toEqual([]);
    expect(r.push(2, 'again')).toEqual([]);
    expect(r.stats).toEqual({ released: 2, duplicates: 1, stale: 2, gapsSkipped: 0, seqsSkipped: 0 });
  });

  it('returns a shared frozen empty array when nothing is released, and fresh arrays otherwise', () => {
    const r = new Resequencer<number>({ window: 8 });
    const none = r.push(2, 2);
    expect(Object.isFrozen(none)).toBe(true);
    expect(r.push(2, 2)).toBe(none);
    const some = r.push(1, 1);
    expect(Object.isFrozen(some)).toBe(false);
    expect(r.flush()).not.toBe(none);
  });

  it('starts at options.start: lower sequences are stale', () => {
    const r = new Resequencer<number>({ start: 100, window: 4 });
    expect(r.push(99, 99)).toEqual([]);
    expect(r.push(100, 100)).toEqual([100]);
    expect(r.stats.stale).toBe(1);
  });

  it('keeps working past 2^32 (ring indexing by seq & mask)', () => {
    const start = 2 ** 40 - 3;
    const r = new Resequencer<number>({ start, window: 16 });
    const released: number[] = [];
    for (const seq of [start + 5, start + 1, start + 3, start, start + 2, start + 4])
      released.push(...r.push(seq, seq));
    expect(released).toEqual(range(start, start + 5));
  });

  it('rejects a push at next + window with WindowFullError naming the seq and window, changing nothing', () => {
    const r = new Resequencer<number>({ window: 4, onOverflow: 'reject' });
    r.push(3, 3);
    const before = { size: r.size, next: r.next, stats: r.stats };
    const error = expectWeftError(() => r.push(5, 5), ErrorCode.WINDOW_FULL, 'sequence 5', 'window is 4');
    expect(error).toBeInstanceOf(WindowFullError);
    expect(error.name).toBe('WindowFullError');
    expect({ seq: (error as WindowFullError).seq, window: (error as WindowFullError).window }).toEqual({
      seq: 5,
      window: 4,
    });
    expect({ size: r.size, next: r.next, stats: r.stats }).toEqual(before);
    expect(r.push(4, 4)).toEqual([]); // the window still accepts next..next+3
    expect(r.push(1, 1)).toEqual([1]);
  });

  it('skips on overflow: releases what is held below the new window and reports each gap once', () => {
    const gaps: ResequencerGap[] = [];
    const r = new Resequencer<number>({ window: 4, onOverflow: 'skip', onGap: (g) => gaps.push(g) });
    r.push(2, 2);
    r.push(4, 4);
    // 10 fits once next = 7: 2 and 4 are released, 1, 3 and 5..6 are skipped.
    expect(r.push(10, 10)).toEqual([2, 4]);
    expect(gaps).toEqual([
      { from: 1, to: 1, reason: 'overflow' },
      { from: 3, to: 3, reason: 'overflow' },
      { from: 5, to: 6, reason: 'overflow' },
    ]);
    expect(r.next).toBe(7);
    expect(r.size).toBe(1);
    expect(r.push(7, 7)).toEqual([7]);
    expect(r.push(3, 3)).toEqual([]); // skipped sequences are stale from now on
    expect(r.stats).toEqual({ released: 3, duplicates: 0, stale: 1, gapsSkipped: 3, seqsSkipped: 4 });
  });

  it('skips on overflow across a jump far beyond the window in O(window)', () => {
    const gaps: ResequencerGap[] = [];
    const r = new Resequencer<number>({ window: 8, onOverflow: 'skip', onGap: (g) => gaps.push(g) });
    r.push(3, 3);
    expect(r.push(1e12, 1)).toEqual([3]);
    expect(gaps).toEqual([
      { from: 1, to: 2, reason: 'overflow' },
      { from: 4, to: 1e12 - 8, reason: 'overflow' },
    ]);
    expect(r.next).toBe(1e12 - 7);
  });

  it('flush() releases everything held with gaps skipped, and later arrivals below it are stale', () => {
    const gaps: ResequencerGap[] = [];
    const r = new Resequencer<number>({ window: 16, onGap: (g) => gaps.push(g) });
    r.push(5, 5);
    r.push(3, 3);
    expect(r.flush()).toEqual([3, 5]);
    expect(gaps).toEqual([
      { from: 1, to: 2, reason: 'flush' },
      { from: 4, to: 4, reason: 'flush' },
    ]);
    expect(r.next).toBe(6);
    expect(r.push(4, 4)).toEqual([]);
    expect(r.stats.stale).toBe(1);
    expect(r.flush()).toEqual([]);
  });

  it('reset(start) drops what is held and starts a new run; old slots do not leak into it', () => {
    const r = new Resequencer<number>({ window: 8 });
    for (const seq of [1, 2, 3, 4, 6]) r.push(seq, seq);
    r.reset(1);
    expect(r.size).toBe(0);
    expect(r.next).toBe(1);
    // Slots of 2..4 still carry old tags: 2 must be held, not taken for a duplicate.
    expect(r.push(2, 20)).toEqual([]);
    expect(r.push(6, 60)).toEqual([]);
    expect(r.push(1, 10)).toEqual([10, 20]);
    expect(r.stats.duplicates).toBe(0);
    r.reset(500);
    expect(r.push(500, 5)).toEqual([5]);
    r.reset();
    expect(r.next).toBe(1);
    expectWeftError(() => r.reset(0), ErrorCode.INVALID_ARGUMENT, 'start', '0');
  });
});

describe('Resequencer, stream mode: gap timeout (caller-driven clock)', () => {
  it('skips a gap once the oldest item held above it has waited gapTimeoutMs, on poll() or push()', () => {
    let now = 0;
    const gaps: ResequencerGap[] = [];
    const r = new Resequencer<number>({
      window: 16,
      gapTimeoutMs: 100,
      onGapTimeout: 'skip',
      now: () => now,
      onGap: (g) => gaps.push(g),
    });
    expect(r.push(3, 3)).toEqual([]); // 1..2 missing since t=0
    now = 60;
    expect(r.push(5, 5)).toEqual([]); // 4 missing since t=60 (5 arrived then)
    now = 99;
    expect(r.poll()).toEqual([]);
    now = 100;
    expect(r.poll()).toEqual([3]);
    expect(gaps).toEqual([{ from: 1, to: 2, reason: 'timeout' }]);
    now = 159;
    expect(r.poll()).toEqual([]);
    now = 160;
    // push() applies the timeout too, after placing its own item.
    expect(r.push(7, 7)).toEqual([5]);
    expect(gaps[1]).toEqual({ from: 4, to: 4, reason: 'timeout' });
    expect(r.next).toBe(6);
    expect(r.stats).toMatchObject({ released: 2, gapsSkipped: 2, seqsSkipped: 3 });
  });

  it('skips several expired gaps at once and bounds every item wait by gapTimeoutMs', () => {
    let now = 0;
    const r = new Resequencer<number>({ window: 16, gapTimeoutMs: 10, now: () => now });
    r.push(2, 2);
    r.push(4, 4);
    r.push(6, 6);
    now = 10;
    expect(r.poll()).toEqual([2, 4, 6]);
    expect(r.stats.gapsSkipped).toBe(3);
  });

  it('duplicates of a held item do not restart or corrupt its wait', () => {
    let now = 0;
    const r = new Resequencer<number>({ window: 4, gapTimeoutMs: 10, now: () => now });
    r.push(3, 3);
    now = 1;
    for (let i = 0; i < 50; i++) r.push(3, 3);
    now = 10;
    expect(r.poll()).toEqual([3]);
    expect(r.stats.duplicates).toBe(50);
  });

  it('a late arrival filling the gap before the deadline is released normally', () => {
    let now = 0;
    const r = new Resequencer<number>({ window: 16, gapTimeoutMs: 10, now: () => now });
    r.push(2, 2);
    now = 9;
    expect(r.push(1, 1)).toEqual([1, 2]);
    now = 100;
    expect(r.poll()).toEqual([]);
    expect(r.stats.gapsSkipped).toBe(0);
  });

  it("fails with GapError (WEFT_ERR_GAP) on the next push or poll with onGapTimeout 'reject', until reset()", () => {
    let now = 0;
    const r = new Resequencer<number>({
      window: 16,
      gapTimeoutMs: 50,
      onGapTimeout: 'reject',
      now: () => now,
    });
    r.push(4, 4);
    now = 49;
    expect(r.poll()).toEqual([]);
    now = 50;
    const error = expectWeftError(() => r.push(1, 1), ErrorCode.GAP, 'sequences 1..3', '50 ms');
    expect(error).toBeInstanceOf(GapError);
    expect({ from: (error as GapError).from, to: (error as GapError).to }).toEqual({ from: 1, to: 3 });
    expect(r.size).toBe(1); // the item of the failing push was not taken
    expectWeftError(() => r.poll(), ErrorCode.GAP);
    expectWeftError(() => r.push(2, 2), ErrorCode.GAP);
    expect(r.flush()).toEqual([4]); // a failed resequencer can still be drained
    r.reset(1);
    expect(r.push(1, 1)).toEqual([1]);
  });

  it('never reads the clock without a timeout, and reads it only when a gap can exist with one', () => {
    let reads = 0;
    const untimed = new Resequencer<number>({ window: 8, now: () => ++reads });
    untimed.push(2, 2);
    untimed.poll();
    expect(reads).toBe(0);
    const timed = new Resequencer<number>({ window: 8, gapTimeoutMs: 5, now: () => reads++ });
    timed.push(1, 1); // in order, nothing held: no clock read
    timed.poll();
    expect(reads).toBe(0);
    timed.push(3, 3);
    expect(reads).toBe(1);
  });
});

describe('Resequencer, batch mode', () => {
  it('releases sorted batches of `window`, drops duplicates, and flush() releases the rest', () => {
    const gaps: ResequencerGap[] = [];
    const r = new Resequencer<number>({ window: 4, mode: 'batch', onGap: (g) => gaps.push(g) });
    expect(r.push(5, 5)).toEqual([]);
    expect(r.push(3, 3)).toEqual([]);
    expect(r.push(3, 3)).toEqual([]);
    expect(r.push(1, 1)).toEqual([]);
    expect(r.size).toBe(3);
    expect(r.push(2, 2)).toEqual([1, 2, 3, 5]);
    expect(gaps).toEqual([{ from: 4, to: 4, reason: 'batch' }]);
    expect(r.next).toBe(6);
    expect(r.push(4, 4)).toEqual([]); // below the last released: stale
    expect(r.push(8, 8)).toEqual([]);
    expect(r.push(7, 7)).toEqual([]);
    expect(r.flush()).toEqual([7, 8]);
    expect(r.stats).toEqual({ released: 6, duplicates: 1, stale: 1, gapsSkipped: 2, seqsSkipped: 2 });
  });

  it('sorts a batch that spans more than its ring (colliding slots)', () => {
    const r = new Resequencer<number>({ window: 4, mode: 'batch' });
    // Capacity 8: 1, 9 and 17 share a slot.
    expect(r.push(17, 17)).toEqual([]);
    expect(r.push(9, 9)).toEqual([]);
    expect(r.push(9, 9)).toEqual([]);
    expect(r.push(1000, 1000)).toEqual([]);
    expect(r.push(1, 1)).toEqual([1, 9, 17, 1000]);
    expect(r.stats.duplicates).toBe(1);
    expect(r.push(17, 17)).toEqual([]);
    expect(r.stats.stale).toBe(1);
  });

  it('matches a naive collect-and-sort model on arbitrary sequences', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 16 }),
        fc.array(fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 5000 })), {
          maxLength: 200,
        }),
        fc.boolean(),
        (window, seqs, flushAtEnd) => {
          const gaps: ResequencerGap[] = [];
          const r = new Resequencer<number>({ window, mode: 'batch', onGap: (g) => gaps.push(g) });
          const model = { held: new Set<number>(), next: 1, gaps: [] as ResequencerGap[] };
          const stats: ResequencerStats = {
            released: 0,
            duplicates: 0,
            stale: 0,
            gapsSkipped: 0,
            seqsSkipped: 0,
          };
          const release = (reason: ResequencerGap['reason']): number[] => {
            const batch = [...model.held].sort((a, b) => a - b);
            for (const seq of batch) {
              if (model.next < seq) {
                model.gaps.push({ from: model.next, to: seq - 1, reason });
                stats.gapsSkipped++;
                stats.seqsSkipped += seq - model.next;
              }
              model.next = seq + 1;
            }
            stats.released += batch.length;
            model.held.clear();
            return batch;
          };
          for (const seq of seqs) {
            const out = r.push(seq, seq);
            if (seq < model.next) stats.stale++;
            else if (model.held.has(seq)) stats.duplicates++;
            else model.held.add(seq);
            expect(out).toEqual(model.held.size === window ? release('batch') : []);
            expect(r.size).toBe(model.held.size);
            expect(r.size).toBeLessThanOrEqual(window);
          }
          if (flushAtEnd) {
            expect(r.flush()).toEqual(release('flush'));
            expect(r.size).toBe(0);
          }
          expect(r.next).toBe(model.next);
          expect(r.stats).toEqual(stats);
          expect(gaps).toEqual(model.gaps);
        },
      ),
      params(300),
    );
  });
});

describe('Resequencer: validation', () => {
  const bad: [string, Record<string, unknown>, string][] = [
    ['window 0', { window: 0 }, 'options.window must be a positive integer, got 0'],
    ['window 1.5', { window: 1.5 }, 'options.window must be a positive integer, got 1.5'],
    ['window as a string', { window: '8' }, 'options.window must be a positive integer, got "8"'],
    ['window too large', { window: 2 ** 25 }, 'options.window must be at most'],
    ['start 0', { start: 0 }, 'options.start must be an integer >= 1, got 0'],
    ['mode', { mode: 'sorted' }, `options.mode must be 'stream' or 'batch', got "sorted"`],
    ['onOverflow', { onOverflow: 'drop' }, `options.onOverflow must be 'reject' or 'skip', got "drop"`],
    ['onGap', { onGap: 5 }, 'options.onGap must be a function, got 5'],
    ['gapTimeoutMs 0', { gapTimeoutMs: 0 }, 'options.gapTimeoutMs must be a number > 0'],
    ['gapTimeoutMs NaN', { gapTimeoutMs: Number.NaN }, 'got NaN'],
    ['onGapTimeout', { onGapTimeout: 'wait' }, `options.onGapTimeout must be 'skip' or 'reject', got "wait"`],
    ['now', { now: 'Date.now' }, 'options.now must be a function'],
    ['an unknown key', { windowSize: 8 }, 'options.windowSize is not a resequencer option'],
    [
      'a stream-only option in batch mode',
      { mode: 'batch', gapTimeoutMs: 10 },
      'options.gapTimeoutMs applies to',
    ],
    ['onOverflow in batch mode', { mode: 'batch', onOverflow: 'skip' }, `applies to mode 'stream' only`],
  ];
  for (const [what, options, message] of bad) {
    it(`rejects ${what} at construction with InvalidArgumentError`, () => {
      const error = expectWeftError(
        () => new Resequencer(options as ResequencerOptions),
        ErrorCode.INVALID_ARGUMENT,
        message,
      );
      expect(error).toBeInstanceOf(InvalidArgumentError);
    });
  }

  it('rejects non-object options', () => {
    expectWeftError(
      () => new Resequencer(5 as unknown as ResequencerOptions),
      ErrorCode.INVALID_ARGUMENT,
      'options',
    );
    expectWeftError(
      () => new Resequencer(null as unknown as ResequencerOptions),
      ErrorCode.INVALID_ARGUMENT,
      'null',
    );
  });

  it('accepts no options at all (start 1, window 1024, stream, reject)', () => {
    const r = new Resequencer<number>();
    expect(r.next).toBe(1);
    expect(() => r.push(1024, 1)).not.toThrow();
    expectWeftError(() => r.push(1025, 1), ErrorCode.WINDOW_FULL, 'window is 1024');
  });

  it('rejects a non-integer or non-positive seq in push() and changes nothing', () => {
    for (const mode of ['stream', 'batch'] as const) {
      const r = new Resequencer<number>({ window: 4, mode });
      for (const seq of [
        0,
        -1,
        1.5,
        Number.NaN,
        Number.POSITIVE_INFINITY,
        2 ** 53,
        '1' as unknown as number,
      ]) {
        expectWeftError(() => r.push(seq, 1), ErrorCode.INVALID_ARGUMENT, 'seq must be an integer >= 1');
      }
      expect(r.size).toBe(0);
      expect(r.stats).toEqual({ released: 0, duplicates: 0, stale: 0, gapsSkipped: 0, seqsSkipped: 0 });
    }
  });
});
