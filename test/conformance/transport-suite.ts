/**
 * The conformance suite: every guarantee of design.md checked through the public API, identically
 * for every transport. A transport's test file is one call: `transportSuite('memory', factory)`.
 * Cases that need a capability are switched on by the fabric's `supports` manifest, never by name.
 *
 * fast-check seeds: set FC_SEED (and FC_PATH) to replay a failure; CI pins FC_SEED.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AbortError,
  ClosedError,
  type Fabric,
  type Follower,
  InvalidArgumentError,
  InvalidOperationError,
  TruncatedError,
  WeftError,
  type WeftEvent,
} from '../../index.js';
import { collect, eventually, tick, uniqueName } from '../helpers/async.js';
import { fcParams } from '../helpers/fc.js';

export interface SuiteOptions {
  /** Number of fast-check runs for the model-based test. @default 60 */
  modelRuns?: number;
  /** How long liveness waits may take (remote transports need more). @default 5000 */
  settleMs?: number;
}

export type FabricFactory = () => Promise<Fabric>;

export function transportSuite(name: string, factory: FabricFactory, options: SuiteOptions = {}): void {
  const settleMs = options.settleMs ?? 5_000;
  describe(`conformance: ${name}`, () => {
    let fabric: Fabric;
    beforeAll(async () => {
      fabric = await factory();
    });
    afterAll(async () => {
      await fabric?.close();
    });

    describe('publish and read', () => {
      it('assigns dense sequence numbers 1, 2, 3 ... per stream', async () => {
        const a = fabric.stream(uniqueName());
        const b = fabric.stream(uniqueName());
        expect(await a.publish('x')).toBe(1);
        expect(await a.publish('y', { topic: 'orders.created' })).toBe(2);
        expect(await b.publish('z')).toBe(1);
        expect(await a.publishBatch([{ data: 1, topic: 'x' }, { data: 2 }])).toEqual([3, 4]);
        expect(await a.publishBatch([])).toEqual([]);
        const events = await a.read();
        expect(events.map((e) => [e.seq, e.data, e.topic])).toEqual([
          [1, 'x', undefined],
          [2, 'y', 'orders.created'],
          [3, 1, 'x'],
          [4, 2, undefined],
        ]);
        for (const e of events) {
          expect(e.stream).toBe(a.name);
          expect(typeof e.time).toBe('number');
        }
      });

      it('reads all, the last n, and from a sequence with a limit', async () => {
        const s = fabric.stream<number>(uniqueName());
        await s.publishBatch(Array.from({ length: 20 }, (_, i) => ({ data: i + 1 })));
        expect((await s.read()).map((e) => e.data)).toEqual(range(1, 20));
        expect((await s.read({ last: 3 })).map((e) => e.seq)).toEqual([18, 19, 20]);
        expect(await s.read({ last: 0 })).toEqual([]);
        expect((await s.read({ last: 100 })).length).toBe(20);
        expect((await s.read({ from: 5, limit: 3 })).map((e) => e.seq)).toEqual([5, 6, 7]);
        expect((await s.read({ from: 'start', limit: 2 })).map((e) => e.seq)).toEqual([1, 2]);
        expect(await s.read({ from: 'end' })).toEqual([]);
        expect(await s.read({ from: 21 })).toEqual([]);
        expect(await s.read({ from: 1000 })).toEqual([]);
      });

      it('publishes data of every JSON-like shape unchanged', async () => {
        const s = fabric.stream(uniqueName());
        const values = [0, -1.5, 'text', '', true, false, null, [1, [2]], { a: { b: [1, 'x'] } }, 2 ** 40];
        for (const v of values) await s.publish(v);
        expect((await s.read()).map((e) => e.data)).toEqual(values);
      });

      it('reports the stream identity and bounds', async () => {
        const s = fabric.stream(uniqueName());
        const before = await s.info();
        expect(before).toMatchObject({ first: 1, last: 0, length: 0, closed: false });
        expect(typeof before.epoch).toBe('string');
        await s.publishBatch([{ data: 1 }, { data: 2 }]);
        expect(await s.info()).toMatchObject({ first: 1, last: 2, length: 2, epoch: before.epoch });
      });
    });

    describe('follow', () => {
      it('from end (the default) sees only events published after the call', async () => {
        const s = fabric.stream<number>(uniqueName());
        await s.publishBatch([{ data: 1 }, { data: 2 }]);
        const c = collect(s.follow());
        await c.ready;
        await s.publish(3);
        await s.publish(4);
        await eventually(() => c.received.length === 2, settleMs, 'two live events');
        expect(c.received.map((e) => e.seq)).toEqual([3, 4]);
        await s.close();
        expect(await c.ended).toBeUndefined();
      });

      it('from start replays history, then continues live with no gap and no duplicate', async () => {
        const s = fabric.stream<number>(uniqueName());
        for (let i = 1; i <= 50; i++) await s.publish(i);
        const c = collect(s.follow({ from: 'start' }));
        for (let i = 51; i <= 100; i++) await s.publish(i);
        await eventually(() => c.received.length >= 100, settleMs, '100 events');
        expect(c.received.map((e) => e.seq)).toEqual(range(1, 100));
        expect(c.received.map((e) => e.data)).toEqual(range(1, 100));
        await s.close();
        expect(await c.ended).toBeUndefined();
      });

      it('from a sequence mid-stream sees exactly the suffix', async () => {
        const s = fabric.stream<number>(uniqueName());
        await s.publishBatch(range(1, 30).map((data) => ({ data })));
        const c = collect(s.follow({ from: 17 }));
        await s.publish(31);
        await s.close();
        expect(await c.ended).toBeUndefined();
        expect(c.received.map((e) => e.seq)).toEqual(range(17, 31));
      });

      it('last n starts at the n-th newest retained event', async () => {
        const s = fabric.stream<number>(uniqueName());
        await s.publishBatch(range(1, 10).map((data) => ({ data })));
        const c = collect(s.follow({ last: 3 }));
        const all = collect(s.follow({ last: 50 }));
        const none = collect(s.follow({ last: 0 }));
        await Promise.all([c.ready, all.ready, none.ready]);
        await s.publish(11);
        await s.close();
        await Promise.all([c.ended, all.ended, none.ended]);
        expect(c.received.map((e) => e.seq)).toEqual([8, 9, 10, 11]);
        expect(all.received.map((e) => e.seq)).toEqual(range(1, 11));
        expect(none.received.map((e) => e.seq)).toEqual([11]);
      });

      it('from a future sequence waits for it and delivers nothing older', async () => {
        const s = fabric.stream<number>(uniqueName());
        await s.publish(1);
        const c = collect(s.follow({ from: 5 }));
        for (let i = 2; i <= 7; i++) await s.publish(i);
        await s.close();
        expect(await c.ended).toBeUndefined();
        expect(c.received.map((e) => e.seq)).toEqual([5, 6, 7]);
      });

      it('batch iteration yields every event once, in order', async () => {
        const s = fabric.stream<number>(uniqueName());
        await s.publishBatch(range(1, 5).map((data) => ({ data })));
        const f = s.follow({ from: 'start' });
        const seen: number[] = [];
        const done = (async () => {
          for await (const batch of f.batches()) {
            expect(batch.length).toBeGreaterThan(0);
            for (const e of batch) seen.push(e.seq);
          }
        })();
        for (let i = 6; i <= 600; i++) s.publish(i);
        await s.publishBatch(range(601, 700).map((data) => ({ data })));
        await s.close();
        await done;
        expect(seen).toEqual(range(1, 700));
      });

      it('a follower is one consumer: a second iteration throws InvalidOperationError', async () => {
        const s = fabric.stream(uniqueName());
        const f = s.follow();
        await f.ready();
        f[Symbol.asyncIterator]();
        expect(() => f[Symbol.asyncIterator]()).toThrow(InvalidOperationError);
        expect(() => f.batches()).toThrow(InvalidOperationError);
        const p1 = f.next();
        await expect(f.next()).rejects.toBeInstanceOf(InvalidOperationError);
        await s.publish(1);
        expect((await p1).value).toMatchObject({ seq: 1 });
        await f.return();
      });

      it('tryNext takes what is there without waiting', async () => {
        const s = fabric.stream<number>(uniqueName());
        await s.publishBatch([{ data: 1 }, { data: 2 }]);
        const f = s.follow({ from: 'start' });
        let first: WeftEvent<number> | undefined;
        await eventually(() => (first ??= f.tryNext()) !== undefined, settleMs, 'first event');
        expect(first?.seq).toBe(1);
        // After the first, the second is there at once, then nothing.
        const second = f.tryNext();
        expect(second?.seq).toBe(2);
        expect(f.tryNext()).toBeUndefined();
        await f.return();
      });

      it('break releases the follower at once', async () => {
        const s = fabric.stream<number>(uniqueName());
        const f = s.follow({ from: 'start' });
        const seen: number[] = [];
        const loop = (async () => {
          for await (const e of f) {
            seen.push(e.seq);
            if (e.seq === 3) break;
          }
        })();
        for (let i = 1; i <= 10; i++) await s.publish(i);
        await loop;
        expect(seen).toEqual([1, 2, 3]);
        expect(f.done).toBe(true);
        expect(await f.closed).toBeUndefined();
        expect(await f.next()).toEqual({ done: true, value: undefined });
      });

      it('aborting the signal rejects the waiting next() with AbortError and releases the follower', async () => {
        const s = fabric.stream(uniqueName());
        const ac = new AbortController();
        const f = s.follow({ signal: ac.signal });
        const pending = f.next();
        await f.ready();
        const reason = new Error('stop');
        ac.abort(reason);
        const err = await pending.then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(AbortError);
        expect((err as AbortError).name).toBe('AbortError');
        expect((err as AbortError).code).toBe('WEFT_ERR_ABORTED');
        expect((err as AbortError).cause).toBe(reason);
        expect(f.done).toBe(true);
        expect(await f.closed).toBeInstanceOf(AbortError);
      });

      it('an already aborted signal makes the first next() reject', async () => {
        const s = fabric.stream(uniqueName());
        await s.publish(1);
        const f = s.follow({ from: 'start', signal: AbortSignal.abort() });
        await expect(f.next()).rejects.toBeInstanceOf(AbortError);
        expect(await f.next()).toEqual({ done: true, value: undefined });
      });

      it('1,000 followers each see 1,000 events exactly once, in order', async () => {
        const s = fabric.stream<number>(uniqueName());
        const followers = Array.from({ length: 1000 }, () => s.follow());
        const counts = new Array<number>(1000).fill(0);
        const bad: string[] = [];
        const loops = followers.map(async (f, i) => {
          let expected = 1;
          for await (const e of f) {
            if (e.seq !== expected || e.data !== expected)
              bad.push(`follower ${i}: got ${e.seq} want ${expected}`);
            expected++;
            counts[i]!++;
          }
        });
        await Promise.all(followers.map((f) => f.ready()));
        for (let i = 1; i <= 1000; i++) {
          if (i % 100 === 0) await s.publishBatch([{ data: i }]);
          else s.publish(i);
          if (i % 37 === 0) await tick();
        }
        await s.close();
        await Promise.all(loops);
        expect(bad.slice(0, 5)).toEqual([]);
        expect(counts.every((c) => c === 1000)).toBe(true);
      });
    });

    describe('close and fail', () => {
      it('close ends every follower after what was published; a new follower ends at once; publish throws ClosedError', async () => {
        const s = fabric.stream<number>(uniqueName());
        const c1 = collect(s.follow({ from: 'start' }));
        const c2 = collect(s.follow());
        await Promise.all([c1.ready, c2.ready]);
        await s.publish(1);
        await s.close();
        await s.close(); // idempotent
        expect(await c1.ended).toBeUndefined();
        expect(await c2.ended).toBeUndefined();
        expect(c1.received.map((e) => e.seq)).toEqual([1]);
        expect(c2.received.map((e) => e.seq)).toEqual([1]);
        const late = collect(s.follow());
        expect(await late.ended).toBeUndefined();
        expect(late.received).toEqual([]);
        const err = await s.publish(2).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ClosedError);
        expect((err as ClosedError).code).toBe('WEFT_ERR_CLOSED');
        await expect(s.publishBatch([{ data: 3 }])).rejects.toBeInstanceOf(ClosedError);
        expect((await s.info()).closed).toBe(true);
        // History stays readable after close.
        expect((await s.read()).map((e) => e.seq)).toEqual([1]);
      });

      it('fail makes every follower throw that error, after the events published before it', async () => {
        const s = fabric.stream<number>(uniqueName());
        const cs = Array.from({ length: 5 }, () => collect(s.follow()));
        await Promise.all(cs.map((c) => c.ready));
        await s.publishBatch([{ data: 1 }, { data: 2 }]);
        const boom = new Error('boom');
        await s.fail(boom);
        for (const c of cs) {
          const e = await c.ended;
          expect(e).toBeInstanceOf(Error);
          expect((e as Error).message).toBe('boom');
          expect(c.received.map((x) => x.seq)).toEqual([1, 2]);
        }
        const late = collect(s.follow({ from: 'start' }));
        expect(((await late.ended) as Error).message).toBe('boom');
        await expect(s.publish(3)).rejects.toBeInstanceOf(ClosedError);
      });

      it('closing the fabric ends its followers and rejects later calls with ClosedError', async () => {
        const own = await factory();
        const s = own.stream(uniqueName());
        const c = collect(s.follow());
        await c.ready;
        await s.publish(1);
        await own.close();
        expect(await c.ended).toBeUndefined();
        await expect(s.publish(2)).rejects.toBeInstanceOf(ClosedError);
        expect(() => own.stream(uniqueName())).toThrow(ClosedError);
        await own.close(); // idempotent
      });
    });

    describe('bad input gets a clear, typed error', () => {
      it('rejects bad names, options and positions with InvalidArgumentError naming them', async () => {
        const s = fabric.stream(uniqueName());
        const cases: [string, () => unknown, RegExp][] = [
          ['empty name', () => fabric.stream(''), /stream name/],
          ['name with a space', () => fabric.stream('a b'), /stream name/],
          [
            'unknown stream option',
            () => fabric.stream(uniqueName(), { maxLenght: 3 } as never),
            /maxLenght/,
          ],
          ['negative maxLength', () => fabric.stream(uniqueName(), { maxLength: -1 }), /maxLength/],
          ['negative last (follow)', () => s.follow({ last: -1 }), /last.*-1/],
          ['non-integer from (follow)', () => s.follow({ from: 1.5 }), /from.*1\.5/],
          ['zero from (follow)', () => s.follow({ from: 0 }), /from/],
          ['string from (follow)', () => s.follow({ from: 'begin' as never }), /from.*begin/],
          ['from and last (follow)', () => s.follow({ from: 1, last: 1 }), /from.*last/],
          ['unknown follow option', () => s.follow({ form: 1 } as never), /form/],
        ];
        for (const [what, fn, message] of cases) {
          let err: unknown;
          try {
            fn();
          } catch (e) {
            err = e;
          }
          expect(err, what).toBeInstanceOf(InvalidArgumentError);
          expect((err as WeftError).code, what).toBe('WEFT_ERR_INVALID_ARGUMENT');
          expect((err as Error).message, what).toMatch(message);
        }
        const asyncCases: [string, () => Promise<unknown>, RegExp][] = [
          ['negative last (read)', () => s.read({ last: -2 }), /last.*-2/],
          ['non-integer from (read)', () => s.read({ from: 2.5 }), /from.*2\.5/],
          ['unknown read option', () => s.read({ lats: 2 } as never), /lats/],
          ['unknown publish option', () => s.publish(1, { topc: 'x' } as never), /topc/],
          ['non-array batch', () => s.publishBatch({} as never), /array/],
          ['batch item without data', () => s.publishBatch([{ topic: 'x' } as never]), /data/],
        ];
        for (const [what, fn, message] of asyncCases) {
          const err = await fn().then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err, what).toBeInstanceOf(InvalidArgumentError);
          expect((err as Error).message, what).toMatch(message);
        }
        const badTopic = await s.publish(1, { topic: 'a..b' }).catch((e: unknown) => e);
        expect(badTopic).toBeInstanceOf(WeftError);
        expect((badTopic as WeftError).code).toBe('WEFT_ERR_PATTERN');
        // Nothing was appended by any of the rejected calls.
        expect(await s.read()).toEqual([]);
      });

      it('a publish with an already aborted signal rejects with AbortError and appends nothing', async () => {
        const s = fabric.stream(uniqueName());
        await expect(s.publish(1, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(AbortError);
        await expect(s.publishBatch([{ data: 1 }], { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(
          AbortError,
        );
        expect(await s.read()).toEqual([]);
      });
    });

    describe('retention', () => {
      it('maxLength keeps the newest events; a trimmed start throws TruncatedError with the first available', async (ctx) => {
        if (!fabric.supports.retention.maxLength) return ctx.skip();
        const s = fabric.stream<number>(uniqueName(), { maxLength: 3 });
        for (let i = 1; i <= 200; i++) await s.publish(i);
        expect((await s.read()).map((e) => e.seq)).toEqual([198, 199, 200]);
        const err = await s.read({ from: 5 }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(TruncatedError);
        expect((err as TruncatedError).code).toBe('WEFT_ERR_TRUNCATED');
        expect((err as TruncatedError).firstAvailable).toBe(198);
        const f = collect(s.follow({ from: 1 }));
        const ferr = await f.ended;
        expect(ferr).toBeInstanceOf(TruncatedError);
        expect((ferr as TruncatedError).firstAvailable).toBe(198);
        expect(f.received).toEqual([]);
        const fromStartFollower = s.follow({ from: 'start' });
        const fromStart = collect(fromStartFollower);
        await fromStartFollower.ready();
        await s.publish(201);
        await s.close();
        await fromStart.ended;
        expect(fromStart.received.map((e) => e.seq)).toEqual([198, 199, 200, 201]);
        expect(await s.info()).toMatchObject({ first: 199, last: 201, length: 3 });
      });

      it('maxAgeMs drops events older than the limit', async (ctx) => {
        if (!fabric.supports.retention.maxAgeMs) return ctx.skip();
        const s = fabric.stream<number>(uniqueName(), { maxAgeMs: 150 });
        await s.publishBatch([{ data: 1 }, { data: 2 }]);
        await sleep(250);
        await s.publish(3);
        expect((await s.read()).map((e) => e.seq)).toEqual([3]);
        await expect(s.read({ from: 1 })).rejects.toBeInstanceOf(TruncatedError);
      });

      it('ttlMs drops an idle stream; a publish refreshes it', async (ctx) => {
        if (!fabric.supports.retention.ttlMs) return ctx.skip();
        const s = fabric.stream<number>(uniqueName(), { ttlMs: 300 });
        await s.publish(1);
        const epoch = (await s.info()).epoch;
        for (let i = 2; i <= 4; i++) {
          await sleep(120);
          await s.publish(i); // each publish re-arms the TTL
        }
        expect((await s.read()).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
        await eventually(() => false, 700).catch(() => {}); // idle past the TTL
        expect(await s.read()).toEqual([]);
        expect(await s.publish(1)).toBe(1);
        expect((await s.info()).epoch).not.toBe(epoch);
        // The recreated stream can be followed again: history, then live.
        const again = s.follow({ from: 'start' });
        const c = collect(again);
        await again.ready();
        await s.publish(2);
        await eventually(() => c.received.length === 2, 5_000, 'the recreated stream to be followed');
        expect(c.received.map((e) => e.seq)).toEqual([1, 2]);
        await again.return();
      });
    });

    describe('properties', () => {
      it('model-based: any sequence of publish, batch, read, follow, break, abort, close and fail matches an array model', async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.commands(commandArbitraries(), { maxCommands: 50, size: 'max' }),
            async (cmds) => {
              const real: Real = { stream: fabric.stream(uniqueName()), followers: [], settleMs };
              const model: Model = { events: [], state: 'open', followers: [] };
              try {
                await fc.asyncModelRun(() => ({ model, real }), cmds);
                await checkFollowers(model, real, true);
              } finally {
                for (const f of real.followers) await f.follower.return();
              }
            },
          ),
          fcParams({ numRuns: options.modelRuns ?? 60 }),
        );
      });

      it('races between publish, follow and abort never break order or exactly-once', async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.scheduler(),
            fc.array(
              fc.constantFrom('publish', 'batch', 'follow-end', 'follow-start', 'follow-last', 'abort'),
              {
                minLength: 1,
                maxLength: 25,
              },
            ),
            async (s, ops) => {
              const stream = fabric.stream<number>(uniqueName());
              const followers: {
                c: ReturnType<typeof collect<WeftEvent<number>>>;
                ac: AbortController;
                kind: string;
                publishedBefore: number;
              }[] = [];
              let published = 0;
              let value = 0;
              const runs = ops.map((op) =>
                s.schedule(Promise.resolve(op)).then(async () => {
                  if (op === 'publish') {
                    await stream.publish(++value);
                    published++;
                  } else if (op === 'batch') {
                    await stream.publishBatch([{ data: ++value }, { data: ++value }]);
                    published += 2;
                  } else if (op === 'abort') {
                    followers[followers.length - 1]?.ac.abort();
                  } else {
                    const ac = new AbortController();
                    const opts =
                      op === 'follow-end'
                        ? {}
                        : op === 'follow-start'
                          ? { from: 'start' as const }
                          : { last: 1 };
                    followers.push({
                      c: collect(stream.follow({ ...opts, signal: ac.signal })),
                      ac,
                      kind: op,
                      publishedBefore: published,
                    });
                  }
                }),
              );
              await s.waitAll();
              await Promise.all(runs);
              await stream.close();
              for (const f of followers) {
                const end = await f.c.ended;
                const seqs = f.c.received.map((e) => e.seq);
                // Order and exactly-once: a dense increasing run, data matching seq.
                for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe(seqs[i - 1]! + 1);
                for (const e of f.c.received) expect(e.data).toBe(e.seq);
                if (f.ac.signal.aborted) {
                  if (end !== undefined) expect(end).toBeInstanceOf(AbortError);
                  continue;
                }
                expect(end).toBeUndefined();
                const last = seqs.length > 0 ? seqs[seqs.length - 1]! : published;
                expect(last).toBe(published);
                if (f.kind === 'follow-start' && seqs.length > 0) expect(seqs[0]).toBe(1);
                if (f.kind === 'follow-end' && seqs.length > 0)
                  expect(seqs[0]!).toBeGreaterThan(f.publishedBefore);
              }
            },
          ),
          fcParams({ numRuns: 60 }),
        );
      });
    });
  });
}

