/**
 * Publishers in real worker threads (piscina pools started by `fabric.publishers()`), followed on
 * the main thread: order, data, back-pressure, closed streams, failing and dying workers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AbortError,
  createFabric,
  type Fabric,
  InvalidArgumentError,
  WeftError,
  type WeftEvent,
} from '../../index.js';
import { isGapNotice, type SabPublisherPool } from '../../transports/sab/index.js';
import { workerFabric } from '../../workers/index.js';
import { collect, eventually, uniqueName } from '../helpers/async.js';
import type { Task } from './fixtures/worker.js';

const WORKER = new URL('./fixtures/worker.ts', import.meta.url);

type Tick = { shard: number; i: number; tag?: string };

/**
 * Every event is a tick or a GapNotice, the sequences are 1, 2, 3 ...; per shard (and task tag)
 * the ticks run in increasing order with no repeat. Returns the ticks' `i` per shard.
 */
function checkStream(events: readonly WeftEvent[], expectGaps = false): Map<number, number[]> {
  const perShard = new Map<number, number[]>();
  const perTask = new Map<string, number[]>();
  events.forEach((e, k) => {
    expect(e.seq).toBe(k + 1);
  });
  for (const e of events) {
    if (isGapNotice(e.data)) {
      expect(expectGaps).toBe(true);
      continue;
    }
    const { shard, i, tag } = e.data as Tick;
    let all = perShard.get(shard);
    if (all === undefined) perShard.set(shard, (all = []));
    all.push(i);
    const key = `${shard}/${tag ?? ''}`;
    let list = perTask.get(key);
    if (list === undefined) perTask.set(key, (list = []));
    if (list.length > 0) expect(i).toBeGreaterThan(list[list.length - 1]!);
    list.push(i);
  }
  return perShard;
}

