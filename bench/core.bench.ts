/**
 * Core benchmark: publish + deliver through the memory transport's linked list, side by side in
 * one run with Node's EventEmitter (sync) and emittery (async), for 1, 10, 100 and 1,000 followers;
 * per-event (`for await` over events) and batch iteration (`follower.batches()`); and the cost of
 * one publish against the follower count, with followers behind and with every follower parked.
 *
 *   npm run build && node dist/bench/core.bench.js [--quick]
 */
import { EventEmitter } from 'node:events';
import Emittery from 'emittery';
import { Bench } from 'tinybench';
import { createFabric, type Fabric, type Follower } from '../index.js';
import { type BenchRow, compare, isMain, main } from './lib.js';

const FOLLOWERS = [1, 10, 100, 1000];

interface Sink {
  count: number;
  target: number;
  resolve: (() => void) | null;
}
function arrived(sink: Sink, n: number): void {
  sink.count += n;
  if (sink.count >= sink.target && sink.resolve !== null) {
    const r = sink.resolve;
    sink.resolve = null;
    r();
  }
}
function until(sink: Sink, add: number): Promise<void> {
  sink.target += add;
  if (sink.count >= sink.target) return Promise.resolve();
  return new Promise((resolve) => {
    sink.resolve = resolve;
  });
}

export async function run({ quick }: { quick: boolean }): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const time = quick ? 150 : 1000;
  const fabric = await createFabric({ transport: 'memory' });

  // ------------------------------------------------------------ delivery
  for (const F of FOLLOWERS) {
    const N = Math.max(1000, Math.min(20_000, 200_000 / F));
    // Quick mode bounds the iterations too: one iteration at 1,000 followers delivers 1M events.
    const bench = new Bench(
      quick
        ? { time, iterations: 6, warmup: true, warmupTime: 20, warmupIterations: 2 }
        : { time, warmup: true, warmupTime: 200 },
    );

    const ee = new EventEmitter();
    ee.setMaxListeners(0);
    const eeSink: Sink = { count: 0, target: 0, resolve: null };
    for (let i = 0; i < F; i++) ee.on('e', () => arrived(eeSink, 1));
    bench.add(`EventEmitter, ${F} listeners`, () => {
      for (let i = 0; i < N; i++) ee.emit('e', i);
    });

    const em = new Emittery();
    const emSink: Sink = { count: 0, target: 0, resolve: null };
    for (let i = 0; i < F; i++) em.on('e', () => arrived(emSink, 1));
    bench.add(`emittery, ${F} listeners`, async () => {
      const ps = new Array<Promise<void>>(N);
      for (let i = 0; i < N; i++) ps[i] = em.emit('e', i);
      await Promise.all(ps);
    });

    const perEvent = startFollowers(fabric, `pe-${F}`, F, false);
    bench.add(`weft per-event, ${F} followers`, async () => {
      const done = until(perEvent.sink, N * F);
      for (let i = 0; i < N; i++) perEvent.stream.publish(i);
      await done;
    });

    const viaBatch = startFollowers(fabric, `pb-${F}`, F, false);
    const items = Array.from({ length: 100 }, (_, i) => ({ data: i }));
    bench.add(`weft per-event, publishBatch(100), ${F} followers`, async () => {
      const done = until(viaBatch.sink, N * F);
      for (let i = 0; i < N; i += 100) viaBatch.stream.publishBatch(items);
      await done;
    });

    const batch = startFollowers(fabric, `b-${F}`, F, true);
    bench.add(`weft batches, ${F} followers`, async () => {
      const done = until(batch.sink, N * F);
      for (let i = 0; i < N; i++) batch.stream.publish(i);
      await done;
    });

    await bench.run();
    for (const task of bench.tasks) {
      const mean = task.result.state === 'completed' ? task.result.latency.mean : Number.NaN;
      rows.push({
        name: task.name,
        value: (N * F) / (mean / 1000),
        unit: 'deliveries/s',
        extra: { followers: F, eventsPerIteration: N },
      });
    }
    compare(
      rows,
      `weft per-event, ${F} followers`,
      `EventEmitter, ${F} listeners`,
      F === 1 ? { target: 0.3 } : {},
    );
    compare(
      rows,
      `weft per-event, publishBatch(100), ${F} followers`,
      `EventEmitter, ${F} listeners`,
      F === 1 ? { target: 0.3 } : {},
    );
    compare(
      rows,
      `weft batches, ${F} followers`,
      `EventEmitter, ${F} listeners`,
      F === 100 ? { target: 0.6 } : {},
    );
    const emRow = rows.find((r) => r.name === `emittery, ${F} listeners`)!;
    const peRow = rows.find((r) => r.name === `weft per-event, ${F} followers`)!;
    peRow.extra = { ...peRow.extra, vsEmittery: peRow.value / emRow.value };
    if (F === 100) {
      rows.push({
        name: 'weft per-event vs emittery, 100 followers',
        value: peRow.value,
        unit: 'deliveries/s',
        baseline: emRow.name,
        ratio: peRow.value / emRow.value,
        target: 2.5,
        met: peRow.value / emRow.value >= 2.5,
      });
    }
    await perEvent.stop();
    await viaBatch.stop();
    await batch.stop();
  }

  // ------------------------------------------------------------ publish cost alone
  const publishCost = new Bench({ time, warmup: true, warmupTime: quick ? 50 : 200 });
  const costs: Record<string, { F: number; kind: string }> = {};
  for (const F of [1, 1000]) {
    // Followers behind: they exist and hold their place but are not waiting (nobody to wake).
    const behind = fabric.stream(`behind-${F}`, { maxLength: 10_000 });
    const behindFollowers: Follower[] = Array.from({ length: F }, () => behind.follow());
    let v = 0;
    publishCost.add(`weft publish, ${F} followers behind`, () => {
      behind.publish(v++);
    });
    costs[`weft publish, ${F} followers behind`] = { F, kind: 'behind' };

    const ee = new EventEmitter();
    ee.setMaxListeners(0);
    let hits = 0;
    for (let i = 0; i < F; i++) ee.on('e', () => hits++);
    publishCost.add(`EventEmitter.emit, ${F} listeners`, () => {
      ee.emit('e', hits);
    });
    costs[`EventEmitter.emit, ${F} listeners`] = { F, kind: 'ee' };
    publishCost.addEventListener('complete', () => {
      for (const f of behindFollowers) void f.return();
    });
  }
  await publishCost.run();
  for (const task of publishCost.tasks) {
    // The median: one publish is ~100 ns, so a GC pause in a sample would swamp the mean.
    const p50 = task.result.state === 'completed' ? task.result.latency.p50 : Number.NaN;
    const mean = task.result.state === 'completed' ? task.result.latency.mean : Number.NaN;
    rows.push({
      name: task.name,
      value: p50 * 1e6,
      unit: 'ns/publish (p50)',
      extra: { followers: costs[task.name]!.F, meanNs: mean * 1e6 },
    });
  }
  // Every follower parked: each measured publish is the first after all followers parked again,
  // with an event-loop turn in between (so nothing is amortised over a burst). Timed one call at a
  // time with hrtime, minus the timer's own cost; EventEmitter.emit is timed the same way.
  for (const F of [1, 1000]) {
    rows.push({
      name: `weft publish, ${F} followers parked`,
      value: await parkedPublishCost(fabric, F, quick ? 600 : 3000),
      unit: 'ns/publish (p50)',
      extra: { followers: F, method: 'hrtime per call, a turn between calls' },
    });
    rows.push({
      name: `EventEmitter.emit, ${F} listeners, timed alike`,
      value: await emitCost(F, quick ? 600 : 3000),
      unit: 'ns/emit (p50)',
      extra: { followers: F, method: 'hrtime per call, a turn between calls' },
    });
  }
  for (const kind of ['behind', 'parked']) {
    compare(rows, `weft publish, 1000 followers ${kind}`, `weft publish, 1 followers ${kind}`, {
      lowerIsBetter: true,
      target: 0.5,
    });
    const r = rows.find((x) => x.name === `weft publish, 1000 followers ${kind}`)!;
    const ee = rows.find(
      (x) =>
        x.name ===
        (kind === 'parked'
          ? 'EventEmitter.emit, 1000 listeners, timed alike'
          : 'EventEmitter.emit, 1000 listeners'),
    )!;
    rows.push({
      name: `weft publish vs EventEmitter.emit, 1000 followers ${kind}`,
      value: r.value,
      unit: 'ns/publish',
      baseline: ee.name,
      ratio: ee.value / r.value,
      target: 50,
      met: ee.value / r.value >= 50,
    });
  }
  await fabric.close();
  return rows;
}

