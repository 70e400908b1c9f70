/**
 * The worker module of examples/sab-ticks.ts: started by `fabric.publishers()`, it publishes ticks
 * through its shard's ring, or follows the stream from inside the worker.
 *
 * In an installed package the import is `import { workerFabric } from 'weft/workers'`.
 */
import { workerFabric } from '../workers/index.js';

export interface Tick {
  shard: number;
  i: number;
  sym: string;
  px: number;
}

export type ProducerTask =
  | { role: 'publish'; shard: number; count: number }
  | { role: 'follow'; shard: number; count: number };

const fabric = workerFabric();

export default async function task(t: ProducerTask): Promise<number> {
  const ticks = fabric.stream<Tick>('ticks');
  if (t.role === 'follow') {
    // A follower in a worker reads the broadcast ring the main thread fills (same API as on the main thread).
    let seen = 0;
    for await (const e of ticks.follow({ from: 1 })) {
      if (e.seq !== ++seen) throw new Error(`expected ${seen}, got ${e.seq}`);
      if (seen === t.count) break;
    }
    return seen;
  }
  // publish() calls of one turn are committed as one record; publishBatch() commits a batch whole.
  for (let i = 0; i < t.count; i += 100) {
    const batch = [];
    for (let k = i; k < Math.min(t.count, i + 100); k++) {
      batch.push({
        data: { shard: fabric.shard, i: k, sym: 'AAPL', px: 100 + (k % 7) },
        topic: 'ticks.aapl',
      });
    }
    await ticks.publishBatch(batch);
  }
  await ticks.publish({ shard: fabric.shard, i: t.count, sym: 'DONE', px: 0 });
  return t.count + 1;
}
