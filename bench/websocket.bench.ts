/**
 * WebSocket benchmark: events/s delivered to 1, 10 and 100 remote followers over loopback, and
 * p50/p99 publish-to-delivery latency at a fixed moderate rate, side by side in one run with
 *   - a bare `ws` server broadcasting pre-encoded MessagePack frames (1 event per frame, and 100),
 *   - socket.io broadcasting the same events (`io.emit` per event, its default parser),
 * to the same clients: every system's clients run in one child process (so the servers and the
 * clients each get a core of their own), decode every event and count it.
 *
 * Weft runs a gateway over a memory fabric; the publisher calls `stream.publish()` per event in
 * the gateway's process. "1 event/frame" and "<= 100 events/frame" cap the gateway's frames
 * (`maxEventsPerFrame`) for a like-for-like comparison; "adaptive" is the default (a follower that
 * is behind gets everything pending, up to 1024 events, in one message).
 *
 *   npx tsx bench/websocket.bench.ts [--quick]
 *   npm run build && node dist/bench/websocket.bench.js [--quick]
 */
import { type ChildProcess, fork } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Packr, Unpackr } from 'msgpackr';
import { Server as SocketIoServer } from 'socket.io';
import { type Socket as SocketIoSocket, io as socketIoClient } from 'socket.io-client';
import { Bench } from 'tinybench';
import { WebSocket, WebSocketServer } from 'ws';
import { createFabric, type Fabric } from '../index.js';
import { serveWebSocket, type WebSocketGateway } from '../transports/websocket/index.js';
import { type BenchRow, compare, isMain, main } from './lib.js';

const FOLLOWERS = [1, 10, 100];
const TEXT = 'lorem ipsum dolor sit amet, consectetur adipiscing'; // ~50 bytes of payload per event

interface EventData {
  n: number;
  /** Publish time, ms since the epoch with sub-ms precision (comparable across local processes). */
  t: number;
  text: string;
}

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

// ====================================================================== the servers (parent)

type System = 'weft' | 'weft-raw' | 'ws' | 'socket.io';

interface ServerSide {
  url: string;
  /** Publishes `n` events as fast as the system allows (sends them all; delivery is awaited elsewhere). */
  publish(n: number): Promise<void>;
  /** Publishes one event now (latency runs). */
  publishOne(i: number): void;
  close(): Promise<void>;
}

async function weftServer(maxEventsPerFrame: number | undefined): Promise<ServerSide> {
  const fabric: Fabric = await createFabric({ transport: 'memory' });
  const gateway: WebSocketGateway = await serveWebSocket({
    fabric,
    port: 0,
    ...(maxEventsPerFrame === undefined ? {} : { maxEventsPerFrame }),
    ...(process.env.WEFT_BENCH_HW ? { highWaterBytes: Number(process.env.WEFT_BENCH_HW) } : {}),
  });
  const stream = fabric.stream<EventData>('bench', { maxLength: 200_000 });
  return {
    url: gateway.url,
    async publish(n) {
      for (let i = 0; i < n; i++) stream.publish({ n: i, t: 0, text: TEXT });
    },
    publishOne(i) {
      stream.publish({ n: i, t: now(), text: TEXT });
    },
    async close() {
      await gateway.close();
      await fabric.close();
    },
  };
}

