/**
 * `weft maze`: efr's event forwarder (the "follower maze") on Weft's resequencer. One event source
 * connects over TCP and sends `seq|type|from|to` lines in any order; user clients connect over TCP
 * and send their user id; each client receives, in sequence order, exactly the events addressed to
 * it, byte for byte as read, each ending in CRLF. Guarantee (stream mode): exact as long as every
 * event arrives less than `window` sequences ahead of the lowest one still missing. Constraints:
 * memory is bounded by the window, the follow graph and `maxClientBufferBytes` per client; bad
 * input and bad clients are dropped with a log line, and nothing else stops.
 *
 * Use `startMaze(options)` from code, or `mazeMain(argv)` as a command (`weft maze --help`).
 */
import { realpathSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AbortError, InvalidArgumentError, show } from '../core/errors.js';
import {
  ClientWriter,
  EventPipeline,
  LineSplitter,
  type PipelineStats,
  parseUserId,
  Router,
  showLine,
} from './maze/index.js';

export interface MazeOptions {
  /** The event source's TCP port; 0 picks a free one (see `MazeServer.eventPort`). @default 9090 */
  eventPort?: number;
  /** The user clients' TCP port; 0 picks a free one. @default 9099 */
  clientPort?: number;
  /** The address both ports listen on. @default '127.0.0.1' */
  host?: string;
  /** `stream`: exact order. `batch`: efr's batch resequencer, sorted batches of `window`. @default 'stream' */
  resequencer?: 'stream' | 'batch';
  /**
   * Stream: how far ahead of the lowest missing sequence an event may arrive before that sequence
   * is given up. Batch: the batch size. At most 2^24. @default 1024
   */
  window?: number;
  /**
   * Stream mode only: give up a missing sequence after this long (checked every quarter of it).
   * @default Infinity (wait until the window overflows or the source disconnects)
   */
  gapTimeoutMs?: number;
  /** A client with more than this many bytes waiting to be sent is disconnected. @default 4194304 (4 MiB) */
  maxClientBufferBytes?: number;
  /** Longer event lines (without terminator) are dropped. @default 1024 */
  maxLineBytes?: number;
  /** A client that has not sent its user id after this long is disconnected. @default 10000 */
  idTimeoutMs?: number;
  /** Receives one line per problem or notable event (no terminator). @default no logging */
  log?: (message: string) => void;
  /** Closes the server when aborted; an already aborted signal makes `startMaze` reject with `AbortError`. */
  signal?: AbortSignal;
}

/** Counters since start; `clients`, `held` and `followEdges` are current values. */
export interface MazeStats extends PipelineStats {
  /** Events held by the resequencer now, waiting for a lower sequence. */
  held: number;
  /** Follow edges in the graph now. */
  followEdges: number;
  /** Identified clients connected now. */
  clients: number;
  /** Clients that sent a valid user id. */
  clientsAccepted: number;
  /** Clients disconnected for a bad or missing user id. */
  clientsRejected: number;
  /** Clients disconnected for exceeding `maxClientBufferBytes`. */
  slowClientsDropped: number;
  /** Lines queued to clients (one per client per event it receives). */
  linesDelivered: number;
  /** Bytes written to client sockets (handed to Node; the slowest may not have been sent yet). */
  bytesDelivered: number;
}

interface CheckedOptions {
  eventPort: number;
  clientPort: number;
  host: string;
  resequencer: 'stream' | 'batch';
  window: number;
  gapTimeoutMs: number;
  maxClientBufferBytes: number;
  maxLineBytes: number;
  idTimeoutMs: number;
  log: (message: string) => void;
  signal: AbortSignal | undefined;
}

const OPTION_KEYS = [
  'eventPort',
  'clientPort',
  'host',
  'resequencer',
  'window',
  'gapTimeoutMs',
  'maxClientBufferBytes',
  'maxLineBytes',
  'idTimeoutMs',
  'log',
  'signal',
];

