/**
 * The WebSocket client transport: a fabric whose streams live behind a Weft gateway. Browser-safe
 * (no Node built-ins): it uses the WebSocket constructor it is given, else `globalThis.WebSocket`.
 *
 * Guarantees, across any number of dropped connections: every watch (core's one subscription per
 * stream) resumes from the last sequence it delivered, within the same stream epoch, and hands
 * core each event exactly once and in order (duplicates are dropped by a resequencer, a gap is
 * re-requested, never skipped); a resume the gateway can no longer serve ends the watch with
 * `TruncatedError` or `StreamResetError`. A publish is sent with a per-session idempotency key and
 * retried after a reconnect: it is confirmed, or rejected with an error the caller sees, never
 * applied twice. Requests keep their order on the wire.
 */
import {
  AbortError,
  ClosedError,
  ConfigError,
  ErrorCode,
  FrameError,
  InvalidArgumentError,
  show,
  TransportError,
  WeftError,
} from '../../core/errors.js';
import type { EventLog } from '../../core/event-log.js';
import { Resequencer, WindowFullError } from '../../core/resequencer.js';
import type {
  GroupEntry,
  GroupOperations,
  StreamBounds,
  Transport,
  TransportFactory,
  TransportStream,
  TransportSupports,
} from '../../core/transport.js';
import type { EventInput, RetentionOptions, StartPosition, WeftEvent } from '../../core/types.js';
import { type Backoff, backoffDelay, type ReconnectOptions, resolveBackoff } from './backoff.js';
import {
  CloseCode,
  decode,
  EventsFlag,
  encode,
  errorFromClose,
  FATAL_CLOSE_CODES,
  fromWireError,
  isId,
  isUint,
  isWireEvents,
  Op,
  PROTOCOL_VERSION,
  ProtocolError,
  parseServerMessage,
  type ServerMessage,
  toEvents,
  toWireError,
  type WelcomeInfo,
  type WireError,
  WireErrorCode,
} from './protocol.js';

/** The part of the WHATWG WebSocket API the client uses (browsers' WebSocket and `ws` both have it). */
export interface SocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  /** `ws` only: drops the connection at once (browsers lack it; `close()` is used there). */
  terminate?(): void;
}
export type WebSocketConstructor = new (url: string) => SocketLike;

/** Connection states reported to `onStateChange`. */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface WebSocketClientOptions {
  /** `ws://` or `wss://` address of a gateway. */
  url: string;
  /** Sent in HELLO for the gateway's `authenticate`; a function is called before every connection. */
  token?: string | (() => string | undefined | Promise<string | undefined>);
  /** The WebSocket implementation. @default globalThis.WebSocket */
  WebSocket?: WebSocketConstructor;
  /** Reconnect policy, or `false` to fail the transport on the first drop. */
  reconnect?: ReconnectOptions | false;
  /** How long the first connection may take (retrying with back-off meanwhile), in ms. @default 10000 */
  connectTimeoutMs?: number;
  /** Publishes sent and not yet confirmed at most; later ones wait their turn (in order). @default 1024 */
  maxInflightPublishes?: number;
  /** Background errors: each failed reconnect attempt, a malformed message from the gateway. */
  onError?: (error: Error) => void;
  /** Connection state changes. */
  onStateChange?: (state: ConnectionState) => void;
}

/** The keys `createFabric({ transport: 'websocket', url, ... })` accepts besides `url`. */
export const CLIENT_OPTION_KEYS: readonly string[] = [
  'token',
  'WebSocket',
  'reconnect',
  'connectTimeoutMs',
  'maxInflightPublishes',
  'onError',
  'onStateChange',
];

/** Events a watch may hold out of order before it re-subscribes from its last delivered sequence. */
const RESEQUENCER_WINDOW = 4096;
/** The ws `readyState` of an open socket. */
const OPEN = 1;

/**
 * Connects to a gateway and resolves with the transport once the first handshake completed.
 * @throws ConfigError for bad options; WeftError WEFT_ERR_UNAUTHORIZED when the token is refused;
 *   TransportError when no connection succeeded within `connectTimeoutMs`.
 */
export async function connectWebSocket(options: WebSocketClientOptions): Promise<WebSocketClientTransport> {
  const link = new Link(resolveClientOptions(options));
  await link.start();
  return new WebSocketClientTransport(link);
}

/**
 * A transport factory for `createFabric` (core's registry): with no `WebSocket` given it uses
 * `defaultWebSocket`, else `globalThis.WebSocket`.
 */
export function clientFactory(
  defaultWebSocket?: () => WebSocketConstructor | Promise<WebSocketConstructor>,
): TransportFactory {
  return {
    options: CLIENT_OPTION_KEYS,
    schemes: ['ws:', 'wss:'],
    async create(config) {
      const { transport: _name, ...rest } = config;
      const options = rest as unknown as WebSocketClientOptions;
      if (options.WebSocket === undefined && defaultWebSocket !== undefined) {
        return connectWebSocket({ ...options, WebSocket: await defaultWebSocket() });
      }
      return connectWebSocket(options);
    },
  };
}

