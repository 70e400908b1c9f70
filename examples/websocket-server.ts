/**
 * A WebSocket gateway over an in-memory fabric, with token authentication and per-stream
 * authorization; it publishes a tick to 'clock' every second. Stop with Ctrl-C.
 *
 *   npx tsx examples/websocket-server.ts [port]        (then: npx tsx examples/websocket-client.ts ws://127.0.0.1:7070)
 */
import { createFabric } from '../index.js';
import { serveWebSocket } from '../transports/websocket/index.js';

const port = Number(process.argv[2] ?? 7070);
const fabric = await createFabric({ transport: 'memory' });
const clock = fabric.stream<{ now: string }>('clock', { maxLength: 1_000 });

const gateway = await serveWebSocket({
  fabric,
  host: '127.0.0.1',
  port,
  // Any token but 'bad' is accepted; the principal is what `authorize` sees.
  authenticate: (token) => (token === 'bad' ? null : { name: token ?? 'anonymous' }),
  // Only the gateway itself publishes to 'clock'.
  authorize: (_principal, action, stream) => !(action === 'publish' && stream === 'clock'),
});
console.log(`gateway listening on ${gateway.url}`);

const timer = setInterval(() => void clock.publish({ now: new Date().toISOString() }), 1_000);

process.once('SIGINT', async () => {
  clearInterval(timer);
  console.log('\nclosing:', gateway.stats());
  await gateway.close();
  await fabric.close();
});
