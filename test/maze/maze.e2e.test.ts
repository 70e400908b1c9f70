/**
 * End to end over loopback TCP: a test source sends 20,000 generated events in efr's order
 * (consecutive batches of up to 100, each shuffled) to a forwarder with 100 connected clients out
 * of 1,000 users; every client's lines must equal the reference model's, in order, and nothing else.
 */
import { describe, expect, it } from 'vitest';
import {
  connectClient,
  generateEvents,
  modelRoute,
  prng,
  sendEvents,
  shuffleInBatches,
} from '../../cli/maze/index.js';
import { startMaze } from '../../cli/maze.js';
import { eventually } from '../helpers/async.js';

const EVENTS = 20_000;
const USERS = 1_000;
const CLIENTS = 100;

describe('the maze end to end', () => {
  it.each(['stream', 'batch'] as const)(
    '%s resequencer: 100 clients of 1,000 users each get exactly their events',
    async (mode) => {
      const { lines } = generateEvents({ count: EVENTS, users: USERS, seed: 0xe2e });
      const sentinel = `${EVENTS + 1}|B`;
      lines.push(sentinel);
      const ids = Array.from({ length: CLIENTS }, (_, i) => 1 + i * (USERS / CLIENTS));
      // Stream: efr's order. Batch: aligned blocks of the batch size, each reversed, so that no
      // source batch straddles two resequencer batches and efr's batch mode is exact as well.
      const order =
        mode === 'stream'
          ? [...shuffleInBatches(EVENTS, 100, prng(7)), EVENTS + 1]
          : reversedBlocks(EVENTS + 1, 100);
      const expected = new Map<number, string[]>(ids.map((id) => [id, []]));
      modelRoute(lines, ids, (id, line) => expected.get(id)!.push(line));

      const log: string[] = [];
      const server = await startMaze({
        eventPort: 0,
        clientPort: 0,
        resequencer: mode,
        window: mode === 'batch' ? 100 : 1024,
        log: (m) => log.push(m),
      });
      const clients = await Promise.all(ids.map((id) => connectClient(server.clientPort, id)));
      try {
        await eventually(() => server.stats.clients === CLIENTS, 5_000, 'the clients to identify');
        const text = order.map((seq) => `${lines[seq - 1]}\r\n`).join('');
        const chunks: string[] = [];
        for (let i = 0; i < text.length; i += 50_000) chunks.push(text.slice(i, i + 50_000));
        await sendEvents(server.eventPort, chunks);
        await Promise.all(clients.map((c) => c.until(() => c.lines.at(-1) === sentinel, 15_000, sentinel)));
        let delivered = 0;
        clients.forEach((client, i) => {
          expect(client.lines).toEqual(expected.get(ids[i]!));
          delivered += client.lines.length;
        });
        expect(delivered).toBeGreaterThan(EVENTS);
        expect(server.stats).toMatchObject({
          routed: EVENTS + 1,
          malformed: 0,
          duplicates: 0,
          stale: 0,
          seqsSkipped: 0,
          linesDelivered: delivered,
        });
        expect(log.filter((m) => !m.startsWith('event source run'))).toEqual([]);
      } finally {
        for (const c of clients) c.close();
        await server.close();
      }
    },
    30_000,
  );
});

/** 1..n in aligned blocks of `block`, each reversed (worst order within a block). */
function reversedBlocks(n: number, block: number): number[] {
  const out: number[] = [];
  for (let start = 1; start <= n; start += block) {
    const end = Math.min(n, start + block - 1);
    for (let seq = end; seq >= start; seq--) out.push(seq);
  }
  return out;
}
