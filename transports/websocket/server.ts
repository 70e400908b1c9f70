/**
 * The WebSocket gateway: serves any fabric (memory, sab, redis, another gateway) to remote Node and
 * browser clients over protocol v1 (docs/protocol.md). Node only.
 *
 * Guarantees: a subscription delivers a stream from the position the client asked for, in order,
 * each event once per subscription, and is fed only as fast as its socket drains; a publish retried
 * with the same session key is applied at most once. Constraints: every per-connection resource is
 * bounded by an option (buffered bytes, requests in flight, subscriptions, streams), so a client can
 * only ever hurt itself: bad input closes that connection with a coded reason, and the process and
 * every other client keep working.
 */
import { createServer, type Server as HttpServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import { ErrorCode, InvalidArgumentError, show, WeftError } from '../../core/errors.js';
import type { Fabric } from '../../core/fabric.js';
import type { Stream } from '../../core/stream.js';
import type { GroupOperations } from '../../core/transport.js';
import type { RetentionOptions, StartPosition, WeftEvent } from '../../core/types.js';
import {
  type ClientMessage,
  CloseCode,
  closeReason,
  decode,
  EventsFlag,
  encode,
  encodeEventsBody,
  eventsMessage,
  flatEvents,
  fromWireError,
  Op,
  PROTOCOL_VERSION,
  ProtocolError,
  parseClientMessage,
  toWireError,
  type WelcomeInfo,
  WireErrorCode,
} from './protocol.js';
import { type PublishOutcome, type Session, SessionStore } from './sessions.js';

/** What a principal asks to do on a stream: publish (and close/fail), follow (and read), consume (sinks). */
export type GatewayAction = 'publish' | 'follow' | 'consume';

export interface ServeWebSocketOptions {
  /** The fabric to serve. The gateway never closes it. */
  fabric: Fabric;
  /** Interface to listen on. @default '127.0.0.1' */
  host?: string;
  /** Port to listen on; 0 picks a free one (see `gateway.port`). @default 7070 */
  port?: number;
  /** Attach to this HTTP(S) server instead of listening (its `upgrade` requests on `path` are served). */
  server?: HttpServer;
  /** Only upgrade requests for this path are accepted. @default any path */
  path?: string;
  /**
   * Checks the token of a client's HELLO (and the HTTP upgrade request: cookies, address). Returns
   * the principal, or `null`/`undefined`/`false` to refuse (the connection closes with 4001).
   * When set, nothing but WELCOME or the 4001 close is sent before it resolves.
   */
  authenticate?: (token: string | undefined, request: IncomingMessage) => unknown | Promise<unknown>;
  /** Allows or refuses one action on one stream; called for every request (keep it cheap). @default allow all */
  authorize?: (principal: unknown, action: GatewayAction, stream: string) => boolean;
  /** Largest message a client may send, in bytes (larger: close 1009). @default 1 MiB */
  maxPayloadBytes?: number;
  /** PING interval; a client silent for 2x this long is dropped. @default 15000 */
  heartbeatMs?: number;
  /** Time a new connection has to send HELLO (else close 1008). @default 10000 */
  helloTimeoutMs?: number;
  /** A connection's subscriptions stop pulling events above this many buffered bytes. @default 1 MiB */
  highWaterBytes?: number;
  /** ... and resume below this many. @default highWaterBytes / 4 */
  lowWaterBytes?: number;
  /** Above this many buffered bytes the gateway stops reading the client's requests. @default 8 MiB */
  maxBufferedBytes?: number;
  /**
   * A subscription whose socket is not draining and that falls more than this many events behind
   * the stream's newest event is cut: the connection closes with 4008 and the client resumes
   * (or learns it was truncated). @default 100000
   */
  maxLagEvents?: number;
  /** How often a stalled connection's lag is checked, in ms. @default 250 */
  lagCheckMs?: number;
  /** Subscriptions per connection (more: END with WEFT_ERR_LIMIT). @default 10000 */
  maxSubscriptions?: number;
  /** Stream handles per connection (more: every request on them fails with WEFT_ERR_LIMIT). @default 10000 */
  maxStreams?: number;
  /** Requests in flight per connection; beyond it the gateway stops reading that client. @default 1024 */
  maxInflightRequests?: number;
  /** Events per EVENTS message at most. @default 1024 */
  maxEventsPerFrame?: number;
  /** Events per READ answer at most. @default 1000 */
  maxReadEvents?: number;
  /** Publish outcomes remembered per session for idempotent retries. @default 4096 */
  idempotencyWindow?: number;
  /** How long a disconnected client's session is kept for a resume, in ms. @default 120000 */
  sessionTtlMs?: number;
  /** Sessions kept at most. @default 10000 */
  maxSessions?: number;
  /** Connections at once (more: close 1008). @default 10000 */
  maxConnections?: number;
  /**
   * Called with errors that are the gateway's or the host's, not a client's (a throwing
   * `authenticate`/`authorize`, an unexpected failure). Client faults are counted in `stats()`.
   * @default console.error
   */
  onError?: (error: Error) => void;
}

export interface GatewayStats {
  connections: number;
  sessions: number;
  subscriptions: number;
  /** Bytes queued on all sockets now. */
  bufferedBytes: number;
  /** The most bytes ever queued on one socket. */
  peakBufferedBytes: number;
  messagesSent: number;
  eventsSent: number;
  /** Connections closed for malformed input. */
  protocolErrors: number;
  /** Connections cut for lagging (4008). */
  lagCuts: number;
  /** Publishes answered from a session's idempotency record instead of being applied again. */
  deduplicatedPublishes: number;
}

/** A running gateway. */
export interface WebSocketGateway {
  /** `ws://host:port/path` to give to clients. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** Connections open now. */
  readonly connections: number;
  stats(): GatewayStats;
  /** Closes every connection (1001, clients reconnect elsewhere or later) and stops listening. Idempotent. */
  close(): Promise<void>;
  /** Resolves when the gateway has closed. Never rejects. */
  readonly closed: Promise<Error | undefined>;
  [Symbol.asyncDispose](): Promise<void>;
}

type Resolved = Required<
  Omit<ServeWebSocketOptions, 'server' | 'path' | 'authenticate' | 'authorize' | 'host' | 'port'>
> &
  Pick<ServeWebSocketOptions, 'server' | 'path' | 'authenticate' | 'authorize'> & {
    host: string;
    port: number;
  };

const OPTION_KEYS = [
  'fabric',
  'host',
  'port',
  'server',
  'path',
  'authenticate',
  'authorize',
  'maxPayloadBytes',
  'heartbeatMs',
  'helloTimeoutMs',
  'highWaterBytes',
  'lowWaterBytes',
  'maxBufferedBytes',
  'maxLagEvents',
  'lagCheckMs',
  'maxSubscriptions',
  'maxStreams',
  'maxInflightRequests',
  'maxEventsPerFrame',
  'maxReadEvents',
  'idempotencyWindow',
  'sessionTtlMs',
  'maxSessions',
  'maxConnections',
  'onError',
];

const SEND_BINARY = { binary: true } as const;
const allocBuffer = (size: number): Uint8Array => Buffer.allocUnsafe(size);

/** Target size of one EVENTS message: a batch whose encoding is larger is split (when it has > 1 event). */
const FRAME_TARGET_BYTES = 256 * 1024;

/**
 * Starts a gateway serving `options.fabric` and resolves once it listens.
 * @throws InvalidArgumentError naming a bad option; the listen error (EADDRINUSE ...) as is.
 */
export async function serveWebSocket(options: ServeWebSocketOptions): Promise<WebSocketGateway> {
  const gateway = new Gateway(resolveOptions(options));
  await gateway.listen();
  return gateway;
}

function resolveOptions(o: ServeWebSocketOptions): Resolved {
  if (o === null || typeof o !== 'object') {
    throw new InvalidArgumentError(`serveWebSocket options must be an object, got ${show(o)}`);
  }
  for (const key of Object.keys(o)) {
    if (!OPTION_KEYS.includes(key)) {
      throw new InvalidArgumentError(
        `serveWebSocket has an unknown option '${key}' (known: ${OPTION_KEYS.join(', ')})`,
      );
    }
  }
  const f = o.fabric as Partial<Fabric> | undefined;
  if (f === null || typeof f !== 'object' || typeof f.stream !== 'function' || f.transport === undefined) {
    throw new InvalidArgumentError(`serveWebSocket options.fabric must be a Fabric, got ${show(o.fabric)}`);
  }
  const int = (name: keyof ServeWebSocketOptions, fallback: number, min = 1): number => {
    const v = o[name] ?? fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      throw new InvalidArgumentError(
        `serveWebSocket options.${name} must be an integer >= ${min}, got ${show(v)}`,
      );
    }
    return v;
  };
  const fn = <F>(name: keyof ServeWebSocketOptions): F | undefined => {
    const v = o[name];
    if (v !== undefined && typeof v !== 'function') {
      throw new InvalidArgumentError(`serveWebSocket options.${name} must be a function, got ${show(v)}`);
    }
    return v as F | undefined;
  };
  if (o.host !== undefined && typeof o.host !== 'string') {
    throw new InvalidArgumentError(`serveWebSocket options.host must be a string, got ${show(o.host)}`);
  }
  if (o.path !== undefined && (typeof o.path !== 'string' || !o.path.startsWith('/'))) {
    throw new InvalidArgumentError(`serveWebSocket options.path must start with '/', got ${show(o.path)}`);
  }
  if (o.server !== undefined && (typeof o.server !== 'object' || typeof o.server?.on !== 'function')) {
    throw new InvalidArgumentError(
      `serveWebSocket options.server must be an http.Server, got ${show(o.server)}`,
    );
  }
  const highWaterBytes = int('highWaterBytes', 1 << 20);
  const lowWaterBytes = int('lowWaterBytes', Math.floor(highWaterBytes / 4), 0);
  if (lowWaterBytes > highWaterBytes) {
    throw new InvalidArgumentError(
      `serveWebSocket options.lowWaterBytes (${lowWaterBytes}) must not exceed highWaterBytes (${highWaterBytes})`,
    );
  }
  return {
    fabric: o.fabric,
    host: o.host ?? '127.0.0.1',
    port: int('port', 7070, 0),
    server: o.server,
    path: o.path,
    authenticate: fn('authenticate'),
    authorize: fn('authorize'),
    maxPayloadBytes: int('maxPayloadBytes', 1 << 20, 64),
    heartbeatMs: int('heartbeatMs', 15_000),
    helloTimeoutMs: int('helloTimeoutMs', 10_000),
    highWaterBytes,
    lowWaterBytes,
    maxBufferedBytes: Math.max(int('maxBufferedBytes', 8 << 20), highWaterBytes),
    maxLagEvents: int('maxLagEvents', 100_000),
    lagCheckMs: int('lagCheckMs', 250),
    maxSubscriptions: int('maxSubscriptions', 10_000),
    maxStreams: int('maxStreams', 10_000),
    maxInflightRequests: int('maxInflightRequests', 1024),
    maxEventsPerFrame: int('maxEventsPerFrame', 1024),
    maxReadEvents: int('maxReadEvents', 1000),
    idempotencyWindow: int('idempotencyWindow', 4096),
    sessionTtlMs: int('sessionTtlMs', 120_000),
    maxSessions: int('maxSessions', 10_000),
    maxConnections: int('maxConnections', 10_000),
    onError: fn<(e: Error) => void>('onError') ?? ((e) => console.error('weft websocket gateway:', e)),
  };
}