/** A client's id line is short; anything longer is garbage. */
const MAX_ID_LINE_BYTES = 32;
/** How long `close()` lets clients drain what was already written before cutting them off. */
const CLOSE_GRACE_MS = 1000;
const kListen = Symbol('listen');
/** The longest delay setTimeout honours (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2_147_483_647;

interface ClientConnection {
  socket: Socket;
  peer: string;
  writer: ClientWriter | undefined;
  /** Why the server dropped it (for the log line on close), if it did. */
  dropped: string | undefined;
  error: Error | undefined;
}

/**
 * A running forwarder. Create it with `startMaze()`. `stats` is a snapshot, current when read.
 */
export class MazeServer {
  readonly #o: CheckedOptions;
  readonly #log: (message: string) => void;
  readonly #router: Router;
  readonly #pipeline: EventPipeline;
  readonly #eventServer: Server;
  readonly #clientServer: Server;
  readonly #sockets = new Set<Socket>();
  readonly #clients = new Map<ClientWriter, ClientConnection>();
  #source: Socket | undefined;
  #eventPort = 0;
  #clientPort = 0;
  #pollTimer: NodeJS.Timeout | undefined;
  #flushScheduled = false;
  #closing: Promise<void> | undefined;
  #onAbort: (() => void) | undefined;

  #clientsAccepted = 0;
  #clientsRejected = 0;
  #slowClientsDropped = 0;
  #bytesOfGoneClients = 0;

