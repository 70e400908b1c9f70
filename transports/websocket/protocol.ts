/**
 * The Weft WebSocket protocol, version 1 (docs/protocol.md is the normative text; this module is
 * its single implementation, shared by the gateway and the client).
 *
 * Every WebSocket message is binary and holds exactly one MessagePack array whose first element is
 * an opcode. Decoding never throws anything but `ProtocolError`, which carries the WebSocket close
 * code the receiver must use (1007 for bytes that are not MessagePack, 1002 for a wrong shape).
 * Browser-safe: no Node built-ins; msgpackr picks its pure-JS build in browsers.
 */
import { Packr, Unpackr } from 'msgpackr';
import {
  ClosedError,
  ErrorCode,
  FrameError,
  InvalidArgumentError,
  LaggedError,
  StreamResetError,
  TransportError,
  TruncatedError,
  WeftError,
} from '../../core/errors.js';
import type { RetentionOptions, WeftEvent } from '../../core/types.js';

export const PROTOCOL_VERSION = 1;

/** Opcodes: element 0 of every message. 1-19 travel client -> server, 20-39 server -> client. */
export const Op = {
  HELLO: 1,
  OPEN: 2,
  PUBLISH: 3,
  READ: 4,
  BOUNDS: 5,
  CLOSE: 6,
  FAIL: 7,
  FOLLOW: 8,
  UNFOLLOW: 9,
  PONG: 10,
  GROUP: 11,
  WELCOME: 20,
  RESULT: 21,
  ERROR: 22,
  EVENTS: 23,
  END: 24,
  PING: 25,
  STARTED: 26,
} as const;
export type Op = (typeof Op)[keyof typeof Op];

/** WebSocket close codes the gateway (and the client) use; 4000-4999 are Weft's own. */
export const CloseCode = {
  NORMAL: 1000,
  /** The gateway is shutting down: reconnect elsewhere or later. */
  GOING_AWAY: 1001,
  /** A message of the wrong shape, an unknown opcode, or a message before the handshake. */
  PROTOCOL_ERROR: 1002,
  /** A text message: the protocol is binary only. */
  UNSUPPORTED_DATA: 1003,
  /** Bytes that are not one valid MessagePack value. */
  INVALID_PAYLOAD: 1007,
  /** A limit was abused (request flood, no handshake in time, too many connections). */
  POLICY_VIOLATION: 1008,
  /** A message larger than `maxPayloadBytes` (sent by `ws` itself). */
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  /** `authenticate` refused the token. The client does not reconnect. */
  UNAUTHORIZED: 4001,
  /** The client speaks a protocol version the gateway does not. The client does not reconnect. */
  UNSUPPORTED_VERSION: 4002,
  /** A subscription fell further behind than `maxLagEvents`: reconnect and resume. */
  LAGGED: 4008,
  /** Another connection resumed this session. */
  SESSION_TAKEN_OVER: 4009,
  /** The peer stopped answering heartbeats (or stopped reading). */
  HEARTBEAT_TIMEOUT: 4010,
} as const;

/** Close codes after which a client must not reconnect (the next attempt would fail the same way). */
export const FATAL_CLOSE_CODES: ReadonlySet<number> = new Set([
  CloseCode.UNAUTHORIZED,
  CloseCode.UNSUPPORTED_VERSION,
]);

/** Error codes that travel on the wire besides core's `WEFT_ERR_*` codes. */
export const WireErrorCode = {
  /** `authenticate` refused the token (also the close reason of 4001). */
  UNAUTHORIZED: 'WEFT_ERR_UNAUTHORIZED',
  /** `authorize` refused this action on this stream. */
  FORBIDDEN: 'WEFT_ERR_FORBIDDEN',
  /** A per-connection limit was reached (subscriptions, streams, requests in flight). */
  LIMIT: 'WEFT_ERR_LIMIT',
  /** A publish whose outcome the gateway can no longer confirm (its idempotency record is gone). */
  UNCONFIRMED: 'WEFT_ERR_UNCONFIRMED',
} as const;

