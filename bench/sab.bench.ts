/**
 * The `sab` transport end to end: worker shards -> SharedArrayBuffer rings -> drain -> one followed
 * stream on the main thread, side by side in one run with the same workers sending the same events
 * by postMessage (one message per event, and arrays of 100), and with a bare copy of the same
 * bytes through the same ring without encoding (the ceiling: 32-byte header + payload, no msgpackr,
 * no claims, no streams). For 1, 2 and 4 shards; ~60-byte object events and 1 KiB Uint8Array
 * payloads; then publish-to-follow latency at 100,000 events/s.
 *
 *   npm run build && node dist/bench/sab.bench.js [--quick]
 *
 * Run from dist: TypeScript workers start slowly. This file is also the worker module (its default
 * export runs the worker side of each scenario), so workers and main share one definition of events.
 *
 * The main thread counts what it receives in every mode: postMessage handlers count messages' events;
 * the sab follower iterates `follower.batches()` over a stream with a short retention (a queue-like
 * stream: see runOnce). 1 KiB payloads come from a pool of 256 distinct arrays (no allocation per
 * event, no shared buffer in one postMessage). Each figure is the mean of 3 timed runs after a
 * warm-up run (tinybench). WEFT_BENCH_ONLY=small:2:sab-batch (or latency:sab) runs one scenario,
 * e.g. under --cpu-prof; it also prints the drain's counters.
 */
import { isMainThread, MessageChannel, type MessagePort } from 'node:worker_threads';
import { Bench } from 'tinybench';
import { createFabric, type Fabric } from '../index.js';
import { HeaderWriter } from '../transports/sab/codec.js';
import type { SabPublisherPool } from '../transports/sab/index.js';
import { emptyHeader, layout, readHeader } from '../transports/sab/internal.js';
import { RingReader, RingWriter } from '../transports/sab/ring.js';
import { workerFabric } from '../workers/index.js';
import { type BenchRow, compare, isMain, main } from './lib.js';

type Payload = 'small' | 'binary';
type Mode = 'sab-batch' | 'sab-publish' | 'pm1' | 'pm100' | 'bare';

/** Nominal payload bytes, for MB/s. */
const PAYLOAD_BYTES: Record<Payload, number> = { small: 60, binary: 1024 };
/** Each shard's ring: 4 MiB (WEFT_BENCH_RING_BYTES to try others). */
const RING_BYTES = Number(process.env.WEFT_BENCH_RING_BYTES ?? 1 << 22);
/** The merge's reorder window (events): small, so that bursts stay under the streams' short retention. */
const REORDER_WINDOW = 4096;

interface ThroughputTask {
  kind: 'throughput';
  mode: Mode;
  payload: Payload;
  count: number;
  stream?: string;
  port?: MessagePort;
  ring?: SharedArrayBuffer;
  shard: number;
}
interface LatencyTask {
  kind: 'latency';
  mode: 'sab' | 'pm1' | 'pm100';
  count: number;
  ratePerSec: number;
  stream?: string;
  port?: MessagePort;
  shard: number;
}
type Task = ThroughputTask | LatencyTask;

// ---------------------------------------------------------------- the events

/** ~60 bytes as JSON: {"sym":"AAPL","px":101.25,"qty":300,"side":"buy","id":123456} */
function smallEvent(i: number): { sym: string; px: number; qty: number; side: string; id: number } {
  return { sym: 'AAPL', px: 101.25 + (i & 7), qty: i & 1023, side: i & 1 ? 'buy' : 'sell', id: i };
}
const BINARY = new Uint8Array(1024).map((_, i) => i & 0xff);
/**
 * 1 KiB payloads from a pool of 256 distinct arrays: no allocation per event in any mode, and no
 * two events of a 100-event postMessage batch share a buffer (structured clone would copy a shared
 * one only once per message).
 */
const BINARY_POOL = Array.from({ length: 256 }, (_, k) => BINARY.map((b) => b ^ k));
function binaryEvent(i: number): Uint8Array {
  return BINARY_POOL[i & 255]!;
}
const SMALL_BYTES = new TextEncoder().encode(JSON.stringify(smallEvent(123456)));

/**
 * Milliseconds on the monotonic clock every thread of the process shares. (Each worker has its own
 * `performance.timeOrigin`, taken at its start with millisecond precision: comparing
 * `timeOrigin + now()` across threads is off by up to a few ms.)
 */
function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

// ---------------------------------------------------------------- worker side

