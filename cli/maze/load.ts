/**
 * Tools to drive a maze server from outside, shared by the tests, the benchmark and the example:
 * a seeded event generator, efr's source order (consecutive batches, each shuffled), a reference
 * model of the routing (deliberately naive: string splits, plain maps, no shared code with the
 * server), a TCP test client that records every line it receives, and a TCP test source.
 */
import { connect, type Socket } from 'node:net';

/** A deterministic PRNG (mulberry32): the same seed gives the same events on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

export interface GenerateOptions {
  /** Events to generate: sequences 1..count. */
  count: number;
  /** User ids are 1..users. */
  users: number;
  seed: number;
  /**
   * Relative weights of the event types. @default { F: 20, U: 10, B: 2, P: 30, S: 38 }
   * Unfollows undo one of the last 64 follows (so that they change the graph).
   */
  mix?: { F: number; U: number; B: number; P: number; S: number };
}

export interface GeneratedEvents {
  /** The lines in sequence order (`lines[i]` has sequence i + 1), without terminators. */
  lines: string[];
}

const DEFAULT_MIX = { F: 20, U: 10, B: 2, P: 30, S: 38 };

export function generateEvents(options: GenerateOptions): GeneratedEvents {
  const rand = prng(options.seed);
  const mix = options.mix ?? DEFAULT_MIX;
  const total = mix.F + mix.U + mix.B + mix.P + mix.S;
  const user = () => 1 + Math.floor(rand() * options.users);
  const recentFollows: [number, number][] = [];
  const lines: string[] = new Array(options.count);
  for (let i = 0; i < options.count; i++) {
    const seq = i + 1;
    let pick = rand() * total;
    if ((pick -= mix.F) < 0) {
      const from = user();
      const to = user();
      recentFollows.push([from, to]);
      if (recentFollows.length > 64) recentFollows.shift();
      lines[i] = `${seq}|F|${from}|${to}`;
    } else if ((pick -= mix.U) < 0) {
      const [from, to] =
        recentFollows.length > 0
          ? recentFollows.splice(Math.floor(rand() * recentFollows.length), 1)[0]!
          : [user(), user()];
      lines[i] = `${seq}|U|${from}|${to}`;
    } else if ((pick -= mix.B) < 0) {
      lines[i] = `${seq}|B`;
    } else if ((pick -= mix.P) < 0) {
      lines[i] = `${seq}|P|${user()}|${user()}`;
    } else {
      lines[i] = `${seq}|S|${user()}`;
    }
  }
  return { lines };
}

/**
 * efr's source order: sequences 1..n cut into consecutive batches of 1..maxBatch (random sizes),
 * each shuffled. Returns the sequences in sending order.
 */
export function shuffleInBatches(n: number, maxBatch: number, rand: () => number): number[] {
  const order: number[] = new Array(n);
  for (let i = 0; i < n; i++) order[i] = i + 1;
  for (let start = 0; start < n; ) {
    const end = Math.min(n, start + 1 + Math.floor(rand() * maxBatch));
    for (let i = end - 1; i > start; i--) {
      const j = start + Math.floor(rand() * (i - start + 1));
      const t = order[i]!;
      order[i] = order[j]!;
      order[j] = t;
    }
    start = end;
  }
  return order;
}

/**
 * The reference model: applies `lines` (valid events, in sequence order) to a follow graph and
 * calls `deliver(user, line)` for every connected user each line must reach, in order.
 * Lines that are not valid events must be left out by the caller.
 */
