/**
 * In-memory pub/sub: publish, read history, follow live, close. Run: node dist/examples/memory-pubsub.js
 */
import { createFabric } from '../index.js';

interface Order {
  id: number;
  total: number;
}

const fabric = await createFabric({ transport: 'memory' });
const orders = fabric.stream<Order>('orders', { maxLength: 1_000 });

await orders.publish({ id: 1, total: 10 }, { topic: 'orders.created' });
await orders.publishBatch([
  { data: { id: 2, total: 25 }, topic: 'orders.created' },
  { data: { id: 1, total: 10 }, topic: 'orders.paid' },
]);
console.log('history:', (await orders.read()).map((e) => `${e.seq}:${e.topic}`).join(' '));

// Follow from the start: the three events above, then live ones, until the stream closes.
const seen: number[] = [];
const follower = (async () => {
  for await (const e of orders.follow({ from: 'start' })) seen.push(e.seq);
})();
for (let id = 3; id <= 5; id++) await orders.publish({ id, total: id * 10 }, { topic: 'orders.created' });
await orders.close();
await follower;
console.log('followed:', seen.join(' '));
if (seen.join(',') !== '1,2,3,4,5,6') throw new Error(`unexpected: ${seen}`);
await fabric.close();