/** The worker side of every scenario (piscina runs it; see the module comment). */
export default async function workerTask(task: Task): Promise<number> {
  if (task.kind === 'latency') return latencyWorker(task);
  const n = task.count;
  const make = task.payload === 'small' ? smallEvent : binaryEvent;
  switch (task.mode) {
    case 'sab-batch': {
      const s = workerFabric().stream(task.stream!);
      const items = Array.from({ length: 100 }, () => ({ data: undefined as unknown }));
      for (let i = 0; i < n; i += 100) {
        const m = Math.min(100, n - i);
        if (m < 100) items.length = m;
        for (let k = 0; k < m; k++) items[k]!.data = make(i + k);
        void s.publishBatch(items);
      }
      return n;
    }
    case 'sab-publish': {
      const s = workerFabric().stream(task.stream!);
      let last: Promise<number> | undefined;
      for (let i = 0; i < n; i++) last = s.publish(make(i));
      await last;
      return n;
    }
    case 'pm1': {
      const port = task.port!;
      for (let i = 0; i < n; i++) port.postMessage(make(i));
      port.close();
      return n;
    }
    case 'pm100': {
      const port = task.port!;
      for (let i = 0; i < n; i += 100) {
        const m = Math.min(100, n - i);
        const batch = new Array(m);
        for (let k = 0; k < m; k++) batch[k] = make(i + k);
        port.postMessage(batch);
      }
      port.close();
      return n;
    }
    case 'bare': {
      const ring = new RingWriter(task.ring!, RING_BYTES, { ring() {} });
      const header = new HeaderWriter();
      const bytes = task.payload === 'small' ? SMALL_BYTES : BINARY;
      const span = layout.recordSpan(bytes.length);
      const never = () => false;
      for (let i = 0; i < n; i++) {
        if (!ring.hasRoom(span)) ring.waitForRoom(span, never, 5);
        ring.put(layout.HEADER_BYTES, bytes);
        ring.put(0, header.set(layout.HEADER_BYTES + bytes.length, layout.KIND_BATCH, 0, 1, i + 1, 0));
        ring.commit(span);
      }
      return n;
    }
  }
}

function spinUntil(t: number): void {
  while (now() < t) {
    // busy-wait: pacing at 10 µs granularity
  }
}

async function latencyWorker(task: LatencyTask): Promise<number> {
  const gapMs = 1000 / task.ratePerSec;
  const start = now() + 5;
  if (task.mode === 'sab') {
    const fabric = workerFabric();
    const s = fabric.stream(task.stream!);
    for (let i = 0; i < task.count; i++) {
      spinUntil(start + i * gapMs);
      void s.publish({ ...smallEvent(i), t: now() });
      fabric.flush(); // commit now: the pacing loop never yields to the microtask queue
    }
  } else if (task.mode === 'pm1') {
    for (let i = 0; i < task.count; i++) {
      spinUntil(start + i * gapMs);
      task.port!.postMessage({ ...smallEvent(i), t: now() });
    }
  } else {
    let batch: unknown[] = [];
    for (let i = 0; i < task.count; i++) {
      spinUntil(start + i * gapMs);
      batch.push({ ...smallEvent(i), t: now() });
      if (batch.length === 100) {
        task.port!.postMessage(batch);
        batch = [];
      }
    }
    if (batch.length > 0) task.port!.postMessage(batch);
  }
  task.port?.close();
  return task.count;
}

// ---------------------------------------------------------------- main side

/** One run of `mode`: every shard sends count/shards events; resolves when the main thread has them all. */
async function runOnce(
  fabric: Fabric,
  pool: SabPublisherPool,
  shards: number,
  mode: Mode,
  payload: Payload,
  total: number,
): Promise<void> {
  const per = Math.floor(total / shards);
  const n = per * shards;
  if (mode === 'sab-batch' || mode === 'sab-publish') {
    // One stream per mode and payload, reused by every iteration (a closed stream keeps its history,
    // so a stream per iteration would pile up retained events). Retention is short, like a queue's:
    // above the largest burst one drain pass can append (its budget, 8192 events, or a few records
    // of 1 KiB events, plus the reorder window, 4096): a longer history costs garbage-collector time
    // and memory (32,768 retained 1 KiB events are 32 MB), not transport time.
    const name = `bench-${mode}-${payload}`;
    const stream = fabric.stream(name, { maxLength: payload === 'small' ? 16_384 : 8_192 });
    const follower = stream.follow();
    let got = 0;
    const done = (async () => {
      for await (const batch of follower.batches()) if ((got += batch.length) >= n) break;
    })();
    await Promise.all(
      Array.from({ length: shards }, (_, shard) =>
        pool.run({ kind: 'throughput', mode, payload, count: per, stream: name, shard }),
      ),
    );
    await done;
    return;
  }
  if (mode === 'pm1' || mode === 'pm100') {
    let got = 0;
    let resolve!: () => void;
    const done = new Promise<void>((r) => {
      resolve = r;
    });
    const runs: Promise<unknown>[] = [];
    for (let shard = 0; shard < shards; shard++) {
      const { port1, port2 } = new MessageChannel();
      port1.on('message', (m: unknown) => {
        got += Array.isArray(m) ? m.length : 1;
        if (got === n) resolve();
      });
      runs.push(
        pool.run(
          { kind: 'throughput', mode, payload, count: per, port: port2, shard },
          { transferList: [port2] },
        ),
      );
      port1.unref();
    }
    await Promise.all([...runs, done]);
    return;
  }
  // bare: the same ring, no encoding, one record per event, the main thread copies out and walks.
  const rings = Array.from({ length: shards }, () => new SharedArrayBuffer(layout.shardBytes(RING_BYTES)));
  const readers = rings.map((r) => new RingReader(r, RING_BYTES));
  const runs = rings.map((ring, shard) =>
    pool.run({ kind: 'throughput', mode, payload, count: per, ring, shard }),
  );
  let got = 0;
  const h = emptyHeader();
  while (got < n) {
    let progress = false;
    for (const reader of readers) {
      const chunk = reader.take(256 * 1024);
      if (chunk === null) continue;
      progress = true;
      const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      for (let at = 0; at < chunk.length; at += layout.align8(h.frameBytes)) {
        readHeader(view, at, h);
        got += h.count;
      }
    }
    if (!progress) await new Promise((r) => setImmediate(r));
  }
  await Promise.all(runs);
}