interface ResolvedOptions {
  url: string;
  token: WebSocketClientOptions['token'];
  WebSocket: WebSocketConstructor;
  backoff: Backoff;
  connectTimeoutMs: number;
  maxInflightPublishes: number;
  onError: (e: Error) => void;
  onStateChange: (s: ConnectionState) => void;
}

function resolveClientOptions(o: WebSocketClientOptions): ResolvedOptions {
  if (o === null || typeof o !== 'object')
    throw new ConfigError(`websocket options must be an object, got ${show(o)}`);
  for (const key of Object.keys(o)) {
    if (key !== 'url' && !CLIENT_OPTION_KEYS.includes(key)) {
      throw new ConfigError(
        `websocket has an unknown option '${key}' (known: url, ${CLIENT_OPTION_KEYS.join(', ')})`,
      );
    }
  }
  if (typeof o.url !== 'string' || !/^wss?:\/\/[^/]/i.test(o.url)) {
    throw new ConfigError(`websocket option url must be a ws:// or wss:// URL, got ${show(o.url)}`);
  }
  if (o.token !== undefined && typeof o.token !== 'string' && typeof o.token !== 'function') {
    throw new ConfigError(`websocket option token must be a string or a function, got ${show(o.token)}`);
  }
  const ctor = o.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (typeof ctor !== 'function') {
    throw new ConfigError(
      'websocket option WebSocket is required where there is no global WebSocket (in Node: `import { WebSocket } from "ws"`)',
    );
  }
  const int = (key: keyof WebSocketClientOptions, fallback: number): number => {
    const v = o[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
      throw new ConfigError(`websocket option ${key} must be an integer >= 1, got ${show(v)}`);
    }
    return v;
  };
  const fn = <F>(key: keyof WebSocketClientOptions): F | undefined => {
    const v = o[key];
    if (v !== undefined && typeof v !== 'function') {
      throw new ConfigError(`websocket option ${key} must be a function, got ${show(v)}`);
    }
    return v as F | undefined;
  };
  return {
    url: o.url,
    token: o.token,
    WebSocket: ctor,
    backoff: resolveBackoff(o.reconnect),
    connectTimeoutMs: int('connectTimeoutMs', 10_000),
    maxInflightPublishes: int('maxInflightPublishes', 1024),
    onError: fn<(e: Error) => void>('onError') ?? (() => {}),
    onStateChange: fn<(s: ConnectionState) => void>('onStateChange') ?? (() => {}),
  };
}

// ------------------------------------------------------------------ the transport facade

export class WebSocketClientTransport implements Transport {
  readonly name = 'websocket';
  readonly supports: TransportSupports;
  readonly closed: Promise<Error | undefined>;
  readonly groups: GroupOperations | undefined;
  #link: Link;

  /** @internal Use `connectWebSocket()` or `createFabric({ transport: 'websocket', url })`. */
  constructor(link: Link) {
    this.#link = link;
    this.closed = link.closed;
    const info = link.info!;
    this.supports = Object.freeze({
      order: 'total',
      replay: info.supports.replay,
      crossThread: true,
      crossProcess: true,
      retention: Object.freeze({ ...info.supports.retention }),
      epochs: info.supports.epochs,
      groups: info.supports.groups,
      maxEventBytes: info.maxPayloadBytes,
    });
    this.groups = info.supports.groups ? new RemoteGroups(link) : undefined;
  }

  /** The connection state now. */
  get state(): ConnectionState {
    return this.#link.state;
  }

  /** Counters and gauges of the connection (core's `fabric.metrics().transportMetrics`). */
  metrics(): Record<string, number> {
    return this.#link.metrics();
  }

  /** Drops the current connection as if the network had (for tests and for "reconnect now"). */
  reconnect(): void {
    this.#link.drop(new TransportError('reconnect requested'));
  }

  stream(name: string, retention: RetentionOptions): TransportStream {
    return this.#link.stream(name, retention);
  }

  close(): Promise<void> {
    return this.#link.close();
  }
}

// ------------------------------------------------------------------ streams

class ClientStream implements TransportStream {
  readonly name: string;
  readonly log = undefined;
  readonly epoch = undefined;
  readonly sid: number;
  readonly openMessage: Uint8Array;
  /** The epoch of the latest bounds or subscription answer: a watch pins it for its resumes. */
  lastEpoch: string | undefined;
  #link: Link;

  constructor(link: Link, sid: number, name: string, retention: RetentionOptions) {
    this.#link = link;
    this.sid = sid;
    this.name = name;
    const hasRetention = Object.values(retention).some((v) => v !== undefined);
    this.openMessage = encode([Op.OPEN, sid, name, hasRetention ? retention : null]);
  }

  appendOne(data: unknown, topic: string | undefined, signal?: AbortSignal): Promise<number> {
    return this.#link.publish(this, [topic === undefined ? [data] : [data, topic]], signal);
  }

