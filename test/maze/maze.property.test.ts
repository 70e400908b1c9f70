/**
 * Model-based properties of the follower maze: random event sets, random source orders (bounded by
 * the window, or arbitrary with a wide one), random chunkings, CRLF and LF, duplicates, malformed
 * lines; each client's received bytes are compared with `modelRoute` (a naive string-splitting
 * router) applied to the release order. The pipeline runs socket-free (many runs, stream and
 * batch), then the whole server over loopback TCP (fewer runs).
 */
import type { Socket } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ByteSink,
  ClientWriter,
  connectClient,
  EventPipeline,
  modelRoute,
  Router,
  sendEvents,
} from '../../cli/maze/index.js';
import { startMaze } from '../../cli/maze.js';
import { eventually } from '../helpers/async.js';
import { fcParams } from '../helpers/fc.js';

const USERS = 5;
const user = fc.integer({ min: 1, max: USERS });

/** The part of an event line after its sequence. */
const body = fc.oneof(
  fc.tuple(user, user).map(([a, b]) => `F|${a}|${b}`),
  fc.tuple(user, user).map(([a, b]) => `U|${a}|${b}`),
  fc.constant('B'),
  fc.tuple(user, user).map(([a, b]) => `P|${a}|${b}`),
  user.map((a) => `S|${a}`),
);

/** Lines without a readable sequence: dropped, and they take no sequence. */
const GARBAGE = ['hello', 'x|B', '', '-3|B', '|B', '1.5|S|2', '99999999999999999|B'];
/** Bad lines whose sequence is readable: dropped, but they take their sequence's place. */
const badWithSeq = (seq: number, variant: number) =>
  [`${seq}|X|1|2`, `${seq}|F|1`, `${seq}|B|7`, `${seq}|S`][variant % 4]!;

interface Wire {
  /** A line as sent, with the sequence it carries (0 for garbage). */
  text: string;
  seq: number;
  valid: boolean;
}