// ---------------------------------------------------------------- the model

interface ModelFollower {
  /** First sequence it must deliver. */
  start: number;
  /** Stopped by break or abort: it must have delivered a prefix of its expected run. */
  stopped: 'no' | 'break' | 'abort';
}
interface Model {
  events: { data: number; topic: string | undefined }[];
  state: 'open' | 'closed' | 'failed';
  followers: ModelFollower[];
}
interface RealFollower {
  follower: Follower<number>;
  ac: AbortController;
  c: ReturnType<typeof collect<WeftEvent<number>>>;
}
interface Real {
  stream: ReturnType<Fabric['stream']> & { publish(d: number, o?: { topic?: string }): Promise<number> };
  followers: RealFollower[];
  settleMs: number;
}
type Cmd = fc.AsyncCommand<Model, Real>;

const FAIL_MESSAGE = 'model failure';

class PublishCmd implements Cmd {
  constructor(
    readonly data: number,
    readonly topic: string | undefined,
  ) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const p = r.stream.publish(this.data, this.topic === undefined ? undefined : { topic: this.topic });
    if (m.state !== 'open') {
      await expect(p).rejects.toBeInstanceOf(ClosedError);
      return;
    }
    m.events.push({ data: this.data, topic: this.topic });
    expect(await p).toBe(m.events.length);
  }
  toString = () => `publish(${this.data}${this.topic ? `, ${this.topic}` : ''})`;
}

