/**
 * Follower-maze benchmark. End to end: 1,000,000 generated events (quick: 50,000) sent by a load
 * generator in efr's order (consecutive batches of up to 100, each shuffled) over loopback TCP to
 * a forwarder with 100 connected clients out of 1,000 users; the load generator, a child process,
 * checks every byte each client receives against the reference model and times the run from the
 * first byte sent to the last byte received. In the same run, on the same input: Weft's stream
 * resequencer against a sort-per-event resequencer (efr's stream mode), and the forwarder's
 * stages timed in-process without sockets (parse, resequence, route, build the writes), and one
 * more end-to-end round under the CPU profiler (node:inspector) giving the server thread's time
 * by stage, socket writes included. Claim checked: >= 5x the sort-per-event resequencer; the
 * breakdown shows what limits the end-to-end rate.
 *
 * Run: `npx tsx bench/maze.bench.ts` (add `--quick` for a smoke run).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { Session } from 'node:inspector/promises';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Bench, type Task } from 'tinybench';
import {
  type ByteSink,
  ClientWriter,
  EventPipeline,
  generateEvents,
  LineSplitter,
  MazeEvent,
  modelRoute,
  parseEvent,
  prng,
  Router,
  sendEvents,
  shuffleInBatches,
  writeAll,
} from '../cli/maze/index.js';
import { type MazeServer, startMaze } from '../cli/maze.js';
import { Resequencer } from '../core/resequencer.js';
import { type BenchRow, compare, isMain, main } from './lib.js';

const USERS = 1_000;
const CLIENTS = 100;
const MAX_SOURCE_BATCH = 100;
const WINDOW = 1024;
/** The size of a socket read: the pipeline is fed in chunks of this size, as from the network. */
const READ_CHUNK = 64 * 1024;
const SEED = 0x3a2e;

interface Input {
  events: number;
  /** Event lines in sequence order; the last is a broadcast sentinel every client gets last. */
  lines: string[];
  /** The bytes the source sends: the lines in efr's order, CRLF-terminated. */
  wire: Buffer;
  /** The user ids of the connected clients. */
  ids: number[];
}

function makeInput(events: number): Input {
  const { lines } = generateEvents({ count: events, users: USERS, seed: SEED });
  const order = shuffleInBatches(events, MAX_SOURCE_BATCH, prng(SEED + 1));
  lines.push(`${events + 1}|B`);
  order.push(events + 1);
  const wire = Buffer.from(order.map((seq) => `${lines[seq - 1]}\r\n`).join(''), 'latin1');
  const ids = Array.from({ length: CLIENTS }, (_, i) => 1 + i * (USERS / CLIENTS));
  return { events, lines, wire, ids };
}

