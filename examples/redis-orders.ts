/**
 * Redis: two fabrics (as two processes would) share one stream of orders: one publishes, the other
 * reads history and follows live; a sink (consumer group) processes each order once with ack.
 * Run against a server of yours: `REDIS_URL=redis://127.0.0.1:6380 npx tsx examples/redis-orders.ts`.
 */
import { createFabric } from '../index.js';

interface Order {
  id: number;
  total: number;
}

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `example-${Date.now().toString(36)}`; // a fresh namespace for this run
const producer = await createFabric({ transport: 'redis', url, prefix });
const consumer = await createFabric({ transport: 'redis', url, prefix });

const orders = producer.stream<Order>('orders', { maxLength: 10_000, ttlMs: 60_000 });
await orders.publish({ id: 1, total: 10 }, { topic: 'orders.created' });
await orders.publishBatch([
  { data: { id: 2, total: 25 }, topic: 'orders.created' },
  { data: { id: 1, total: 10 }, topic: 'orders.paid' },
]);

// The other "process": history from the start, then live events, until the stream closes.
const theirs = consumer.stream<Order>('orders', { maxLength: 10_000, ttlMs: 60_000 });
const info = await theirs.info();
console.log(`stream 'orders' epoch ${info.epoch}: ${info.length} events retained`);
const seen: string[] = [];
const follower = theirs.follow({ from: 'start' });
const following = (async () => {
  for await (const e of follower) seen.push(`${e.seq}:${e.topic}`);
})();
await follower.ready();

// A sink: every 'orders.created' event goes to one consume loop, which acks it.
const sink = consumer.sink<Order>('billing', { streams: ['orders'], topics: ['orders.created'] });
const billed: number[] = [];
const billing = (async () => {
  for await (const d of sink.consume()) {
    billed.push(d.event.data.id);
    await d.ack();
    if (billed.length === 3) break;
  }
})();

await orders.publish({ id: 3, total: 30 }, { topic: 'orders.created' });
await billing;
await orders.close(); // every follower, in every process, finishes after what was published
await following;
console.log('followed:', seen.join(' '));
console.log('billed orders:', billed.join(' '));

await sink.close();
await producer.close();
await consumer.close();
