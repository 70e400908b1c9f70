/**
 * `weft demo`: the main job. Publishers push a numbered run of events into one stream while
 * followers read it; every follower checks that each sequence arrived exactly once, in order,
 * with its payload intact, and the summary says so (exit code 1 when any check failed).
 */
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { createFabric, type WeftEvent } from '../index.js';
import { commonOptions, intFlag, selectConfig, UsageError } from './index.js';

const HELP = `weft demo [--events N] [--publishers N] [--followers N] [--batch N] [--quiet] [--transport t | --url u]

Publishes N events (default 200000) from several publishers into one stream, follows it with
several followers, and verifies exactly-once, in-order delivery on each. Exit code 1 on any failure.`;

interface Payload {
  /** Which publisher sent it, and its running number there: checks payloads arrive intact. */
  p: number;
  i: number;
}

interface Check {
  received: number;
  lost: number;
  duplicated: number;
  corrupted: number;
  firstError: string | undefined;
}

export async function runDemo(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...commonOptions,
      events: { type: 'string' },
      publishers: { type: 'string' },
      followers: { type: 'string' },
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
  const followerCount = values.followers === undefined ? 4 : intFlag('--followers', values.followers);
  const batch = values.batch === undefined ? 100 : intFlag('--batch', values.batch);
  if (publishers < 1 || followerCount < 1 || batch < 1)
    throw new UsageError('--publishers, --followers and --batch must be at least 1');

  const fabric = await createFabric(selectConfig(values));
  const stream = fabric.stream<Payload>(`demo-${Date.now().toString(36)}`);
  const quiet = values.quiet === true || !process.stderr.isTTY;
  const bars = quiet
    ? undefined
    : new cliProgress.MultiBar(
        {
          format: ' {name} |{bar}| {value}/{total} events | {rate}/s',
          hideCursor: true,
          clearOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      );
  const publishedBar = bars?.create(total, 0, { name: 'published', rate: 0 });
  const deliveredBar = bars?.create(total * followerCount, 0, { name: 'delivered', rate: 0 });

  const started = performance.now();
  let delivered = 0;
  const checks: Check[] = [];
  const loops: Promise<void>[] = [];
  const followers = Array.from({ length: followerCount }, () => stream.follow({ from: 'start' }));
  await Promise.all(followers.map((f) => f.ready()));
  for (const follower of followers) {
    const check: Check = { received: 0, lost: 0, duplicated: 0, corrupted: 0, firstError: undefined };
    checks.push(check);
    loops.push(
      (async () => {
        let expected = 1;
        const seen = new Map<number, number>(); // publisher -> last running number (payload order per publisher)
        for await (const events of follower.batches()) {
          for (const e of events) verify(e, expected++, check, seen);
          delivered += events.length;
          if (check.received >= total) break;
        }
      })(),
    );
  }

  let published = 0;
  const publishStart = performance.now();
  const perPublisher = Math.ceil(total / publishers);
  await Promise.all(
    Array.from({ length: publishers }, async (_, p) => {
      const count = Math.min(perPublisher, total - p * perPublisher);
      for (let i = 0; i < count; i += batch) {
        const n = Math.min(batch, count - i);
        await stream.publishBatch(Array.from({ length: n }, (_, k) => ({ data: { p, i: i + k } })));
        published += n;
        if ((i / batch) % 20 === 0) await new Promise((r) => setImmediate(r)); // let followers and the display run
      }
    }),
  );
  const publishMs = performance.now() - publishStart;

  const ticker = setInterval(() => {
    const s = (performance.now() - started) / 1000;
    publishedBar?.update(published, { rate: Math.round(published / s) });
    deliveredBar?.update(delivered, { rate: Math.round(delivered / s) });
  }, 100);
  await Promise.all(loops);
  clearInterval(ticker);
  const totalMs = performance.now() - started;
  publishedBar?.update(published, { rate: Math.round(published / (publishMs / 1000)) });
  deliveredBar?.update(delivered, { rate: Math.round(delivered / (totalMs / 1000)) });
  bars?.stop();
  await fabric.close();

  const ok = checks.every(
    (c) => c.received === total && c.lost === 0 && c.duplicated === 0 && c.corrupted === 0,
  );
  const lost = checks.reduce((a, c) => a + c.lost + Math.max(0, total - c.received), 0);
  const duplicated = checks.reduce((a, c) => a + c.duplicated, 0);
  const lines = [
    '',
    `weft demo on '${fabric.transport.name}': ${total.toLocaleString()} events, ${publishers} publishers, ${followerCount} followers`,
    `  publish:  ${Math.round(total / (publishMs / 1000)).toLocaleString()} events/s`,
    `  delivery: ${Math.round((total * followerCount) / (totalMs / 1000)).toLocaleString()} events/s across followers (${Math.round(totalMs)} ms end to end)`,
    `  followers verified: ${checks.filter((c) => c.received === total && c.lost + c.duplicated + c.corrupted === 0).length}/${followerCount}`,
    `  lost: ${lost}, duplicated: ${duplicated}, corrupted: ${checks.reduce((a, c) => a + c.corrupted, 0)}`,
    ok
      ? '  result: OK, every follower saw every event exactly once, in order'
      : `  result: FAILED (${checks.find((c) => c.firstError)?.firstError ?? 'missing events'})`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return ok ? 0 : 1;
}

function verify(e: WeftEvent<Payload>, expected: number, check: Check, seen: Map<number, number>): void {
  check.received++;
  if (e.seq !== expected) {
    if (e.seq < expected) check.duplicated++;
    else check.lost += e.seq - expected;
    check.firstError ??= `expected seq ${expected}, got ${e.seq}`;
  }
  const d = e.data;
  const last = seen.get(d?.p) ?? -1;
  if (typeof d?.p !== 'number' || d.i !== last + 1) {
    check.corrupted++;
    check.firstError ??= `payload out of order at seq ${e.seq}: ${JSON.stringify(d)}`;
  }
  seen.set(d?.p, d?.i);
}