  append(batch: readonly EventInput[], signal?: AbortSignal): Promise<number> {
    const items = new Array<unknown[]>(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const e = batch[i]!;
      items[i] = e.topic === undefined ? [e.data] : [e.data, e.topic];
    }
    return this.#link.publish(this, items, signal);
  }

  read(from: number, limit: number, signal?: AbortSignal): Promise<WeftEvent[]> {
    return this.#link.call(
      (id) => [Op.READ, id, this.sid, from, Math.min(limit, 2 ** 31)],
      (v) => {
        if (!Array.isArray(v) || v.length !== 2 || !isUint(v[0]) || !isWireEvents(v[1]))
          throw new FrameError('READ result must be [first, [time, topic, data, ...]]');
        return toEvents(this.name, v[0], v[1]);
      },
      signal,
    );
  }

  bounds(signal?: AbortSignal): Promise<StreamBounds> {
    return this.#link.call(
      (id) => [Op.BOUNDS, id, this.sid],
      (v) => {
        if (
          !Array.isArray(v) ||
          v.length !== 4 ||
          typeof v[0] !== 'string' ||
          !isUint(v[1]) ||
          !isUint(v[2]) ||
          typeof v[3] !== 'boolean'
        )
          throw new FrameError('BOUNDS result must be [epoch, first, next, closed]');
        this.lastEpoch = v[0];
        return { epoch: v[0], first: v[1], next: v[2], closed: v[3] };
      },
      signal,
    );
  }

  watch(log: EventLog<WeftEvent>, after: number): { stop(): void } {
    return this.#link.watch(this, log, after);
  }

  async close(): Promise<void> {
    await this.#link.call(
      (id) => [Op.CLOSE, id, this.sid],
      () => undefined,
    );
  }

  async fail(error: Error): Promise<void> {
    await this.#link.call(
      (id) => [Op.FAIL, id, this.sid, toWireError(error)],
      () => undefined,
    );
  }
}

// ------------------------------------------------------------------ requests and watches

interface Request {
  readonly id: number;
  readonly frame: Uint8Array;
  readonly publish: boolean;
  /** A wake-up hint (group `wait`): after a reconnect it resolves at once instead of being sent again. */
  hint: boolean;
  readonly resolve: (value: unknown) => void;
  readonly reject: (e: Error) => void;
  /** Sent on some connection: for a publish, the gateway may have applied it. */
  sent: boolean;
  /** Answered, aborted or rejected: skip it when it comes up in the queue. */
  done: boolean;
  /** Counted in `inflightPublishes` on the current connection. */
  counted: boolean;
  cleanup: (() => void) | undefined;
}

/** Something to send in order on the current connection: a request, or a message without answer. */
type Outgoing = Request | Uint8Array;

/** One core watch: feeds a stream's local mirror, resuming across connections. */
class Watch {
  readonly stream: ClientStream;
  readonly log: EventLog<WeftEvent>;
  /** The last sequence handed to the log. */
  delivered: number;
  /** The epoch this watch follows (pinned at its start, checked by the gateway at every resume). */
  epoch: string | undefined;
  /** The subscription id on the current connection, 0 when not subscribed. */
  subId = 0;
  /** The gateway's channel for this stream (EVENTS are addressed to it), 0 before STARTED. */
  channel = 0;
  /** Events of an EVENTS group still waiting for its last message (delivered together). */
  group: WeftEvent[] | null = null;
  /** Present only while events arrived out of order or duplicated. */
  reseq: Resequencer<WeftEvent> | undefined;
  /** Drops of the present resequencer already added to the transport's counter. */
  droppedCounted = 0;
  stopped = false;

  constructor(stream: ClientStream, log: EventLog<WeftEvent>, after: number) {
    this.stream = stream;
    this.log = log;
    this.delivered = after;
    this.epoch = stream.lastEpoch;
  }
}

/** The connection manager: one socket at a time, reconnects, ordered requests, watches. */
class Link {
  readonly o: ResolvedOptions;
  readonly closed: Promise<Error | undefined>;
  info: WelcomeInfo | undefined;
  state: ConnectionState = 'connecting';
  #settleClosed!: (e: Error | undefined) => void;
  #socket: SocketLike | null = null;
  #open = false;
  #ending = false;
  #session: string | undefined;
  #streams = new Map<string, ClientStream>();
  #nextSid = 1;
  #nextReq = 1;
  #nextSub = 1;
  #nextKey = 1;
  #pending = new Map<number, Request>();
  #queue: Outgoing[] = [];
  #queueHead = 0;
  #inflightPublishes = 0;
  #watches = new Set<Watch>();
  #subs = new Map<number, Watch>();
  /** Channel -> watch, from STARTED to END/UNFOLLOW (EVENTS name the stream's channel, not the subscription). */
  #channels = new Map<number, Watch>();
  #attempt = 0;
  #lastError: Error | undefined;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  #lastReceived = 0;
  #firstConnect: { resolve: () => void; reject: (e: Error) => void; deadline: number } | undefined;

