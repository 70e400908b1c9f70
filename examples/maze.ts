/**
 * The follower maze in one file: starts the forwarder on free loopback ports, connects users 1, 2
 * and 3, sends the worked example from a test source in a scrambled order, and prints what each
 * user received. Run: `npx tsx examples/maze.ts`.
 */

import { connectClient, sendEvents } from '../cli/maze/index.js';
import { startMaze } from '../cli/maze.js';

const server = await startMaze({
  eventPort: 0,
  clientPort: 0,
  log: (message) => console.log(`  [maze] ${message}`),
});
console.log(`forwarder: event source on port ${server.eventPort}, clients on port ${server.clientPort}`);

const users = [1, 2, 3];
const clients = await Promise.all(users.map((id) => connectClient(server.clientPort, id)));
// A client counts once the server has read its id line.
while (server.stats.clients < users.length) await new Promise((resolve) => setTimeout(resolve, 5));

// 2 follows 1, 3 follows 1, 3 unfollows 1, 1 posts a status; a broadcast; 1 messages 2.
// Sent out of order: the resequencer puts them back in sequence order.
const events = ['4|S|1', '2|F|3|1', '6|P|1|2', '1|F|2|1', '5|B', '3|U|3|1'];
console.log(`source sends: ${events.join('  ')}`);
await sendEvents(server.eventPort, [events.map((line) => `${line}\r\n`).join('')]);

// Every user gets the broadcast (sequence 5), so once each has it only 6 can still be on its way.
await Promise.all(clients.map((c) => c.until(() => c.lines.includes('5|B'), 5_000, 'the broadcast')));
await clients[1]!.until(() => clients[1]!.lines.includes('6|P|1|2'), 5_000, 'the private message');

for (const [i, client] of clients.entries()) {
  console.log(`user ${users[i]} received: ${client.lines.join('  ') || '(nothing)'}`);
}
// user 1 received: 1|F|2|1  2|F|3|1  5|B
// user 2 received: 4|S|1  5|B  6|P|1|2
// user 3 received: 5|B
for (const client of clients) client.close();
await server.close();
console.log('stats:', server.stats);