class BatchCmd implements Cmd {
  constructor(readonly data: number[]) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const p = r.stream.publishBatch(this.data.map((data) => ({ data })));
    if (m.state !== 'open') {
      await expect(p).rejects.toBeInstanceOf(ClosedError);
      return;
    }
    const first = m.events.length + 1;
    for (const data of this.data) m.events.push({ data, topic: undefined });
    expect(await p).toEqual(this.data.map((_, i) => first + i));
  }
  toString = () => `publishBatch([${this.data.join(',')}])`;
}

type ReadVariant =
  | { kind: 'all' }
  | { kind: 'last'; n: number }
  | { kind: 'from'; from: number; limit: number };
class ReadCmd implements Cmd {
  constructor(readonly v: ReadVariant) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const v = this.v;
    const got = await r.stream.read(
      v.kind === 'all' ? undefined : v.kind === 'last' ? { last: v.n } : { from: v.from, limit: v.limit },
    );
    const all = m.events.map((e, i) => ({ seq: i + 1, data: e.data, topic: e.topic }));
    const want =
      v.kind === 'all'
        ? all
        : v.kind === 'last'
          ? all.slice(Math.max(0, all.length - v.n))
          : all.slice(v.from - 1, v.from - 1 + v.limit);
    expect(got.map((e) => ({ seq: e.seq, data: e.data, topic: e.topic }))).toEqual(want);
  }
  toString = () => `read(${JSON.stringify(this.v)})`;
}

