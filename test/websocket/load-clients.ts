/**
 * Child process of the load test: opens N client fabrics (N WebSocket connections), each following
 * one stream from its end, and reports to the parent (IPC) once ready and once every follower has
 * the expected number of events (checking order and exactly-once on the way).
 *
 *   node --import tsx test/websocket/load-clients.ts <url> <stream> <clients> <events>
 */
import { createFabric, type Fabric } from '../../index.js';

const [url = '', stream = '', clientsArg, eventsArg] = process.argv.slice(2);
const clients = Number(clientsArg);
const expected = Number(eventsArg);
const send = (m: unknown) => process.send?.(m);

async function main(): Promise<void> {
  const fabrics: Fabric[] = [];
  const counts = new Array<number>(clients).fill(0);
  const problems: string[] = [];
  let complete = 0;
  const loops: Promise<void>[] = [];
  const started = Date.now();
  for (let i = 0; i < clients; i++) {
    const f = await createFabric({ transport: 'websocket', url, connectTimeoutMs: 30_000 });
    fabrics.push(f);
    const follower = f.stream<{ n: number }>(stream).follow();
    loops.push(
      (async () => {
        await follower.ready();
        for await (const batch of follower.batches()) {
          for (const e of batch) {
            const want = counts[i]! + 1;
            if ((e.seq !== want || e.data.n !== want) && problems.length < 10)
              problems.push(`client ${i}: got seq ${e.seq} n ${e.data.n}, want ${want}`);
            counts[i] = want;
          }
          if (counts[i] === expected) {
            complete++;
            if (complete === clients) {
              send({ type: 'done', delivered: counts.reduce((a, b) => a + b, 0), problems });
            }
          }
        }
      })(),
    );
  }
  await Promise.all(
    fabrics.map((f, i) =>
      f
        .stream(stream)
        .follow()
        .ready()
        .then(() => i),
    ),
  );
  send({ type: 'ready', connectMs: Date.now() - started });
  process.on('message', async (m) => {
    if ((m as { type?: string }).type === 'exit') {
      await Promise.all(fabrics.map((f) => f.close()));
      await Promise.allSettled(loops);
      process.exit(0);
    }
  });
}

main().catch((e: unknown) => {
  send({ type: 'error', error: String((e as Error)?.stack ?? e) });
  process.exit(1);
});