function chunksOf(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

// ---- the load generator (a child process, so that the server's CPU figures are its own) ----

interface RoundResult {
  elapsedMs: number;
  linesReceived: number;
  bytesReceived: number;
  mismatches: string[];
  /** CPU time of the load generator (source, 100 clients, checks) during the run. */
  loadUserMs: number;
  loadSystemMs: number;
}

async function loadChild(events: number): Promise<void> {
  const input = makeInput(events);
  const expected = new Map<number, string[]>(input.ids.map((id) => [id, []]));
  modelRoute(input.lines, input.ids, (id, line) => expected.get(id)!.push(`${line}\r\n`));
  const want = input.ids.map((id) => Buffer.from(expected.get(id)!.join(''), 'latin1'));
  const wantLines = input.ids.map((id) => expected.get(id)!.length);
  expected.clear();
  const send = (message: unknown) => process.send!(message);
  let sockets: Socket[] = [];
  let onProgress: (() => void) | undefined;
  let offsets: number[] = [];
  let complete = 0;
  let mismatches: string[] = [];

  process.on('message', async (message: { type: string; eventPort?: number; clientPort?: number }) => {
    if (message.type === 'round') {
      offsets = input.ids.map(() => 0);
      complete = 0;
      mismatches = [];
      sockets = await Promise.all(input.ids.map((id) => connectRaw(message.clientPort!, id)));
      sockets.forEach((socket, i) => {
        const expect = want[i]!;
        socket.on('data', (chunk: Buffer) => {
          const at = offsets[i]!;
          const end = at + chunk.length;
          if (end > expect.length || expect.compare(chunk, 0, chunk.length, at, end) !== 0) {
            if (mismatches.length < 5) {
              mismatches.push(
                `client ${input.ids[i]}: unexpected bytes at offset ${at}: ${chunk.subarray(0, 40)}`,
              );
            }
          } else if (end === expect.length) {
            complete++;
          }
          offsets[i] = end;
          onProgress?.();
        });
      });
      send({ type: 'connected' });
    } else if (message.type === 'go') {
      const cpu = process.cpuUsage();
      const started = performance.now();
      const done = new Promise<void>((resolve) => {
        let last = performance.now();
        const stall = setInterval(() => {
          if (performance.now() - last > 15_000) {
            mismatches.push(`stalled: ${complete} of ${sockets.length} clients complete`);
            resolve();
          }
        }, 1000);
        onProgress = () => {
          last = performance.now();
          if (complete === sockets.length || mismatches.length > 0) {
            clearInterval(stall);
            resolve();
          }
        };
      });
      const source = await sendEvents(message.eventPort!, [], { keepOpen: true });
      await writeAll(source, chunksOf(input.wire, READ_CHUNK));
      await done;
      const elapsedMs = performance.now() - started;
      const usage = process.cpuUsage(cpu);
      source.end();
      const result: RoundResult = {
        elapsedMs,
        linesReceived: wantLines.reduce((a, b) => a + b, 0),
        bytesReceived: offsets.reduce((a, b) => a + b, 0),
        mismatches,
        loadUserMs: usage.user / 1000,
        loadSystemMs: usage.system / 1000,
      };
      for (const socket of sockets) socket.destroy();
      send({ type: 'done', result });
    } else if (message.type === 'exit') {
      process.exit(0);
    }
  });
  send({ type: 'ready' });
}

/** A user client that leaves the received bytes alone (the check compares them with the expected bytes). */
function connectRaw(port: number, id: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.on('error', () => {});
      socket.write(`${id}\r\n`, () => resolve(socket));
    });
  });
}