// ------------------------------------------------------------------ the gateway

/**
 * A whole EVENTS message, shared by every subscription that sends the same events: messages are
 * addressed to the stream's channel (not to one subscription), so the bytes are identical.
 */
interface MessageCacheEntry {
  first: WeftEvent;
  last: WeftEvent;
  flags: number;
  message: Uint8Array;
}
const MESSAGE_CACHE_SIZE = 4;

class Gateway implements WebSocketGateway {
  readonly options: Resolved;
  readonly sessions: SessionStore;
  readonly conns = new Set<Connection>();
  readonly closed: Promise<Error | undefined>;
  readonly counters = {
    messagesSent: 0,
    eventsSent: 0,
    protocolErrors: 0,
    lagCuts: 0,
    deduplicatedPublishes: 0,
    peakBufferedBytes: 0,
  };
  readonly welcomeSupports: WelcomeInfo['supports'];
  #http: HttpServer | undefined;
  #ownsHttp: boolean;
  #wss: WebSocketServer | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #closing: Promise<void> | undefined;
  #settle!: (e: Error | undefined) => void;
  #messages = new WeakMap<Stream<unknown>, MessageCacheEntry[]>();
  #channels = new WeakMap<Stream<unknown>, number>();
  #nextChannel = 1;
  host = '';
  port = 0;