type FollowVariant =
  | { kind: 'start' }
  | { kind: 'end' }
  | { kind: 'seq'; seq: number }
  | { kind: 'last'; n: number };
class FollowCmd implements Cmd {
  constructor(readonly v: FollowVariant) {}
  check = (m: Readonly<Model>) => m.followers.length < 6;
  async run(m: Model, r: Real) {
    const v = this.v;
    const ac = new AbortController();
    const opts =
      v.kind === 'start'
        ? { from: 'start' as const }
        : v.kind === 'end'
          ? { from: 'end' as const }
          : v.kind === 'seq'
            ? { from: v.seq }
            : { last: v.n };
    const follower = r.stream.follow({ ...opts, signal: ac.signal }) as Follower<number>;
    const n = m.events.length;
    const start =
      v.kind === 'start' ? 1 : v.kind === 'end' ? n + 1 : v.kind === 'seq' ? v.seq : Math.max(1, n + 1 - v.n);
    m.followers.push({ start, stopped: 'no' });
    r.followers.push({ follower, ac, c: collect(follower) });
    await follower.ready();
  }
  toString = () => `follow(${JSON.stringify(this.v)})`;
}

class StopCmd implements Cmd {
  constructor(
    readonly index: number,
    readonly how: 'break' | 'abort',
  ) {}
  check = (m: Readonly<Model>) => m.followers.length > 0;
  async run(m: Model, r: Real) {
    const i = this.index % m.followers.length;
    const mf = m.followers[i]!;
    const rf = r.followers[i]!;
    if (mf.stopped !== 'no') return;
    mf.stopped = this.how;
    if (this.how === 'abort') rf.ac.abort();
    else await rf.follower.return();
    const end = await rf.c.ended;
    if (end !== undefined && m.state !== 'failed') {
      if (this.how === 'abort') expect(end).toBeInstanceOf(AbortError);
      else expect.unreachable(`break ended with ${String(end)}`);
    }
  }
  toString = () => `${this.how}(follower ${this.index})`;
}