/** The publish-to-follow latency (ms) of `count` events sent at `ratePerSec` by one worker. */
async function latencyOnce(
  fabric: Fabric,
  pool: SabPublisherPool,
  mode: 'sab' | 'pm1' | 'pm100',
  count: number,
  ratePerSec: number,
): Promise<number[]> {
  const lat: number[] = [];
  const record = (e: { t: number }) => lat.push(now() - e.t);
  if (mode === 'sab') {
    const name = 'latency';
    const stream = fabric.stream<{ t: number }>(name, { maxLength: 1_000 });
    const follower = stream.follow();
    const done = (async () => {
      for await (const batch of follower.batches()) {
        for (const e of batch) record(e.data);
        if (lat.length >= count) break;
      }
    })();
    await pool.run({ kind: 'latency', mode, count, ratePerSec, stream: name, shard: 0 });
    await done;
    return lat;
  }
  const { port1, port2 } = new MessageChannel();
  let resolve!: () => void;
  const done = new Promise<void>((r) => {
    resolve = r;
  });
  port1.on('message', (m: { t: number } | { t: number }[]) => {
    if (Array.isArray(m)) for (const e of m) record(e);
    else record(m);
    if (lat.length === count) resolve();
  });
  await Promise.all([
    pool.run({ kind: 'latency', mode, count, ratePerSec, port: port2, shard: 0 }, { transferList: [port2] }),
    done,
  ]);
  port1.close();
  return lat;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const MODE_NAMES: Record<Mode, string> = {
  'sab-publish': 'sab publish() per event (coalesced)',
  'sab-batch': 'sab publishBatch(100)',
  pm1: 'postMessage per event',
  pm100: 'postMessage batches of 100',
  bare: 'bare ring copy (ceiling)',
};

export async function run({ quick }: { quick: boolean }): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  // WEFT_BENCH_ONLY=small:2:sab-batch runs one scenario (for profiling), e.g. with --cpu-prof.
  const only = process.env.WEFT_BENCH_ONLY?.split(':');
  if (only !== undefined) return runOnly(only, quick);
  const totals: Record<Payload, number> = quick
    ? { small: 60_000, binary: 20_000 }
    : { small: 400_000, binary: 100_000 };
  const iterations = quick ? 1 : 3;
  for (const shards of [1, 2, 4]) {
    const fabric = await createFabric({
      transport: 'sab',
      ringBytes: RING_BYTES,
      reorderWindow: REORDER_WINDOW,
    });
    const pool = (await fabric.publishers({
      filename: new URL(import.meta.url),
      shards,
      ringBytes: RING_BYTES,
    })) as SabPublisherPool;
    // Start every worker before timing (piscina starts them lazily).
    await Promise.all(
      Array.from({ length: shards }, (_, shard) =>
        pool.run({
          kind: 'throughput',
          mode: 'sab-batch',
          payload: 'small',
          count: 1000,
          stream: 'warm',
          shard,
        }),
      ),
    );
    for (const payload of ['small', 'binary'] as const) {
      const total = totals[payload];
      const bench = new Bench({ iterations, time: 0, warmup: true, warmupIterations: 1, warmupTime: 0 });
      for (const mode of ['bare', 'sab-batch', 'sab-publish', 'pm100', 'pm1'] as const) {
        bench.add(`${payload}, ${shards} shard${shards > 1 ? 's' : ''}: ${MODE_NAMES[mode]}`, () =>
          runOnce(fabric, pool, shards, mode, payload, total),
        );
      }
      await bench.run();
      for (const task of bench.tasks) {
        const mean = task.result.state === 'completed' ? task.result.latency.mean : Number.NaN;
        const perSec = total / (mean / 1000);
        rows.push({
          name: task.name,
          value: perSec,
          unit: 'events/s',
          extra: {
            MBps: Number(((perSec * PAYLOAD_BYTES[payload]) / 1e6).toFixed(1)),
            payloadBytes: PAYLOAD_BYTES[payload],
            events: total,
            shards,
          },
        });
      }
      const prefix = `${payload}, ${shards} shard${shards > 1 ? 's' : ''}: `;
      if (payload === 'small') {
        compare(rows, prefix + MODE_NAMES['sab-publish'], prefix + MODE_NAMES.pm1, { target: 5 });
        compare(rows, prefix + MODE_NAMES['sab-batch'], prefix + MODE_NAMES.pm100, { target: 1.5 });
      } else {
        compare(rows, prefix + MODE_NAMES['sab-batch'], prefix + MODE_NAMES.bare, { target: 0.5 });
        compare(rows, prefix + MODE_NAMES['sab-publish'], prefix + MODE_NAMES.bare);
      }
    }
    if (shards === 1) {
      const count = quick ? 20_000 : 100_000;
      const rate = 100_000;
      for (const mode of ['sab', 'pm100', 'pm1'] as const) {
        await latencyOnce(fabric, pool, mode, Math.min(count, 10_000), rate); // warm-up
        const lat = (await latencyOnce(fabric, pool, mode, count, rate)).sort((a, b) => a - b);
        const label =
          mode === 'sab'
            ? 'sab publish() + flush()'
            : mode === 'pm1'
              ? 'postMessage per event'
              : 'postMessage batches of 100';
        rows.push({
          name: `latency at 100k events/s, p99: ${label}`,
          value: percentile(lat, 99) * 1000,
          unit: 'µs (p99)',
          extra: {
            p50us: Number((percentile(lat, 50) * 1000).toFixed(1)),
            p999us: Number((percentile(lat, 99.9) * 1000).toFixed(1)),
            maxUs: Number((lat[lat.length - 1]! * 1000).toFixed(1)),
            events: count,
          },
        });
      }
      compare(
        rows,
        'latency at 100k events/s, p99: sab publish() + flush()',
        'latency at 100k events/s, p99: postMessage batches of 100',
        { lowerIsBetter: true, target: 1 },
      );
    }
    await pool.close();
    await fabric.close();
  }
  return rows;
}