  constructor(options: Resolved) {
    this.options = options;
    this.sessions = new SessionStore({
      window: options.idempotencyWindow,
      ttlMs: options.sessionTtlMs,
      maxSessions: options.maxSessions,
    });
    const s = options.fabric.transport.supports;
    this.welcomeSupports = {
      replay: s.replay,
      retention: { ...s.retention },
      epochs: s.epochs,
      groups: s.groups && options.fabric.transport.groups !== undefined,
    };
    this.#ownsHttp = options.server === undefined;
    this.closed = new Promise((resolve) => {
      this.#settle = resolve;
    });
  }

  get url(): string {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `ws://${host}:${this.port}${this.options.path ?? ''}`;
  }
  get connections(): number {
    return this.conns.size;
  }
  get groups(): GroupOperations | undefined {
    return this.welcomeSupports.groups ? this.options.fabric.transport.groups : undefined;
  }

  async listen(): Promise<void> {
    const o = this.options;
    const http =
      o.server ??
      createServer((_req, res) => {
        res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
        res.end('weft gateway: WebSocket only (protocol v1)\n');
      });
    this.#http = http;
    const wss = new WebSocketServer({
      server: http,
      path: o.path,
      maxPayload: o.maxPayloadBytes,
      perMessageDeflate: false,
      clientTracking: false,
    });
    this.#wss = wss;
    wss.on('connection', (ws, req) => this.#accept(ws, req));
    wss.on('error', (e) => o.onError(e)); // re-emitted server errors; listen errors are thrown below
    if (this.#ownsHttp) {
      await new Promise<void>((resolve, reject) => {
        http.once('error', reject);
        http.listen(o.port, o.host, () => {
          http.off('error', reject);
          resolve();
        });
      });
    }
    const addr = http.address() as AddressInfo | string | null;
    if (addr !== null && typeof addr === 'object') {
      this.host = addr.address;
      this.port = addr.port;
    } else {
      this.host = o.host;
      this.port = o.port;
    }
    this.#timer = setInterval(
      () => this.#tick(),
      Math.max(10, Math.min(o.heartbeatMs, o.helloTimeoutMs) / 2),
    );
    this.#timer.unref?.();
  }

