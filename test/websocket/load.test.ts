/**
 * Load (bounded, loopback): 1,000 followers on one gateway, each on its own connection (1,000
 * client fabrics in a child process, so this process holds only the gateway and its fabric), and
 * every event delivered to every follower exactly once and in order. The gateway's memory stays
 * bounded: socket buffers within the watermarks, heap growth far below what it delivered.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { tick, uniqueName } from '../helpers/async.js';
import { type Served, serve } from './helpers.js';

const CLIENTS = 1_000;
const EVENTS = 2_000;

let child: ChildProcess | undefined;
let served: Served | undefined;
afterAll(async () => {
  child?.send({ type: 'exit' });
  await new Promise((resolve) =>
    child && child.exitCode === null ? child.once('exit', resolve) : resolve(undefined),
  );
  await served?.close();
});

function heapMiB(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

it(`${CLIENTS} followers on one gateway each get all ${EVENTS} events, exactly once, in order, in bounded memory`, async () => {
  served = await serve({ highWaterBytes: 256 * 1024 });
  const s = served;
  const name = uniqueName('load');
  const stream = s.backing.stream<{ n: number; pad: string }>(name, { maxLength: 500 });
  const script = fileURLToPath(new URL('./load-clients.ts', import.meta.url));
  const messages: { type: string; [k: string]: unknown }[] = [];
  const waitFor = (type: string, timeoutMs: number) =>
    new Promise<{ [k: string]: unknown }>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no '${type}' from the clients within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const check = () => {
        const m = messages.find((x) => x.type === type || x.type === 'error');
        if (m === undefined) return;
        clearTimeout(timer);
        if (m.type === 'error') reject(new Error(String(m.error)));
        else resolve(m);
      };
      child!.on('message', check);
      check();
    });
  child = fork(script, [s.gateway.url, name, String(CLIENTS), String(EVENTS)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  child.on('message', (m) => messages.push(m as never));
  const ready = await waitFor('ready', 40_000);
  expect(s.gateway.connections).toBe(CLIENTS);
  expect(s.gateway.stats().subscriptions).toBe(CLIENTS);

  const baseline = heapMiB();
  let peakHeap = baseline;
  const pad = 'p'.repeat(64);
  const started = Date.now();
  // Half single publishes, half batches of 20: followers get frames of whatever is pending.
  for (let n = 1; n <= EVENTS / 2; n++) {
    stream.publish({ n, pad });
    if (n % 25 === 0) {
      await tick();
      peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed / 2 ** 20);
    }
  }
  for (let n = EVENTS / 2 + 1; n <= EVENTS; n += 20) {
    await stream.publishBatch(Array.from({ length: 20 }, (_, i) => ({ data: { n: n + i, pad } })));
    await tick();
    peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed / 2 ** 20);
  }
  const done = await waitFor('done', 60_000);
  const seconds = (Date.now() - started) / 1000;
  expect(done.problems).toEqual([]);
  expect(done.delivered).toBe(CLIENTS * EVENTS);
  const stats = s.gateway.stats();
  console.log(
    `load: ${CLIENTS} connections in ${ready.connectMs} ms; ${CLIENTS * EVENTS} deliveries in ${seconds.toFixed(2)} s ` +
      `(${Math.round((CLIENTS * EVENTS) / seconds)}/s) in ${stats.messagesSent} messages; ` +
      `gateway heap ${baseline.toFixed(0)} -> peak ${peakHeap.toFixed(0)} MiB; peak socket buffer ${Math.round(stats.peakBufferedBytes / 1024)} KiB`,
  );
  // Every event went to every follower, batched: far fewer messages than deliveries.
  expect(stats.eventsSent).toBe(CLIENTS * EVENTS);
  expect(stats.messagesSent).toBeLessThan((CLIENTS * EVENTS) / 2);
  // Bounded: one socket never held much more than the high watermark plus a frame ...
  expect(stats.peakBufferedBytes).toBeLessThan(256 * 1024 + 300 * 1024);
  // ... and the gateway process grew by far less than the bytes it delivered (~ 200 MB on the wire).
  expect(peakHeap - baseline).toBeLessThan(150);
  expect(heapMiB() - baseline).toBeLessThan(30);
}, 120_000);
