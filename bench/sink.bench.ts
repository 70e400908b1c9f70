/**
 * Sink benchmark (memory transport): events consumed and acked per second by 1 and 4 competing
 * consume loops, side by side with a plain follower of the same stream (no ack, no pending list:
 * the floor of what delivery costs) and with a hand-rolled array work queue.
 *
 *   npm run build && node dist/bench/sink.bench.js [--quick]
 */
import { createFabric } from '../index.js';
import { type BenchRow, compare, isMain, main } from './lib.js';

export async function run({ quick }: { quick: boolean }): Promise<BenchRow[]> {
  const N = quick ? 20_000 : 200_000;
  const rows: BenchRow[] = [];
  const fabric = await createFabric({ transport: 'memory' });
  const items = Array.from({ length: 100 }, (_, i) => ({ data: { i }, topic: 'jobs.created' }));

  const publishAll = async (name: string) => {
    const s = fabric.stream(name);
    for (let i = 0; i < N; i += 100) await s.publishBatch(items);
  };

  // Baseline 1: a plain follower (delivery without groups).
  {
    const name = `follow-${Date.now()}`;
    await publishAll(name);
    const t0 = performance.now();
    let n = 0;
    for await (const _ of fabric.stream(name).follow({ from: 'start' })) if (++n === N) break;
    rows.push({ name: 'follower (no ack)', value: N / ((performance.now() - t0) / 1000), unit: 'events/s' });
  }
  // Baseline 2: an array work queue with an ack set.
  {
    const queue = Array.from({ length: N }, (_, i) => ({ seq: i + 1 }));
    const pending = new Map<number, number>();
    const t0 = performance.now();
    for (const job of queue) {
      pending.set(job.seq, Date.now());
      await Promise.resolve();
      pending.delete(job.seq);
    }
    rows.push({
      name: 'array work queue + ack map',
      value: N / ((performance.now() - t0) / 1000),
      unit: 'events/s',
    });
  }
  for (const loops of [1, 4]) {
    const name = `sink-${loops}-${Date.now()}`;
    await publishAll(name);
    const sink = fabric.sink(`b-${name}`, { streams: [name], topics: ['jobs.*'] });
    const t0 = performance.now();
    let n = 0;
    let finish!: () => void;
    const done = new Promise<void>((r) => {
      finish = r;
    });
    const workers = Array.from({ length: loops }, async () => {
      for await (const d of sink.consume({ batchSize: 128 })) {
        await d.ack();
        if (++n === N) finish();
      }
    });
    await done;
    const value = N / ((performance.now() - t0) / 1000);
    await sink.close();
    await Promise.all(workers);
    rows.push({ name: `sink consume + ack, ${loops} loop${loops > 1 ? 's' : ''}`, value, unit: 'events/s' });
    compare(rows, rows[rows.length - 1]!.name, 'array work queue + ack map');
  }
  await fabric.close();
  return rows;
}

if (isMain(import.meta.url)) await main('sink', run);