  #accept(ws: WebSocket, req: IncomingMessage): void {
    if (this.#closing !== undefined) {
      ws.close(CloseCode.GOING_AWAY, closeReason(ErrorCode.CLOSED, 'the gateway is shutting down'));
      return;
    }
    if (this.conns.size >= this.options.maxConnections) {
      ws.on('error', () => {});
      ws.close(CloseCode.POLICY_VIOLATION, closeReason(WireErrorCode.LIMIT, 'too many connections'));
      return;
    }
    this.conns.add(new Connection(this, ws, req));
  }

  #tick(): void {
    const now = Date.now();
    for (const c of this.conns) c.tick(now);
    this.sessions.sweep();
  }

  /** The channel EVENTS of `stream` are addressed to: one number per backing stream, gateway-wide. */
  channelOf(stream: Stream<unknown>): number {
    let c = this.#channels.get(stream);
    if (c === undefined) {
      c = this.#nextChannel++;
      this.#channels.set(stream, c);
    }
    return c;
  }

  /**
   * The EVENTS message for events[from..to) of `stream`, encoded once for every subscription that
   * sends the same range (events are shared objects: identity of the first and last names the range).
   */
  message(
    stream: Stream<unknown>,
    events: readonly WeftEvent[],
    from: number,
    to: number,
    flags: number,
  ): Uint8Array {
    const first = events[from]!;
    const last = events[to - 1]!;
    let cache = this.#messages.get(stream);
    if (cache === undefined) {
      cache = [];
      this.#messages.set(stream, cache);
    }
    for (let i = 0; i < cache.length; i++) {
      const c = cache[i]!;
      if (c.first === first && c.last === last && c.flags === flags) return c.message;
    }
    const body = encodeEventsBody(events, from, to);
    const message = eventsMessage(this.channelOf(stream), first.seq, flags, body, allocBuffer);
    if (cache.length >= MESSAGE_CACHE_SIZE) cache.shift();
    cache.push({ first, last, flags, message });
    return message;
  }

  stats(): GatewayStats {
    let subscriptions = 0;
    let bufferedBytes = 0;
    for (const c of this.conns) {
      subscriptions += c.subscriptions;
      bufferedBytes += c.pendingBytes;
    }
    const { peakBufferedBytes, ...counters } = this.counters;
    return {
      connections: this.conns.size,
      sessions: this.sessions.size,
      subscriptions,
      bufferedBytes,
      peakBufferedBytes,
      ...counters,
    };
  }

  reportError(e: unknown): void {
    try {
      this.options.onError(e instanceof Error ? e : new Error(String(e)));
    } catch {
      // An onError hook that throws must not take the gateway down.
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#timer);
      const conns = [...this.conns];
      for (const c of conns) c.close(CloseCode.GOING_AWAY, ErrorCode.CLOSED, 'the gateway is shutting down');
      await Promise.all(conns.map((c) => c.gone));
      await new Promise<void>((resolve) => (this.#wss ? this.#wss.close(() => resolve()) : resolve()));
      const http = this.#http;
      if (this.#ownsHttp && http !== undefined) {
        await new Promise<void>((resolve) => {
          http.close(() => resolve());
          http.closeAllConnections?.();
        });
      }
      this.sessions.clear();
      this.#settle(undefined);
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

// ------------------------------------------------------------------ one connection

interface Handle {
  readonly name: string;
  readonly retention: RetentionOptions | undefined;
  stream?: Stream<unknown>;
  error?: Error;
}

const State = { Hello: 0, Authenticating: 1, Open: 2, Closed: 3 } as const;
type State = (typeof State)[keyof typeof State];

class Connection {
  readonly gw: Gateway;
  readonly ws: WebSocket;
  readonly req: IncomingMessage;
  /** Resolves when the socket has closed. */
  readonly gone: Promise<void>;
  state: State = State.Hello;
  principal: unknown;
  session: Session | undefined;
  pendingBytes = 0;
  #handles = new Map<number, Handle>();
  #subs = new Map<number, Subscription>();
  #inflight = 0;
  #pausedInflight = false;
  #pausedBuffer = false;
  /** Sizes of the messages whose write has not completed, oldest first (a queue with a moving head). */
  #sizes: number[] = [];
  #sizesHead = 0;
  #drainWaiters: (() => void)[] = [];
  #lastReceived = Date.now();
  #lastDrained = Date.now();
  #openedAt = Date.now();
  #pingCount = 0;
  #lagTimer: ReturnType<typeof setInterval> | undefined;
  #killTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(gw: Gateway, ws: WebSocket, req: IncomingMessage) {
    this.gw = gw;
    this.ws = ws;
    this.req = req;
    this.gone = new Promise((resolve) => {
      ws.on('close', () => {
        this.#onClosed();
        resolve();
      });
    });
    ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    // `ws` reports protocol violations (bad frames, oversize: 1002/1009) here, then closes on its own.
    ws.on('error', () => {
      gw.counters.protocolErrors++;
    });
  }

  get subscriptions(): number {
    return this.#subs.size;
  }

  // ---------------------------------------------------------------- output and back-pressure

  /**
   * Queues one message; its bytes count against the watermarks until the socket has written them.
   * Messages queued in one microtask turn go out together: one corked write (one system call,
   * one wake-up of the peer) and one completion callback, however many messages.
   */
  send(bytes: Uint8Array): void {
    if (this.state === State.Closed) return;
    const n = bytes.length;
    this.pendingBytes += n;
    this.#outBytes += n;
    this.#out.push(bytes);
    if (this.#out.length === 1) queueMicrotask(this.#flush);
    this.gw.counters.messagesSent++;
    if (this.pendingBytes > this.gw.counters.peakBufferedBytes)
      this.gw.counters.peakBufferedBytes = this.pendingBytes;
    const o = this.gw.options;
    if (this.pendingBytes > o.highWaterBytes && this.#lagTimer === undefined) {
      this.#lagTimer = setInterval(() => this.#checkLag(), o.lagCheckMs);
    }
    if (this.pendingBytes > o.maxBufferedBytes && !this.#pausedBuffer) {
      this.#pausedBuffer = true;
      this.ws.pause(); // stop reading requests: their answers would only add to the buffer
    }
  }

  #out: Uint8Array[] = [];
  #outBytes = 0;

  #flush = (): void => {
    const out = this.#out;
    if (out.length === 0) return;
    this.#out = [];
    this.#sizes.push(this.#outBytes);
    this.#outBytes = 0;
    if (this.state === State.Closed) return;
    // `ws` has no public cork: its socket is reached through the documented-by-use `_socket`; without
    // it the messages still go out, one write each.
    const raw = (this.ws as unknown as { _socket?: { cork?(): void; uncork?(): void } })._socket;
    raw?.cork?.();
    const last = out.length - 1;
    for (let i = 0; i < last; i++) this.ws.send(out[i]!, SEND_BINARY);
    this.ws.send(out[last]!, SEND_BINARY, this.#onWritten);
    raw?.uncork?.();
  };

  #onWritten = (): void => {
    const sizes = this.#sizes;
    this.pendingBytes -= sizes[this.#sizesHead++] ?? 0;
    if (this.#sizesHead > 1024 && this.#sizesHead * 2 > sizes.length) {
      this.#sizes = sizes.slice(this.#sizesHead);
      this.#sizesHead = 0;
    }
    this.#lastDrained = Date.now();
    const o = this.gw.options;
    if (this.pendingBytes <= o.lowWaterBytes) {
      if (this.#lagTimer !== undefined) {
        clearInterval(this.#lagTimer);
        this.#lagTimer = undefined;
      }
      if (this.#pausedBuffer) {
        this.#pausedBuffer = false;
        if (!this.#pausedInflight) this.ws.resume();
      }
      const waiters = this.#drainWaiters;
      if (waiters.length > 0) {
        this.#drainWaiters = [];
        for (const w of waiters) w();
      }
    }
  };

  /** True while the socket holds more than the high watermark. */
  get congested(): boolean {
    return this.pendingBytes > this.gw.options.highWaterBytes;
  }

  /** Resolves when buffered bytes fall to the low watermark (or the connection closes). */
  drained(): Promise<void> {
    if (this.pendingBytes <= this.gw.options.lowWaterBytes || this.state === State.Closed)
      return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  async #checkLag(): Promise<void> {
    const max = this.gw.options.maxLagEvents;
    for (const sub of this.#subs.values()) {
      if (!sub.blocked) continue;
      let last: number;
      try {
        last = (await sub.stream.info()).last;
      } catch {
        continue; // the stream's own end or failure reaches the subscription through its follower
      }
      if (this.state === State.Closed) return;
      if (last - sub.sent > max) {
        this.gw.counters.lagCuts++;
        this.close(
          CloseCode.LAGGED,
          ErrorCode.LAGGED,
          `subscription to '${sub.stream.name}' is ${last - sub.sent} events behind (limit ${max})`,
        );
        return;
      }
    }
  }

  #beginRequest(): void {
    if (++this.#inflight >= this.gw.options.maxInflightRequests && !this.#pausedInflight) {
      this.#pausedInflight = true;
      this.ws.pause();
    }
  }

  #endRequest(): void {
    this.#inflight--;
    if (this.#pausedInflight && this.#inflight < this.gw.options.maxInflightRequests / 2) {
      this.#pausedInflight = false;
      if (!this.#pausedBuffer) this.ws.resume();
    }
  }

  // ---------------------------------------------------------------- lifecycle

  /** Heartbeat and handshake deadlines, called by the gateway's timer. */
  tick(now: number): void {
    const o = this.gw.options;
    if (this.state === State.Hello || this.state === State.Authenticating) {
      if (now - this.#openedAt > o.helloTimeoutMs) {
        this.close(CloseCode.POLICY_VIOLATION, ErrorCode.TIMEOUT, `no HELLO within ${o.helloTimeoutMs} ms`);
      }
      return;
    }
    if (this.state !== State.Open) return;
    const limit = 2 * o.heartbeatMs;
    const silent = !this.#pausedInflight && !this.#pausedBuffer && now - this.#lastReceived > limit;
    const stuck = this.pendingBytes > 0 && now - this.#lastDrained > limit;
    if (silent || stuck) {
      this.gw.counters.protocolErrors++;
      this.#terminate();
      return;
    }
    if (now - this.#lastPing >= o.heartbeatMs) {
      this.#lastPing = now;
      this.send(encode([Op.PING, ++this.#pingCount]));
    }
  }
  #lastPing = Date.now();

  /** Closes with a code and a coded reason; stops every subscription at once. */
  close(code: number, errorCode: string, message: string): void {
    if (this.state === State.Closed) return;
    this.#flush(); // what was queued before the close goes first
    this.state = State.Closed;
    this.#stopAll();
    try {
      this.ws.close(code, closeReason(errorCode, message));
    } catch {
      this.ws.terminate();
    }
    // A peer that does not complete the closing handshake is cut after a short grace.
    this.#killTimer = setTimeout(() => this.ws.terminate(), 2_000);
    this.#killTimer.unref?.();
  }

  #terminate(): void {
    this.state = State.Closed;
    this.#stopAll();
    this.ws.terminate();
  }

  #onClosed(): void {
    this.state = State.Closed;
    clearTimeout(this.#killTimer);
    this.#stopAll();
    if (this.session !== undefined) this.gw.sessions.detach(this.session, this);
    this.gw.conns.delete(this);
  }

  #stopAll(): void {
    for (const sub of this.#subs.values()) sub.cancel();
    this.#subs.clear();
    if (this.#lagTimer !== undefined) clearInterval(this.#lagTimer);
    this.#lagTimer = undefined;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }

  // ---------------------------------------------------------------- input

  #onMessage(data: RawData, isBinary: boolean): void {
    if (this.state === State.Closed) return;
    this.#lastReceived = Date.now();
    if (!isBinary) {
      this.#protocolError(
        new ProtocolError(CloseCode.UNSUPPORTED_DATA, 'text messages are not part of the protocol'),
      );
      return;
    }
    const bytes = Array.isArray(data)
      ? Buffer.concat(data)
      : data instanceof ArrayBuffer
        ? new Uint8Array(data)
        : data;
    let msg: ClientMessage;
    try {
      msg = parseClientMessage(decode(bytes));
    } catch (e) {
      this.#protocolError(e);
      return;
    }
    if (this.state === State.Open) {
      try {
        this.#dispatch(msg);
      } catch (e) {
        if (e instanceof ProtocolError) this.#protocolError(e);
        else {
          this.gw.reportError(e);
          this.close(CloseCode.INTERNAL_ERROR, ErrorCode.TRANSPORT, 'internal error');
        }
      }
    } else if (this.state === State.Hello && msg.op === Op.HELLO) {
      void this.#hello(msg.version, msg.token, msg.session);
    } else {
      this.#protocolError(
        new ProtocolError(
          CloseCode.PROTOCOL_ERROR,
          this.state === State.Hello ? 'the first message must be HELLO' : 'no request before WELCOME',
        ),
      );
    }
  }

  #protocolError(e: unknown): void {
    this.gw.counters.protocolErrors++;
    const pe =
      e instanceof ProtocolError
        ? e
        : new ProtocolError(CloseCode.PROTOCOL_ERROR, (e as Error)?.message ?? String(e));
    this.close(pe.closeCode, ErrorCode.FRAME, pe.message);
  }

  async #hello(version: number, token: string | undefined, requested: string | undefined): Promise<void> {
    if (version !== PROTOCOL_VERSION) {
      this.close(
        CloseCode.UNSUPPORTED_VERSION,
        ErrorCode.UNSUPPORTED,
        `protocol version ${version} is not supported (this gateway speaks ${PROTOCOL_VERSION})`,
      );
      return;
    }
    this.state = State.Authenticating;
    const o = this.gw.options;
    if (o.authenticate !== undefined) {
      let principal: unknown;
      try {
        principal = await o.authenticate(token, this.req);
      } catch (e) {
        this.gw.reportError(e);
        principal = undefined;
      }
      if ((this.state as State) === State.Closed) return; // the socket closed while we waited
      if (principal === undefined || principal === null || principal === false) {
        this.close(CloseCode.UNAUTHORIZED, WireErrorCode.UNAUTHORIZED, 'authentication failed');
        return;
      }
      this.principal = principal;
    }
    const { session, resumed, previous } = this.gw.sessions.attach(this, requested);
    this.session = session;
    if (previous instanceof Connection && previous !== this) {
      previous.close(
        CloseCode.SESSION_TAKEN_OVER,
        ErrorCode.CLOSED,
        'the session was resumed by another connection',
      );
    }
    this.state = State.Open;
    const info: WelcomeInfo = {
      session: session.id,
      resumed,
      maxPayloadBytes: o.maxPayloadBytes,
      heartbeatMs: o.heartbeatMs,
      supports: this.gw.welcomeSupports,
    };
    this.send(encode([Op.WELCOME, PROTOCOL_VERSION, info]));
  }

  #dispatch(msg: ClientMessage): void {
    switch (msg.op) {
      case Op.PUBLISH:
        this.#publish(msg.reqId, msg.sid, msg.key, msg.items);
        return;
      case Op.OPEN: {
        if (this.#handles.has(msg.sid))
          throw new ProtocolError(CloseCode.PROTOCOL_ERROR, `stream handle ${msg.sid} is already open`);
        const h: Handle = { name: msg.name, retention: retentionOf(msg.retention) };
        if (this.#handles.size >= this.gw.options.maxStreams) {
          h.error = new WeftError(
            WireErrorCode.LIMIT,
            `too many streams on one connection (limit ${this.gw.options.maxStreams})`,
          );
        }
        this.#handles.set(msg.sid, h);
        return;
      }
      case Op.READ:
        this.#request(msg.reqId, () =>
          this.#bulk(async () => {
            const s = this.#stream(msg.sid, 'follow');
            const limit = Math.min(msg.limit, this.gw.options.maxReadEvents);
            return readResult(msg.from, await s.read({ from: msg.from, limit }));
          }),
        );
        return;
      case Op.BOUNDS:
        this.#request(msg.reqId, async () => {
          const s = this.#stream(msg.sid, 'follow', 'publish');
          const i = await s.info();
          return [i.epoch, i.first, i.last + 1, i.closed];
        });
        return;
      case Op.CLOSE:
        this.#request(msg.reqId, async () => {
          await this.#stream(msg.sid, 'publish').close();
          return null;
        });
        return;
      case Op.FAIL:
        this.#request(msg.reqId, async () => {
          const s = this.#stream(msg.sid, 'publish');
          await s.fail(fromWireError(msg.error, s.name));
          return null;
        });
        return;
      case Op.FOLLOW:
        this.#follow(msg.subId, msg.sid, msg.after, msg.epoch);
        return;
      case Op.UNFOLLOW: {
        const sub = this.#subs.get(msg.subId);
        if (sub !== undefined) {
          this.#subs.delete(msg.subId);
          sub.cancel();
        }
        return;
      }
      case Op.PONG:
        return;
      case Op.GROUP:
        this.#request(msg.reqId, () => {
          if (msg.method !== 'read' && msg.method !== 'claim') return this.#group(msg.method, msg.args);
          // Entries handed out change the group's state: a retried read gets the first answer.
          const run = () => this.#bulk(() => this.#group(msg.method, msg.args));
          return msg.key === undefined ? run() : this.session!.groupRead(msg.key, run);
        });
        return;
      case Op.HELLO:
        throw new ProtocolError(CloseCode.PROTOCOL_ERROR, 'HELLO was already received');
    }
  }

  /** Runs a request and answers RESULT or ERROR (never throws). */
  #request(reqId: number, run: () => Promise<unknown>): void {
    this.#beginRequest();
    let p: Promise<unknown>;
    try {
      p = run();
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (value) => {
        this.#endRequest();
        this.send(encode([Op.RESULT, reqId, value]));
      },
      (e: unknown) => {
        this.#endRequest();
        this.send(encode([Op.ERROR, reqId, toWireError(e)]));
      },
    );
  }

  /**
   * Runs requests with large answers (history pages, group reads) one at a time per connection,
   * each only once the socket has drained: like subscriptions, they are pulled at the client's
   * pace, so a client pipelining reads it does not consume cannot grow the gateway's buffers.
   */
  #bulk<T>(run: () => Promise<T>): Promise<T> {
    const result = this.#bulkChain.then(async () => {
      if (this.congested) await this.drained();
      if (this.state === State.Closed) throw new WeftError(ErrorCode.CLOSED, 'connection closed');
      return run();
    });
    this.#bulkChain = result.then(
      () => {},
      () => {},
    );
    return result;
  }
  #bulkChain: Promise<void> = Promise.resolve();

  /** The backing stream of a handle, after checking that the principal may do `action` (or `alt`) on it. */
  #stream(sid: number, action: GatewayAction, alt?: GatewayAction): Stream<unknown> {
    const h = this.#handles.get(sid);
    if (h === undefined) throw new InvalidArgumentError(`unknown stream handle ${sid} (send OPEN first)`);
    if (h.error !== undefined) throw h.error;
    if (!this.#allowed(action, h.name) && (alt === undefined || !this.#allowed(alt, h.name))) {
      throw new WeftError(WireErrorCode.FORBIDDEN, `not allowed to ${action} '${h.name}'`);
    }
    // fabric.stream validates the name and retention (InvalidArgumentError, answered to this request).
    h.stream ??= this.gw.options.fabric.stream(h.name, h.retention);
    return h.stream;
  }

  #allowed(action: GatewayAction, stream: string): boolean {
    const authorize = this.gw.options.authorize;
    if (authorize === undefined) return true;
    try {
      return authorize(this.principal, action, stream) === true;
    } catch (e) {
      this.gw.reportError(e);
      return false;
    }
  }

  #publish(reqId: number, sid: number, key: number, items: readonly (readonly unknown[])[]): void {
    const session = this.session!;
    const prior = session.lookup(key);
    if (prior !== undefined) {
      // A retry after a reconnect: answer with the first attempt's outcome, never append again.
      this.gw.counters.deduplicatedPublishes++;
      if (prior === 'forgotten') {
        this.send(
          encode([
            Op.ERROR,
            reqId,
            {
              code: WireErrorCode.UNCONFIRMED,
              name: 'WeftError',
              message: `publish ${key} is older than the gateway's idempotency window: it may or may not have been applied`,
            },
          ]),
        );
      } else if (prior instanceof Promise) {
        this.#beginRequest();
        void prior.then((o) => {
          this.#endRequest();
          this.#answerPublish(reqId, o);
        });
      } else this.#answerPublish(reqId, prior);
      return;
    }
    let appended: Promise<number>;
    try {
      const s = this.#stream(sid, 'publish');
      if (items.length === 1) {
        const item = items[0]!;
        const topic = item[1];
        appended = s.publish(
          item[0],
          topic === undefined || topic === null ? undefined : { topic: topic as string },
        );
      } else {
        const batch = items.map((item) => ({
          data: item[0],
          topic: (item[1] ?? undefined) as string | undefined,
        }));
        appended = s.publishBatch(batch).then((seqs) => seqs[0]!);
      }
    } catch (e) {
      appended = Promise.reject(e);
    }
    this.#beginRequest();
    const outcome = appended.then(
      (seq): PublishOutcome => ({ seq }),
      (e: unknown): PublishOutcome => ({ error: toWireError(e) }),
    );
    session.remember(key, outcome);
    void outcome.then((o) => {
      this.#endRequest();
      this.#answerPublish(reqId, o);
    });
  }

  #answerPublish(reqId: number, o: PublishOutcome): void {
    this.send(encode('seq' in o ? [Op.RESULT, reqId, o.seq] : [Op.ERROR, reqId, o.error]));
  }

  #follow(subId: number, sid: number, after: number, epoch: string | undefined): void {
    if (this.#subs.has(subId))
      throw new ProtocolError(CloseCode.PROTOCOL_ERROR, `subscription ${subId} already exists`);
    let stream: Stream<unknown>;
    try {
      if (this.#subs.size >= this.gw.options.maxSubscriptions) {
        throw new WeftError(
          WireErrorCode.LIMIT,
          `too many subscriptions on one connection (limit ${this.gw.options.maxSubscriptions})`,
        );
      }
      stream = this.#stream(sid, 'follow');
    } catch (e) {
      this.send(encode([Op.END, subId, toWireError(e)]));
      return;
    }
    const sub = new Subscription(this, subId, stream, after);
    this.#subs.set(subId, sub);
    void sub.run(epoch).finally(() => {
      if (this.#subs.get(subId) === sub) this.#subs.delete(subId);
    });
  }

  async #group(method: string, args: readonly unknown[]): Promise<unknown> {
    const groups = this.gw.groups;
    if (groups === undefined) {
      throw new WeftError(ErrorCode.UNSUPPORTED, "the gateway's fabric has no consumer groups");
    }
    return runGroupOperation(groups, method, args, (stream) => {
      if (!this.#allowed('consume', stream))
        throw new WeftError(WireErrorCode.FORBIDDEN, `not allowed to consume '${stream}'`);
    });
  }
}

