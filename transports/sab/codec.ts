/**
 * Record encoding: the 32-byte header of a ring record, and the msgpackr body of a batch.
 *
 * A body is the msgpackr encoding of `[topics, data0, data1, ...]`, where `topics` is `null`
 * (no event has a topic), one string (every event has that topic) or an array of string|null.
 * Publish rings use *sequential* record structures (msgpackr `sequential: true`): an object shape
 * is described inline the first time a producer sends it and referenced by a small id afterwards,
 * so the consumer must decode a ring's records in order, with one decoder per producer
 * (`FLAG_RESET` starts a new one). The broadcast ring's readers join mid-stream, so its bodies
 * are self-contained (`useRecords` without shared state).
 *
 * Guarantee: a body decodes to exactly the values encoded (msgpackr's type mapping: objects,
 * arrays, strings, numbers, booleans, null, undefined, Date, Map, bigint, binary as Buffer).
 */
import { addExtension, Packr, Unpackr } from 'msgpackr';
import { FrameError } from '../../core/errors.js';
import type { EventInput, WeftEvent } from '../../core/types.js';
import { GapNotice, type GapReason } from './gap.js';
import {
  FLAG_RESET,
  H_COUNT,
  H_FIRST,
  H_FLAGS,
  H_FRAME_BYTES,
  H_STREAM,
  H_TIME,
  HEADER_BYTES,
} from './ring-layout.js';

/** A decoded record header. */
export interface RecordHeader {
  frameBytes: number;
  flags: number;
  streamId: number;
  count: number;
  first: number;
  time: number;
}

export function readHeader(view: DataView, offset: number, out: RecordHeader): RecordHeader {
  out.frameBytes = view.getUint32(offset + H_FRAME_BYTES, true);
  out.flags = view.getUint32(offset + H_FLAGS, true);
  out.streamId = view.getUint32(offset + H_STREAM, true);
  out.count = view.getUint32(offset + H_COUNT, true);
  out.first = view.getFloat64(offset + H_FIRST, true);
  out.time = view.getFloat64(offset + H_TIME, true);
  return out;
}

/** A reusable 32-byte header buffer (producer side). */
export class HeaderWriter {
  readonly bytes = new Uint8Array(HEADER_BYTES);
  readonly #view = new DataView(this.bytes.buffer);
  set(
    frameBytes: number,
    flags: number,
    streamId: number,
    count: number,
    first: number,
    time: number,
  ): Uint8Array {
    const v = this.#view;
    v.setUint32(H_FRAME_BYTES, frameBytes, true);
    v.setUint32(H_FLAGS, flags, true);
    v.setUint32(H_STREAM, streamId, true);
    v.setUint32(H_COUNT, count, true);
    v.setFloat64(H_FIRST, first, true);
    v.setFloat64(H_TIME, time, true);
    return this.bytes;
  }
}

export function emptyHeader(): RecordHeader {
  return { frameBytes: 0, flags: 0, streamId: 0, count: 0, first: 0, time: 0 };
}

/** The body value of a batch: `[topics, ...data]`. */
export function bodyOf(events: readonly EventInput[]): unknown[] {
  const n = events.length;
  const value = new Array<unknown>(n + 1);
  let topics: null | string | (string | null)[] = null;
  const t0 = events[0]?.topic;
  let same = true;
  for (let i = 0; i < n; i++) {
    const e = events[i]!;
    value[i + 1] = e.data;
    if (e.topic !== t0) same = false;
  }
  if (same) topics = t0 ?? null;
  else topics = events.map((e) => e.topic ?? null);
  value[0] = topics;
  return value;
}

/** Encodes batches for one producer's ring (sequential structures). */
export class BatchEncoder {
  #packr: Packr;
  #resetPending = true;
  readonly #sequential: boolean;
  /** A reusable output buffer: without it msgpackr appends pack after pack and allocates anew. */
  #scratch: Buffer = Buffer.allocUnsafeSlow(64 * 1024);

  constructor(sequential = true) {
    this.#sequential = sequential;
    this.#packr = newPackr(sequential);
  }

