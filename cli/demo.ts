/**
 * `weft demo`: the main job. Sharded publishers in worker threads (the `sab` transport, the
 * embedded default) push a numbered run of events into one stream; a WebSocket gateway on a free
 * loopback port serves it; local followers and remote followers (WebSocket clients) read it. Every
 * follower checks that each sequence arrived exactly once, in order, with its payload intact, and
 * the summary says so (exit code 1 when any check failed).
 *
 * `--transport memory` publishes from the main thread instead; `--url redis://...` runs the same
 * job on Redis (publishers in this process, since Redis needs no worker threads to be shared).
 */
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { createFabric, type Fabric, type Follower, type WeftEvent } from '../index.js';
import { serveWebSocket } from '../transports/websocket/index.js';
import type { DemoTask } from './demo-worker.js';
import { commonOptions, intFlag, selectConfig, UsageError } from './index.js';

const HELP = `weft demo [--events N] [--publishers N] [--followers N] [--remote N] [--batch N] [--quiet]
          [--transport t | --url u | --config f]

Publishes N events (default 200000) from sharded publishers (worker threads on the default 'sab'
transport), serves the stream over a WebSocket gateway on a free loopback port, follows it with
local and remote followers, and verifies exactly-once, in-order delivery on each of them.
Exit code 1 on any failure.`;

interface Payload {
  /** The publisher (shard) that sent it, and its running number there: payloads arrive intact. */
  p: number;
  i: number;
}

interface Check {
  name: string;
  received: number;
  lost: number;
  duplicated: number;
  corrupted: number;
  firstError: string | undefined;
  doneAt: number;
}