/** A bare `ws` broadcaster: pre-encoded frames of `perFrame` events, sent to every client, pausing when buffers fill. */
async function bareWsServer(perFrame: number): Promise<ServerSide> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const packr = new Packr({ useRecords: false });
  const clients = new Set<WebSocket>();
  wss.on('connection', (ws) => {
    clients.add(ws);
    ws.on('close', () => clients.delete(ws));
  });
  let seq = 0;
  const frameOf = (count: number, t: number): Uint8Array => {
    const tuples = new Array(count);
    for (let i = 0; i < count; i++) {
      seq++;
      tuples[i] = [seq, Date.now(), null, { n: seq, t, text: TEXT }];
    }
    return packr.pack(tuples);
  };
  return {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    async publish(n) {
      // Pre-encoded, outside the send loop: the baseline pays no encoding while sending.
      const frames: Uint8Array[] = [];
      for (let i = 0; i < n; i += perFrame) frames.push(frameOf(Math.min(perFrame, n - i), 0));
      const list = [...clients];
      for (let f = 0; f < frames.length; f++) {
        const frame = frames[f]!;
        for (const ws of list) ws.send(frame);
        if ((f & 63) === 63) {
          while (list.some((ws) => ws.bufferedAmount > 1 << 20)) await turn();
        }
      }
    },
    publishOne() {
      const frame = frameOf(1, now());
      for (const ws of clients) ws.send(frame);
    },
    async close() {
      for (const ws of clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

async function socketIoServer(): Promise<ServerSide> {
  const http = createServer();
  const io = new SocketIoServer(http, { transports: ['websocket'], serveClient: false });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    async publish(n) {
      for (let i = 0; i < n; i++) {
        io.emit('e', { n: i, t: 0, text: TEXT });
        if ((i & 1023) === 1023) await turn();
      }
    },
    publishOne(i) {
      io.emit('e', { n: i, t: now(), text: TEXT });
    },
    async close() {
      io.disconnectSockets(true);
      await new Promise<void>((resolve) => io.close(() => resolve()));
    },
  };
}

// ====================================================================== the clients (child process)

interface ClientCommand {
  id: number;
  cmd: 'setup' | 'target' | 'latency' | 'teardown' | 'exit';
  system?: System;
  url?: string;
  followers?: number;
  /** 'target': the absolute number of deliveries to wait for (absolute: events may arrive before this message). */
  total?: number;
  /** 'latency': 1 to start recording, 0 to stop. */
  on?: number;
}

async function clientProcess(): Promise<void> {
  if (process.env.WEFT_BENCH_MIRROR_HACK) {
    const { EventLog } = await import('../core/event-log.js');
    const keep = Number(process.env.WEFT_BENCH_MIRROR_HACK);
    const orig = EventLog.prototype.append;
    EventLog.prototype.append = function (this: InstanceType<typeof EventLog>, events) {
      orig.call(this, events);
      if (this.length > keep) this.trimTo(this.nextSeq - keep);
    };
  }
  const unpackr = new Unpackr({ useRecords: false });
  const rawPackr = new Packr({ useRecords: false });
  let delivered = 0;
  let target = Number.POSITIVE_INFINITY;
  let targetId = 0;
  let measureLatency = false;
  let latencies: number[] = [];
  let teardown: (() => Promise<void>) | undefined;
  const reply = (m: object) => process.send!(m);
  if (process.env.WEFT_BENCH_CHILD_DEBUG)
    setInterval(() => console.error('child', { delivered, target }), 2000).unref();
  const arrived = (count: number): void => {
    delivered += count;
    if (delivered >= target) {
      target = Number.POSITIVE_INFINITY;
      const cpu = process.cpuUsage();
      reply({ id: targetId, ok: true, cpuUs: cpu.user + cpu.system });
    }
  };
  const sample = (t: number, at: number): void => {
    if (measureLatency && t > 0) latencies.push(at - t);
  };

  async function setup(system: System, url: string, followers: number): Promise<() => Promise<void>> {
    if (system === 'weft') {
      const fabrics: Fabric[] = [];
      const loops: Promise<void>[] = [];
      for (let i = 0; i < followers; i++) {
        const fabric = await createFabric({ transport: 'websocket', url });
        fabrics.push(fabric);
        const follower = fabric.stream<EventData>('bench').follow();
        await follower.ready();
        loops.push(
          (async () => {
            for await (const batch of follower.batches()) {
              if (measureLatency) {
                const at = now();
                for (const e of batch) sample(e.data.t, at);
              }
              arrived(batch.length);
            }
          })(),
        );
      }
      return async () => {
        await Promise.all(fabrics.map((f) => f.close()));
        await Promise.allSettled(loops);
      };
    }
    if (system === 'weft-raw') {
      // The Weft protocol spoken by a minimal client that does what the bare ws clients do: decode
      // each message and count its events (no WeftEvent objects, no mirror, no resume state).
      const sockets: WebSocket[] = [];
      for (let i = 0; i < followers; i++) {
        const ws = new WebSocket(url, { perMessageDeflate: false });
        await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
        const started = new Promise<void>((resolve) => {
          ws.on('message', (data) => {
            const m = unpackr.unpack(data as Buffer) as unknown[];
            if (m[0] === 21) {
              // BOUNDS answered: follow from the end (after the newest sequence so far).
              const next = (m[2] as number[])[2]!;
              ws.send(rawPackr.pack([8, 1, 1, next - 1, null]));
            } else if (m[0] === 23) {
              const flat = m[4] as unknown[];
              if (measureLatency) {
                const at = now();
                for (let j = 2; j < flat.length; j += 3) sample((flat[j] as EventData).t, at);
              }
              arrived(flat.length / 3);
            } else if (m[0] === 25) ws.send(rawPackr.pack([10, m[1]]));
            else if (m[0] === 26) resolve();
          });
        });
        ws.send(rawPackr.pack([1, 1, null, null]));
        ws.send(rawPackr.pack([2, 1, 'bench', null]));
        ws.send(rawPackr.pack([5, 1, 1])); // BOUNDS, then FOLLOW (above)
        await started;
        sockets.push(ws);
      }
      return async () => {
        for (const ws of sockets) ws.terminate();
      };
    }
    if (system === 'ws') {
      const sockets: WebSocket[] = [];
      for (let i = 0; i < followers; i++) {
        const ws = new WebSocket(url, { perMessageDeflate: false });
        ws.on('message', (data) => {
          const tuples = unpackr.unpack(data as Buffer) as [number, number, null, EventData][];
          if (measureLatency) {
            const at = now();
            for (const e of tuples) sample(e[3].t, at);
          }
          arrived(tuples.length);
        });
        await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
        sockets.push(ws);
      }
      return async () => {
        for (const ws of sockets) ws.terminate();
      };
    }
    const sockets: SocketIoSocket[] = [];
    for (let i = 0; i < followers; i++) {
      const s = socketIoClient(url, { transports: ['websocket'], forceNew: true, reconnection: false });
      s.on('e', (e: EventData) => {
        if (measureLatency) sample(e.t, now());
        arrived(1);
      });
      await new Promise((resolve, reject) =>
        s.once('connect', () => resolve(undefined)).once('connect_error', reject),
      );
      sockets.push(s);
    }
    return async () => {
      for (const s of sockets) s.disconnect();
    };
  }

  process.on('message', async (m: ClientCommand) => {
    try {
      if (m.cmd === 'setup') {
        delivered = 0;
        target = Number.POSITIVE_INFINITY;
        teardown = await setup(m.system!, m.url!, m.followers!);
        reply({ id: m.id, ok: true });
      } else if (m.cmd === 'target') {
        // Answered (a reply with this id) once `total` deliveries arrived since setup.
        targetId = m.id;
        target = m.total!;
        if (delivered >= target) arrived(0);
      } else if (m.cmd === 'latency') {
        measureLatency = m.on === 1;
        const out = latencies;
        latencies = [];
        reply({ id: m.id, ok: true, latencies: out });
      } else if (m.cmd === 'exit') {
        process.exit(0);
      } else if (m.cmd === 'teardown') {
        await teardown?.();
        teardown = undefined;
        reply({ id: m.id, ok: true });
      }
    } catch (e) {
      reply({ id: m.id, ok: false, error: String((e as Error)?.stack ?? e) });
    }
  });
  reply({ id: 0, ok: true });
}

// ====================================================================== the harness (parent)

class Clients {
  #child: ChildProcess;
  #next = 1;
  #waiting = new Map<
    number,
    (m: { ok: boolean; error?: string; latencies?: number[]; cpuUs?: number }) => void
  >();
  readonly ready: Promise<void>;

  constructor() {
    this.#child = fork(fileURLToPath(import.meta.url), ['--clients'], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.ready = new Promise((resolve) => this.#waiting.set(0, () => resolve()));
    this.#child.on('message', (m: { id: number; ok: boolean; error?: string }) => {
      const w = this.#waiting.get(m.id);
      this.#waiting.delete(m.id);
      w?.(m);
    });
  }

  call(cmd: Omit<ClientCommand, 'id'>): Promise<{ latencies?: number[]; cpuUs?: number }> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, (m) => (m.ok ? resolve(m) : reject(new Error(m.error))));
      this.#child.send({ ...cmd, id });
    });
  }

  async close(): Promise<void> {
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    this.#child.send({ id: 0, cmd: 'exit' });
    await Promise.race([exited, sleep(2_000)]);
    this.#child.kill();
  }
}

