/**
 * The sink (consumer group) conformance suite: every transport with `supports.groups` runs it
 * unchanged, through the public API. One call per transport: `sinkSuite(name, factory)`.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Delivery, type Fabric, InvalidArgumentError, WeftError, type WeftEvent } from '../../index.js';
import { eventually, uniqueName } from '../helpers/async.js';
import { fcParams } from '../helpers/fc.js';
import type { FabricFactory } from './transport-suite.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Pulls the next delivery, or undefined after `ms` (the pending next() is kept for the following pull). */
class Puller<T> {
  #it: AsyncIterator<Delivery<T>>;
  #pending: Promise<{ r: IteratorResult<Delivery<T>>; at: number }> | undefined;
  ended = false;
  /** When the last delivery pulled was handed out by the loop (not when the test looked at it). */
  lastAt = 0;
  constructor(it: AsyncIterator<Delivery<T>>) {
    this.#it = it;
  }
  async pull(ms: number): Promise<Delivery<T> | undefined> {
    if (this.ended) return undefined;
    this.#pending ??= this.#it.next().then((r) => ({ r, at: Date.now() }));
    const got = await Promise.race([this.#pending, sleep(ms).then(() => undefined)]);
    if (got === undefined) return undefined;
    this.#pending = undefined;
    if (got.r.done) {
      this.ended = true;
      return undefined;
    }
    this.lastAt = got.at;
    return got.r.value;
  }
  async stop(): Promise<void> {
    this.ended = true;
    await this.#it.return?.();
  }
}

/** Pulls until `n` deliveries arrived (or throws after `timeoutMs`). */
async function take<T>(p: Puller<T>, n: number, timeoutMs = 5_000): Promise<Delivery<T>[]> {
  const out: Delivery<T>[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < n) {
    if (Date.now() > deadline) throw new Error(`timed out: got ${out.length} of ${n} deliveries`);
    const d = await p.pull(50);
    if (d !== undefined) out.push(d);
  }
  return out;
}

export function sinkSuite(name: string, factory: FabricFactory, options: { modelRuns?: number } = {}): void {
  describe(`sinks: ${name}`, () => {
    let fabric: Fabric;
    beforeAll(async () => {
      fabric = await factory();
    });
    afterAll(async () => {
      await fabric?.close();
    });

    const publishN = async (stream: string, n: number, topic?: string) => {
      const s = fabric.stream<number>(stream);
      return s.publishBatch(Array.from({ length: n }, (_, i) => ({ data: i + 1, topic })));
    };

    it('declares consumer groups in its supports manifest', () => {
      // This suite runs only for transports that declare them (the call site checks `supports.groups`).
      expect(fabric.supports.groups).toBe(true);
    });

    it('delivers every event once to a consume loop, with ack', async () => {
      const stream = uniqueName('st');
      await publishN(stream, 10);
      const sink = fabric.sink<number>(uniqueName('sink'), { streams: [stream] });
      const p = new Puller(sink.consume());
      const got = await take(p, 10);
      expect(got.map((d) => d.event.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
      expect(got.every((d) => d.deliveries === 1)).toBe(true);
      for (const d of got) await d.ack();
      await got[0]!.ack(); // idempotent
      expect(await p.pull(150)).toBeUndefined();
      await p.stop();
      await sink.close();
    });

    it('competing consume loops split the events; every event is delivered to exactly one', async () => {
      const stream = uniqueName('st');
      const sink = fabric.sink<number>(uniqueName('sink'), { streams: [stream] });
      const seen = new Map<number, number>();
      const loops = [0, 1, 2].map(async (i) => {
        for await (const d of sink.consume({ batchSize: 5 })) {
          seen.set(d.event.seq, (seen.get(d.event.seq) ?? 0) + 1);
          expect(i).toBeGreaterThanOrEqual(0);
          await d.ack();
          if (i === 0) await sleep(0);
        }
      });
      await publishN(stream, 300);
      await eventually(() => seen.size === 300, 10_000, '300 deliveries');
      await sink.close();
      await Promise.all(loops);
      expect([...seen.values()].every((c) => c === 1)).toBe(true);
      expect(sink.stats.acked).toBe(300);
    });

    it('every sink name gets its own copy', async () => {
      const stream = uniqueName('st');
      await publishN(stream, 5);
      const a = new Puller(fabric.sink<number>(uniqueName('a'), { streams: [stream] }).consume());
      const b = new Puller(fabric.sink<number>(uniqueName('b'), { streams: [stream] }).consume());
      expect((await take(a, 5)).map((d) => d.event.seq)).toEqual([1, 2, 3, 4, 5]);
      expect((await take(b, 5)).map((d) => d.event.seq)).toEqual([1, 2, 3, 4, 5]);
      await a.stop();
      await b.stop();
    });

    it('filters by topic pattern and predicate; filtered events are never handed out or left pending', async () => {
      const stream = uniqueName('st');
      const s = fabric.stream<number>(stream);
      await s.publishBatch([
        { data: 1, topic: 'orders.eu.created' },
        { data: 2, topic: 'orders.us.created' },
        { data: 3, topic: 'refunds.eu' },
        { data: 4 },
        { data: 5, topic: 'orders.eu.cancelled' },
        { data: 6, topic: 'orders.eu.created' },
      ]);
      const sink = fabric.sink<number>(uniqueName('sink'), {
        streams: [stream],
        topics: ['orders.*.created', 'refunds.>'],
        match: (e) => e.data !== 6,
        ackTimeoutMs: 60,
      });
      const p = new Puller(sink.consume());
      const got = await take(p, 3);
      expect(got.map((d) => d.event.data)).toEqual([1, 2, 3]);
      for (const d of got) await d.ack();
      // Nothing else comes, even after the ack timeout: filtered events were acked, not parked.
      expect(await p.pull(200)).toBeUndefined();
      expect(sink.stats.filtered).toBe(3);
      await p.stop();
    });

    it('nack redelivers at once with the delivery count', async () => {
      const stream = uniqueName('st');
      await publishN(stream, 1);
      const sink = fabric.sink<number>(uniqueName('sink'), { streams: [stream] });
      const p = new Puller(sink.consume());
      const [first] = await take(p, 1);
      await first!.nack();
      const [second] = await take(p, 1, 3_000);
      expect(second!.event.seq).toBe(1);
      expect(second!.deliveries).toBe(2);
      await second!.ack();
      await p.stop();
    });

    it('an event not acked within ackTimeoutMs is redelivered to a live consumer', async () => {
      const stream = uniqueName('st');
      await publishN(stream, 1);
      const sink = fabric.sink<number>(uniqueName('sink'), { streams: [stream], ackTimeoutMs: 80 });
      const a = new Puller(sink.consume());
      const b = new Puller(sink.consume());
      const [d1] = await take(a, 1);
      expect(await b.pull(30)).toBeUndefined(); // not while a holds it within the timeout
      const [d2] = await take(b, 1, 3_000);
      expect(d2!.event.seq).toBe(d1!.event.seq);
      expect(d2!.deliveries).toBe(2);
      await d2!.ack();
      await a.stop();
      await b.stop();
    });

    it('after maxDeliveries the event goes to the dead-letter stream and is reported', async () => {
      const stream = uniqueName('st');
      await fabric.stream(stream).publish(42, { topic: 'jobs.x' });
      const letters: unknown[] = [];
      const sinkName = uniqueName('sink');
      const sink = fabric.sink<number>(sinkName, {
        streams: [stream],
        maxDeliveries: 3,
        onDeadLetter: (l) => letters.push(l),
      });
      const p = new Puller(sink.consume());
      for (let i = 1; i <= 3; i++) {
        const [d] = await take(p, 1, 3_000);
        expect(d!.deliveries).toBe(i);
        await d!.nack();
      }
      // Dead-lettering is part of the consume loop's progress: pulling drives it.
      expect(await p.pull(1_200)).toBeUndefined();
      expect(letters.length).toBe(1);
      expect(letters[0]).toMatchObject({
        sink: sinkName,
        stream,
        seq: 1,
        data: 42,
        deliveries: 3,
        topic: 'jobs.x',
      });
      const dead = await fabric.stream(`${sinkName}.dead`).read();
      expect(dead.map((e) => e.data)).toEqual([letters[0]]);
      expect(dead[0]!.topic).toBe('jobs.x');
      expect(sink.stats.deadLettered).toBe(1);
      await p.stop();
    });

    it('a consumer that stops loses nothing: its unacked events go to the others at once', async () => {
      const stream = uniqueName('st');
      await publishN(stream, 4);
      const sink = fabric.sink<number>(uniqueName('sink'), { streams: [stream], ackTimeoutMs: 60_000 });
      const a = new Puller(sink.consume({ batchSize: 4 }));
      const got = await take(a, 2);
      await got[0]!.ack();
      await a.stop(); // holds seq 2 (handed out) and 3, 4 (read, not yet handed out)
      const b = new Puller(sink.consume());
      const rest = await take(b, 3, 3_000);
      expect(rest.map((d) => d.event.seq).sort()).toEqual([2, 3, 4]);
      await b.stop();
    });

    it('reads several streams, and streams can be added and removed at runtime', async () => {
      const s1 = uniqueName('st');
      const s2 = uniqueName('st');
      const s3 = uniqueName('st');
      await publishN(s1, 2);
      await publishN(s2, 2);
      await publishN(s3, 2);
      const sink = fabric.sink<number>(uniqueName('sink'), { streams: [s1, s2] });
      const p = new Puller(sink.consume());
      const got = await take(p, 4);
      expect(got.map((d) => `${d.event.stream}:${d.event.seq}`).sort()).toEqual(
        [`${s1}:1`, `${s1}:2`, `${s2}:1`, `${s2}:2`].sort(),
      );
      for (const d of got) await d.ack();
      await sink.addStream(s3);
      await sink.removeStream(s1);
      await publishN(s1, 1);
      const more = await take(p, 2);
      expect(more.map((d) => `${d.event.stream}:${d.event.seq}`)).toEqual([`${s3}:1`, `${s3}:2`]);
      for (const d of more) await d.ack();
      expect(await p.pull(100)).toBeUndefined(); // s1's new event waits for the sink to read s1 again
      await sink.addStream(s1);
      const [back] = await take(p, 1);
      expect(`${back!.event.stream}:${back!.event.seq}`).toBe(`${s1}:3`);
      await p.stop();
    });

    it("an existing sink keeps its cursor; a new one starts at 'from'", async () => {
      const stream = uniqueName('st');
      await publishN(stream, 3);
      const name1 = uniqueName('sink');
      const first = new Puller(fabric.sink<number>(name1, { streams: [stream] }).consume());
      for (const d of await take(first, 3)) await d.ack();
      await first.stop();
      await publishN(stream, 2); // seqs 4, 5
      const again = new Puller(fabric.sink<number>(name1, { streams: [stream], from: 'start' }).consume());
      expect((await take(again, 2)).map((d) => d.event.seq)).toEqual([4, 5]);
      await again.stop();
      const fromEnd = new Puller(
        fabric.sink<number>(uniqueName('sink'), { streams: [stream], from: 'end' }).consume(),
      );
      expect(await fromEnd.pull(100)).toBeUndefined();
      await publishN(stream, 1);
      expect((await take(fromEnd, 1)).map((d) => d.event.seq)).toEqual([6]);
      await fromEnd.stop();
      const fromSeq = new Puller(
        fabric.sink<number>(uniqueName('sink'), { streams: [stream], from: 5 }).consume(),
      );
      expect((await take(fromSeq, 2)).map((d) => d.event.seq)).toEqual([5, 6]);
      await fromSeq.stop();
    });

    it('sink.close() called inside a consume loop ends every loop without deadlock', async () => {
      const stream = uniqueName('st');
      await publishN(stream, 10);
      const sink = fabric.sink<number>(uniqueName('sink'), { streams: [stream] });
      let handled = 0;
      const loop = async () => {
        for await (const d of sink.consume()) {
          await d.ack();
          if (++handled === 5) await sink.close();
        }
      };
      await Promise.all([loop(), loop()]);
      expect(handled).toBeGreaterThanOrEqual(5);
      // What the loops did not ack is still there for a new loop of the same sink.
      const again = new Puller(fabric.sink<number>(sink.name, { streams: [stream] }).consume());
      expect((await take(again, 10 - handled)).length).toBe(10 - handled);
      await again.stop();
    });

    it('rejects bad sink options with InvalidArgumentError or PatternError naming them', () => {
      const cases: [() => unknown, RegExp][] = [
        [() => fabric.sink('', { streams: ['a'] }), /sink name/],
        [() => fabric.sink('s', { streams: [] }), /streams/],
        [() => fabric.sink('s', { streams: ['a b'] }), /streams\[0\]/],
        [() => fabric.sink('s', { streams: ['a'], ackTimeoutMs: 0 }), /ackTimeoutMs/],
        [() => fabric.sink('s', { streams: ['a'], maxDeliveries: 0 }), /maxDeliveries/],
        [() => fabric.sink('s', { streams: ['a'], from: -1 }), /from/],
        [() => fabric.sink('s', { streams: ['a'], strems: ['b'] } as never), /strems/],
        [() => fabric.sink('s', { streams: ['a'], topics: ['a..b'] }), /a\.\.b/],
      ];
      for (const [fn, message] of cases) {
        let err: unknown;
        try {
          fn();
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(WeftError);
        expect((err as Error).message).toMatch(message);
      }
      expect(() => fabric.sink('s', { streams: ['a'], batch: 1 } as never)).toThrow(InvalidArgumentError);
    });

    it('model-based: any interleaving of publishes, joins, leaves, acks, nacks and timeouts acks every matching event, never to two holders at once, losing none', async () => {
      const ACK_TIMEOUT = 200;
      await fc.assert(
        fc.asyncProperty(fc.commands(sinkCommands(), { maxCommands: 25, size: 'max' }), async (cmds) => {
          const stream = uniqueName('model');
          const sinkName = uniqueName('msink');
          const sink = fabric.sink<number>(sinkName, {
            streams: [stream],
            topics: ['keep.>'],
            ackTimeoutMs: ACK_TIMEOUT,
            maxDeliveries: 1000,
          });
          const real: SinkReal = { fabric, stream, sink, consumers: [] };
          const model: SinkModel = {
            published: 0,
            matching: new Set(),
            acked: new Set(),
            lateAcked: new Set(),
            holders: new Map(),
            ackTimeout: ACK_TIMEOUT,
          };
          try {
            await fc.asyncModelRun(() => ({ model, real }), cmds);
            // Drain: one fresh consumer must get every matching event not yet acked.
            const drain = new Puller(sink.consume());
            const deadline = Date.now() + 5_000;
            const settled = () => new Set([...model.acked, ...model.lateAcked]).size;
            while (settled() < model.matching.size) {
              if (Date.now() > deadline)
                throw new Error(`drain: acked ${settled()} of ${model.matching.size}`);
              const d = await drain.pull(ACK_TIMEOUT);
              if (d === undefined) continue;
              checkDelivery(model, -1, d, drain.lastAt);
              model.acked.add(d.event.seq);
              await d.ack();
            }
            expect(await drain.pull(ACK_TIMEOUT * 2)).toBeUndefined();
            await drain.stop();
            const all = [...new Set([...model.acked, ...model.lateAcked])].sort((a, b) => a - b);
            expect(all).toEqual([...model.matching].sort((a, b) => a - b));
          } finally {
            for (const c of real.consumers) await c.puller.stop();
            await sink.close();
          }
        }),
        fcParams({ numRuns: options.modelRuns ?? 12 }),
      );
    });
  });
}

// ---------------------------------------------------------------- the sink model

interface Held {
  consumer: number;
  since: number;
}
interface SinkModel {
  published: number;
  matching: Set<number>;
  acked: Set<number>;
  /** Acked by a holder that had held it past the ack timeout: a redelivery may still be in flight (at-least-once). */
  lateAcked: Set<number>;
  /** Who holds each handed-out, unsettled event, and since when (for the exclusivity check). */
  holders: Map<number, Held[]>;
  ackTimeout: number;
}
interface SinkConsumer {
  puller: Puller<number>;
  inHand: Delivery<number>[];
  stopped: boolean;
}
interface SinkReal {
  fabric: Fabric;
  stream: string;
  sink: ReturnType<typeof Fabric.prototype.sink<number>>;
  consumers: SinkConsumer[];
}
type SinkCmd = fc.AsyncCommand<SinkModel, SinkReal>;

function checkDelivery(m: SinkModel, consumer: number, d: Delivery<number>, at: number): void {
  const seq = d.event.seq;
  expect(m.matching.has(seq), `seq ${seq} does not match the filter but was delivered`).toBe(true);
  expect(m.acked.has(seq), `seq ${seq} was delivered again after its ack`).toBe(false);
  m.lateAcked.delete(seq); // a redelivery of a late ack: it will be acked (again) by this holder
  const now = at;
  // Another holder may exist only if it held the event longer than the ack timeout (then it was reclaimed).
  // The test sees a delivery a little after the transport made it (batchSize 1: no prefetch), and
  // more so on a loaded machine or over a network: the check allows that much uncertainty.
  const slack = 120;
  for (const h of m.holders.get(seq) ?? []) {
    expect(
      now - h.since,
      `seq ${seq} handed to consumer ${consumer} while consumer ${h.consumer} held it`,
    ).toBeGreaterThanOrEqual(m.ackTimeout - slack);
  }
  m.holders.set(seq, [...(m.holders.get(seq) ?? []), { consumer, since: now }]);
}

class PublishSinkCmd implements SinkCmd {
  constructor(readonly topics: (string | undefined)[]) {}
  check = () => true;
  async run(m: SinkModel, r: SinkReal) {
    const seqs = await r.fabric
      .stream(r.stream)
      .publishBatch(this.topics.map((topic, i) => ({ data: i, topic })));
    seqs.forEach((seq, i) => {
      if (this.topics[i]?.startsWith('keep.')) m.matching.add(seq);
    });
    m.published += seqs.length;
  }
  toString = () => `publish(${this.topics.join(',')})`;
}
class JoinCmd implements SinkCmd {
  check = (m: Readonly<SinkModel>) => true && m.published >= 0;
  async run(_m: SinkModel, r: SinkReal) {
    r.consumers.push({ puller: new Puller(r.sink.consume({ batchSize: 1 })), inHand: [], stopped: false });
  }
  toString = () => 'join';
}
class PullCmd implements SinkCmd {
  constructor(readonly i: number) {}
  check = () => true;
  async run(m: SinkModel, r: SinkReal) {
    const live = r.consumers.filter((c) => !c.stopped);
    if (live.length === 0) return;
    const c = live[this.i % live.length]!;
    const d = await c.puller.pull(20);
    if (d === undefined) return;
    checkDelivery(m, r.consumers.indexOf(c), d, c.puller.lastAt);
    c.inHand.push(d);
  }
  toString = () => `pull(${this.i})`;
}
class SettleCmd implements SinkCmd {
  constructor(
    readonly i: number,
    readonly how: 'ack' | 'nack',
  ) {}
  check = () => true;
  async run(m: SinkModel, r: SinkReal) {
    const holding = r.consumers.filter((c) => !c.stopped && c.inHand.length > 0);
    if (holding.length === 0) return;
    const c = holding[this.i % holding.length]!;
    const d = c.inHand.shift()!;
    const idx = r.consumers.indexOf(c);
    const seq = d.event.seq;
    const mine = (m.holders.get(seq) ?? []).find((h) => h.consumer === idx);
    const others = (m.holders.get(seq) ?? []).filter((h) => h.consumer !== idx);
    m.holders.set(seq, others);
    if (this.how === 'ack') {
      await d.ack();
      const late = mine !== undefined && Date.now() - mine.since >= m.ackTimeout - 120;
      if (late || others.length > 0) m.lateAcked.add(seq);
      else m.acked.add(seq);
    } else {
      await d.nack();
    }
  }
  toString = () => `${this.how}(${this.i})`;
}
class LeaveCmd implements SinkCmd {
  constructor(readonly i: number) {}
  check = () => true;
  async run(m: SinkModel, r: SinkReal) {
    const live = r.consumers.filter((c) => !c.stopped);
    if (live.length === 0) return;
    const c = live[this.i % live.length]!;
    c.stopped = true;
    await c.puller.stop();
    const idx = r.consumers.indexOf(c);
    for (const d of c.inHand)
      m.holders.set(
        d.event.seq,
        (m.holders.get(d.event.seq) ?? []).filter((h) => h.consumer !== idx),
      );
    c.inHand = [];
  }
  toString = () => `leave(${this.i})`;
}
class ExpireCmd implements SinkCmd {
  check = () => true;
  async run(m: SinkModel) {
    await sleep(m.ackTimeout + 20);
  }
  toString = () => 'wait past the ack timeout';
}

function sinkCommands(): fc.Arbitrary<SinkCmd>[] {
  return [
    fc
      .array(fc.constantFrom<string | undefined>('keep.a', 'keep.b.c', 'drop.a', undefined), {
        minLength: 1,
        maxLength: 4,
      })
      .map((t) => new PublishSinkCmd(t)),
    fc.constant(new JoinCmd()),
    fc.nat(5).map((i) => new PullCmd(i)),
    fc.nat(5).map((i) => new PullCmd(i)),
    fc
      .tuple(fc.nat(5), fc.constantFrom('ack' as const, 'ack' as const, 'nack' as const))
      .map(([i, how]) => new SettleCmd(i, how)),
    fc.nat(5).map((i) => new LeaveCmd(i)),
    fc.constant(new ExpireCmd()),
  ];
}

export type { WeftEvent };
