/**
 * A consumer group (sink) on the memory transport: two competing workers, acks, a nack that is
 * redelivered, and a topic filter. Run: node dist/examples/memory-sink.js
 */
import { createFabric } from '../index.js';

const fabric = await createFabric();
const jobs = fabric.stream<{ n: number }>('jobs');
await jobs.publishBatch(
  Array.from({ length: 20 }, (_, n) => ({ data: { n }, topic: n % 5 === 0 ? 'jobs.skip' : 'jobs.run' })),
);

const sink = fabric.sink<{ n: number }>('workers', {
  streams: ['jobs'],
  topics: ['jobs.run'],
  ackTimeoutMs: 5_000,
});
const done = new Set<number>();
let nacked = false;
const worker = async (name: string) => {
  for await (const d of sink.consume()) {
    if (d.event.data.n === 7 && !nacked) {
      nacked = true;
      await d.nack(); // comes back with deliveries === 2
      continue;
    }
    done.add(d.event.data.n);
    await d.ack();
    if (done.size === 16) await sink.close();
    if (d.deliveries > 1) console.log(`${name} got job ${d.event.data.n} again (delivery ${d.deliveries})`);
  }
};
await Promise.all([worker('a'), worker('b')]);
console.log(`processed ${done.size} jobs; filtered out ${sink.stats.filtered}`);
if (done.size !== 16) throw new Error('missing jobs');
await fabric.close();
