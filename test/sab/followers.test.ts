/**
 * Followers in worker threads (the broadcast ring): order and exactly-once from the start position,
 * replay from a retained sequence, the end of the stream, readers joining and leaving at runtime,
 * and the slow-reader policies ('block': publishers wait; 'error': that reader gets LaggedError).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFabric, type Fabric } from '../../index.js';
import type { SabPublisherPool } from '../../transports/sab/index.js';
import { collect, eventually, uniqueName } from '../helpers/async.js';
import type { Task } from './fixtures/worker.js';

const WORKER = new URL('./fixtures/worker.ts', import.meta.url);

interface FollowResult {
  seqs: number[];
  data: unknown[];
  error: string | undefined;
  message?: string;
}
type FollowTask = Omit<Extract<Task, { op: 'follow' }>, 'op' | 'ready'>;

function expectDense(seqs: number[], from: number, to: number): void {
  expect(seqs.length).toBe(to - from + 1);
  for (let k = 0; k < seqs.length; k++)
    if (seqs[k] !== from + k) expect.fail(`seq ${seqs[k]} at ${k}, want ${from + k}`);
}

async function harness(options: Record<string, unknown>, shards: number) {
  const fabric = await createFabric({ transport: 'sab', ringBytes: 16_384, ...options });
  const pool = (await fabric.publishers({ filename: WORKER, shards })) as SabPublisherPool;
  await Promise.all(Array.from({ length: shards }, (_, shard) => pool.run({ op: 'shard', shard })));
  const run = (task: Task & { shard?: number }) => pool.run(task as never);
  /** Starts a follow task; resolves (with the task's promise) once the worker's follower is placed. */
  async function follow(task: FollowTask, shard: number): Promise<{ result: Promise<FollowResult> }> {
    const ready = uniqueName('ready');
    const signal = collect(fabric.stream(ready).follow({ from: 'start' }));
    const result = run({ op: 'follow', ready, ...task, shard }) as Promise<FollowResult>;
    result.catch(() => {});
    await Promise.race([
      eventually(() => signal.received.length > 0, 15_000, 'the follower to be ready'),
      result.then((r) => {
        if (r.error !== undefined) throw new Error(`follow failed: ${r.error} ${r.message ?? ''}`);
      }),
    ]);
    return { result };
  }
  return { fabric, pool, run, follow };
}