class EndCmd implements Cmd {
  constructor(readonly how: 'close' | 'fail') {}
  check = (m: Readonly<Model>) => m.state === 'open';
  async run(m: Model, r: Real) {
    if (this.how === 'close') await r.stream.close();
    else await r.stream.fail(new Error(FAIL_MESSAGE));
    m.state = this.how === 'close' ? 'closed' : 'failed';
  }
  toString = () => this.how;
}

class CheckCmd implements Cmd {
  check = () => true;
  async run(m: Model, r: Real) {
    await checkFollowers(m, r, false);
  }
  toString = () => 'check';
}

function commandArbitraries(): fc.Arbitrary<Cmd>[] {
  const data = fc.integer({ min: -1000, max: 1000 });
  return [
    fc
      .tuple(data, fc.option(fc.constantFrom('a', 'a.b', 'orders.created'), { nil: undefined }))
      .map(([d, t]) => new PublishCmd(d, t)),
    fc.array(data, { minLength: 1, maxLength: 5 }).map((d) => new BatchCmd(d)),
    fc
      .oneof(
        fc.constant<ReadVariant>({ kind: 'all' }),
        fc.nat(12).map<ReadVariant>((n) => ({ kind: 'last', n })),
        fc
          .record({ from: fc.integer({ min: 1, max: 15 }), limit: fc.integer({ min: 0, max: 6 }) })
          .map<ReadVariant>((v) => ({ kind: 'from', ...v })),
      )
      .map((v) => new ReadCmd(v)),
    fc
      .oneof(
        fc.constant<FollowVariant>({ kind: 'start' }),
        fc.constant<FollowVariant>({ kind: 'end' }),
        fc.integer({ min: 1, max: 15 }).map<FollowVariant>((seq) => ({ kind: 'seq', seq })),
        fc.nat(8).map<FollowVariant>((n) => ({ kind: 'last', n })),
      )
      .map((v) => new FollowCmd(v)),
    fc
      .tuple(fc.nat(10), fc.constantFrom('break' as const, 'abort' as const))
      .map(([i, how]) => new StopCmd(i, how)),
    fc.constantFrom('close' as const, 'fail' as const).map((how) => new EndCmd(how)),
    fc.constant(new CheckCmd()),
  ];
}