  /** @internal Use `startMaze()`. */
  constructor(options: CheckedOptions) {
    this.#o = options;
    this.#log = options.log;
    this.#router = new Router({ onSlowClient: (writer) => this.#dropSlow(writer) });
    this.#pipeline = new EventPipeline({
      mode: options.resequencer,
      window: options.window,
      gapTimeoutMs: options.gapTimeoutMs,
      maxLineBytes: options.maxLineBytes,
      router: this.#router,
      log: options.log,
    });
    this.#eventServer = createServer((socket) => this.#onSource(socket));
    this.#clientServer = createServer((socket) => this.#onClient(socket));
  }

  /** The event source's port (the one picked when 0 was asked for). */
  get eventPort(): number {
    return this.#eventPort;
  }

  /** The user clients' port. */
  get clientPort(): number {
    return this.#clientPort;
  }

  get stats(): MazeStats {
    let bytes = this.#bytesOfGoneClients;
    for (const writer of this.#clients.keys()) bytes += writer.bytesWritten;
    return {
      ...this.#pipeline.stats,
      held: this.#pipeline.held,
      followEdges: this.#router.graph.edges,
      clients: this.#router.clients,
      clientsAccepted: this.#clientsAccepted,
      clientsRejected: this.#clientsRejected,
      slowClientsDropped: this.#slowClientsDropped,
      linesDelivered: this.#router.deliveries,
      bytesDelivered: bytes,
    };
  }

  /**
   * Stops listening, disconnects the event source, and closes every client after it has had up
   * to a second to receive what was already written. Idempotent; never rejects.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** @internal Listens on both ports; on failure closes what was opened and rejects. */
  async [kListen](): Promise<void> {
    const { host, signal } = this.#o;
    try {
      this.#eventPort = await listen(this.#eventServer, host, this.#o.eventPort);
      this.#clientPort = await listen(this.#clientServer, host, this.#o.clientPort);
    } catch (e) {
      await this.close();
      throw e;
    }
    // Errors after listening (rare: accept failures) are logged; listen errors reject above.
    this.#eventServer.on('error', (e) => this.#log(`event-source listener: ${e.message}`));
    this.#clientServer.on('error', (e) => this.#log(`client listener: ${e.message}`));
    if (this.#pipeline.needsPoll) {
      const every = Math.max(1, Math.floor(this.#o.gapTimeoutMs / 4));
      this.#pollTimer = setInterval(() => this.#pipeline.poll(), every);
      this.#pollTimer.unref();
    }
    if (signal !== undefined) {
      this.#onAbort = () => void this.close();
      signal.addEventListener('abort', this.#onAbort, { once: true });
      if (signal.aborted) {
        await this.close();
        throw new AbortError(signal.reason);
      }
    }
  }

  async #close(): Promise<void> {
    if (this.#onAbort !== undefined) this.#o.signal?.removeEventListener('abort', this.#onAbort);
    clearInterval(this.#pollTimer);
    const closed = [this.#eventServer, this.#clientServer].map(
      (server) =>
        new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve())),
    );
    const source = this.#source;
    if (source !== undefined) {
      this.#endRun(source, 'the server is closing');
      source.destroy();
    }
    for (const socket of this.#sockets) {
      if (socket === source) continue;
      socket.end();
      setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
    }
    await Promise.all(closed);
  }

  #track(socket: Socket): void {
    if (this.#closing !== undefined) {
      socket.destroy();
      return;
    }
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
  }

  // ---- the event source ----

  #onSource(socket: Socket): void {
    this.#track(socket);
    if (socket.destroyed) return;
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    const previous = this.#source;
    if (previous !== undefined) {
      this.#log(`event source ${peer} connected: disconnecting the previous one`);
      this.#endRun(previous, 'replaced by a new event source');
      previous.destroy();
    }
    this.#source = socket;
    this.#pipeline.startRun();
    socket.on('data', (chunk: Buffer) => {
      if (this.#source !== socket) return;
      this.#pipeline.push(chunk);
      this.#scheduleFlush();
    });
    socket.on('error', (e) => this.#log(`event source ${peer}: ${e.message}`));
    socket.on('close', () => {
      if (this.#source === socket) this.#endRun(socket, 'the event source disconnected');
    });
  }

  /**
   * Writes what the reads of this event-loop turn queued, once they are all done: when the server
   * is behind, several source chunks share each client's write (writes are the dominant cost).
   */
  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(this.#flush);
  }

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    this.#pipeline.flush();
  };

  #endRun(socket: Socket, why: string): void {
    if (this.#source !== socket) return;
    this.#source = undefined;
    this.#pipeline.endRun(why);
  }

  // ---- user clients ----

  #onClient(socket: Socket): void {
    this.#track(socket);
    if (socket.destroyed) return;
    socket.setNoDelay(true);
    const connection: ClientConnection = {
      socket,
      peer: `${socket.remoteAddress}:${socket.remotePort}`,
      writer: undefined,
      dropped: undefined,
      error: undefined,
    };
    const reject = (why: string) => {
      if (connection.dropped !== undefined) return;
      connection.dropped = why;
      this.#clientsRejected++;
      socket.destroy();
    };
    const timer =
      this.#o.idTimeoutMs === Number.POSITIVE_INFINITY
        ? undefined
        : setTimeout(() => reject(`sent no user id within ${this.#o.idTimeoutMs} ms`), this.#o.idTimeoutMs);
    const splitter = new LineSplitter(
      MAX_ID_LINE_BYTES,
      (buf, start, end) => {
        // Anything after the id line is ignored.
        if (connection.writer !== undefined || socket.destroyed) return;
        const userId = parseUserId(buf, start, end);
        if (userId < 0) {
          reject(`sent ${showLine(buf, start, end)} instead of a user id`);
          return;
        }
        clearTimeout(timer);
        const writer = new ClientWriter(userId, socket, this.#o.maxClientBufferBytes);
        connection.writer = writer;
        this.#clients.set(writer, connection);
        this.#router.add(writer);
        this.#clientsAccepted++;
      },
      (bytes) => reject(`sent ${bytes} bytes without a line end instead of a user id`),
    );
    socket.on('data', (chunk: Buffer) => {
      if (connection.writer === undefined) splitter.push(chunk);
    });
    socket.on('error', (e) => {
      connection.error ??= e;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      this.#clientClosed(connection);
    });
  }

  #clientClosed(connection: ClientConnection): void {
    const { writer, peer } = connection;
    const cause = connection.error === undefined ? '' : ` (${connection.error.message})`;
    if (writer === undefined) {
      this.#log(
        connection.dropped !== undefined
          ? `client ${peer} ${connection.dropped}: disconnected`
          : `client ${peer} disconnected before sending a user id${cause}`,
      );
      return;
    }
    this.#router.remove(writer);
    this.#clients.delete(writer);
    this.#bytesOfGoneClients += writer.bytesWritten;
    // A slow client was logged when it was dropped.
    if (connection.dropped === undefined && this.#closing === undefined) {
      this.#log(`client ${peer} (user ${writer.userId}) disconnected${cause}`);
    }
  }

  #dropSlow(writer: ClientWriter): void {
    const connection = this.#clients.get(writer);
    if (connection === undefined || connection.dropped !== undefined) return;
    connection.dropped = 'too slow';
    this.#slowClientsDropped++;
    this.#log(
      `client ${connection.peer} (user ${writer.userId}) is too slow: ${writer.bufferedBytes} bytes ` +
        `waiting (maxClientBufferBytes ${this.#o.maxClientBufferBytes}): disconnected`,
    );
    this.#router.remove(writer);
    connection.socket.destroy();
  }
}