async function runOnly([payload, shardsText, mode]: string[], quick: boolean): Promise<BenchRow[]> {
  if (payload === 'latency') {
    const fabric = await createFabric({
      transport: 'sab',
      ringBytes: RING_BYTES,
      reorderWindow: REORDER_WINDOW,
    });
    const pool = (await fabric.publishers({
      filename: new URL(import.meta.url),
      shards: 1,
    })) as SabPublisherPool;
    const m = shardsText as 'sab' | 'pm1' | 'pm100';
    await latencyOnce(fabric, pool, m, 20_000, 100_000);
    const lat = (await latencyOnce(fabric, pool, m, quick ? 20_000 : 100_000, 100_000)).sort((a, b) => a - b);
    await pool.close();
    await fabric.close();
    const us = (p: number) => Number((percentile(lat, p) * 1000).toFixed(1));
    return [
      {
        name: `latency ${m}`,
        value: us(99),
        unit: 'µs (p99)',
        extra: { p50: us(50), p90: us(90), p999: us(99.9) },
      },
    ];
  }
  const shards = Number(shardsText);
  const total = (payload === 'small' ? 400_000 : 100_000) / (quick ? 4 : 1);
  const fabric = await createFabric({
    transport: 'sab',
    ringBytes: RING_BYTES,
    reorderWindow: REORDER_WINDOW,
  });
  const pool = (await fabric.publishers({ filename: new URL(import.meta.url), shards })) as SabPublisherPool;
  await runOnce(fabric, pool, shards, mode as Mode, payload as Payload, total); // JIT warm-up
  const t0 = performance.now();
  await runOnce(fabric, pool, shards, mode as Mode, payload as Payload, total);
  const perSec = total / ((performance.now() - t0) / 1000);
  const d = (
    fabric.transport as unknown as {
      drainer: { records: number; parks: number; passes: number; shards: { reader: { stats: object } }[] };
    }
  ).drainer;
  console.log(
    JSON.stringify({
      records: d.records,
      parks: d.parks,
      passes: d.passes,
      rings: d.shards.map((s) => s.reader.stats),
    }),
  );
  await pool.close();
  await fabric.close();
  return [
    { name: `${payload}, ${shards} shards: ${MODE_NAMES[mode as Mode]}`, value: perSec, unit: 'events/s' },
  ];
}

if (isMainThread && isMain(import.meta.url)) await main('sab', run);