/** Waits until every running follower has what the model says it must, then compares exactly. */
async function checkFollowers(m: Model, r: Real, final: boolean): Promise<void> {
  const total = m.events.length;
  for (let i = 0; i < m.followers.length; i++) {
    const mf = m.followers[i]!;
    const rf = r.followers[i]!;
    const expectedAll = m.events.slice(mf.start - 1).map((e, k) => ({ seq: mf.start + k, data: e.data }));
    const got = () => rf.c.received.map((e) => ({ seq: e.seq, data: e.data }));
    if (mf.stopped !== 'no') {
      // A stopped follower delivered a prefix of its run, nothing else.
      expect(got()).toEqual(expectedAll.slice(0, rf.c.received.length));
      continue;
    }
    const wantCount = Math.max(0, total - mf.start + 1);
    await eventually(
      () => rf.c.received.length >= wantCount || rf.c.isEnded(),
      r.settleMs,
      `follower ${i} to reach ${total}`,
    );
    expect(got()).toEqual(expectedAll);
    if (m.state === 'closed') {
      // It ends cleanly (a remote follower may take a moment to see the close).
      if (final || rf.c.isEnded()) expect(await rf.c.ended).toBeUndefined();
    } else if (m.state === 'failed') {
      const e = await rf.c.ended;
      expect((e as Error)?.message).toBe(FAIL_MESSAGE);
    } else {
      await tick();
      expect(rf.c.isEnded()).toBe(false);
    }
  }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