/**
 * Starts a forwarder listening on both ports. Resolves once both listen.
 * @throws (rejects) InvalidArgumentError naming the option for a bad or unknown option;
 *   AbortError when `signal` is already aborted; the listen error (e.g. EADDRINUSE) otherwise.
 */
export async function startMaze(options: MazeOptions = {}): Promise<MazeServer> {
  const checked = checkOptions(options);
  if (checked.signal?.aborted) throw new AbortError(checked.signal.reason);
  const server = new MazeServer(checked);
  await server[kListen]();
  return server;
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : port);
    });
  });
}

function checkOptions(options: MazeOptions): CheckedOptions {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidArgumentError(`options must be an object, got ${show(options)}`);
  }
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!OPTION_KEYS.includes(key)) {
      throw new InvalidArgumentError(
        `options.${key} is not a maze option (got ${show(o[key])}; known: ${OPTION_KEYS.join(', ')})`,
      );
    }
  }
  const integer = (key: string, fallback: number, min: number, max: number): number => {
    const value = o[key] ?? fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new InvalidArgumentError(
        `options.${key} must be an integer from ${min} to ${max}, got ${show(value)}`,
      );
    }
    return value;
  };
  /** A timer length: > 0 and within what setTimeout takes, or Infinity for none. */
  const duration = (key: string, fallback: number): number => {
    const value = o[key] ?? fallback;
    if (
      typeof value !== 'number' ||
      Number.isNaN(value) ||
      value <= 0 ||
      (value > MAX_TIMER_MS && value !== Number.POSITIVE_INFINITY)
    ) {
      throw new InvalidArgumentError(
        `options.${key} must be a number of ms from 1 to ${MAX_TIMER_MS}, or Infinity for none, got ${show(value)}`,
      );
    }
    return value;
  };
  const host = o.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host === '') {
    throw new InvalidArgumentError(`options.host must be a non-empty string, got ${show(host)}`);
  }
  const resequencer = o.resequencer ?? 'stream';
  if (resequencer !== 'stream' && resequencer !== 'batch') {
    throw new InvalidArgumentError(
      `options.resequencer must be 'stream' or 'batch', got ${show(resequencer)}`,
    );
  }
  if (resequencer === 'batch' && o.gapTimeoutMs !== undefined) {
    throw new InvalidArgumentError(
      `options.gapTimeoutMs applies to resequencer 'stream' only, got ${show(o.gapTimeoutMs)} with 'batch'`,
    );
  }
  const log = o.log ?? (() => {});
  if (typeof log !== 'function') {
    throw new InvalidArgumentError(`options.log must be a function, got ${show(log)}`);
  }
  const signal = o.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new InvalidArgumentError(`options.signal must be an AbortSignal, got ${show(signal)}`);
  }
  return {
    eventPort: integer('eventPort', 9090, 0, 65535),
    clientPort: integer('clientPort', 9099, 0, 65535),
    host,
    resequencer,
    window: integer('window', 1024, 1, 2 ** 24),
    gapTimeoutMs: duration('gapTimeoutMs', Number.POSITIVE_INFINITY),
    maxClientBufferBytes: integer('maxClientBufferBytes', 4 * 1024 * 1024, 1, Number.MAX_SAFE_INTEGER),
    maxLineBytes: integer('maxLineBytes', 1024, 8, 1024 * 1024),
    idTimeoutMs: duration('idTimeoutMs', 10_000),
    log: log as (message: string) => void,
    signal,
  };
}

// ---- the command ----

