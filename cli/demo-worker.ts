/**
 * The worker module of `weft demo`: each task publishes `count` events of one shard into the demo
 * stream through the shard's SharedArrayBuffer ring, in batches.
 */
import { workerFabric } from '../workers/index.js';

export interface DemoTask {
  stream: string;
  shard: number;
  count: number;
  batch: number;
}

export default async function publishShard(task: DemoTask): Promise<number> {
  const stream = workerFabric().stream<{ p: number; i: number }>(task.stream);
  for (let i = 0; i < task.count; i += task.batch) {
    const n = Math.min(task.batch, task.count - i);
    const items = new Array(n);
    for (let k = 0; k < n; k++) items[k] = { data: { p: task.shard, i: i + k } };
    await stream.publishBatch(items);
  }
  return task.count;
}