function nextMessage<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: { type: string }) => {
      if (message.type !== type) return;
      cleanup();
      resolve(message as T);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`the load generator exited (code ${code}) while waiting for '${type}'`));
    };
    const cleanup = () => {
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

interface E2eRound extends RoundResult {
  serverUserMs: number;
  serverSystemMs: number;
  serverElu: number;
  stats: MazeServer['stats'];
  /** For the profiled round: the server thread's wall time by stage, in ms. */
  profile?: Map<string, number>;
}

/** Where the server's thread spent a profiled round, by the function running (self time). */
const PROFILE_STAGES = [
  'profiler',
  'parse',
  'resequence',
  'route',
  'build writes',
  'socket writes',
  'socket reads',
  'garbage collection',
  'other',
  'idle',
] as const;

function stageOf(functionName: string, url: string): (typeof PROFILE_STAGES)[number] {
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(garbage collector)') return 'garbage collection';
  // The inspector's own work (mostly Profiler.stop building the profile).
  if (url === '' && functionName === 'dispatch') return 'profiler';
  const file = url.slice(url.lastIndexOf('/') + 1).replace(/\.[jt]s$/, '');
  if (file === 'parser' || (file === 'pipeline' && /^(#line|push|)$/.test(functionName))) return 'parse';
  if (file === 'resequencer' || (file === 'pipeline' && /^#(push|detachHeld)$/.test(functionName))) {
    return 'resequence';
  }
  if (file === 'router' || (file === 'pipeline' && functionName === '#release')) return 'route';
  if (file === 'client-writer' || (file === 'pipeline' && functionName === 'flush')) return 'build writes';
  if (functionName === 'createUnsafeBuffer' || functionName === 'allocUnsafe') return 'build writes';
  if (
    /^(writeBuffer|writev|writeLatin1String|writeUtf8String|createWriteWrap|handleWriteReq)$/.test(
      functionName,
    )
  ) {
    return 'socket writes';
  }
  if (/writable|stream_base_commons/.test(url) && !/onStreamRead/.test(functionName)) return 'socket writes';
  if (/onStreamRead|readable/.test(`${functionName} ${url}`)) return 'socket reads';
  return 'other';
}

async function profiled<T>(fn: () => Promise<T>): Promise<{ result: T; byStage: Map<string, number> }> {
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 250 });
    await session.post('Profiler.start');
    const result = await fn();
    const { profile } = await session.post('Profiler.stop');
    const selfUs = new Map<number, number>();
    const samples = profile.samples ?? [];
    const deltas = profile.timeDeltas ?? [];
    for (let i = 0; i < samples.length; i++) {
      selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + (deltas[i] ?? 0));
    }
    const byStage = new Map<string, number>(PROFILE_STAGES.map((stage) => [stage, 0]));
    for (const node of profile.nodes) {
      const us = selfUs.get(node.id);
      if (us === undefined) continue;
      const stage = stageOf(node.callFrame.functionName, node.callFrame.url);
      byStage.set(stage, byStage.get(stage)! + us / 1000);
    }
    return { result, byStage };
  } finally {
    session.disconnect();
  }
}

/**
 * Runs `rounds` measured rounds, each on a fresh server and fresh clients (a new follow graph),
 * then one more under the CPU profiler for the breakdown (its timing is not used: the profiler
 * slows the server down).
 */
async function endToEnd(input: Input, rounds: number): Promise<E2eRound[]> {
  const child = fork(fileURLToPath(import.meta.url), ['--maze-load', String(input.events)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const out: E2eRound[] = [];
  try {
    await nextMessage(child, 'ready');
    for (let round = 0; round <= rounds; round++) {
      const profile = round === rounds;
      const log: string[] = [];
      const server = await startMaze({
        eventPort: 0,
        clientPort: 0,
        window: WINDOW,
        log: (m) => log.push(m),
      });
      try {
        child.send({ type: 'round', eventPort: server.eventPort, clientPort: server.clientPort });
        await nextMessage(child, 'connected');
        await waitFor(() => server.stats.clients === CLIENTS, 'the clients to identify');
        const cpu = process.cpuUsage();
        const elu = performance.eventLoopUtilization();
        const go = async () => {
          const done = nextMessage<{ result: RoundResult }>(child, 'done');
          child.send({ type: 'go', eventPort: server.eventPort });
          return (await done).result;
        };
        let result: RoundResult;
        let byStage: Map<string, number> | undefined;
        if (profile) ({ result, byStage } = await profiled(go));
        else result = await go();
        const usage = process.cpuUsage(cpu);
        const utilization = performance.eventLoopUtilization(elu).utilization;
        const problems = log.filter((m) => !m.startsWith('event source run') && !m.includes('disconnected'));
        if (result.mismatches.length > 0 || problems.length > 0) {
          throw new Error(
            `end-to-end check failed: ${[...result.mismatches, ...problems].slice(0, 5).join('; ')}`,
          );
        }
        out.push({
          ...result,
          serverUserMs: usage.user / 1000,
          serverSystemMs: usage.system / 1000,
          serverElu: utilization,
          stats: server.stats,
          ...(byStage === undefined ? {} : { profile: byStage }),
        });
      } finally {
        await server.close();
      }
    }
  } finally {
    child.send({ type: 'exit' });
  }
  return out;
}

// ---- the stages, in-process, without sockets ----

/** A sink that drops what it is given (writes cost only the buffer building). */
class NullSink implements ByteSink {
  readonly writableLength = 0;
  bytes = 0;
  write(chunk: Uint8Array): boolean {
    this.bytes += chunk.length;
    return true;
  }
}

/** efr's stream resequencer: every push appends, sorts the buffer and releases the contiguous prefix. */
class SortPerEventResequencer<T> {
  #buffer: { seq: number; item: T }[] = [];
  #next = 1;
  push(seq: number, item: T): T[] {
    if (seq < this.#next) return [];
    this.#buffer.push({ seq, item });
    this.#buffer.sort((a, b) => a.seq - b.seq);
    let k = 0;
    while (k < this.#buffer.length && this.#buffer[k]!.seq === this.#next) {
      k++;
      this.#next++;
    }
    return k === 0 ? [] : this.#buffer.splice(0, k).map((e) => e.item);
  }
}

/** Splits and parses every chunk; keeps the events only when asked (keeping a million costs GC time). */
function parseAll(chunks: Buffer[], keep: MazeEvent[] | undefined): number {
  let count = 0;
  const splitter = new LineSplitter(
    1024,
    (buf, start, end) => {
      const event = parseEvent(buf, start, end);
      if (!(event instanceof MazeEvent)) throw new Error(`bench input has a bad line: ${event.reason}`);
      count++;
      keep?.push(event);
    },
    () => {
      throw new Error('bench input has an over-long line');
    },
  );
  for (const chunk of chunks) splitter.push(chunk);
  return count;
}

function newRouter(ids: number[]): { router: Router; sinks: NullSink[] } {
  const router = new Router({
    onSlowClient: () => {
      throw new Error('a null sink is never slow');
    },
  });
  const sinks = ids.map((id) => {
    const sink = new NullSink();
    router.add(new ClientWriter(id, sink, Number.MAX_SAFE_INTEGER));
    return sink;
  });
  return { router, sinks };
}

function periodMs(task: Task): number {
  const r = task.result;
  if (r.state !== 'completed') {
    throw new Error(`bench task ${task.name} did not complete: ${r.state}`, {
      cause: r.state === 'errored' ? r.error : undefined,
    });
  }
  return r.latency.p50;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

export async function run(opts: { quick: boolean }): Promise<BenchRow[]> {
  const events = opts.quick ? 50_000 : 1_000_000;
  const input = makeInput(events);
  input.lines = []; // the server process keeps only the bytes it is sent, as a real one would
  const n = events + 1;
  const chunks = chunksOf(input.wire, READ_CHUNK);

  // End to end first, while this process holds nothing else (a big heap would slow its GC).
  const rounds = await endToEnd(input, 3);

  const parsed: MazeEvent[] = [];
  parseAll(chunks, parsed);
  const ordered = [...parsed].sort((a, b) => a.seq - b.seq);
  // Events per chunk, to flush the router at the same points as the server does.
  const perChunk = Math.max(1, Math.round(n / chunks.length));

  const bench = new Bench({
    time: 0,
    iterations: opts.quick ? 5 : 3,
    warmupTime: 0,
    warmupIterations: 1,
  });
  let routeMs = 0;
  let buildMs = 0;
  bench
    .add('parse (split lines, parse fields)', () => {
      if (parseAll(chunks, undefined) !== n) throw new Error('parse lost events');
    })
    .add('resequence: Resequencer stream', () => {
      const r = new Resequencer<MazeEvent>({ window: WINDOW });
      let released = 0;
      for (let i = 0; i < parsed.length; i++) released += r.push(parsed[i]!.seq, parsed[i]!).length;
      if (released !== n) throw new Error(`Resequencer released ${released} of ${n}`);
    })
    .add('resequence: sort-per-event (efr stream mode)', () => {
      const r = new SortPerEventResequencer<MazeEvent>();
      let released = 0;
      for (let i = 0; i < parsed.length; i++) released += r.push(parsed[i]!.seq, parsed[i]!).length;
      if (released !== n) throw new Error(`sort-per-event released ${released} of ${n}`);
    })
    .add(
      'route + build writes',
      () => {
        const { router } = newRouter(input.ids);
        for (let i = 0; i < ordered.length; i += perChunk) {
          const t0 = performance.now();
          const end = Math.min(ordered.length, i + perChunk);
          for (let k = i; k < end; k++) router.route(ordered[k]!);
          const t1 = performance.now();
          router.flush();
          routeMs += t1 - t0;
          buildMs += performance.now() - t1;
        }
      },
      {
        beforeEach: () => {
          routeMs = buildMs = 0;
        },
      },
    )
    .add('pipeline in-process (all stages, no sockets)', () => {
      const { router, sinks } = newRouter(input.ids);
      const pipeline = new EventPipeline({
        mode: 'stream',
        window: WINDOW,
        gapTimeoutMs: Number.POSITIVE_INFINITY,
        maxLineBytes: 1024,
        router,
        log: (m) => {
          throw new Error(`bench input problem: ${m}`);
        },
      });
      pipeline.startRun();
      for (const chunk of chunks) {
        pipeline.push(chunk);
        pipeline.flush();
      }
      if (pipeline.stats.routed !== n) throw new Error('pipeline lost events');
      if (sinks.reduce((a, s) => a + s.bytes, 0) !== rounds[0]!.bytesReceived) {
        throw new Error('pipeline wrote other bytes than the server did');
      }
    });
  await bench.run();
  const ms = (name: string) => periodMs(bench.tasks.find((t) => t.name === name)!);

  const measured = rounds.filter((r) => r.profile === undefined);
  const e2eMs = median(measured.map((r) => r.elapsedMs));
  const e2e = measured.find((r) => r.elapsedMs === e2eMs)!;
  const profile = rounds.find((r) => r.profile !== undefined)!;
  const parseMs = ms('parse (split lines, parse fields)');
  const reseqMs = ms('resequence: Resequencer stream');
  const naiveMs = ms('resequence: sort-per-event (efr stream mode)');
  const pipelineMs = ms('pipeline in-process (all stages, no sockets)');
  // The last iteration's split (tinybench keeps only totals); route + build is the task's own time.
  const routeBuildMs = ms('route + build writes');
  const routeShare = routeMs / (routeMs + buildMs);
  const stage = (name: string, stageMs: number, extra: Record<string, number | string> = {}): BenchRow => ({
    name,
    value: (stageMs * 1e6) / n,
    unit: 'ns/event',
    extra: {
      ms: Number(stageMs.toFixed(1)),
      shareOfEndToEnd: `${((100 * stageMs) / e2eMs).toFixed(1)}%`,
      ...extra,
    },
  });
  const rows: BenchRow[] = [
    {
      name: 'end to end: source -> forwarder -> 100 clients (loopback TCP, every byte checked)',
      value: n / (e2eMs / 1000),
      unit: 'events/s',
      extra: {
        events: n,
        users: USERS,
        clients: CLIENTS,
        sourceBatchMax: MAX_SOURCE_BATCH,
        window: WINDOW,
        linesDelivered: e2e.linesReceived,
        linesPerSec: Math.round(e2e.linesReceived / (e2eMs / 1000)),
        bytesIn: input.wire.length,
        bytesOut: e2e.bytesReceived,
        mbOutPerSec: Number((e2e.bytesReceived / 2 ** 20 / (e2eMs / 1000)).toFixed(1)),
        roundsMs: measured.map((r) => r.elapsedMs.toFixed(0)).join(' / '),
        serverCpuUserMs: Math.round(e2e.serverUserMs),
        serverCpuSystemMs: Math.round(e2e.serverSystemMs),
        serverEventLoopUtilization: Number(e2e.serverElu.toFixed(2)),
        loadGeneratorCpuUserMs: Math.round(e2e.loadUserMs),
        loadGeneratorCpuSystemMs: Math.round(e2e.loadSystemMs),
        followEdgesAtEnd: e2e.stats.followEdges,
      },
    },
    {
      name: 'end to end: server process CPU (user + system) per event',
      value: ((e2e.serverUserMs + e2e.serverSystemMs) * 1e6) / n,
      unit: 'ns/event',
      extra: {
        eventsPerServerCpuSecond: Math.round(n / ((e2e.serverUserMs + e2e.serverSystemMs) / 1000)),
        note: 'robust to other load on the machine, unlike the wall-clock rate',
      },
    },
    {
      name: 'pipeline in-process (all stages, no sockets)',
      value: n / (pipelineMs / 1000),
      unit: 'events/s',
      extra: {
        ms: Number(pipelineMs.toFixed(1)),
        shareOfEndToEnd: `${((100 * pipelineMs) / e2eMs).toFixed(1)}%`,
      },
    },
    { name: 'resequence: Resequencer stream', value: n / (reseqMs / 1000), unit: 'items/s' },
    { name: 'resequence: sort-per-event (efr stream mode)', value: n / (naiveMs / 1000), unit: 'items/s' },
    stage('stage: parse (split lines, parse fields)', parseMs),
    stage('stage: resequence (Resequencer stream, w=1024)', reseqMs),
    stage('stage: route (follow graph, queue per client)', routeBuildMs * routeShare),
    stage('stage: build writes (one buffer per client per turn)', routeBuildMs * (1 - routeShare)),
    stage('stage: sockets (end to end minus the in-process pipeline)', e2eMs - pipelineMs, {
      note: 'TCP writes and reads on both sides, the load generator, IPC',
    }),
  ];
  const byStage = profile.profile!;
  const profileTotal = [...byStage.values()].reduce((a, b) => a + b, 0) - byStage.get('profiler')!;
  byStage.delete('profiler');
  for (const [stageName, stageMs] of byStage) {
    rows.push({
      name: `end to end, server thread (cpu profile): ${stageName}`,
      value: (100 * stageMs) / profileTotal,
      unit: '% of wall',
      extra: { ms: Math.round(stageMs), profiledRoundMs: Math.round(profileTotal) },
    });
  }
  compare(rows, 'resequence: Resequencer stream', 'resequence: sort-per-event (efr stream mode)', {
    target: 5,
  });
  compare(
    rows,
    'pipeline in-process (all stages, no sockets)',
    'end to end: source -> forwarder -> 100 clients (loopback TCP, every byte checked)',
  );
  const cpuStages = parseMs + reseqMs + routeBuildMs;
  const share = (stageName: string) => (100 * byStage.get(stageName)!) / profileTotal;
  console.log(
    `server thread during a profiled end-to-end round: socket writes ${share('socket writes').toFixed(0)}%, ` +
      `parse ${share('parse').toFixed(0)}%, resequence ${share('resequence').toFixed(0)}%, route ` +
      `${share('route').toFixed(0)}%, build writes ${share('build writes').toFixed(0)}%, GC ` +
      `${share('garbage collection').toFixed(0)}%, socket reads ${share('socket reads').toFixed(0)}%, other ` +
      `${share('other').toFixed(0)}%, idle ${share('idle').toFixed(0)}%`,
  );
  console.log(
    `end to end: ${n.toLocaleString()} events in ${e2eMs.toFixed(0)} ms (${formatRate(n / (e2eMs / 1000))} events/s, ` +
      `${e2e.linesReceived.toLocaleString()} lines to ${CLIENTS} clients); parse + resequence + route + build ` +
      `in-process: ${cpuStages.toFixed(0)} ms (${((100 * cpuStages) / e2eMs).toFixed(0)}% of end to end); ` +
      `server CPU during the run: ${e2e.serverUserMs.toFixed(0)} ms user + ${e2e.serverSystemMs.toFixed(0)} ms system; ` +
      `load generator: ${e2e.loadUserMs.toFixed(0)} ms user + ${e2e.loadSystemMs.toFixed(0)} ms system`,
  );
  return rows;
}

function formatRate(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : `${(n / 1e3).toFixed(0)}k`;
}

const loadArg = process.argv.indexOf('--maze-load');
if (loadArg !== -1) await loadChild(Number(process.argv[loadArg + 1]));
else if (isMain(import.meta.url)) await main('maze', run);