export function modelRoute(
  lines: Iterable<string>,
  connectedUsers: Iterable<number>,
  deliver: (user: number, line: string) => void,
): void {
  const connected = new Set(connectedUsers);
  const followers = new Map<number, Set<number>>();
  for (const line of lines) {
    const [, type, a, b] = line.split('|');
    const from = Number(a);
    const to = Number(b);
    if (type === 'F') {
      if (!followers.has(to)) followers.set(to, new Set());
      followers.get(to)!.add(from);
      if (connected.has(to)) deliver(to, line);
    } else if (type === 'U') {
      followers.get(to)?.delete(from);
    } else if (type === 'B') {
      for (const u of connected) deliver(u, line);
    } else if (type === 'P') {
      if (connected.has(to)) deliver(to, line);
    } else if (type === 'S') {
      for (const f of followers.get(from) ?? []) if (connected.has(f)) deliver(f, line);
    } else {
      throw new Error(`modelRoute: not an event: ${JSON.stringify(line)}`);
    }
  }
}

/** A TCP user client that records what it receives. */
export interface MazeTestClient {
  readonly socket: Socket;
  /** Complete lines received so far, without their CRLF (a bare LF stays inside a line). */
  readonly lines: string[];
  /** Resolves when the server closes the connection (or it fails). */
  readonly closed: Promise<void>;
  /** Resolves once `predicate()` holds (checked on every chunk received); rejects after `timeoutMs`. */
  until(predicate: () => boolean, timeoutMs?: number, what?: string): Promise<void>;
  close(): void;
}

/**
 * Connects a user client and sends its identification: a number is sent as `<id>\r\n`, a string
 * as is (to test bad ids). Resolves once connected and the id is written.
 */
export function connectClient(
  port: number,
  id: number | string,
  options: { host?: string } = {},
): Promise<MazeTestClient> {
  const socket = connect({ port, host: options.host ?? '127.0.0.1' });
  socket.setNoDelay(true);
  const lines: string[] = [];
  let partial = '';
  const checks = new Set<() => void>();
  const wake = () => {
    for (const check of checks) check();
  };
  socket.setEncoding('latin1');
  socket.on('data', (text: string) => {
    const parts = (partial + text).split('\r\n');
    partial = parts.pop()!;
    for (const part of parts) lines.push(part);
    wake();
  });
  let isClosed = false;
  const closed = new Promise<void>((resolve) => {
    socket.on('close', () => {
      isClosed = true;
      wake();
      resolve();
    });
  });
  socket.on('error', () => {});
  const client: MazeTestClient = {
    socket,
    lines,
    closed,
    until(predicate, timeoutMs = 10_000, what = 'a condition') {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (predicate()) done();
          else if (isClosed) done(new Error(`connection closed while waiting for ${what}`));
        };
        const timer = setTimeout(
          () => done(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
          timeoutMs,
        );
        const done = (error?: Error) => {
          clearTimeout(timer);
          checks.delete(check);
          if (error) reject(error);
          else resolve();
        };
        checks.add(check);
        check();
      });
    },
    close() {
      socket.destroy();
    },
  };
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.write(typeof id === 'number' ? `${id}\r\n` : id, () => resolve(client));
    });
  });
}

/**
 * Connects as the event source and writes `chunks` in order (waiting for drain), then ends the
 * connection unless `keepOpen`. Resolves with the socket once everything is written.
 */
export async function sendEvents(
  port: number,
  chunks: Iterable<string | Uint8Array>,
  options: { host?: string; keepOpen?: boolean } = {},
): Promise<Socket> {
  const socket = connect({ port, host: options.host ?? '127.0.0.1' });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve();
    });
  });
  socket.on('error', () => {});
  await writeAll(socket, chunks);
  if (!options.keepOpen) await new Promise<void>((resolve) => socket.end(resolve));
  return socket;
}

/** Writes chunks to a socket in order, waiting for drain when its buffer is full. */
export async function writeAll(socket: Socket, chunks: Iterable<string | Uint8Array>): Promise<void> {
  for (const chunk of chunks) {
    if (socket.write(chunk)) continue;
    await new Promise<void>((resolve, reject) => {
      const onClose = () => reject(new Error('the connection closed while sending events'));
      socket.once('close', onClose);
      socket.once('drain', () => {
        socket.off('close', onClose);
        resolve();
      });
    });
  }
}
