/**
 * Sharded publishers in worker threads, merged back into one dense order on the main thread
 * (the `sab` transport: SharedArrayBuffer rings, no postMessage per event).
 *
 *   npm run build && node dist/examples/sab-ticks.js
 *
 * Four workers publish 250,000 ticks each; a follower on the main thread sees seq 1, 2, 3 ... with
 * each shard's ticks in that shard's order; a follower inside a worker sees the same stream.
 */
import { createFabric } from '../index.js';
import { isGapNotice } from '../transports/sab/index.js';
import type { ProducerTask, Tick } from './sab-producer.js';

const SHARDS = 4;
const PER_SHARD = 250_000;
const TOTAL = SHARDS * (PER_SHARD + 1);

// Built JavaScript next to this file; the TypeScript source when run from source (tsx).
const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';

const fabric = await createFabric({ transport: 'sab', ringBytes: 1 << 20 });
// Retention: the stream keeps the newest 200,000 ticks (a follower that falls further behind is told).
const ticks = fabric.stream<Tick>('ticks', { maxLength: 200_000 });
const pool = await fabric.publishers({
  filename: new URL(`./sab-producer.${ext}`, import.meta.url),
  shards: SHARDS + 1, // one more worker, to follow from inside a thread
});

const started = performance.now();
const follow = (async () => {
  const lastOfShard = new Map<number, number>();
  let expected = 1;
  for await (const batch of ticks.follow({ from: 'start' }).batches()) {
    for (const e of batch) {
      if (e.seq !== expected++) throw new Error(`gap or duplicate at ${e.seq}`);
      if (isGapNotice(e.data)) {
        console.warn(e.data.message); // a worker died after claiming sequences: they are reported, not skipped
        continue;
      }
      const last = lastOfShard.get(e.data.shard) ?? -1;
      if (e.data.i !== last + 1) throw new Error(`shard ${e.data.shard}: ${e.data.i} after ${last}`);
      lastOfShard.set(e.data.shard, e.data.i);
    }
    if (expected > TOTAL) break;
  }
  return expected - 1;
})();

const inWorker = pool.run({ role: 'follow', shard: SHARDS, count: TOTAL } satisfies ProducerTask);
await Promise.all(
  Array.from({ length: SHARDS }, (_, shard) =>
    pool.run({ role: 'publish', shard, count: PER_SHARD } satisfies ProducerTask),
  ),
);
const seen = await follow;
const ms = performance.now() - started;
console.log(`main thread: ${seen} ticks in one dense order, ${((seen / ms) * 1000).toFixed(0)} ticks/s`);
console.log(`worker follower: ${await inWorker} ticks`);

await pool.close();
await fabric.close();