/** Bit flags of an EVENTS message. */
export const EventsFlag = {
  /** More EVENTS messages of the same atomic group follow: deliver them together. */
  MORE: 1,
} as const;

/** An error as it travels: enough to rebuild the typed error on the other side. */
export interface WireError {
  code?: string;
  name?: string;
  message: string;
  /** Typed fields: `requested`/`firstAvailable` (truncated), `expectedEpoch`/`epoch` (reset), `nextSeq` (lagged). */
  [detail: string]: unknown;
}

/**
 * Events as they travel inside EVENTS and READ results: one flat array of `time, topic, data`
 * triples (no array per event); the sequence is implied by position (`first + i`).
 */
export type WireEvents = unknown[];

/** A malformed message: `closeCode` says how the receiver closes the connection. */
export class ProtocolError extends FrameError {
  readonly closeCode: number;
  constructor(closeCode: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProtocolError';
    this.closeCode = closeCode;
  }
}

// ------------------------------------------------------------------ encoding

/** Plain MessagePack (maps, not msgpackr records) so that any MessagePack library can speak it. */
const packr = new Packr({ useRecords: false, moreTypes: false });
// 64-bit integers from other MessagePack libraries decode as numbers (sequences stay below 2^53).
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

/**
 * Encodes one message into bytes of its own. msgpackr writes into one buffer shared by every Packr
 * in the process, which any of them may redirect (`useBuffer`, as the sab transport does): a view
 * into it could change while a socket still queues it or a publish waits for its retry, so copy.
 */
export function encode(message: readonly unknown[]): Uint8Array {
  return Uint8Array.prototype.slice.call(packr.pack(message));
}

/**
 * Decodes one message into its array.
 * @throws ProtocolError 1007 for bytes that are not exactly one MessagePack value, 1002 when the
 *   value is not an array starting with an integer opcode.
 */