describe('followers in worker threads', () => {
  let h: Awaited<ReturnType<typeof harness>>;
  let fabric: Fabric;

  beforeAll(async () => {
    h = await harness({ followRingBytes: 65_536 }, 4);
    fabric = h.fabric;
  });
  afterAll(async () => {
    await h?.pool.close();
    await h?.fabric.close();
  });

  it('from the end: every event published after it (main thread and workers), in order, once', async () => {
    const name = uniqueName();
    const stream = fabric.stream(name);
    await stream.publishBatch([{ data: 'before' }, { data: 'before' }]);
    const { result } = await h.follow({ stream: name, count: 3000 }, 0);
    const main = (async () => {
      for (let i = 0; i < 1000; i++) await stream.publish({ shard: -1, i });
    })();
    await Promise.all([main, h.run({ op: 'produce', stream: name, count: 2000, batch: 50, shard: 1 })]);
    const r = await result;
    expect(r.error).toBeUndefined();
    expectDense(r.seqs, 3, 3002);
  });

  it('from a retained sequence: the main thread replays from there, then live', async () => {
    const name = uniqueName();
    const stream = fabric.stream(name);
    await stream.publishBatch(Array.from({ length: 100 }, (_, i) => ({ data: i + 1 })));
    const { result } = await h.follow({ stream: name, from: 40, count: 111 }, 2);
    await stream.publishBatch(Array.from({ length: 50 }, (_, i) => ({ data: 101 + i })));
    const r = await result;
    expectDense(r.seqs, 40, 150);
    expect(r.data).toEqual([40, 41, 42, 43, 44]);
  });

  it('from a trimmed sequence: TruncatedError in the worker', async () => {
    const name = uniqueName();
    const stream = fabric.stream(name, { maxLength: 10 });
    await stream.publishBatch(Array.from({ length: 50 }, (_, i) => ({ data: i })));
    const r = (await h.run({ op: 'follow', stream: name, from: 5, count: 10, shard: 3 })) as FollowResult;
    expect(r.error).toBe('WEFT_ERR_TRUNCATED');
  });

  it('closing the stream ends worker followers after what was published; failing it throws there', async () => {
    const closing = uniqueName();
    const s1 = fabric.stream(closing);
    const f1 = await h.follow({ stream: closing, count: 1_000_000 }, 0);
    await s1.publishBatch([{ data: 1 }, { data: 2 }, { data: 3 }]);
    await s1.close();
    const r1 = await f1.result;
    expect(r1.error).toBeUndefined();
    expect(r1.seqs).toEqual([1, 2, 3]);

    const failing = uniqueName();
    const s2 = fabric.stream(failing);
    const f2 = await h.follow({ stream: failing, count: 1_000_000 }, 1);
    await s2.publish('x');
    await s2.fail(Object.assign(new Error('boom'), { code: 'E_BOOM' }));
    const r2 = await f2.result;
    expect(r2.seqs).toEqual([1]);
    expect(r2.error).toBe('E_BOOM');
    expect(r2.message).toBe('boom');
  });

  it('readers join and leave at runtime; the others lose nothing', async () => {
    const name = uniqueName();
    const stream = fabric.stream(name);
    const steady = await h.follow({ stream: name, count: 1_000_000 }, 0);
    let publishing = true;
    let published = 0;
    const publisher = (async () => {
      while (publishing) {
        await stream.publishBatch(Array.from({ length: 20 }, () => ({ data: ++published })));
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    // Short-lived readers come and go (some break early) while events flow.
    const transient: FollowResult[] = [];
    for (let k = 0; k < 6; k++) {
      const t = await h.follow({ stream: name, count: 30 + k * 40 }, 1 + (k % 3));
      transient.push(await t.result);
    }
    publishing = false;
    await publisher;
    await stream.close();
    const r = await steady.result;
    expect(r.error).toBeUndefined();
    expectDense(r.seqs, 1, published);
    for (const t of transient) {
      expect(t.error).toBeUndefined();
      for (let k = 1; k < t.seqs.length; k++) expect(t.seqs[k]).toBe(t.seqs[k - 1]! + 1);
    }
  });
});

describe('slow worker followers', () => {
  it("'block': a slow reader makes worker publishers wait; nothing is lost", async () => {
    const h = await harness({ followRingBytes: 4096, slowReader: 'block' }, 2);
    try {
      const name = uniqueName();
      const slow = await h.follow({ stream: name, count: 1500, slowMs: 20, slowEvery: 150 }, 0);
      const started = Date.now();
      await h.run({ op: 'produce', stream: name, count: 1500, pad: 100, shard: 1 });
      // 1500 events of ~130 bytes through a 4 KiB ring: the publisher had to wait for the reader.
      const r = await slow.result;
      expect(r.error).toBeUndefined();
      expectDense(r.seqs, 1, 1500);
      expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    } finally {
      await h.pool.close();
      await h.fabric.close();
    }
  });

  it("'error': the slow reader gets LaggedError, a 'block' one on the same stream sees everything", async () => {
    const h = await harness({ followRingBytes: 4096, slowReader: 'error' }, 3);
    try {
      const name = uniqueName();
      const slow = await h.follow({ stream: name, count: 2000, slowMs: 50, slowEvery: 10 }, 0);
      // The fast one chooses 'block' for itself: the writer never overruns it.
      const fast = await h.follow({ stream: name, count: 2000, slowReader: 'block' }, 1);
      await h.run({ op: 'produce', stream: name, count: 2000, pad: 100, shard: 2 });
      const [s, f] = await Promise.all([slow.result, fast.result]);
      expect(s.error).toBe('WEFT_ERR_LAGGED');
      expect(f.error).toBeUndefined();
      expectDense(f.seqs, 1, 2000);
      // What the slow one did see is a dense prefix.
      expectDense(s.seqs, 1, s.seqs.length);
    } finally {
      await h.pool.close();
      await h.fabric.close();
    }
  });

  it("a 'block' reader whose worker dies does not hold publishers forever", async () => {
    const h = await harness({ followRingBytes: 4096, slowReader: 'block' }, 2);
    try {
      const name = uniqueName();
      const ac = new AbortController();
      const ready = uniqueName('ready');
      const signal = collect(h.fabric.stream(ready).follow({ from: 'start' }));
      // A reader that never reads: it follows, then sleeps forever.
      const stuck = h.pool
        .run({ op: 'follow', stream: name, count: 1, ready, slowMs: 1e9, slowEvery: 1, shard: 0 } as never, {
          signal: ac.signal,
        })
        .catch((e: unknown) => e);
      await eventually(() => signal.received.length > 0, 15_000, 'the reader to be ready');
      const publishing = h.run({ op: 'produce', stream: name, count: 2000, pad: 100, shard: 1 });
      await new Promise((resolve) => setTimeout(resolve, 200));
      ac.abort(); // the worker is terminated: its slot is freed
      await publishing;
      await stuck;
      expect((await h.fabric.stream(name).read()).length).toBe(2000);
    } finally {
      await h.pool.close();
      await h.fabric.close();
    }
  });
});