const turn = () => new Promise<void>((r) => setImmediate(r));

function median(xs: number[]): number {
  xs.sort((a, b) => a - b);
  return xs[xs.length >> 1]!;
}

function timerCost(n: number): number {
  const xs: number[] = [];
  for (let k = 0; k < n; k++) {
    const t0 = process.hrtime.bigint();
    xs.push(Number(process.hrtime.bigint() - t0));
  }
  return median(xs);
}

async function parkedPublishCost(fabric: Fabric, F: number, n: number): Promise<number> {
  const f = startFollowers(fabric, `parked-${F}-${Date.now()}`, F, false, { maxLength: 10_000 });
  await turn();
  const xs: number[] = [];
  for (let k = 0; k < n; k++) {
    const done = until(f.sink, F);
    const t0 = process.hrtime.bigint();
    f.stream.publish(k);
    xs.push(Number(process.hrtime.bigint() - t0));
    await done;
    await turn();
  }
  await f.stop();
  return Math.max(1, median(xs) - timerCost(n));
}

async function emitCost(F: number, n: number): Promise<number> {
  const ee = new EventEmitter();
  ee.setMaxListeners(0);
  let hits = 0;
  for (let i = 0; i < F; i++) ee.on('e', () => hits++);
  const xs: number[] = [];
  for (let k = 0; k < n; k++) {
    const t0 = process.hrtime.bigint();
    ee.emit('e', k);
    xs.push(Number(process.hrtime.bigint() - t0));
    await turn();
  }
  return Math.max(1, median(xs) - timerCost(n)) + hits * 0;
}

function startFollowers(
  fabric: Fabric,
  name: string,
  F: number,
  batches: boolean,
  retention: { maxLength?: number } = { maxLength: 50_000 },
): { stream: ReturnType<Fabric['stream']>; sink: Sink; stop: () => Promise<void> } {
  const stream = fabric.stream(name, retention);
  const sink: Sink = { count: 0, target: 0, resolve: null };
  const followers = Array.from({ length: F }, () => stream.follow());
  const loops = followers.map(async (f) => {
    if (batches) {
      for await (const b of f.batches()) arrived(sink, b.length);
    } else {
      for await (const _ of f) arrived(sink, 1);
    }
  });
  return {
    stream,
    sink,
    stop: async () => {
      await stream.close();
      await Promise.all(loops);
    },
  };
}

if (isMain(import.meta.url)) await main('core', run);