export async function runDemo(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...commonOptions,
      events: { type: 'string' },
      publishers: { type: 'string' },
      followers: { type: 'string' },
      remote: { type: 'string' },
      batch: { type: 'string' },
      quiet: { type: 'boolean' },
    },
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const total = values.events === undefined ? 200_000 : intFlag('--events', values.events);
  const publishers = values.publishers === undefined ? 4 : intFlag('--publishers', values.publishers);
  const localCount = values.followers === undefined ? 2 : intFlag('--followers', values.followers);
  const remoteCount = values.remote === undefined ? 3 : intFlag('--remote', values.remote);
  const batch = values.batch === undefined ? 100 : intFlag('--batch', values.batch);
  if (publishers < 1 || batch < 1 || localCount + remoteCount < 1) {
    throw new UsageError(
      '--publishers and --batch must be at least 1, and there must be at least one follower',
    );
  }

  // The embedded default of the demo is the worker-thread transport; flags, WEFT_URL or a config file override it.
  const fabric = await createFabric(selectConfig(values) ?? { transport: 'sab' });
  const name = `demo-${Date.now().toString(36)}`;
  const stream = fabric.stream<Payload>(name);
  const gateway = await serveWebSocket({ fabric, host: '127.0.0.1', port: 0 });
  const remotes: Fabric[] = [];
  const quiet = values.quiet === true || !process.stderr.isTTY;
  const bars = quiet
    ? undefined
    : new cliProgress.MultiBar(
        {
          format: ' {name} |{bar}| {value}/{total} | {rate} events/s',
          hideCursor: true,
          clearOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      );
  try {
    // Followers first, from the start: each must see 1..total exactly once.
    const followers: { check: Check; follower: Follower<Payload> }[] = [];
    for (let i = 0; i < localCount; i++) {
      followers.push({ check: newCheck(`local ${i + 1}`), follower: stream.follow({ from: 'start' }) });
    }
    for (let i = 0; i < remoteCount; i++) {
      const remote = await createFabric({ transport: 'websocket', url: gateway.url });
      remotes.push(remote);
      followers.push({
        check: newCheck(`remote ${i + 1}`),
        follower: remote.stream<Payload>(name).follow({ from: 'start' }),
      });
    }
    await Promise.all(followers.map((f) => f.follower.ready()));

    const started = performance.now();
    const publishedBar = bars?.create(total, 0, { name: 'published ', rate: 0 });
    const localBar =
      localCount > 0 ? bars?.create(total * localCount, 0, { name: 'local     ', rate: 0 }) : undefined;
    const remoteBar =
      remoteCount > 0 ? bars?.create(total * remoteCount, 0, { name: 'websocket ', rate: 0 }) : undefined;
    const loops = followers.map(({ check, follower }) =>
      (async () => {
        let expected = 1;
        const last = new Map<number, number>();
        for await (const events of follower.batches()) {
          for (const e of events) verify(e, expected++, check, last);
          if (check.received >= total) break;
        }
        check.doneAt = performance.now();
      })(),
    );
    const ticker = setInterval(() => {
      const s = (performance.now() - started) / 1000;
      const local = sum(
        followers.filter((f) => f.check.name.startsWith('local')).map((f) => f.check.received),
      );
      const remote = sum(
        followers.filter((f) => f.check.name.startsWith('remote')).map((f) => f.check.received),
      );
      const published = stream.metrics().lastSeq;
      publishedBar?.update(published, { rate: Math.round(published / s) });
      localBar?.update(local, { rate: Math.round(local / s) });
      remoteBar?.update(remote, { rate: Math.round(remote / s) });
    }, 100);

    // Publish: sharded workers where the transport has them, else from this thread.
    const perPublisher = Math.ceil(total / publishers);
    const counts = Array.from({ length: publishers }, (_, p) =>
      Math.max(0, Math.min(perPublisher, total - p * perPublisher)),
    );
    let where: string;
    if (fabric.transport.publishers !== undefined) {
      where = `${publishers} worker threads`;
      const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
      const pool = await fabric.publishers({
        filename: new URL(`./demo-worker.${ext}`, import.meta.url),
        shards: publishers,
      });
      try {
        await Promise.all(
          counts.map((count, shard) => pool.run({ stream: name, shard, count, batch } satisfies DemoTask)),
        );
      } finally {
        await pool.close();
      }
    } else {
      where = `${publishers} publishers in this thread`;
      await Promise.all(
        counts.map(async (count, p) => {
          for (let i = 0; i < count; i += batch) {
            const n = Math.min(batch, count - i);
            await stream.publishBatch(Array.from({ length: n }, (_, k) => ({ data: { p, i: i + k } })));
            if ((i / batch) % 20 === 0) await new Promise((r) => setImmediate(r));
          }
        }),
      );
    }
    const publishMs = performance.now() - started;
    await Promise.race([Promise.all(loops), sleep(120_000)]);
    clearInterval(ticker);
    const totalMs = performance.now() - started;
    const local = followers.filter((f) => f.check.name.startsWith('local')).map((f) => f.check);
    const remote = followers.filter((f) => f.check.name.startsWith('remote')).map((f) => f.check);
    publishedBar?.update(total, { rate: Math.round(total / (publishMs / 1000)) });
    localBar?.update(sum(local.map((c) => c.received)), { rate: rate(total * local.length, local, started) });
    remoteBar?.update(sum(remote.map((c) => c.received)), {
      rate: rate(total * remote.length, remote, started),
    });
    bars?.stop();

    const checks = followers.map((f) => f.check);
    const good = (c: Check) => c.received === total && c.lost + c.duplicated + c.corrupted === 0;
    const ok = checks.every(good);
    const lost = sum(checks.map((c) => c.lost + Math.max(0, total - c.received)));
    const lines = [
      '',
      `weft demo on '${fabric.transport.name}': ${total.toLocaleString()} events from ${where}, gateway ${gateway.url}`,
      `  publish:            ${Math.round(total / (publishMs / 1000)).toLocaleString()} events/s`,
      local.length > 0
        ? `  local followers:    ${local.length} x ${rate(total, local, started).toLocaleString()} events/s each`
        : undefined,
      remote.length > 0
        ? `  remote (WebSocket): ${remote.length} x ${rate(total, remote, started).toLocaleString()} events/s each`
        : undefined,
      `  followers verified: ${checks.filter(good).length}/${checks.length} (${Math.round(totalMs)} ms end to end)`,
      `  lost: ${lost}, duplicated: ${sum(checks.map((c) => c.duplicated))}, corrupted: ${sum(checks.map((c) => c.corrupted))}`,
      ok
        ? '  result: OK, every follower saw every event exactly once, in order'
        : `  result: FAILED (${checks.find((c) => c.firstError)?.firstError ?? 'missing events'})`,
    ].filter((l) => l !== undefined);
    process.stdout.write(`${lines.join('\n')}\n`);
    return ok ? 0 : 1;
  } finally {
    bars?.stop();
    await Promise.allSettled(remotes.map((r) => r.close()));
    await gateway.close();
    await fabric.close();
  }
}

function newCheck(name: string): Check {
  return { name, received: 0, lost: 0, duplicated: 0, corrupted: 0, firstError: undefined, doneAt: 0 };
}

function verify(e: WeftEvent<Payload>, expected: number, check: Check, last: Map<number, number>): void {
  check.received++;
  if (e.seq !== expected) {
    if (e.seq < expected) check.duplicated++;
    else check.lost += e.seq - expected;
    check.firstError ??= `${check.name}: expected seq ${expected}, got ${e.seq}`;
  }
  const d = e.data;
  const prev = last.get(d?.p) ?? -1;
  if (typeof d?.p !== 'number' || d.i !== prev + 1) {
    check.corrupted++;
    check.firstError ??= `${check.name}: payload out of order at seq ${e.seq}: ${JSON.stringify(d)}`;
  }
  last.set(d?.p, d?.i);
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

/** Events per second per follower, up to when the slowest of them finished. */
function rate(total: number, checks: Check[], started: number): number {
  const end = Math.max(...checks.map((c) => c.doneAt || performance.now()));
  return Math.round(total / ((end - started) / 1000));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