interface Variant {
  name: (f: number) => string;
  system: System;
  server: () => Promise<ServerSide>;
}

const VARIANTS: Variant[] = [
  {
    name: (f) => `weft, ${f} followers, adaptive frames`,
    system: 'weft',
    server: () => weftServer(undefined),
  },
  { name: (f) => `weft, ${f} followers, 1 event/frame`, system: 'weft', server: () => weftServer(1) },
  { name: (f) => `weft, ${f} followers, <= 100 events/frame`, system: 'weft', server: () => weftServer(100) },
  {
    name: (f) => `weft gateway, decode-only clients, ${f} followers, <= 100 events/frame`,
    system: 'weft-raw',
    server: () => weftServer(100),
  },
  { name: (f) => `bare ws, ${f} followers, 1 event/frame`, system: 'ws', server: () => bareWsServer(1) },
  { name: (f) => `bare ws, ${f} followers, 100 events/frame`, system: 'ws', server: () => bareWsServer(100) },
  { name: (f) => `socket.io, ${f} followers`, system: 'socket.io', server: () => socketIoServer() },
];

export async function run({ quick }: { quick: boolean }): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const clients = new Clients();
  await clients.ready;
  try {
    const only =
      process.env.WEFT_BENCH_ONLY === undefined ? undefined : new RegExp(process.env.WEFT_BENCH_ONLY);
    for (const F of FOLLOWERS) {
      for (const v of VARIANTS) {
        if (only !== undefined && !only.test(v.name(F))) continue;
        // About 200k deliveries per iteration (socket.io: 50k, it is slower), fewer in --quick.
        const budget = (v.system === 'socket.io' ? 50_000 : 200_000) / (quick ? 4 : 1);
        const N = Math.max(500, Math.round(budget / F / 100) * 100);
        const server = await v.server();
        await clients.call({ cmd: 'setup', system: v.system, url: server.url, followers: F });
        let expected = 0;
        let clientCpu = 0;
        let serverCpu = 0;
        let lastClientCpu = -1;
        let counted = 0;
        const bench = new Bench({
          iterations: quick ? 2 : 5,
          time: 0,
          warmup: true,
          warmupIterations: 1,
          warmupTime: 0,
        });
        bench.add(v.name(F), async () => {
          expected += N * F;
          const done = clients.call({ cmd: 'target', total: expected });
          const before = process.cpuUsage();
          await server.publish(N);
          const { cpuUs = 0 } = await done;
          const spent = process.cpuUsage(before);
          // CPU time per delivery, both sides (robust where wall time is not: a shared machine).
          if (lastClientCpu >= 0) {
            clientCpu += cpuUs - lastClientCpu;
            serverCpu += spent.user + spent.system;
            counted++;
          }
          lastClientCpu = cpuUs;
        });
        await bench.run();
        const task = bench.tasks[0]!;
        const r = task.result;
        const p50 = r.state === 'completed' ? r.latency.p50 : Number.NaN;
        const deliveries = N * F * Math.max(1, counted);
        const serverNs = (serverCpu * 1000) / deliveries;
        const clientNs = (clientCpu * 1000) / deliveries;
        console.error(
          `  ${v.name(F)}: ${Math.round((N * F) / (p50 / 1000))} deliveries/s; CPU per delivery: server ${serverNs.toFixed(0)} ns, clients ${clientNs.toFixed(0)} ns`,
        );
        rows.push({
          name: v.name(F),
          value: (N * F) / (p50 / 1000),
          unit: 'deliveries/s',
          extra: {
            followers: F,
            eventsPerIteration: N,
            perFollowerEventsPerSec: N / (p50 / 1000),
            serverCpuNsPerDelivery: serverNs,
            clientCpuNsPerDelivery: clientNs,
          },
        });
        await clients.call({ cmd: 'teardown' });
        await server.close();
      }
      if (only !== undefined) continue;
      compare(rows, `weft, ${F} followers, 1 event/frame`, `bare ws, ${F} followers, 1 event/frame`, {
        ...(F === 100 ? { target: 0.8 } : {}),
      });
      compare(
        rows,
        `weft, ${F} followers, <= 100 events/frame`,
        `bare ws, ${F} followers, 100 events/frame`,
        {
          ...(F === 100 ? { target: 0.8 } : {}),
        },
      );
      compare(
        rows,
        `weft gateway, decode-only clients, ${F} followers, <= 100 events/frame`,
        `bare ws, ${F} followers, 100 events/frame`,
        { ...(F === 100 ? { target: 0.8 } : {}) },
      );
      compare(rows, `weft, ${F} followers, adaptive frames`, `socket.io, ${F} followers`, {
        ...(F === 100 ? { target: 10 } : {}),
      });
    }

    // ------------------------------------------------------------ latency at a fixed moderate rate
    const rate = 1_000; // events per second
    const seconds = quick ? 1 : 3;
    const F = 100;
    const latencyVariants: [string, System, () => Promise<ServerSide>][] = [
      [`weft, ${F} followers, ${rate} events/s`, 'weft', () => weftServer(undefined)],
      [
        `weft gateway, decode-only clients, ${F} followers, ${rate} events/s`,
        'weft-raw',
        () => weftServer(undefined),
      ],
      [`bare ws, ${F} followers, ${rate} events/s`, 'ws', () => bareWsServer(1)],
      [`socket.io, ${F} followers, ${rate} events/s`, 'socket.io', () => socketIoServer()],
    ];
    for (const [name, system, make] of latencyVariants) {
      if (only !== undefined && !only.test(name)) continue;
      const server = await make();
      await clients.call({ cmd: 'setup', system, url: server.url, followers: F });
      let expected = 0;
      // Warm up at the same rate, then measure.
      for (const measured of [false, true]) {
        await clients.call({ cmd: 'latency', on: measured ? 1 : 0 });
        const total = Math.round(rate * (measured ? seconds : 0.5));
        expected += total * F;
        const done = clients.call({ cmd: 'target', total: expected });
        const start = performance.now();
        for (let i = 0; i < total; i++) {
          const due = start + (i * 1000) / rate;
          const wait = due - performance.now();
          if (wait > 1) await sleep(wait - 0.5);
          else if (i % 16 === 0) await turn();
          server.publishOne(i + 1);
        }
        await done;
      }
      const { latencies = [] } = await clients.call({ cmd: 'latency', on: 0 });
      latencies.sort((a, b) => a - b);
      const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
      console.error(
        `  ${name}: p50 ${pct(0.5).toFixed(2)} ms, p90 ${pct(0.9).toFixed(2)}, p99 ${pct(0.99).toFixed(2)} ms, p99.9 ${pct(0.999).toFixed(2)}, max ${latencies[latencies.length - 1]?.toFixed(2)}`,
      );
      rows.push({ name: `${name}, p50`, value: pct(0.5), unit: 'ms', extra: { samples: latencies.length } });
      rows.push({ name: `${name}, p99`, value: pct(0.99), unit: 'ms', extra: { samples: latencies.length } });
      await clients.call({ cmd: 'teardown' });
      await server.close();
    }
    for (const p of only === undefined ? ['p50', 'p99'] : []) {
      for (const who of ['weft', 'weft gateway, decode-only clients']) {
        compare(
          rows,
          `${who}, ${F} followers, ${rate} events/s, ${p}`,
          `bare ws, ${F} followers, ${rate} events/s, ${p}`,
          {
            lowerIsBetter: true,
            ...(p === 'p99' ? { target: 1 / 1.2 } : {}),
          },
        );
      }
    }
  } finally {
    await clients.close();
  }
  return rows;
}

if (process.argv.includes('--clients')) await clientProcess();
else if (isMain(import.meta.url)) {
  await main('websocket', run);
  process.exit(0); // the servers' handles are closed; do not wait for lingering sockets
}