const USAGE = `Usage: weft maze [options]

Forwards events from one TCP event source to TCP user clients along a follow graph
(the "follower maze"). Events are lines seq|type|from|to (types F U B P S), in any order.

Options:
  --event-port N        port of the event source (default 9090; 0 picks a free one)
  --client-port N       port of the user clients (default 9099; 0 picks a free one)
  --resequencer MODE    stream (exact, the default) or batch (efr's sorted batches)
  --window N            stream: how far ahead events may arrive; batch: the batch size (default 1024)
  -h, --help            show this help

Listens on 127.0.0.1. Problems are logged to stderr, one line each. Stops on SIGINT or SIGTERM.`;

/** Where `mazeMain` writes and what stops it; the defaults are the process's. */
export interface MazeMainIo {
  /** @default a writer to process.stdout */
  stdout?: (line: string) => void;
  /** Gets usage errors and the server's log lines. @default a writer to process.stderr */
  stderr?: (line: string) => void;
  /** Stops the server when aborted. @default SIGINT or SIGTERM */
  signal?: AbortSignal;
  /** Called once the server listens (tests read the ports from it). */
  onListening?: (server: MazeServer) => void;
}

/**
 * Runs `weft maze` with `argv` (the arguments after `maze`). Resolves with the exit code: 0 after
 * `--help` or a clean stop, 2 for bad flags (after one line on stderr), 1 if the server cannot
 * start. It never calls `process.exit`: the caller sets `process.exitCode`.
 */
export async function mazeMain(argv: readonly string[], io: MazeMainIo = {}): Promise<number> {
  const stdout = io.stdout ?? ((line: string) => process.stdout.write(`${line}\n`));
  const stderr = io.stderr ?? ((line: string) => process.stderr.write(`${line}\n`));
  let options: MazeOptions;
  try {
    const parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        'event-port': { type: 'string' },
        'client-port': { type: 'string' },
        resequencer: { type: 'string' },
        window: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (parsed.values.help) {
      stdout(USAGE);
      return 0;
    }
    const v = parsed.values;
    options = {
      eventPort: flagInteger('--event-port', v['event-port'], 9090, 0, 65535),
      clientPort: flagInteger('--client-port', v['client-port'], 9099, 0, 65535),
      window: flagInteger('--window', v.window, 1024, 1, 2 ** 24),
    };
    const mode = v.resequencer ?? 'stream';
    if (mode !== 'stream' && mode !== 'batch') {
      throw new FlagError(`--resequencer must be stream or batch, got ${JSON.stringify(mode)}`);
    }
    options.resequencer = mode;
  } catch (e) {
    stderr(`weft maze: ${firstLine((e as Error).message)} (see weft maze --help)`);
    return 2;
  }

  const stop = new AbortController();
  const onSignal = () => stop.abort();
  const signals = io.signal === undefined ? (['SIGINT', 'SIGTERM'] as const) : [];
  for (const name of signals) process.once(name, onSignal);
  const stopped = new Promise<void>((resolve) => {
    stop.signal.addEventListener('abort', () => resolve(), { once: true });
    io.signal?.addEventListener('abort', () => stop.abort(), { once: true });
    if (io.signal?.aborted) stop.abort();
  });
  try {
    let server: MazeServer;
    try {
      server = await startMaze({ ...options, log: (message) => stderr(`weft maze: ${message}`) });
    } catch (e) {
      stderr(`weft maze: cannot start: ${(e as Error).message}`);
      return 1;
    }
    stdout(
      `weft maze: event source on 127.0.0.1:${server.eventPort}, clients on 127.0.0.1:${server.clientPort} ` +
        `(${options.resequencer} resequencer, window ${options.window})`,
    );
    io.onListening?.(server);
    await stopped;
    await server.close();
    return 0;
  } finally {
    for (const name of signals) process.off(name, onSignal);
  }
}

class FlagError extends Error {}

function flagInteger(
  flag: string,
  text: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (text === undefined) return fallback;
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new FlagError(`${flag} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
  }
  return value;
}

function firstLine(text: string): string {
  const end = text.indexOf('\n');
  return end === -1 ? text : text.slice(0, end);
}

/** True when this file is the script node was started with (also through an npm bin symlink). */
function isEntry(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntry()) process.exitCode = await mazeMain(process.argv.slice(2));