function retentionOf(r: RetentionOptions | undefined): RetentionOptions | undefined {
  if (r === undefined) return undefined;
  // An empty map means "whatever the stream has": open it without options (core then accepts any).
  return Object.keys(r).length === 0 ? undefined : r;
}

/** A READ answer `[first, [time, topic, data, ...]]`, cut to about 256 KiB (the client reads on from where it ends). */
function readResult(from: number, events: readonly WeftEvent[]): unknown {
  let n = events.length;
  let flat = flatEvents(events, 0, n);
  while (n > 1 && encode(flat).length > FRAME_TARGET_BYTES) {
    n = Math.ceil(n / 2);
    flat = flatEvents(events, 0, n);
  }
  return [events.length > 0 ? events[0]!.seq : from, flat];
}

// ------------------------------------------------------------------ one subscription

/** One FOLLOW: a core follower on the backing stream, pulled only while the socket drains. */
class Subscription {
  readonly conn: Connection;
  readonly id: number;
  readonly stream: Stream<unknown>;
  /** The last sequence sent (the resume point the client asked for, before any). */
  sent: number;
  /** True while waiting for the socket to drain. */
  blocked = false;
  #cancelled = false;
  #stop: (() => void) | undefined;

  constructor(conn: Connection, id: number, stream: Stream<unknown>, after: number) {
    this.conn = conn;
    this.id = id;
    this.stream = stream;
    this.sent = after;
  }