  constructor(o: ResolvedOptions) {
    this.o = o;
    this.closed = new Promise((resolve) => {
      this.#settleClosed = resolve;
    });
  }

  /** Counters since the transport was created, and gauges now. */
  readonly counters = { reconnects: 0, resubscribes: 0, duplicatesDropped: 0, unconfirmedPublishes: 0 };

  metrics(): Record<string, number> {
    return {
      connected: this.#open ? 1 : 0,
      reconnects_total: this.counters.reconnects,
      resubscribes_total: this.counters.resubscribes,
      duplicates_dropped_total: this.counters.duplicatesDropped,
      unconfirmed_publishes_total: this.counters.unconfirmedPublishes,
      pending_requests: this.#pending.size,
      inflight_publishes: this.#inflightPublishes,
      watches: this.#watches.size,
    };
  }

  /** The first connection: retried with back-off until `connectTimeoutMs`. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#firstConnect = { resolve, reject, deadline: Date.now() + this.o.connectTimeoutMs };
      this.#connect();
    });
  }

  stream(name: string, retention: RetentionOptions): ClientStream {
    let s = this.#streams.get(name);
    if (s === undefined) {
      s = new ClientStream(this, this.#nextSid++, name, retention);
      this.#streams.set(name, s);
      this.#enqueue(s.openMessage);
    }
    return s;
  }

  // ---------------------------------------------------------------- requests

  /** Sends a request (now, or after the next handshake) and resolves with its decoded answer. */
  call<T>(
    build: (id: number) => unknown[],
    decodeValue: (v: unknown) => T,
    signal?: AbortSignal,
    hint = false,
  ): Promise<T> {
    return this.#submit(build, false, signal, hint).then(decodeValue);
  }

  /** A fresh idempotency key (publishes and group reads share the session's counter). */
  nextKey(): number {
    return this.#nextKey++;
  }

