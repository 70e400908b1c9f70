/**
 * A remote fabric over WebSocket: publish, read, follow, and a forced reconnect in the middle of a
 * follow that loses and repeats nothing. Without a URL it starts its own gateway in this process.
 *
 *   npx tsx examples/websocket-client.ts [ws://127.0.0.1:7070]
 */
import { createFabric } from '../index.js';
import { serveWebSocket, type WebSocketClientTransport } from '../transports/websocket/index.js';

let url = process.argv[2];
let stopGateway = async () => {};
if (url === undefined) {
  const backing = await createFabric({ transport: 'memory' });
  const gateway = await serveWebSocket({ fabric: backing, port: 0 });
  url = gateway.url;
  stopGateway = async () => {
    await gateway.close();
    await backing.close();
  };
  console.log(`started a gateway on ${url}`);
}

const remote = await createFabric({ transport: 'websocket', url, token: 'example' });
const chat = remote.stream<{ from: string; text: string }>(`chat-${Date.now()}`);

await chat.publish({ from: 'ada', text: 'hello' });
await chat.publishBatch([
  { data: { from: 'bob', text: 'hi ada' }, topic: 'chat.reply' },
  { data: { from: 'ada', text: 'how is the weather?' } },
]);
console.log('history:', (await chat.read()).map((e) => `${e.seq}:${e.data.text}`).join(' | '));

// Follow from the start; halfway, drop the connection: the follower resumes from its last event.
const follower = chat.follow({ from: 'start' });
const seen: number[] = [];
const done = (async () => {
  for await (const e of follower) {
    seen.push(e.seq);
    if (e.seq === 6) (remote.transport as WebSocketClientTransport).reconnect();
    if (e.seq === 10) break;
  }
})();
for (let i = 4; i <= 10; i++) await chat.publish({ from: 'bot', text: `message ${i}` });
await done;
console.log('followed:', seen.join(' '), '(no gap, no duplicate across the reconnect)');
console.log('transport:', remote.metrics().transportMetrics);

await remote.close();
await stopGateway();