  cancel(): void {
    this.#cancelled = true;
    this.#stop?.();
  }

  async run(epoch: string | undefined): Promise<void> {
    const conn = this.conn;
    const ac = new AbortController();
    this.#stop = () => ac.abort();
    try {
      if (epoch === undefined) epoch = (await this.stream.info()).epoch;
      if (this.#cancelled) return;
      conn.send(encode([Op.STARTED, this.id, epoch, conn.gw.channelOf(this.stream)]));
      const from: StartPosition = this.sent + 1;
      const follower = this.stream.follow({ from, epoch, signal: ac.signal });
      const it = follower.batches();
      for (;;) {
        if (conn.congested) {
          this.blocked = true;
          await conn.drained();
          this.blocked = false;
          if (this.#cancelled) return;
        }
        const r = await it.next();
        if (this.#cancelled) return;
        if (r.done) {
          conn.send(encode([Op.END, this.id, null]));
          return;
        }
        this.#send(r.value);
      }
    } catch (e) {
      if (!this.#cancelled) this.conn.send(encode([Op.END, this.id, toWireError(e)]));
    } finally {
      this.blocked = false;
      ac.abort();
    }
  }

  /** Sends a batch in EVENTS messages of at most `maxEventsPerFrame` events (and about 256 KiB). */
  #send(events: readonly WeftEvent[]): void {
    const gw = this.conn.gw;
    const max = gw.options.maxEventsPerFrame;
    const n = events.length;
    for (let from = 0; from < n; ) {
      let to = Math.min(n, from + max);
      let message = gw.message(this.stream, events, from, to, to < n ? EventsFlag.MORE : 0);
      while (message.length > FRAME_TARGET_BYTES && to - from > 1) {
        to = from + Math.ceil((to - from) / 2);
        message = gw.message(this.stream, events, from, to, EventsFlag.MORE);
      }
      this.conn.send(message);
      gw.counters.eventsSent += to - from;
      from = to;
    }
    this.sent = events[n - 1]!.seq;
  }
}

// ------------------------------------------------------------------ consumer groups

/**
 * Runs one GROUP request against the backing transport's `GroupOperations`, checking argument
 * types (the client is not trusted) and the 'consume' permission on every stream named.
 */
export async function runGroupOperation(
  groups: GroupOperations,
  method: string,
  args: readonly unknown[],
  check: (stream: string) => void,
): Promise<unknown> {
  const str = (i: number): string => {
    const v = args[i];
    if (typeof v !== 'string')
      throw new InvalidArgumentError(`GROUP ${method} argument ${i} must be a string, got ${show(v)}`);
    return v;
  };
  const num = (i: number): number => {
    const v = args[i];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
      throw new InvalidArgumentError(`GROUP ${method} argument ${i} must be a number >= 0, got ${show(v)}`);
    return v;
  };
  const seqs = (i: number): number[] => {
    const v = args[i];
    if (!Array.isArray(v) || !v.every((s) => Number.isSafeInteger(s) && s >= 1))
      throw new InvalidArgumentError(
        `GROUP ${method} argument ${i} must be an array of sequences, got ${show(v)}`,
      );
    return v as number[];
  };
  const entries = (list: { event: WeftEvent; deliveries: number }[]) =>
    list.map((e) => [e.event.seq, e.event.time, e.event.topic ?? null, e.event.data, e.deliveries]);
  switch (method) {
    case 'ensure': {
      const stream = str(1);
      check(stream);
      const from = args[2];
      if (from !== 'start' && from !== 'end' && !(Number.isSafeInteger(from) && (from as number) >= 1))
        throw new InvalidArgumentError(
          `GROUP ensure from must be 'start', 'end' or a sequence, got ${show(from)}`,
        );
      await groups.ensure(str(0), stream, from as StartPosition);
      return null;
    }
    case 'read': {
      const stream = str(2);
      check(stream);
      const blockMs = Math.min(num(4), 60_000);
      return entries(await groups.read(str(0), str(1), stream, Math.min(num(3), 10_000), blockMs));
    }
    case 'claim': {
      const stream = str(2);
      check(stream);
      return entries(await groups.claim(str(0), str(1), stream, num(3), Math.min(num(4), 10_000)));
    }
    case 'ack': {
      const stream = str(1);
      check(stream);
      await groups.ack(str(0), stream, seqs(2));
      return null;
    }
    case 'release': {
      const stream = str(2);
      check(stream);
      await groups.release(str(0), str(1), stream, seqs(3));
      return null;
    }
    case 'wait': {
      const streams = args[1];
      if (!Array.isArray(streams) || !streams.every((s) => typeof s === 'string'))
        throw new InvalidArgumentError(`GROUP wait streams must be an array of names, got ${show(streams)}`);
      for (const s of streams) check(s as string);
      await groups.wait(str(0), streams as string[], Math.min(num(2), 60_000));
      return null;
    }
    default:
      throw new InvalidArgumentError(`unknown GROUP method ${show(method)}`);
  }
}