  publish(stream: ClientStream, items: unknown[][], signal?: AbortSignal): Promise<number> {
    const key = this.#nextKey++;
    return this.#submit((id) => [Op.PUBLISH, id, stream.sid, key, items], true, signal).then((v) => {
      if (!isId(v)) throw new FrameError(`PUBLISH result must be a sequence number, got ${show(v)}`);
      return v;
    });
  }

  #submit(
    build: (id: number) => unknown[],
    publish: boolean,
    signal: AbortSignal | undefined,
    hint = false,
  ): Promise<unknown> {
    if (this.#ending) return Promise.reject(this.#endError());
    if (signal?.aborted) return Promise.reject(new AbortError(signal.reason));
    const id = this.#nextReq++;
    const frame = encode(build(id));
    const max = this.info?.maxPayloadBytes;
    if (max !== undefined && frame.length > max) {
      return Promise.reject(
        new InvalidArgumentError(
          `the message is ${frame.length} bytes; the gateway accepts at most ${max} (maxPayloadBytes)`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const req: Request = {
        id,
        frame,
        publish,
        resolve,
        reject,
        sent: false,
        done: false,
        counted: false,
        hint,
        cleanup: undefined,
      };
      if (signal !== undefined) {
        // Abort rejects at once. A request already sent may still take effect at the gateway (like fetch).
        const onAbort = () => this.#settle(req, new AbortError(signal.reason));
        signal.addEventListener('abort', onAbort, { once: true });
        req.cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      this.#pending.set(id, req);
      this.#enqueue(req);
    });
  }

  /** Settles a request once (answer, error, abort, end); a value settles it as resolved. */
  #settle(req: Request, error: Error | undefined, value?: unknown): void {
    if (req.done) return;
    req.done = true;
    this.#pending.delete(req.id);
    req.cleanup?.();
    if (req.counted) {
      req.counted = false;
      this.#inflightPublishes--;
      if (this.#queueHead < this.#queue.length) this.#flush();
    }
    if (error !== undefined) req.reject(error);
    else req.resolve(value);
  }

  #enqueue(item: Outgoing): void {
    if (!this.#open) return; // the next handshake sends every stream, watch and pending request
    this.#queue.push(item);
    this.#flush();
  }

  #flush(): void {
    const socket = this.#socket;
    if (!this.#open || socket === null) return;
    const queue = this.#queue;
    let head = this.#queueHead;
    while (head < queue.length) {
      const item = queue[head]!;
      if (item instanceof Uint8Array) {
        socket.send(item);
      } else if (!item.done) {
        if (item.publish) {
          if (this.#inflightPublishes >= this.o.maxInflightPublishes) break; // keeps the order: wait
          this.#inflightPublishes++;
          item.counted = true;
        }
        item.sent = true;
        socket.send(item.frame);
      }
      head++;
    }
    if (head === queue.length) {
      this.#queue = [];
      this.#queueHead = 0;
    } else {
      this.#queueHead = head;
    }
  }

  // ---------------------------------------------------------------- watches

  watch(stream: ClientStream, log: EventLog<WeftEvent>, after: number): { stop(): void } {
    const w = new Watch(stream, log, after);
    if (this.#ending) {
      log.end(this.#failure); // closed: followers finish; failed: they throw why
      return { stop() {} };
    }
    this.#watches.add(w);
    if (this.#open) this.#subscribe(w);
    return {
      stop: () => {
        if (w.stopped) return;
        w.stopped = true;
        this.#watches.delete(w);
        this.#leaveChannel(w);
        if (w.subId !== 0) {
          this.#subs.delete(w.subId);
          this.#enqueue(encode([Op.UNFOLLOW, w.subId]));
          w.subId = 0;
        }
      },
    };
  }

  #leaveChannel(w: Watch): void {
    if (w.channel !== 0 && this.#channels.get(w.channel) === w) this.#channels.delete(w.channel);
    w.channel = 0;
  }

  #subscribe(w: Watch): void {
    const subId = this.#nextSub++;
    w.subId = subId;
    w.group = null;
    this.#subs.set(subId, w);
    this.#enqueue(encode([Op.FOLLOW, subId, w.stream.sid, w.delivered, w.epoch ?? null]));
  }

  /** Re-subscribes from the last delivered sequence (after a gap, or a window overflow). */
  #resubscribe(w: Watch): void {
    this.counters.resubscribes++;
    // Keep the channel mapped: what the old subscription still sends is the same stream, and the
    // resequencer drops what arrives twice. The new STARTED maps it again.
    if (w.subId !== 0) {
      this.#subs.delete(w.subId);
      this.#enqueue(encode([Op.UNFOLLOW, w.subId]));
    }
    this.#subscribe(w);
  }

  #onEvents(m: Extract<ServerMessage, { op: typeof Op.EVENTS }>): void {
    const w = this.#channels.get(m.channel);
    if (w === undefined || m.events.length === 0) return; // a subscription we left
    let events = toEvents(w.stream.name, m.first, m.events);
    if ((m.flags & EventsFlag.MORE) !== 0) {
      // Part of one atomic batch: hold it until the group's last message.
      if (w.group === null) w.group = events;
      else for (const e of events) w.group.push(e);
      return;
    }
    if (w.group !== null) {
      for (const e of events) w.group.push(e);
      events = w.group;
      w.group = null;
    }
    this.#deliver(w, events);
  }

  /** Hands events to the watch's log exactly once, in order (resequencer on anything unusual). */
  #deliver(w: Watch, events: WeftEvent[]): void {
    if (w.log.ended) return;
    if (w.reseq === undefined && events[0]!.seq === w.delivered + 1 && isDense(events)) {
      w.log.append(events); // the usual case: exactly the next events
      w.delivered = events[events.length - 1]!.seq;
      return;
    }
    // Duplicates, overlap or a gap: let the resequencer sort it out from the last delivered sequence.
    if (w.reseq === undefined) {
      w.reseq = new Resequencer<WeftEvent>({ start: w.delivered + 1, window: RESEQUENCER_WINDOW });
      w.droppedCounted = 0;
    }
    const out: WeftEvent[] = [];
    try {
      for (const e of events) {
        const released = w.reseq.push(e.seq, e);
        for (const r of released) out.push(r);
      }
    } catch (e) {
      if (!(e instanceof WindowFullError)) throw e;
      this.#countDrops(w);
      // Too far ahead of what we have: drop what is held and ask again from the last delivered.
      w.reseq = undefined;
      if (out.length > 0) {
        w.log.append(out);
        w.delivered = out[out.length - 1]!.seq;
      }
      this.#resubscribe(w);
      return;
    }
    if (out.length > 0) {
      w.log.append(out);
      w.delivered = out[out.length - 1]!.seq;
    }
    this.#countDrops(w);
    if (w.reseq.size === 0) w.reseq = undefined;
    else if (out.length === 0 || events[0]!.seq > w.delivered + 1) {
      // A gap the gateway will not fill on this subscription: ask again (what arrives twice is dropped).
      this.#resubscribe(w);
    }
  }

  /** Adds what the watch's resequencer dropped (duplicates, stale) since the last count. */
  #countDrops(w: Watch): void {
    const stats = w.reseq!.stats;
    const dropped = stats.duplicates + stats.stale;
    this.counters.duplicatesDropped += dropped - w.droppedCounted;
    w.droppedCounted = dropped;
  }

  #onEnd(subId: number, error: WireError | undefined): void {
    const w = this.#subs.get(subId);
    if (w === undefined) return;
    this.#subs.delete(subId);
    this.#leaveChannel(w);
    w.subId = 0;
    w.group = null;
    this.#watches.delete(w);
    if (!w.log.ended) w.log.end(error === undefined ? undefined : fromWireError(error, w.stream.name));
  }

  // ---------------------------------------------------------------- connection

  #setState(s: ConnectionState): void {
    if (this.state === s) return;
    this.state = s;
    try {
      this.o.onStateChange(s);
    } catch {
      // a throwing hook must not break the connection logic
    }
  }

  #connect(): void {
    this.#reconnectTimer = undefined;
    if (this.#ending) return;
    let socket: SocketLike;
    try {
      socket = new this.o.WebSocket(this.o.url);
    } catch (e) {
      this.#attemptFailed(
        new TransportError(`cannot open ${this.o.url}: ${(e as Error).message}`, { cause: e }),
      );
      return;
    }
    this.#socket = socket;
    socket.binaryType = 'nodebuffer'; // `ws`: Buffers without a copy
    if (socket.binaryType !== 'nodebuffer') socket.binaryType = 'arraybuffer'; // browsers
    socket.onopen = () => void this.#hello(socket);
    socket.onmessage = (ev) => this.#onData(socket, ev.data);
    socket.onclose = (ev) => this.#onSocketClosed(socket, ev.code, ev.reason);
    socket.onerror = (ev) => {
      const message =
        (ev as { message?: string; error?: Error })?.error?.message ?? (ev as { message?: string })?.message;
      this.#lastError = new TransportError(
        `connection to ${this.o.url} failed${message ? `: ${message}` : ''}`,
      );
    };
    const timeout = Math.min(this.o.connectTimeoutMs, 30_000);
    this.#connectTimer = setTimeout(() => {
      if (this.#socket === socket && !this.#open) {
        this.#abandon(socket);
        this.#attemptFailed(new TransportError(`no handshake with ${this.o.url} within ${timeout} ms`));
      }
    }, timeout);
  }

  async #hello(socket: SocketLike): Promise<void> {
    let token: string | undefined;
    try {
      const t = this.o.token;
      token = typeof t === 'function' ? await t() : t;
    } catch (e) {
      this.#fail(new TransportError(`the token function failed: ${(e as Error).message}`, { cause: e }));
      return;
    }
    if (this.#socket !== socket || socket.readyState !== OPEN) return;
    socket.send(encode([Op.HELLO, PROTOCOL_VERSION, token ?? null, this.#session ?? null]));
  }

  #onData(socket: SocketLike, data: unknown): void {
    if (this.#socket !== socket) return;
    this.#lastReceived = Date.now();
    const bytes =
      data instanceof Uint8Array ? data : data instanceof ArrayBuffer ? new Uint8Array(data) : undefined;
    let m: ServerMessage;
    try {
      if (bytes === undefined)
        throw new ProtocolError(CloseCode.UNSUPPORTED_DATA, 'a text message from the gateway');
      m = parseServerMessage(decode(bytes));
    } catch (e) {
      this.#report(e);
      this.drop(e as Error, (e as ProtocolError).closeCode ?? CloseCode.PROTOCOL_ERROR);
      return;
    }
    if (!this.#open) {
      if (m.op !== Op.WELCOME) {
        this.drop(new ProtocolError(CloseCode.PROTOCOL_ERROR, 'the gateway did not start with WELCOME'));
        return;
      }
      this.#welcome(socket, m.version, m.info);
      return;
    }
    switch (m.op) {
      case Op.EVENTS:
        try {
          this.#onEvents(m);
        } catch (e) {
          this.#report(e);
          this.drop(e as Error, CloseCode.PROTOCOL_ERROR); // a malformed event: resume from the last good one
        }
        return;
      case Op.RESULT:
      case Op.ERROR: {
        const req = this.#pending.get(m.reqId);
        if (req === undefined) {
          if (m.op === Op.ERROR && m.reqId === 0) this.#report(fromWireError(m.error));
          return;
        }
        if (m.op === Op.RESULT) this.#settle(req, undefined, m.value);
        else this.#settle(req, fromWireError(m.error));
        return;
      }
      case Op.END:
        this.#onEnd(m.subId, m.error);
        return;
      case Op.STARTED: {
        const w = this.#subs.get(m.subId);
        if (w === undefined) return; // a subscription we already left
        w.epoch ??= m.epoch;
        w.stream.lastEpoch = m.epoch;
        w.channel = m.channel;
        this.#channels.set(m.channel, w);
        return;
      }
      case Op.PING:
        socket.send(encode([Op.PONG, m.n]));
        return;
      case Op.WELCOME:
        this.drop(new ProtocolError(CloseCode.PROTOCOL_ERROR, 'a second WELCOME'));
        return;
    }
  }

  #welcome(socket: SocketLike, version: number, info: WelcomeInfo): void {
    if (version !== PROTOCOL_VERSION) {
      this.#fail(
        new WeftError(
          ErrorCode.UNSUPPORTED,
          `the gateway speaks protocol ${version}, this client ${PROTOCOL_VERSION}`,
        ),
      );
      return;
    }
    clearTimeout(this.#connectTimer);
    const resumedSession = this.#session !== undefined && info.resumed;
    const hadSession = this.#session !== undefined;
    if (hadSession) this.counters.reconnects++;
    this.#session = info.session;
    this.info = info;
    this.#open = true;
    this.#attempt = 0;
    this.#lastError = undefined;
    this.#setState('open');
    // Publishes sent on a connection whose session the gateway no longer has: their outcome is unknown.
    if (hadSession && !resumedSession) {
      for (const req of [...this.#pending.values()]) {
        if (req.publish && req.sent) {
          this.counters.unconfirmedPublishes++;
          this.#settle(
            req,
            new WeftError(
              WireErrorCode.UNCONFIRMED,
              'the connection was lost and the gateway no longer has this session: the publish may or may not have been applied',
            ),
          );
        }
      }
    }
    // Re-establish, in order: streams, watches (from what they delivered), then every pending request.
    this.#queue = [];
    this.#queueHead = 0;
    this.#inflightPublishes = 0;
    for (const s of this.#streams.values()) this.#queue.push(s.openMessage);
    for (const req of [...this.#pending.values()]) {
      req.counted = false;
      // A wake-up the lost connection may have carried: wake now (spurious wake-ups are allowed).
      if (req.hint && req.sent) this.#settle(req, undefined, null);
    }
    for (const w of this.#watches) this.#subscribe(w); // #subscribe enqueues: #open is true
    for (const req of this.#pending.values()) this.#queue.push(req);
    this.#flush();
    this.#lastReceived = Date.now();
    clearInterval(this.#heartbeatTimer);
    const every = info.heartbeatMs;
    this.#heartbeatTimer = setInterval(
      () => {
        if (this.#socket === socket && Date.now() - this.#lastReceived > 2.5 * every) {
          this.drop(new TransportError(`no message from the gateway for ${Math.round(2.5 * every)} ms`));
        }
      },
      Math.max(50, every / 2),
    );
    (this.#heartbeatTimer as { unref?: () => void }).unref?.();
    if (this.#firstConnect !== undefined) {
      const first = this.#firstConnect;
      this.#firstConnect = undefined;
      first.resolve();
    }
  }

  /** Drops the current socket (it is treated as dead) and reconnects per the policy. */
  drop(reason: Error, code: number = CloseCode.NORMAL): void {
    const socket = this.#socket;
    if (socket === null) return;
    this.#abandon(socket, code, reason.message);
    this.#lastError =
      reason instanceof TransportError ? reason : new TransportError(reason.message, { cause: reason });
    this.#lost();
  }

  /** Detaches a socket and closes it without waiting for anything from it. */
  #abandon(socket: SocketLike, code: number = CloseCode.NORMAL, reason = ''): void {
    const noop = () => {};
    socket.onopen = noop;
    socket.onmessage = noop;
    socket.onclose = noop;
    socket.onerror = noop; // `ws` throws on an 'error' event without a listener
    if (this.#socket === socket) this.#socket = null;
    try {
      if (typeof socket.terminate === 'function') socket.terminate();
      else
        socket.close(
          code >= 3000 || code === CloseCode.NORMAL ? code : CloseCode.NORMAL,
          reason.slice(0, 100),
        );
    } catch {
      // closing a socket that is still connecting may throw in some implementations: it is gone anyway
    }
  }

  #onSocketClosed(socket: SocketLike, code: number, reason: string): void {
    if (this.#socket !== socket) return;
    this.#socket = null;
    const err = errorFromClose(code, reason);
    if (FATAL_CLOSE_CODES.has(code)) {
      this.#fail(err);
      return;
    }
    this.#lastError = this.#lastError && code === 1006 ? this.#lastError : new TransportError(err.message);
    this.#lost();
  }

  /** The socket is gone: forget per-connection state, then reconnect or give up. */
  #lost(): void {
    const wasOpen = this.#open;
    this.#open = false;
    clearTimeout(this.#connectTimer);
    clearInterval(this.#heartbeatTimer);
    this.#queue = [];
    this.#queueHead = 0;
    this.#inflightPublishes = 0;
    for (const req of this.#pending.values()) req.counted = false;
    this.#subs.clear();
    this.#channels.clear();
    for (const w of this.#watches) {
      w.subId = 0;
      w.channel = 0;
      w.group = null; // an unfinished group is sent again from `delivered`
    }
    if (this.#ending) return;
    if (wasOpen) this.#setState('reconnecting');
    this.#attemptFailed(this.#lastError ?? new TransportError(`connection to ${this.o.url} lost`));
  }

  #attemptFailed(error: Error): void {
    this.#socket = null;
    if (this.#ending) return;
    this.#attempt++;
    const first = this.#firstConnect;
    if (first !== undefined) {
      if (Date.now() >= first.deadline) {
        this.#fail(new TransportError(`cannot connect to ${this.o.url}: ${error.message}`, { cause: error }));
        return;
      }
    } else {
      this.#report(error);
      if (this.#attempt > this.o.backoff.maxAttempts) {
        this.#fail(
          new TransportError(
            `gave up reconnecting to ${this.o.url} after ${this.#attempt - 1} attempts: ${error.message}`,
            {
              cause: error,
            },
          ),
        );
        return;
      }
    }
    let delay = backoffDelay(this.#attempt, this.o.backoff);
    if (first !== undefined) delay = Math.min(delay, Math.max(0, first.deadline - Date.now()));
    this.#reconnectTimer = setTimeout(() => this.#connect(), delay);
  }

  #report(e: unknown): void {
    try {
      this.o.onError(e instanceof Error ? e : new Error(String(e)));
    } catch {
      // the hook's own failure must not break the connection logic
    }
  }

  // ---------------------------------------------------------------- the end

  #endError(): Error {
    return this.#failure ?? new ClosedError('the websocket transport is closed');
  }
  #failure: Error | undefined;

  /** Fails the transport for good: every request and watch ends with `error`. */
  #fail(error: Error): void {
    if (this.#ending) return;
    this.#ending = true;
    this.#failure = error;
    this.#teardown(error, error);
    if (this.#firstConnect !== undefined) {
      const first = this.#firstConnect;
      this.#firstConnect = undefined;
      first.reject(error);
    } else {
      this.#report(error);
    }
    this.#settleClosed(error);
  }

  #teardown(requestError: Error, watchError: Error | undefined): void {
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#connectTimer);
    clearInterval(this.#heartbeatTimer);
    this.#open = false;
    this.#setState('closed');
    const socket = this.#socket;
    if (socket !== null) {
      this.#socket = null;
      const noop = () => {};
      socket.onmessage = noop;
      socket.onclose = noop;
      socket.onerror = noop;
      socket.onopen = noop;
      try {
        if (socket.readyState === OPEN) socket.close(CloseCode.NORMAL, 'client closed');
        else socket.terminate?.() ?? socket.close();
      } catch {
        // already closing
      }
    }
    for (const req of [...this.#pending.values()]) this.#settle(req, requestError);
    for (const w of this.#watches) if (!w.log.ended) w.log.end(watchError);
    this.#watches.clear();
    this.#subs.clear();
    this.#channels.clear();
  }

  /** Closes for good: pending requests reject with ClosedError, watches end cleanly. Idempotent. */
  async close(): Promise<void> {
    if (this.#ending) return;
    this.#ending = true;
    this.#teardown(new ClosedError('the websocket transport was closed'), undefined);
    this.#settleClosed(undefined);
  }
}

function isDense(events: readonly WeftEvent[]): boolean {
  // Messages from one subscription are dense by construction; a group may span messages.
  const first = events[0]!.seq;
  return events[events.length - 1]!.seq === first + events.length - 1;
}

// ------------------------------------------------------------------ consumer groups

/** `GroupOperations` forwarded to the gateway, which runs them on its fabric's transport. */
class RemoteGroups implements GroupOperations {
  #link: Link;
  constructor(link: Link) {
    this.#link = link;
  }

  async ensure(group: string, stream: string, from: StartPosition): Promise<void> {
    await this.#call('ensure', [group, stream, from]);
  }
  async read(
    group: string,
    consumer: string,
    stream: string,
    count: number,
    blockMs: number,
    signal?: AbortSignal,
  ): Promise<GroupEntry[]> {
    try {
      const key = this.#link.nextKey();
      return entriesOf(
        stream,
        await this.#call('read', [group, consumer, stream, count, blockMs], signal, key),
      );
    } catch (e) {
      if (e instanceof AbortError) return []; // the contract: resolves [] on abort
      throw e;
    }
  }
  async claim(
    group: string,
    consumer: string,
    stream: string,
    minIdleMs: number,
    count: number,
  ): Promise<GroupEntry[]> {
    const key = this.#link.nextKey();
    return entriesOf(
      stream,
      await this.#call('claim', [group, consumer, stream, minIdleMs, count], undefined, key),
    );
  }
  async ack(group: string, stream: string, seqs: readonly number[]): Promise<void> {
    await this.#call('ack', [group, stream, seqs]);
  }
  async release(group: string, consumer: string, stream: string, seqs: readonly number[]): Promise<void> {
    await this.#call('release', [group, consumer, stream, seqs]);
  }
  async wait(
    group: string,
    streams: readonly string[],
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<void> {
    try {
      await this.#call('wait', [group, streams, timeoutMs], signal, undefined, true);
    } catch (e) {
      if (!(e instanceof AbortError)) throw e;
    }
  }

  /** `key` (read, claim): the gateway answers a retry with the first answer (see protocol.md). */
  #call(method: string, args: unknown[], signal?: AbortSignal, key?: number, hint = false): Promise<unknown> {
    return this.#link.call(
      (id) => (key === undefined ? [Op.GROUP, id, method, args] : [Op.GROUP, id, method, args, key]),
      (v) => v,
      signal,
      hint,
    );
  }
}

function entriesOf(stream: string, v: unknown): GroupEntry[] {
  if (!Array.isArray(v)) throw new FrameError('GROUP result must be an array of entries');
  return v.map((e: unknown) => {
    if (!Array.isArray(e) || e.length !== 5 || !isId(e[0]) || typeof e[1] !== 'number' || !isId(e[4]))
      throw new FrameError('GROUP entry must be [seq, time, topic, data, deliveries]');
    return {
      event: { stream, seq: e[0], time: e[1], topic: (e[2] ?? undefined) as string | undefined, data: e[3] },
      deliveries: e[4],
    };
  });
}
