/**
 * Redis transport benchmark, against one local redis-server it starts itself, each Weft figure side
 * by side with raw ioredis doing the same work in the same run:
 * - publish: Weft `publishBatch` (dense sequences, one script per call, group-committed) vs raw
 *   pipelined XADD (`*` IDs, no sequence) of the same msgpack-encoded events;
 * - follow: a burst of events delivered to 100 Weft followers of one stream (one reader, one decode
 *   per event) vs one raw `XREAD BLOCK` consumer decoding the same entries;
 * - latency: publish-to-follow p50/p99 at 1,000 events/s vs raw XADD -> XREAD BLOCK, run side by
 *   side (one of each every millisecond) so that the machine's noise falls on both alike;
 * - sinks: events consumed and acked by a Weft sink vs a raw XREADGROUP + XACK loop.
 *
 *   npx tsx bench/redis.bench.ts [--quick]
 *   npm run build && node dist/bench/redis.bench.js [--quick]
 */
import { Redis } from 'ioredis';
import { Packr } from 'msgpackr';
import { createFabric, type Fabric } from '../index.js';
import { startRedisServer } from '../test/helpers/redis-server.js';
import { type BenchRow, compare, isMain, main } from './lib.js';

const packr = new Packr({ useRecords: false });
const payload = (i: number) => ({ id: i, kind: 'order.created', amount: 12.5, tags: ['a', 'b'] });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function run({ quick }: { quick: boolean }): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const server = await startRedisServer({ external: false });
  const raw = new Redis(server.url);
  const rawReader = new Redis(server.url);
  let fabric: Fabric | undefined;
  let other: Fabric | undefined;
  try {
    fabric = await createFabric({ transport: 'redis', url: server.url, prefix: 'bench' });
    other = await createFabric({ transport: 'redis', url: server.url, prefix: 'bench' });
    const repeats = quick ? 2 : 5;
    let runId = 0;

    // ------------------------------------------------------------ publish throughput
    {
      const N = quick ? 20_000 : 100_000;
      const B = 100;
      const rawRates: number[] = [];
      const weftRates: number[] = [];
      const weftOneRates: number[] = [];
      for (let r = 0; r < repeats + 1; r++) {
        const key = `raw:pub:${++runId}`;
        let t0 = performance.now();
        const execs: Promise<unknown>[] = [];
        for (let i = 0; i < N; i += B) {
          const p = raw.pipeline();
          for (let k = i; k < i + B; k++) p.xadd(key, '*', 't', Date.now(), 'd', packr.pack(payload(k)));
          execs.push(p.exec());
        }
        await Promise.all(execs);
        if (r > 0) rawRates.push(N / ((performance.now() - t0) / 1000)); // the first run warms up

        const s = fabric.stream(`pub-${++runId}`);
        t0 = performance.now();
        const batches: Promise<number[]>[] = [];
        for (let i = 0; i < N; i += B) {
          batches.push(s.publishBatch(Array.from({ length: B }, (_, k) => ({ data: payload(i + k) }))));
        }
        const seqs = (await Promise.all(batches)).flat();
        if (r > 0) weftRates.push(N / ((performance.now() - t0) / 1000));
        if (seqs[N - 1] !== N) throw new Error(`dense sequences expected, last is ${seqs[N - 1]}`);

        const one = fabric.stream(`pub1-${++runId}`);
        const n1 = N / 4;
        t0 = performance.now();
        const singles: Promise<number>[] = [];
        for (let i = 0; i < n1; i++) singles.push(one.publish(payload(i)));
        await Promise.all(singles);
        if (r > 0) weftOneRates.push(n1 / ((performance.now() - t0) / 1000));
      }
      rows.push({
        name: 'raw ioredis pipelined XADD',
        value: median(rawRates),
        unit: 'events/s',
        extra: { events: N, pipeline: B },
      });
      rows.push({
        name: 'weft publishBatch(100), dense seqs',
        value: median(weftRates),
        unit: 'events/s',
        extra: { events: N, batch: B },
      });
      rows.push({
        name: 'weft publish() x N, not awaited one by one',
        value: median(weftOneRates),
        unit: 'events/s',
        extra: { events: N / 4 },
      });
      compare(rows, 'weft publishBatch(100), dense seqs', 'raw ioredis pipelined XADD', { target: 1.0 });
      compare(rows, 'weft publish() x N, not awaited one by one', 'raw ioredis pipelined XADD');
    }

    // ------------------------------------------------------------ follow delivery
    {
      const N = quick ? 20_000 : 50_000;
      const F = 100;
      const rawRates: number[] = [];
      const weftRates: number[] = [];
      for (let r = 0; r < repeats + 1; r++) {
        // The same burst for both: one publishBatch of N events (one script call: all appear at once).
        const items = Array.from({ length: N }, (_, i) => ({ data: payload(i) }));

        // Raw: one XREAD BLOCK consumer reading the stream's entries and decoding each.
        const rawName = `follow-raw-${++runId}`;
        const rawStream = other.stream(rawName);
        await rawStream.info(); // creates it
        const key = `bench:{${rawName}}:log`;
        let got = 0;
        const rawDone = (async () => {
          let last = '0-0';
          while (got < N) {
            const res = (await rawReader.xreadBuffer('COUNT', 1000, 'BLOCK', 0, 'STREAMS', key, last)) as
              | [Buffer, [Buffer, Buffer[]][]][]
              | null;
            if (res === null) continue;
            for (const [id, fields] of res[0]![1]) {
              const e = { seq: Number(id.toString('latin1').split('-')[0]), data: packr.unpack(fields[3]!) };
              if (e.seq > 0) got++;
              last = id.toString('latin1');
            }
          }
        })();
        await sleep(20); // the XREAD is blocked
        let t0 = performance.now();
        await rawStream.publishBatch(items);
        await rawDone;
        if (r > 0) rawRates.push(N / ((performance.now() - t0) / 1000));

        // Weft: 100 followers of one stream in this process (one reader connection feeds them all).
        const name = `follow-weft-${++runId}`;
        const followers = Array.from({ length: F }, () => fabric!.stream(name).follow());
        await Promise.all(followers.map((f) => f.ready()));
        let remaining = F;
        let resolveAll!: () => void;
        const allDone = new Promise<void>((res) => {
          resolveAll = res;
        });
        for (const f of followers) {
          void (async () => {
            let n = 0;
            for await (const batch of f.batches()) {
              n += batch.length;
              if (n >= N) break;
            }
            if (--remaining === 0) resolveAll();
          })();
        }
        t0 = performance.now();
        await other.stream(name).publishBatch(items);
        await allDone;
        if (r > 0) weftRates.push(N / ((performance.now() - t0) / 1000));
      }
      rows.push({
        name: 'raw XREAD BLOCK consumer, 1 reader',
        value: median(rawRates),
        unit: 'events/s',
        extra: { events: N },
      });
      rows.push({
        name: `weft follow, ${F} followers (each gets every event)`,
        value: median(weftRates),
        unit: 'events/s',
        extra: { events: N, followers: F, deliveriesPerSecond: median(weftRates) * F },
      });
      compare(
        rows,
        `weft follow, ${F} followers (each gets every event)`,
        'raw XREAD BLOCK consumer, 1 reader',
        {
          target: 0.8,
        },
      );
    }

    // ------------------------------------------------------------ publish-to-follow latency at 1k/s
    {
      // Raw and Weft run side by side, each at 1,000 events/s: every millisecond one raw XADD and one
      // Weft publish go out together, so whatever else the machine is doing falls on both alike.
      const total = quick ? 2_000 : 10_000;
      const warm = 200;
      const rawLat: number[] = [];
      const weftLat: number[] = [];
      const key = `raw:lat:${++runId}`;
      const name = `lat-${++runId}`;
      const f = fabric.stream<{ at: number }>(name).follow();
      await f.ready();
      const pub = other.stream<{ at: number }>(name);
      let stop = false;
      const rawLoop = (async () => {
        let last = '$';
        while (!stop) {
          const res = (await rawReader.xreadBuffer('COUNT', 100, 'BLOCK', 100, 'STREAMS', key, last)) as
            | [Buffer, [Buffer, Buffer[]][]][]
            | null;
          if (res === null) continue;
          const now = performance.now();
          for (const [id, fields] of res[0]![1]) {
            rawLat.push(now - (packr.unpack(fields[3]!) as { at: number }).at);
            last = id.toString('latin1');
          }
        }
      })();
      const weftLoop = (async () => {
        while (weftLat.length < total) {
          const r = await f.next();
          if (r.done) break;
          weftLat.push(performance.now() - r.value.data.at);
        }
      })();
      await sleep(20);
      await paced(total, async (k) => {
        const rawFirst = k % 2 === 0; // neither always goes first
        const sendRaw = () => raw.xadd(key, '*', 't', Date.now(), 'd', packr.pack({ at: performance.now() }));
        const sendWeft = () => pub.publish({ at: performance.now() });
        if (rawFirst) await Promise.all([sendRaw(), sendWeft()]);
        else await Promise.all([sendWeft(), sendRaw()]);
      });
      await weftLoop;
      while (rawLat.length < total) await sleep(1);
      stop = true;
      await rawLoop;
      await f.return();
      const pct = (xs: number[], p: number) => {
        const s = xs.slice(warm).sort((a, b) => a - b);
        return s[Math.min(s.length - 1, Math.floor(s.length * p))]!;
      };
      for (const [who, xs] of [
        ['raw XADD -> XREAD BLOCK', rawLat],
        ['weft publish -> follow', weftLat],
      ] as const) {
        rows.push({
          name: `${who}, p50 at 1k/s`,
          value: pct(xs, 0.5),
          unit: 'ms',
          extra: { samples: xs.length - warm },
        });
        rows.push({
          name: `${who}, p99 at 1k/s`,
          value: pct(xs, 0.99),
          unit: 'ms',
          extra: { samples: xs.length - warm },
        });
      }
      compare(rows, 'weft publish -> follow, p50 at 1k/s', 'raw XADD -> XREAD BLOCK, p50 at 1k/s', {
        lowerIsBetter: true,
      });
      // The target is p99 <= 2x raw, i.e. raw/weft >= 0.5.
      compare(rows, 'weft publish -> follow, p99 at 1k/s', 'raw XADD -> XREAD BLOCK, p99 at 1k/s', {
        lowerIsBetter: true,
        target: 0.5,
      });
    }

    // ------------------------------------------------------------ sinks vs XREADGROUP + XACK
    {
      const N = quick ? 10_000 : 20_000;
      const items = Array.from({ length: 100 }, (_, i) => ({ data: payload(i) }));
      const fill = async (stream: string) => {
        const s = fabric!.stream(stream);
        for (let i = 0; i < N; i += 100) await s.publishBatch(items);
      };
      const rawRates: number[] = [];
      const sinkRates: number[] = [];
      const sinkAwaitRates: number[] = [];
      for (let r = 0; r < repeats; r++) {
        const rawName = `sink-raw-${++runId}`;
        await fill(rawName);
        const key = `bench:{${rawName}}:log`;
        await raw.xgroup('CREATE', key, 'g', '0');
        let t0 = performance.now();
        for (let n = 0; n < N; ) {
          const res = (await raw.xreadgroupBuffer('GROUP', 'g', 'c', 'COUNT', 64, 'STREAMS', key, '>')) as
            | [Buffer, [Buffer, Buffer[]][]][]
            | null;
          const entries = res?.[0]?.[1] ?? [];
          const ids = entries.map(([id, fields]) => {
            packr.unpack(fields[3]!);
            return id;
          });
          if (ids.length > 0) await raw.xack(key, 'g', ...ids);
          n += ids.length;
        }
        rawRates.push(N / ((performance.now() - t0) / 1000));

        for (const awaitEach of [false, true]) {
          const name = `sink-weft-${++runId}`;
          await fill(name);
          const sink = fabric.sink(`s${runId}`, { streams: [name] });
          const acks: Promise<void>[] = [];
          t0 = performance.now();
          let n = 0;
          for await (const d of sink.consume({ batchSize: 64 })) {
            if (awaitEach) await d.ack();
            else acks.push(d.ack());
            if (++n === N) break;
          }
          await Promise.all(acks);
          (awaitEach ? sinkAwaitRates : sinkRates).push(N / ((performance.now() - t0) / 1000));
          await sink.close();
        }
      }
      rows.push({ name: 'raw XREADGROUP(64) + XACK per batch', value: median(rawRates), unit: 'events/s' });
      rows.push({
        name: 'weft sink consume + ack (acks not awaited one by one)',
        value: median(sinkRates),
        unit: 'events/s',
      });
      rows.push({ name: 'weft sink consume + await ack()', value: median(sinkAwaitRates), unit: 'events/s' });
      compare(
        rows,
        'weft sink consume + ack (acks not awaited one by one)',
        'raw XREADGROUP(64) + XACK per batch',
      );
      compare(rows, 'weft sink consume + await ack()', 'raw XREADGROUP(64) + XACK per batch');
    }
  } finally {
    await fabric?.close();
    await other?.close();
    raw.disconnect();
    rawReader.disconnect();
    await server.stop();
  }
  return rows;
}

/** Calls `fn` `count` times at 1 per millisecond (catching up when late), waiting for each. */
async function paced(count: number, fn: (k: number) => Promise<unknown>): Promise<void> {
  const start = performance.now();
  for (let k = 0; k < count; k++) {
    const due = start + k;
    const wait = due - performance.now();
    if (wait > 1) await sleep(Math.floor(wait));
    await fn(k);
  }
}

if (isMain(import.meta.url)) await main('redis', run);