export function decode(bytes: Uint8Array): unknown[] {
  let value: unknown;
  try {
    value = unpackr.unpack(bytes);
  } catch (e) {
    throw new ProtocolError(CloseCode.INVALID_PAYLOAD, `malformed MessagePack: ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (!Array.isArray(value) || value.length === 0 || !isUint(value[0])) {
    throw new ProtocolError(CloseCode.PROTOCOL_ERROR, 'a message must be an array starting with an opcode');
  }
  return value;
}

/**
 * Encodes the event part of an EVENTS message (see `eventsMessage`). The result is a view into
 * msgpackr's shared buffer: copy it (as `eventsMessage` does) before anything else encodes.
 */
export function encodeEventsBody(events: readonly WeftEvent[], from = 0, to = events.length): Uint8Array {
  return packr.pack(flatEvents(events, from, to));
}

/** `time, topic, data` of events[from..to), flat. */
export function flatEvents(events: readonly WeftEvent[], from = 0, to = events.length): WireEvents {
  const flat = new Array<unknown>(3 * (to - from));
  for (let i = from, j = 0; i < to; i++, j += 3) {
    const e = events[i]!;
    flat[j] = e.time;
    flat[j + 1] = e.topic ?? null;
    flat[j + 2] = e.data;
  }
  return flat;
}

/**
 * An EVENTS message `[23, channel, firstSeq, flags, events]` around a pre-encoded body: the header
 * is written by hand (a fixarray of 5, then four unsigned integers) and the body copied after it.
 * `alloc` lets Node pass `Buffer.allocUnsafe` (pooled, not zero-filled).
 */
export function eventsMessage(
  channel: number,
  firstSeq: number,
  flags: number,
  body: Uint8Array,
  alloc: (size: number) => Uint8Array = (size) => new Uint8Array(size),
): Uint8Array {
  const size = 2 + uintSize(channel) + uintSize(firstSeq) + uintSize(flags) + body.length;
  const out = alloc(size);
  out[0] = 0x95; // fixarray of 5
  out[1] = Op.EVENTS; // positive fixint
  let at = writeUint(out, 2, channel);
  at = writeUint(out, at, firstSeq);
  at = writeUint(out, at, flags);
  out.set(body, at);
  return out;
}

/** Bytes of the shortest MessagePack encoding of an unsigned integer (up to 2^53). */
function uintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x100 ? 2 : v < 0x10000 ? 3 : v < 0x100000000 ? 5 : 9; // float64 above 2^32
}

function writeUint(out: Uint8Array, at: number, v: number): number {
  if (v < 0x80) {
    out[at] = v;
    return at + 1;
  }
  if (v < 0x100) {
    out[at] = 0xcc;
    out[at + 1] = v;
    return at + 2;
  }
  if (v < 0x10000) {
    out[at] = 0xcd;
    out[at + 1] = v >>> 8;
    out[at + 2] = v & 0xff;
    return at + 3;
  }
  if (v < 0x100000000) {
    out[at] = 0xce;
    out[at + 1] = v >>> 24;
    out[at + 2] = (v >>> 16) & 0xff;
    out[at + 3] = (v >>> 8) & 0xff;
    out[at + 4] = v & 0xff;
    return at + 5;
  }
  // Above 2^32 msgpackr writes a float64 (exact up to 2^53); do the same so every decoder agrees.
  out[at] = 0xcb;
  new DataView(out.buffer, out.byteOffset + at + 1, 8).setFloat64(0, v);
  return at + 9;
}

// ------------------------------------------------------------------ validation helpers

export function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

export function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
}

function isNil(v: unknown): v is null | undefined {
  return v === null || v === undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

function bad(what: string): ProtocolError {
  return new ProtocolError(CloseCode.PROTOCOL_ERROR, what);
}

// ------------------------------------------------------------------ client -> server messages

export type ClientMessage =
  | { op: typeof Op.HELLO; version: number; token: string | undefined; session: string | undefined }
  | { op: typeof Op.OPEN; sid: number; name: string; retention: RetentionOptions | undefined }
  | {
      op: typeof Op.PUBLISH;
      reqId: number;
      sid: number;
      key: number;
      items: readonly (readonly unknown[])[];
    }
  | { op: typeof Op.READ; reqId: number; sid: number; from: number; limit: number }
  | { op: typeof Op.BOUNDS | typeof Op.CLOSE; reqId: number; sid: number }
  | { op: typeof Op.FAIL; reqId: number; sid: number; error: WireError }
  | { op: typeof Op.FOLLOW; subId: number; sid: number; after: number; epoch: string | undefined }
  | { op: typeof Op.UNFOLLOW; subId: number }
  | { op: typeof Op.PONG }
  | { op: typeof Op.GROUP; reqId: number; method: string; args: readonly unknown[]; key: number | undefined };

/**
 * Checks the shape of a message a client sent (the gateway's only parser of client input).
 * Field *values* that need the fabric (stream names, topics, retention) are checked by core when
 * used, and answered with an ERROR for that request; a wrong *shape* closes the connection.
 * @throws ProtocolError 1002 for an unknown opcode or a field of the wrong type.
 */
export function parseClientMessage(m: unknown[]): ClientMessage {
  const op = m[0] as number;
  switch (op) {
    case Op.HELLO: {
      if (m.length < 3 || !isUint(m[1])) throw bad('HELLO must be [1, version, token, session?]');
      if (!isNil(m[2]) && typeof m[2] !== 'string') throw bad('HELLO token must be a string or nil');
      if (!isNil(m[3]) && typeof m[3] !== 'string') throw bad('HELLO session must be a string or nil');
      return {
        op,
        version: m[1],
        token: (m[2] ?? undefined) as string | undefined,
        session: (m[3] ?? undefined) as string | undefined,
      };
    }
    case Op.OPEN: {
      if (m.length !== 4 || !isId(m[1]) || typeof m[2] !== 'string')
        throw bad('OPEN must be [2, sid, name, retention]');
      if (!isNil(m[3]) && !isPlainObject(m[3])) throw bad('OPEN retention must be a map or nil');
      return {
        op,
        sid: m[1],
        name: m[2],
        retention: (m[3] ?? undefined) as RetentionOptions | undefined,
      };
    }
    case Op.PUBLISH: {
      if (m.length !== 5 || !isId(m[1]) || !isId(m[2]) || !isId(m[3]) || !Array.isArray(m[4]))
        throw bad('PUBLISH must be [3, reqId, sid, key, items]');
      const items = m[4] as unknown[];
      if (items.length === 0) throw bad('PUBLISH items must not be empty');
      for (const item of items) {
        if (!Array.isArray(item) || item.length < 1 || item.length > 2)
          throw bad('PUBLISH items must be [data] or [data, topic]');
      }
      return { op, reqId: m[1], sid: m[2], key: m[3], items: items as unknown[][] };
    }
    case Op.READ:
      if (m.length !== 5 || !isId(m[1]) || !isId(m[2]) || !isId(m[3]) || !isUint(m[4]))
        throw bad('READ must be [4, reqId, sid, from, limit]');
      return { op, reqId: m[1], sid: m[2], from: m[3], limit: m[4] };
    case Op.BOUNDS:
    case Op.CLOSE:
      if (m.length !== 3 || !isId(m[1]) || !isId(m[2]))
        throw bad('BOUNDS and CLOSE must be [op, reqId, sid]');
      return { op, reqId: m[1], sid: m[2] };
    case Op.FAIL:
      if (m.length !== 4 || !isId(m[1]) || !isId(m[2]) || !isWireError(m[3]))
        throw bad('FAIL must be [7, reqId, sid, {message}]');
      return { op, reqId: m[1], sid: m[2], error: m[3] };
    case Op.FOLLOW:
      if (m.length !== 5 || !isId(m[1]) || !isId(m[2]) || !isUint(m[3]))
        throw bad('FOLLOW must be [8, subId, sid, after, epoch]');
      if (!isNil(m[4]) && typeof m[4] !== 'string') throw bad('FOLLOW epoch must be a string or nil');
      return { op, subId: m[1], sid: m[2], after: m[3], epoch: (m[4] ?? undefined) as string | undefined };
    case Op.UNFOLLOW:
      if (m.length !== 2 || !isId(m[1])) throw bad('UNFOLLOW must be [9, subId]');
      return { op, subId: m[1] };
    case Op.PONG:
      return { op };
    case Op.GROUP:
      if (
        (m.length !== 4 && m.length !== 5) ||
        !isId(m[1]) ||
        typeof m[2] !== 'string' ||
        !Array.isArray(m[3]) ||
        !(m[4] === undefined || m[4] === null || isId(m[4]))
      )
        throw bad('GROUP must be [11, reqId, method, args, key?]');
      return { op, reqId: m[1], method: m[2], args: m[3], key: (m[4] ?? undefined) as number | undefined };
    default:
      throw bad(`unknown opcode ${op}`);
  }
}

// ------------------------------------------------------------------ server -> client messages

/** What the gateway tells a client in WELCOME. */
export interface WelcomeInfo {
  /** The session to present in the next HELLO to resume (publish idempotency records). */
  session: string;
  /** False when the HELLO asked to resume a session the gateway no longer has. */
  resumed: boolean;
  /** Largest message the gateway accepts, in bytes. */
  maxPayloadBytes: number;
  /** The gateway sends PING at this interval; the client may consider it dead after 2.5x silence. */
  heartbeatMs: number;
  /** The backing fabric's capabilities. */
  supports: {
    replay: boolean;
    retention: { maxLength: boolean; maxAgeMs: boolean; ttlMs: boolean };
    epochs: boolean;
    groups: boolean;
  };
}

export type ServerMessage =
  | { op: typeof Op.WELCOME; version: number; info: WelcomeInfo }
  | { op: typeof Op.RESULT; reqId: number; value: unknown }
  | { op: typeof Op.ERROR; reqId: number; error: WireError }
  | { op: typeof Op.EVENTS; channel: number; first: number; flags: number; events: WireEvents }
  | { op: typeof Op.END; subId: number; error: WireError | undefined }
  | { op: typeof Op.PING; n: number }
  | { op: typeof Op.STARTED; subId: number; epoch: string; channel: number };

/**
 * Checks the shape of a message the gateway sent (the client trusts the gateway no more than the
 * gateway trusts it: a malformed message closes the connection, and the client reconnects).
 * @throws ProtocolError 1002.
 */
export function parseServerMessage(m: unknown[]): ServerMessage {
  const op = m[0] as number;
  switch (op) {
    case Op.EVENTS: {
      if (m.length !== 5 || !isId(m[1]) || !isId(m[2]) || !isUint(m[3]) || !isWireEvents(m[4]))
        throw bad('EVENTS must be [23, channel, first, flags, [time, topic, data, ...]]');
      // Each event's fields are checked where it becomes a WeftEvent (`toEvents`): one pass.
      return { op, channel: m[1], first: m[2], flags: m[3], events: m[4] };
    }
    case Op.RESULT:
      if (m.length !== 3 || !isId(m[1])) throw bad('RESULT must be [21, reqId, value]');
      return { op, reqId: m[1], value: m[2] };
    case Op.ERROR:
      if (m.length !== 3 || !isUint(m[1]) || !isWireError(m[2]))
        throw bad('ERROR must be [22, reqId, error]');
      return { op, reqId: m[1], error: m[2] };
    case Op.END:
      if (m.length !== 3 || !isId(m[1]) || !(isNil(m[2]) || isWireError(m[2])))
        throw bad('END must be [24, subId, error]');
      return { op, subId: m[1], error: (m[2] ?? undefined) as WireError | undefined };
    case Op.PING:
      if (m.length !== 2 || !isUint(m[1])) throw bad('PING must be [25, n]');
      return { op, n: m[1] };
    case Op.STARTED:
      if (m.length !== 4 || !isId(m[1]) || typeof m[2] !== 'string' || !isId(m[3]))
        throw bad('STARTED must be [26, subId, epoch, channel]');
      return { op, subId: m[1], epoch: m[2], channel: m[3] };
    case Op.WELCOME: {
      const info = m[2] as WelcomeInfo | undefined;
      if (
        m.length !== 3 ||
        !isUint(m[1]) ||
        !isPlainObject(info) ||
        typeof info.session !== 'string' ||
        typeof info.resumed !== 'boolean' ||
        !isId(info.maxPayloadBytes) ||
        !isId(info.heartbeatMs) ||
        !isPlainObject(info.supports)
      )
        throw bad(
          'WELCOME must be [20, version, {session, resumed, maxPayloadBytes, heartbeatMs, supports}]',
        );
      return { op, version: m[1], info };
    }
    default:
      throw bad(`unknown opcode ${op}`);
  }
}

/** A flat events array: a multiple of three elements (each triple's fields are checked by `toEvents`). */
export function isWireEvents(e: unknown): e is WireEvents {
  return Array.isArray(e) && e.length % 3 === 0;
}

function isWireError(e: unknown): e is WireError {
  return (
    isPlainObject(e) &&
    typeof e.message === 'string' &&
    (e.code === undefined || e.code === null || typeof e.code === 'string') &&
    (e.name === undefined || e.name === null || typeof e.name === 'string')
  );
}

/**
 * Builds the delivered events of a READ result or an EVENTS message, checking each event's fields.
 * @throws ProtocolError 1002 for a time that is not a number or a topic that is not a string.
 */
export function toEvents(stream: string, first: number, wire: WireEvents): WeftEvent[] {
  const n = wire.length / 3;
  const out = new Array<WeftEvent>(n);
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    const time = wire[j];
    const topic = wire[j + 1];
    if (typeof time !== 'number' || (topic !== null && topic !== undefined && typeof topic !== 'string')) {
      throw bad('an event must be time (number), topic (string or nil), data');
    }
    out[i] = { stream, seq: first + i, time, topic: topic ?? undefined, data: wire[j + 2] };
  }
  return out;
}

// ------------------------------------------------------------------ errors on the wire

/** An error as it travels: code, name, message and the typed fields callers branch on. */
export function toWireError(e: unknown): WireError {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e) };
  const out: WireError = { name: e.name, message: e.message };
  if (e instanceof WeftError) out.code = e.code;
  if (e instanceof TruncatedError) {
    out.requested = e.requested;
    out.firstAvailable = e.firstAvailable;
  } else if (e instanceof LaggedError) {
    out.nextSeq = e.nextSeq;
    out.firstAvailable = e.firstAvailable;
  } else if (e instanceof StreamResetError) {
    out.expectedEpoch = e.expectedEpoch ?? null;
    out.epoch = e.epoch ?? null;
  }
  return out;
}

/**
 * Rebuilds a typed error from the wire: the same class (and fields) for the codes callers branch
 * on, a `WeftError` with the code for other Weft codes, a plain `Error` keeping name and message
 * for the user's own errors (a stream failed with `new Error('x')` fails remote followers with 'x').
 */
export function fromWireError(w: WireError, stream = '?'): Error {
  const num = (v: unknown, fallback = 0): number => (typeof v === 'number' ? v : fallback);
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  const code = typeof w.code === 'string' ? w.code : undefined;
  let e: Error;
  switch (code) {
    case ErrorCode.TRUNCATED:
      e = new TruncatedError(stream, num(w.requested), num(w.firstAvailable));
      break;
    case ErrorCode.LAGGED:
      e = new LaggedError(stream, num(w.nextSeq), num(w.firstAvailable));
      break;
    case ErrorCode.STREAM_RESET:
      e = new StreamResetError(stream, str(w.expectedEpoch), str(w.epoch));
      break;
    case ErrorCode.CLOSED:
      e = new ClosedError(w.message);
      break;
    case ErrorCode.INVALID_ARGUMENT:
      e = new InvalidArgumentError(w.message);
      break;
    case ErrorCode.FRAME:
      e = new FrameError(w.message);
      break;
    case ErrorCode.TRANSPORT:
      e = new TransportError(w.message);
      break;
    case undefined: {
      e = new Error(w.message);
      if (typeof w.name === 'string' && w.name !== '') e.name = w.name;
      return e;
    }
    default:
      e = new WeftError(code, w.message);
      if (typeof w.name === 'string' && w.name !== '') e.name = w.name;
      return e;
  }
  // The typed classes build their own message from the stream name; keep the sender's words.
  e.message = w.message;
  return e;
}

/** A close reason: `CODE: message`, cut to the 123 bytes WebSocket allows (whole UTF-8 characters). */
export function closeReason(code: string, message: string): string {
  let text = `${code}: ${message}`;
  const encoder = new TextEncoder();
  while (encoder.encode(text).length > 123) text = text.slice(0, -1);
  return text;
}

/** The error a client reports for a close reason written by `closeReason`. */
export function errorFromClose(closeCode: number, reason: string): Error {
  const m = /^(WEFT_ERR_[A-Z_]+): (.*)$/s.exec(reason);
  const code =
    m?.[1] ?? (closeCode === CloseCode.UNAUTHORIZED ? WireErrorCode.UNAUTHORIZED : ErrorCode.TRANSPORT);
  const message = `connection closed by the gateway (${closeCode}${reason ? `: ${m?.[2] ?? reason}` : ''})`;
  return new WeftError(code, message);
}
