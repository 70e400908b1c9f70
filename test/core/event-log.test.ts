/**
 * The linked-list log on its own: chunking, parking and the shared wake-up, retention cutting
 * links (a slow reader pins one chunk), snapshot splicing, non-blocking next, and garbage.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { startIn } from '../../core/stream.js';
import { CHUNK_EVENTS, EventLog, Follower, LaggedError, snapshotChain, type WeftEvent } from '../../index.js';
import { collect, tick } from '../helpers/async.js';
import { fcParams } from '../helpers/fc.js';

const ev = (seq: number, data: unknown = seq): WeftEvent => ({
  stream: 's',
  seq,
  time: Date.now(),
  topic: undefined,
  data,
});
const follower = (log: EventLog<WeftEvent>, from: 'start' | 'end' | number = 'start') =>
  new Follower('s', log, startIn('s', log, from, undefined));

function fill(log: EventLog<WeftEvent>, n: number): void {
  for (let i = 0; i < n; i++) log.appendOne(ev(log.nextSeq));
}

describe('EventLog', () => {
  it('keeps dense sequences across chunks; a large batch stays whole in one chunk', () => {
    const log = new EventLog<WeftEvent>();
    fill(log, CHUNK_EVENTS + 10);
    const batch = Array.from({ length: 1000 }, (_, i) => ev(log.nextSeq + i));
    log.append(batch);
    expect(log.nextSeq).toBe(CHUNK_EVENTS + 1011);
    expect(log.slice(1).map((e) => e.seq)).toEqual(
      Array.from({ length: CHUNK_EVENTS + 1010 }, (_, i) => i + 1),
    );
    const at = log.locate(CHUNK_EVENTS + 11);
    expect(at.chunk.events[at.index]!.seq).toBe(CHUNK_EVENTS + 11);
  });

  it('wakes every parked reader with one microtask per turn, however many appends', async () => {
    const log = new EventLog<WeftEvent>();
    const cs = Array.from({ length: 100 }, () => collect(follower(log, 'end')));
    await tick();
    expect(log.parkedCount).toBe(100);
    fill(log, 3); // three appends in one turn: one shared wake-up
    expect(log.parkedCount).toBe(100); // nobody ran yet: the wake is deferred
    await tick();
    expect(cs.every((c) => c.received.length === 3)).toBe(true);
    expect(log.parkedCount).toBe(100); // all parked again at the tail
    log.end();
    await Promise.all(cs.map((c) => c.ended));
    expect(log.parkedCount).toBe(0);
  });

  it('break and abort take a reader off the waiter list at once', async () => {
    const log = new EventLog<WeftEvent>();
    const ac = new AbortController();
    const a = new Follower('s', log, startIn('s', log, 'end', undefined), ac.signal);
    const b = follower(log, 'end');
    const pa = a.next().catch((e: unknown) => e);
    const pb = b.next();
    expect(log.parkedCount).toBe(2);
    ac.abort();
    expect(log.parkedCount).toBe(1);
    await b.return();
    expect(log.parkedCount).toBe(0);
    expect(((await pa) as Error).name).toBe('AbortError');
    expect(await pb).toEqual({ done: true, value: undefined });
  });

  it('tryNext takes what is there and never waits', () => {
    const log = new EventLog<WeftEvent>();
    const f = follower(log, 'start');
    expect(f.tryNext()).toBeUndefined();
    fill(log, 2);
    expect(f.tryNext()?.seq).toBe(1);
    expect(f.tryNext()?.seq).toBe(2);
    expect(f.tryNext()).toBeUndefined();
  });

  it('retention cuts the links it passes: a slow reader learns it lagged, never skips', async () => {
    const log = new EventLog<WeftEvent>({ retain: 300 });
    const slow = follower(log, 'start');
    const c = collect(slow);
    expect(await Promise.race([c.ended, tick().then(() => 'running')])).toBe('running');
    log.end(); // stop the collect loop cleanly, then check a fresh slow reader
    await c.ended;

    const log2 = new EventLog<WeftEvent>({ retain: 300 });
    const behind = follower(log2, 'start');
    fill(log2, 2000);
    expect(log2.firstSeq).toBe(1701);
    const err = await behind.next().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LaggedError);
    expect((err as LaggedError).nextSeq).toBe(1);
    expect((err as LaggedError).firstAvailable).toBe(1701);
  });

  it('a reader standing exactly at a trimmed chunk end continues without a gap', () => {
    const log = new EventLog<WeftEvent>();
    fill(log, CHUNK_EVENTS);
    const f = follower(log, 'start');
    for (let i = 1; i <= CHUNK_EVENTS; i++) expect(f.tryNext()?.seq).toBe(i);
    fill(log, 10);
    log.trimTo(CHUNK_EVENTS + 1); // the chunk f stands at the end of is cut away
    expect(f.tryNext()?.seq).toBe(CHUNK_EVENTS + 1);
  });

  it('a slow follower does not hold the chunks it has passed (they become garbage)', async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    expect(gc, 'run with --expose-gc (vitest.config.ts sets it)').toBeTypeOf('function');
    const log = new EventLog<WeftEvent>({ retain: 0 });
    const f = follower(log, 'start');
    let refs: WeakRef<object>[] = [];
    for (let i = 0; i < 20; i++) {
      const data = { payload: new Array(1000).fill(i) };
      refs.push(new WeakRef(data));
      log.append(Array.from({ length: CHUNK_EVENTS }, (_, k) => ev(log.nextSeq + k, k === 0 ? data : null)));
    }
    // The follower takes everything, so nothing before its position may stay alive.
    for (let i = 0; i < 20 * CHUNK_EVENTS; i++) expect(f.tryNext()).toBeDefined();
    await tick();
    gc!();
    await tick();
    gc!();
    const alive = refs.filter((r) => r.deref() !== undefined).length;
    expect(alive).toBeLessThanOrEqual(1); // at most the chunk it stands in
    refs = [];
    await f.return();
  });

  it("splices a snapshot onto the live log (Consul's AppendBuffer): history then live, no gap", async () => {
    const live = new EventLog<WeftEvent>({ start: 11 });
    const snapshot = Array.from({ length: 10 }, (_, i) => ev(i + 1));
    const chain = snapshotChain(snapshot, live, 11);
    const f = new Follower('s', live, { chunk: chain, index: 3 });
    const c = collect(f);
    fill(live, 5);
    live.end();
    await c.ended;
    expect(c.received.map((e) => e.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i + 4));
  });

  it('model: any mix of appends, batches, trims and reads matches an array', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant('one' as const) }),
            fc.record({ op: fc.constant('batch' as const), n: fc.integer({ min: 1, max: 600 }) }),
            fc.record({ op: fc.constant('trim' as const), k: fc.nat(700) }),
            fc.record({ op: fc.constant('read' as const), from: fc.nat(2000), limit: fc.nat(50) }),
          ),
          { maxLength: 40 },
        ),
        (ops) => {
          const log = new EventLog<WeftEvent>();
          let first = 1;
          let next = 1;
          for (const o of ops) {
            if (o.op === 'one') log.appendOne(ev(next++));
            else if (o.op === 'batch') {
              log.append(Array.from({ length: o.n }, (_, i) => ev(next + i)));
              next += o.n;
            } else if (o.op === 'trim') {
              const to = Math.min(next, first + o.k);
              log.trimTo(to);
              first = Math.max(first, to);
            } else {
              const from = Math.max(first, o.from);
              const want = [];
              for (let s = from; s < next && want.length < o.limit; s++) want.push(s);
              expect(log.slice(from, o.limit).map((e) => e.seq)).toEqual(want);
            }
            expect(log.firstSeq).toBe(first);
            expect(log.nextSeq).toBe(next);
          }
        },
      ),
      fcParams({ numRuns: 200 }),
    );
  });
});