describe('publishers in worker threads', () => {
  let fabric: Fabric;
  let pool: SabPublisherPool;
  const run = (task: Task & { shard?: number }) => pool.run(task as never);

  beforeAll(async () => {
    fabric = await createFabric({ transport: 'sab', ringBytes: 16_384 });
    pool = (await fabric.publishers({ filename: WORKER, shards: 3 })) as SabPublisherPool;
    await Promise.all([0, 1, 2].map((shard) => run({ op: 'shard', shard })));
  });
  afterAll(async () => {
    await pool?.close();
    await fabric?.close();
  });

  it('each worker knows its shard', async () => {
    expect(await run({ op: 'shard', shard: 2 })).toEqual({ shard: 2, shards: 3, ringBytes: 16_384 });
  });

  it('three shards publishing at once give one dense order, per-shard order kept, seen by a follower', async () => {
    const name = uniqueName();
    const stream = fabric.stream<Tick>(name);
    const follower = collect(stream.follow({ from: 'start' }));
    const results = (await Promise.all([
      run({ op: 'produce', stream: name, count: 3000, shard: 0 }),
      run({ op: 'produce', stream: name, count: 2000, batch: 37, shard: 1 }),
      run({ op: 'produce', stream: name, count: 1000, awaitEach: true, shard: 2 }),
    ])) as { shard: number; seqs: number[] }[];
    await eventually(() => follower.received.length >= 6000, 10_000, '6000 events');
    const perShard = checkStream(follower.received);
    expect(perShard.get(0)).toEqual([...Array(3000).keys()]);
    expect(perShard.get(1)).toEqual([...Array(2000).keys()]);
    expect(perShard.get(2)).toEqual([...Array(1000).keys()]);
    // The sequences each worker was told match where its events are.
    for (const r of results) {
      r.seqs.forEach((seq, i) => {
        expect(follower.received[seq - 1]!.data).toEqual({ shard: r.shard, i });
      });
    }
    // A batch is contiguous in the order.
    const batchSeqs = results[1]!.seqs;
    for (let b = 0; b < batchSeqs.length; b += 37) {
      const chunk = batchSeqs.slice(b, b + 37);
      expect(chunk).toEqual(chunk.map((_, k) => chunk[0]! + k));
    }
    await stream.close();
    expect(await follower.ended).toBeUndefined();
  });

  it('run() resolves after the drain took what the task committed: a read right after sees it', async () => {
    const name = uniqueName();
    await run({ op: 'produce', stream: name, count: 500, shard: 0 });
    expect((await fabric.stream(name).read()).length).toBe(500);
  });

  it('main-thread publishes and worker publishes share one counter', async () => {
    const name = uniqueName();
    const stream = fabric.stream(name);
    const main = (async () => {
      const seqs: number[] = [];
      for (let i = 0; i < 300; i++) seqs.push(await stream.publish({ shard: -1, i }));
      return seqs;
    })();
    await Promise.all([run({ op: 'produce', stream: name, count: 2000, shard: 1 }), main]);
    const events = await stream.read();
    expect(events.length).toBe(2300);
    const perShard = checkStream(events);
    expect(perShard.get(-1)!.length).toBe(300);
    expect(perShard.get(1)!.length).toBe(2000);
  });

  it('data and topics arrive intact (msgpackr types)', async () => {
    const name = uniqueName();
    const values = [
      0,
      -1.5,
      2 ** 40,
      Number.MAX_SAFE_INTEGER,
      'text',
      '',
      'ünïcødé ✓',
      'long '.repeat(400),
      true,
      false,
      null,
      [1, [2, [3]]],
      { a: { b: [1, 'x'] }, n: null },
      new Uint8Array([1, 2, 3]),
      new Date(1_700_000_000_000),
      new Map([['k', 1]]),
      10n,
    ];
    const seqs = (await run({ op: 'values', stream: name, values })) as number[];
    expect(seqs).toEqual(values.map((_, i) => i + 1));
    const got = (await fabric.stream(name).read()).map((e) => e.data);
    expect(got.slice(0, 13)).toEqual(values.slice(0, 13));
    expect(Buffer.from(got[13] as Uint8Array)).toEqual(Buffer.from([1, 2, 3]));
    expect(got[13]).toBeInstanceOf(Uint8Array);
    expect(got[14]).toEqual(new Date(1_700_000_000_000));
    expect(got[15]).toEqual(new Map([['k', 1]]));
    expect(got[16]).toBe(10n);
    const topicStream = uniqueName();
    await run({ op: 'produce', stream: topicStream, count: 10, batch: 4, topic: 'orders.created', shard: 0 });
    await run({ op: 'produce', stream: topicStream, count: 10, topic: 'orders.paid', shard: 1 });
    const topics = (await fabric.stream(topicStream).read()).map((e) => e.topic);
    expect(topics.filter((t) => t === 'orders.created').length).toBe(10);
    expect(topics.filter((t) => t === 'orders.paid').length).toBe(10);
  });

  it('events larger than half the ring, and larger than the ring, arrive whole', async () => {
    const name = uniqueName();
    const sizes = [100, 9_000, 15_000, 40_000, 5, 70_000]; // ring is 16 KiB
    const seqs = (await run({ op: 'big', stream: name, sizes, shard: 2 })) as number[];
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6]);
    const got = (await fabric.stream(name).read()).map((e) => e.data as { size: number; body: string });
    expect(got.map((d) => d.size)).toEqual(sizes);
    for (const d of got) expect(d.body).toBe('b'.repeat(d.size));
  });

  it('a stream closed on the main thread rejects worker publishes with ClosedError', async () => {
    const name = uniqueName();
    const stream = fabric.stream(name);
    await stream.publish('before');
    await stream.close();
    expect(await run({ op: 'closed', stream: name, shard: 0 })).toEqual([
      'WEFT_ERR_CLOSED',
      'WEFT_ERR_CLOSED',
      'WEFT_ERR_CLOSED',
    ]);
    expect((await stream.read()).map((e) => e.data)).toEqual(['before']);
  });

  it('a full ring makes publish wait and tryPublish return false, never drop', async () => {
    const name = uniqueName();
    const stream = fabric.stream<Tick>(name);
    const follower = collect(stream.follow({ from: 'start' }));
    const task = run({ op: 'fill', stream: name, extra: 400, pad: 200, shard: 1 });
    // Block this thread (the drain) long enough for the worker to fill its 16 KiB ring.
    const until = Date.now() + 400;
    while (Date.now() < until) {
      // the drain cannot run: the ring fills up
    }
    const { accepted, total } = (await task) as { accepted: number; total: number };
    expect(accepted).toBeGreaterThan(10); // the ring took some
    expect(accepted).toBeLessThan(total); // then tryPublish said no
    await eventually(() => follower.received.length >= total, 10_000, `${total} events`);
    const perShard = checkStream(follower.received);
    expect(perShard.get(1)).toEqual([...Array(total).keys()]);
    await stream.close();
  });

  it('writable() resolves once the ring has room again', async () => {
    const name = uniqueName();
    const task = run({ op: 'writable', stream: name, pad: 500, shard: 2 });
    const until = Date.now() + 200;
    while (Date.now() < until) {
      // block the drain: the worker's tryPublish fills the ring
    }
    const { filled, after } = (await task) as { filled: number; after: boolean };
    expect(filled).toBeGreaterThan(5);
    expect(after).toBe(true);
  });

  it('validates run() and publishers() arguments', async () => {
    await expect(pool.run({ shard: 3 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(pool.run({ shard: -1 })).rejects.toThrow(/shard/);
    await expect(pool.run(null as never)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(pool.run({ op: 'shard' }, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(
      AbortError,
    );
    await expect(fabric.publishers({ filename: 'relative/worker.js', shards: 1 })).rejects.toThrow(
      /absolute/,
    );
    await expect(fabric.publishers({ filename: WORKER, shards: 0 })).rejects.toThrow(/shards/);
    await expect(fabric.publishers({ filename: WORKER, shards: 1, ringBytes: 1000 })).rejects.toThrow(
      /ringBytes.*power of two/,
    );
    await expect(fabric.publishers({ filename: WORKER, shards: 1, colour: 'red' } as never)).rejects.toThrow(
      /colour/,
    );
  });

  it('workerFabric() outside a pool worker says so', () => {
    let err: unknown;
    try {
      workerFabric();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WeftError);
    expect((err as WeftError).code).toBe('WEFT_ERR_UNSUPPORTED');
  });
});

describe('failing and dying workers', () => {
  let fabric: Fabric;
  let pool: SabPublisherPool;
  const run = (task: Task & { shard?: number }, opts?: { signal?: AbortSignal }) =>
    pool.run(task as never, opts);

  beforeAll(async () => {
    fabric = await createFabric({ transport: 'sab', ringBytes: 16_384 });
    pool = (await fabric.publishers({ filename: WORKER, shards: 2 })) as SabPublisherPool;
  });
  afterAll(async () => {
    await pool?.close();
    await fabric?.close();
  });

  it('a worker that throws: run() rejects with its error, what it published is kept, the other shard goes on', async () => {
    const name = uniqueName();
    const other = run({ op: 'produce', stream: name, count: 2000, shard: 1 });
    await expect(run({ op: 'throw', stream: name, count: 500, shard: 0 })).rejects.toThrow(
      /on purpose after 500/,
    );
    await other;
    const events = await fabric.stream(name).read();
    const perShard = checkStream(events);
    expect(perShard.get(0)).toEqual([...Array(500).keys()]);
    expect(perShard.get(1)).toEqual([...Array(2000).keys()]);
  });

  it('a worker terminated mid-task (abort): run() rejects with AbortError, the stream stays dense, the shard works again', async () => {
    const name = uniqueName();
    const stream = fabric.stream(name);
    const follower = collect(stream.follow({ from: 'start' }));
    const ac = new AbortController();
    const hung = run({ op: 'hang', stream: name, count: 100, shard: 0 }, { signal: ac.signal });
    await eventually(() => follower.received.length >= 100, 10_000, 'the hung task to publish');
    ac.abort(new Error('stop it'));
    const err = await hung.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbortError);
    expect((err as AbortError).cause).toEqual(new Error('stop it'));
    // The replacement thread takes the recovered ring.
    await run({ op: 'produce', stream: name, count: 300, shard: 0, tag: 'after' });
    await run({ op: 'produce', stream: name, count: 300, shard: 1, tag: 'after' });
    await eventually(() => follower.received.length >= 700, 10_000, '700 events');
    const perShard = checkStream(follower.received);
    expect(perShard.get(0)!.length).toBe(400);
    expect(perShard.get(1)!.length).toBe(300);
    await stream.close();
    expect(await follower.ended).toBeUndefined();
  });

  it('a worker that exits its thread: run() rejects, and the pool replaces it', async () => {
    const name = uniqueName();
    await expect(run({ op: 'exit', stream: name, count: 50, shard: 1 })).rejects.toThrow(/exited/);
    await run({ op: 'produce', stream: name, count: 50, shard: 1, tag: 'after' });
    const events = await fabric.stream(name).read();
    expect(events.length).toBe(100);
    checkStream(events);
  });
});

describe('closing', () => {
  it('pool.close() waits for running tasks and drains what they committed', async () => {
    const fabric = await createFabric({ transport: 'sab' });
    const pool = await fabric.publishers({ filename: WORKER, shards: 2 });
    const name = uniqueName();
    const runs = [0, 1].map((shard) => pool.run({ op: 'produce', stream: name, count: 5000, shard }));
    await pool.close();
    await Promise.all(runs);
    expect((await fabric.stream(name).read()).length).toBe(10_000);
    await expect(pool.run({ op: 'shard' })).rejects.toThrow(/closed/);
    await fabric.close();
  });

  it('fabric.close() with a pool still running stops it, and every follower ends cleanly', async () => {
    const fabric = await createFabric({ transport: 'sab' });
    const pool = await fabric.publishers({ filename: WORKER, shards: 2 });
    const name = uniqueName();
    const stream = fabric.stream<Tick>(name);
    const follower = collect(stream.follow({ from: 'start' }));
    const runs = [0, 1].map((shard) =>
      pool.run({ op: 'produce', stream: name, count: 200_000, batch: 100, shard }).catch((e: unknown) => e),
    );
    await eventually(() => follower.received.length > 1000, 10_000, 'some events');
    await fabric.close();
    expect(await follower.ended).toBeUndefined();
    const results = await Promise.all(runs);
    for (const r of results) expect(r).toBeInstanceOf(Error);
    checkStream(follower.received, true);
  });
});