  /**
   * The body bytes of `events`. With `target`, they are encoded straight into it from `position`
   * on (a view of the ring's free space): when they fit, `result.buffer === target.buffer` and the
   * bytes are already in place; msgpackr writes nothing past `target`'s end (it moves to a buffer
   * of its own instead). Without, or when they do not fit, they are in the encoder's own buffer,
   * valid until the next call.
   * @throws FrameError when a value cannot be encoded (the encoder is reset: no state leaks).
   */
  encode(events: readonly EventInput[], target?: Buffer, position = 0): Uint8Array {
    return this.encodeBody(bodyOf(events), target, position);
  }

  /** `encode` for a body value already built (`[topics, ...data]`, see `bodyOf`). */
  encodeBody(body: unknown[], target?: Buffer, position = 0): Uint8Array {
    const packr = this.#packr;
    if (target === undefined) {
      packr.useBuffer(this.#scratch);
    } else {
      packr.useBuffer(target);
      (packr as unknown as { position: number }).position = position;
    }
    let out: Uint8Array;
    try {
      out = packr.pack(body);
    } catch (e) {
      this.reset();
      throw new FrameError(`cannot encode event data: ${(e as Error).message}`, { cause: e });
    } finally {
      detach(packr);
    }
    // msgpackr moved to a buffer of its own (the output outgrew ours): grow ours for next time.
    if (out.buffer !== (target ?? this.#scratch).buffer && out.byteLength > this.#scratch.length >>> 1) {
      this.#scratch = Buffer.allocUnsafeSlow(Math.min(2 ** 30, 2 * out.byteLength));
    }
    return out;
  }

  /** Forgets every shape sent so far; the next record committed must carry FLAG_RESET. */
  reset(): void {
    this.#packr = newPackr(this.#sequential);
    this.#resetPending = true;
  }

  /** FLAG_RESET for the first record after a reset (call once per committed record). */
  takeResetFlag(): number {
    if (!this.#resetPending) return 0;
    this.#resetPending = false;
    return FLAG_RESET;
  }
}

/** Decodes one producer's bodies, in commit order. */
export class BatchDecoder {
  #unpackr: Unpackr;
  /** msgpackr's `{ start, end }` read window, reused (it is read synchronously). */
  readonly #range = { start: 0, end: 0 };
  readonly #sequential: boolean;

  constructor(sequential = true) {
    this.#sequential = sequential;
    this.#unpackr = newUnpackr(sequential);
  }

  reset(): void {
    this.#unpackr = newUnpackr(this.#sequential);
  }

  /**
   * `[topics, ...data]` of the body `src[start..end)` with `count` events. With `copyBuffers`,
   * binary values are copied out of `src` (needed when it is a reused buffer); else they are views.
   * @throws FrameError when the bytes are not a body of `count` events.
   */
  decode(
    src: Uint8Array,
    start: number,
    end: number,
    flags: number,
    count: number,
    copyBuffers = false,
  ): unknown[] {
    if ((flags & FLAG_RESET) !== 0) this.reset();
    let value: unknown;
    try {
      // Binary values are views of `src` unless copied (when `src` is a buffer that is reused).
      (this.#unpackr as unknown as { copyBuffers: boolean }).copyBuffers = copyBuffers;
      const range = this.#range;
      range.start = start;
      range.end = end;
      value = this.#unpackr.unpack(src, range as never);
    } catch (e) {
      throw new FrameError(`malformed record body: ${(e as Error).message}`, { cause: e });
    }
    if (!Array.isArray(value) || value.length !== count + 1) {
      throw new FrameError(`malformed record body: expected ${count} events`);
    }
    const topics = value[0];
    if (
      topics !== null &&
      typeof topics !== 'string' &&
      !(Array.isArray(topics) && topics.length === count)
    ) {
      throw new FrameError('malformed record body: bad topics');
    }
    return value;
  }
}

/** The topic of event `i` of a decoded body (`topics` is `body[0]`, read before the body is reused). */
export function topicAt(body: unknown[], i: number, topics: unknown = body[0]): string | undefined {
  if (topics === null) return undefined;
  if (typeof topics === 'string') return topics;
  return ((topics as (string | null)[])[i] ?? undefined) as string | undefined;
}

// A GapNotice crosses threads as itself (worker followers get GapNotice instances too).
addExtension({
  Class: GapNotice,
  type: 0x57,
  write: (g: GapNotice) => [g.stream, g.from, g.to, g.reason, g.shard, g.cause?.message ?? null],
  read: ([stream, from, to, reason, shard, cause]: [
    string,
    number,
    number,
    GapReason,
    number,
    string | null,
  ]) => new GapNotice(stream, from, to, reason, shard, cause === null ? undefined : new Error(cause)),
});

/**
 * Broadcast bodies carry events already in a log (with their own times):
 * `[topics, times, data0, data1, ...]`, `times` one number or an array.
 */
export function broadcastBody(events: readonly WeftEvent[]): unknown[] {
  const n = events.length;
  const value = new Array<unknown>(n + 2);
  const t0 = events[0]?.topic;
  const time0 = events[0]?.time;
  let sameTopic = true;
  let sameTime = true;
  for (let i = 0; i < n; i++) {
    const e = events[i]!;
    value[i + 2] = e.data;
    if (e.topic !== t0) sameTopic = false;
    if (e.time !== time0) sameTime = false;
  }
  value[0] = sameTopic ? (t0 ?? null) : events.map((e) => e.topic ?? null);
  value[1] = sameTime ? (time0 ?? 0) : events.map((e) => e.time);
  return value;
}

/** The events of a decoded broadcast body. @throws FrameError when malformed. */
export function eventsOfBroadcast(value: unknown, stream: string, first: number, count: number): WeftEvent[] {
  if (!Array.isArray(value) || value.length !== count + 2) throw new FrameError('malformed broadcast body');
  const topics = value[0] as null | string | (string | null)[];
  const times = value[1] as number | number[];
  const out = new Array<WeftEvent>(count);
  for (let i = 0; i < count; i++) {
    const topic =
      topics === null ? undefined : typeof topics === 'string' ? topics : (topics[i] ?? undefined);
    const time = typeof times === 'number' ? times : times[i]!;
    out[i] = { stream, seq: first + i, time, topic, data: value[i + 2] };
  }
  return out;
}

/** Encodes self-contained values (no state shared between records): for the broadcast ring. */
export class StandaloneEncoder {
  readonly #packr = new Packr({ useRecords: true });
  #scratch: Buffer = Buffer.allocUnsafeSlow(64 * 1024);
  /** @throws FrameError when a value cannot be encoded. */
  encode(value: unknown): Uint8Array {
    this.#packr.useBuffer(this.#scratch);
    let out: Uint8Array;
    try {
      out = this.#packr.pack(value);
    } catch (e) {
      throw new FrameError(`cannot encode event data: ${(e as Error).message}`, { cause: e });
    } finally {
      detach(this.#packr);
    }
    if (out.buffer !== this.#scratch.buffer && out.byteLength > this.#scratch.length >>> 1) {
      this.#scratch = Buffer.allocUnsafeSlow(Math.min(2 ** 30, 2 * out.byteLength));
    }
    return out;
  }
}

/**
 * msgpackr's output buffer is shared by every Packr in the process: after `useBuffer(scratch)`, any
 * other code's `pack()` would write into our scratch and be overwritten by our next record. Point
 * it at an empty buffer after each use, so other packers allocate their own.
 */
const DETACHED = Buffer.alloc(0);
function detach(packr: Packr): void {
  packr.useBuffer(DETACHED);
}

export function newStandaloneDecoder(): Unpackr {
  return new Unpackr({ useRecords: true });
}

function newPackr(sequential: boolean): Packr {
  return sequential ? new Packr({ sequential: true, useRecords: true }) : new Packr({ useRecords: true });
}
function newUnpackr(sequential: boolean): Unpackr {
  return sequential ? new Unpackr({ sequential: true, useRecords: true }) : new Unpackr({ useRecords: true });
}