const scenario = fc
  .record({
    bodies: fc.array(body, { maxLength: 40 }),
    clients: fc.array(user, { maxLength: 7 }),
    window: fc.oneof(fc.integer({ min: 1, max: 16 }), fc.constant(64)),
    jitter: fc.array(fc.nat(), { minLength: 48, maxLength: 48 }),
    bad: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 3 }),
    duplicates: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 3 }),
    garbage: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 3 }),
    lf: fc.array(fc.boolean(), { minLength: 48, maxLength: 48 }),
    cuts: fc.array(fc.nat(), { maxLength: 8 }),
  })
  .map((s) => {
    // Event lines 1..n, and a broadcast n + 1 that every client gets last.
    const n = s.bodies.length;
    const events: Wire[] = [...s.bodies, 'B'].map((b, i) => ({
      text: `${i + 1}|${b}`,
      seq: i + 1,
      valid: true,
    }));
    for (const [at, variant] of s.bad) {
      if (n === 0) break;
      const seq = (at % n) + 1;
      events[seq - 1] = { text: badWithSeq(seq, variant), seq, valid: false };
    }
    const sentinel = events[n]!.text;
    // Each line carrying sequence s is keyed s + jitter (jitter < window), so no line arrives a
    // full window ahead of a missing one: stream mode must then be exact.
    const keyed: { key: number; wire: Wire }[] = events.map((wire, i) => ({
      key: wire.seq + (s.jitter[i % 48]! % s.window),
      wire,
    }));
    for (const [pick, j] of s.duplicates) {
      const original = events[pick % events.length]!;
      if (!original.valid) continue;
      keyed.push({ key: original.seq + (j % s.window), wire: original });
    }
    for (const [at, which] of s.garbage) {
      keyed.push({
        key: at % (n + 2),
        wire: { text: GARBAGE[which % GARBAGE.length]!, seq: 0, valid: false },
      });
    }
    keyed.sort((a, b) => a.key - b.key);
    const wire = keyed.map((k) => k.wire);
    const bytes = Buffer.from(wire.map((w, i) => w.text + (s.lf[i % 48] ? '\n' : '\r\n')).join(''), 'latin1');
    const points = [...new Set(s.cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
    const chunks: Buffer[] = [];
    let from = 0;
    for (const point of [...points, bytes.length]) {
      chunks.push(bytes.subarray(from, point));
      from = point;
    }
    const dupCount = wire.length - events.length - s.garbage.length;
    const malformed = events.filter((e) => !e.valid).length + s.garbage.length;
    return { window: s.window, clients: s.clients, wire, chunks, sentinel, dupCount, malformed };
  });

type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

/** Stream mode releases every sequence in order. */
function streamRelease(sc: Scenario): Wire[] {
  const bySeq = new Map<number, Wire>();
  for (const w of sc.wire) if (w.seq > 0 && !bySeq.has(w.seq)) bySeq.set(w.seq, w);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

/** efr's batch mode, naively: collect `window` distinct sequences, release them sorted; late ones are dropped. */
function batchRelease(sc: Scenario): Wire[] {
  const out: Wire[] = [];
  let batch = new Map<number, Wire>();
  let next = 1;
  const release = () => {
    const sorted = [...batch.values()].sort((a, b) => a.seq - b.seq);
    out.push(...sorted);
    if (sorted.length > 0) next = sorted.at(-1)!.seq + 1;
    batch = new Map();
  };
  for (const w of sc.wire) {
    if (w.seq === 0 || w.seq < next || batch.has(w.seq)) continue;
    batch.set(w.seq, w);
    if (batch.size === sc.window) release();
  }
  release();
  return out;
}

/** What each connected user must receive, as one byte string per user. */
function expected(released: Wire[], clients: number[]): Map<number, string> {
  const out = new Map<number, string>(clients.map((id) => [id, '']));
  modelRoute(
    released.filter((w) => w.valid).map((w) => w.text),
    clients,
    (id, line) => out.set(id, `${out.get(id)}${line}\r\n`),
  );
  return out;
}

class MemorySink implements ByteSink {
  readonly chunks: Buffer[] = [];
  readonly writableLength = 0;
  write(chunk: Uint8Array): boolean {
    this.chunks.push(Buffer.from(chunk));
    return true;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }
}

function runPipeline(sc: Scenario, mode: 'stream' | 'batch') {
  const log: string[] = [];
  const router = new Router({
    onSlowClient: () => {
      throw new Error('no client is slow here');
    },
  });
  const pipeline = new EventPipeline({
    mode,
    window: sc.window,
    gapTimeoutMs: Number.POSITIVE_INFINITY,
    maxLineBytes: 64,
    router,
    log: (m) => log.push(m),
  });
  const sinks = sc.clients.map((id) => {
    const sink = new MemorySink();
    router.add(new ClientWriter(id, sink, 1 << 20));
    return sink;
  });
  pipeline.startRun();
  for (const chunk of sc.chunks) {
    // Nothing may refer to a read buffer after the flush that ends its turn: overwrite each one.
    const read = Buffer.from(chunk);
    pipeline.push(read);
    pipeline.flush();
    read.fill(0x23);
  }
  pipeline.endRun('end of input');
  return { sinks, stats: pipeline.stats, log };
}

describe('the maze pipeline (no sockets)', () => {
  it('stream mode: every client gets exactly its events, in sequence order, byte for byte', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (sc) => {
        const { sinks, stats } = runPipeline(sc, 'stream');
        const want = expected(streamRelease(sc), sc.clients);
        sc.clients.forEach((id, i) => {
          expect(sinks[i]!.text()).toBe(want.get(id));
        });
        expect(stats.malformed).toBe(sc.malformed);
        expect(stats.duplicates + stats.stale).toBe(sc.dupCount);
        expect(stats.seqsSkipped).toBe(0);
      }),
      fcParams({ numRuns: 300 }),
    );
  });

  it("batch mode: clients get efr's sorted batches (late events dropped), routed along the same graph", async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (sc) => {
        const { sinks } = runPipeline(sc, 'batch');
        const want = expected(batchRelease(sc), sc.clients);
        sc.clients.forEach((id, i) => {
          expect(sinks[i]!.text()).toBe(want.get(id));
        });
      }),
      fcParams({ numRuns: 300 }),
    );
  });
});

describe('the maze server over loopback TCP', () => {
  it('every client gets exactly its events, in sequence order, whatever the source order and chunking', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (sc) => {
        const server = await startMaze({ eventPort: 0, clientPort: 0, window: sc.window });
        let source: Socket | undefined;
        const clients = await Promise.all(sc.clients.map((id) => connectClient(server.clientPort, id)));
        try {
          await eventually(() => server.stats.clients === clients.length, 5_000, 'the clients to identify');
          source = await sendEvents(server.eventPort, sc.chunks, { keepOpen: true });
          // The sentinel broadcast is the highest sequence: once a client has it, it has everything.
          const want = expected(streamRelease(sc), sc.clients);
          await Promise.all(
            clients.map((c) => c.until(() => c.lines.includes(sc.sentinel), 5_000, `${sc.sentinel}`)),
          );
          sc.clients.forEach((id, i) => {
            expect(clients[i]!.lines.map((l) => `${l}\r\n`).join('')).toBe(want.get(id));
          });
          await eventually(() => server.stats.routed === streamRelease(sc).filter((w) => w.valid).length);
          expect(server.stats.malformed).toBe(sc.malformed);
        } finally {
          source?.destroy();
          for (const c of clients) c.close();
          await server.close();
        }
      }),
      fcParams({ numRuns: 30 }),
    );
  });
});
