/**
 * ShardProducer: a worker's end of its shard: it owns the ring (I11), resolves stream names
 * through the shared directory, and writes a batch as one record with the claim protocol of I8/I9.
 *
 * Guarantee: a batch is committed as one record (or, when larger than the whole ring, as fragments
 * the drain assembles before anything is visible), so it is visible whole or not at all; a
 * worker killed at any instruction leaves either a committed record, or bytes past WRITE_POS that
 * nobody reads plus a claim in flight that the drain reports as lost.
 * Constraints: worker threads only (it blocks with Atomics.wait when the ring is full); one
 * producer per shard at a time.
 */
import { threadId } from 'node:worker_threads';
import { AbortError, ClosedError, InvalidOperationError } from '../../core/errors.js';
import type { EventInput } from '../../core/types.js';
import { BatchEncoder, bodyOf, HeaderWriter } from './codec.js';
import { Control } from './control.js';
import { RingWriter } from './ring.js';
import {
  FLAG_MORE,
  HEADER_BYTES,
  KIND_BATCH,
  KIND_VOID,
  MAX_NAME_BYTES,
  REQ_DONE,
  REQ_ERR_CLOSED,
  REQ_ERR_DIRECTORY_FULL,
  REQ_ERR_NO_FOLLOW_RING,
  REQ_ERR_TRUNCATED,
  REQ_IDLE,
  REQ_PENDING,
  REQ_REGISTER,
  recordSpan,
  SH_DECODER_RESET,
  SH_INTENT_COUNT,
  SH_INTENT_FIRST_I64,
  SH_INTENT_STREAM,
  SH_OWNER,
  SH_REQ_ARG_I64,
  SH_REQ_KIND,
  SH_REQ_LEN,
  SH_REQ_NAME,
  SH_REQ_RESULT,
  SH_REQ_STATE,
  SHARD_HEADER_BYTES,
  STATE_CLOSED,
  STATE_OPEN,
  STREAM_OPEN,
  VERSION,
} from './ring-layout.js';
import type { SabWorkerData } from './worker-data.js';

/**
 * Encoding in place needs this much contiguous free space (msgpackr leaves a buffer with less than
 * 2 KiB left for a fresh one of the same size: a wasted allocation of the whole region).
 */
const IN_PLACE_MIN_BYTES = 8 * 1024;

/** `write()` results besides a first sequence (>= 1). */
export const WRITE_CLOSED = -1;
export const WRITE_NO_ROOM = -2;

/** A request to the main thread failed: the REQ_ERR_* code. */
export class RequestError extends Error {
  readonly code: number;
  constructor(code: number) {
    super(`request failed with code ${code}`);
    this.code = code;
  }
}

export class ShardProducer {
  readonly control: Control;
  readonly capacity: number;
  readonly data: SabWorkerData;
  readonly #i32: Int32Array;
  readonly #i64: BigInt64Array;
  readonly #u8: Uint8Array;
  readonly #header = new HeaderWriter();
  readonly #encoder = new BatchEncoder();
  readonly #ids = new Map<string, number>();
  /** The 64-bit argument of the last request's answer (REQ_ARG, written back by the main thread). */
  lastReplyArg = 0;
  #writer: RingWriter | undefined;
  /** The last body's size: encoding in place is tried only where twice that fits. */
  #lastBody = 0;
  readonly #stop = (): boolean => this.control.state !== STATE_OPEN;
  readonly #ownerId: number;

  /** `ownerId` is the thread id written to OWNER (tests on one thread pass a stand-in). */
  constructor(data: SabWorkerData, ownerId: number = threadId) {
    this.#ownerId = ownerId;
    if (data.version !== VERSION) {
      throw new InvalidOperationError(`weft sab protocol version ${data.version} is not ${VERSION}`);
    }
    this.data = data;
    this.control = Control.attach(data.control);
    this.capacity = data.ringBytes;
    this.#i32 = new Int32Array(data.shard, 0, SHARD_HEADER_BYTES / 4);
    this.#i64 = new BigInt64Array(data.shard, 0, SHARD_HEADER_BYTES / 8);
    this.#u8 = new Uint8Array(data.shard, 0, SHARD_HEADER_BYTES);
  }

  /** Free bytes in the ring as last seen (0 before the first write). */
  get freeBytes(): number {
    return this.#writer?.freeBytes ?? this.capacity;
  }

  /** The Int32 view of the shard's control lines (for waits on READ_POS). */
  get controlWords(): Int32Array {
    return this.#i32;
  }

  // ------------------------------------------------------------------ names

  /**
   * The directory id of stream `name`: cached, else read from the directory, else registered by
   * the main thread (a request; blocks this worker until answered).
   * @throws ClosedError when the transport closed; InvalidOperationError when the directory is full.
   */
  idOf(name: string): number {
    let id = this.#ids.get(name);
    if (id !== undefined) return id;
    id = this.control.find(name);
    if (id < 0) {
      try {
        id = this.request(REQ_REGISTER, name, 0, 0);
      } catch (e) {
        if (e instanceof RequestError && e.code === REQ_ERR_DIRECTORY_FULL) {
          throw new InvalidOperationError(
            `sab transport: the stream directory is full (options.maxStreams is ${this.control.maxStreams}); cannot open '${name}'`,
          );
        }
        throw e;
      }
    }
    this.#ids.set(name, id);
    return id;
  }

  /**
   * Asks the main thread (REQ_* kinds) and blocks until it answers. `name` or `small` (a number
   * stored in REQ_LEN) and `arg` (a 64-bit number) carry the question. Returns REQ_RESULT.
   * @throws ClosedError when the transport closed; RequestError for a refusal.
   */
  request(kind: number, name: string | undefined, small: number, arg: number): number {
    const i32 = this.#i32;
    if (name !== undefined) {
      for (let i = 0; i < name.length && i < MAX_NAME_BYTES; i++)
        this.#u8[SH_REQ_NAME + i] = name.charCodeAt(i);
      Atomics.store(i32, SH_REQ_LEN, name.length);
    } else {
      Atomics.store(i32, SH_REQ_LEN, small);
    }
    Atomics.store(this.#i64, SH_REQ_ARG_I64, BigInt(arg));
    Atomics.store(i32, SH_REQ_KIND, kind);
    Atomics.store(i32, SH_REQ_STATE, REQ_PENDING); // publishes the request
    this.control.ring();
    while (Atomics.load(i32, SH_REQ_STATE) === REQ_PENDING) {
      if (this.control.state === STATE_CLOSED) {
        Atomics.store(i32, SH_REQ_STATE, REQ_IDLE);
        throw new ClosedError('fabric is closed');
      }
      Atomics.wait(i32, SH_REQ_STATE, REQ_PENDING, 50);
    }
    const state = Atomics.load(i32, SH_REQ_STATE);
    const result = Atomics.load(i32, SH_REQ_RESULT);
    this.lastReplyArg = Number(Atomics.load(this.#i64, SH_REQ_ARG_I64));
    Atomics.store(i32, SH_REQ_STATE, REQ_IDLE);
    if (state === REQ_DONE) return result;
    if (result === REQ_ERR_CLOSED) throw new ClosedError('fabric is closed');
    throw new RequestError(result);
  }

  /** Whether stream `id` is still open (a closed stream's claims fail). */
  isOpen(id: number): boolean {
    return this.control.streamState(id) === STREAM_OPEN;
  }

  // ------------------------------------------------------------------ writing

  /** Takes the ring (I11): waits while a previous owner's ring is being recovered. */
  #acquire(): RingWriter {
    const i32 = this.#i32;
    for (;;) {
      const prev = Atomics.compareExchange(i32, SH_OWNER, 0, this.#ownerId);
      if (prev === 0 || prev === this.#ownerId) break;
      if (this.control.state === STATE_CLOSED) throw new ClosedError('fabric is closed');
      Atomics.wait(i32, SH_OWNER, prev, 50);
    }
    // Positions are read after taking the ring: the previous owner may have moved them.
    this.#writer = new RingWriter(this.data.shard, this.capacity, this.control);
    this.#encoder.reset(); // a new producer starts a new decoder (FLAG_RESET)
    return this.#writer;
  }

  /**
   * Writes `events` to stream `id` as one record. Returns the first sequence; WRITE_CLOSED when
   * the stream is closed (nothing becomes visible); WRITE_NO_ROOM when `wait` is false and the
   * ring has no room (nothing written).
   * @throws ClosedError when the transport closed; FrameError when data cannot be encoded.
   */
  write(id: number, events: readonly EventInput[], wait: boolean): number {
    return this.writeBody(id, bodyOf(events), events.length, wait);
  }

  /** `write` for a body value already built: `[topics, ...data]` of `n` events (see codec's `bodyOf`). */
  writeBody(id: number, value: unknown[], n: number, wait: boolean): number {
    const writer = this.#writer ?? this.#acquire();
    if (!this.isOpen(id)) return WRITE_CLOSED;
    if (this.control.state !== STATE_OPEN) throw new ClosedError('fabric is closed');
    const i32 = this.#i32;
    if (Atomics.load(i32, SH_DECODER_RESET) !== 0) {
      Atomics.store(i32, SH_DECODER_RESET, 0);
      this.#encoder.reset();
    }
    // Encode straight into the ring when the space up to its end is free and likely large enough.
    const place = writer.inPlace(Math.max(IN_PLACE_MIN_BYTES, 2 * this.#lastBody + HEADER_BYTES));
    const body =
      place === undefined
        ? this.#encoder.encodeBody(value)
        : this.#encoder.encodeBody(value, place.region, place.bodyIndex);
    const inPlace =
      place !== undefined &&
      body.buffer === place.region.buffer &&
      body.byteOffset === place.region.byteOffset + place.bodyIndex;
    this.#lastBody = body.length;
    const maxPiece = this.capacity - HEADER_BYTES; // a record may take the whole ring
    if (inPlace) {
      const span = recordSpan(body.length); // fits: the body lies inside the free space (I5)
      const first = this.#claim(id, n); // W2-W4 (I8, I9): no wait from here to the commit
      const flags = (first > 0 ? KIND_BATCH : KIND_VOID) | this.#encoder.takeResetFlag();
      writer.put(
        0,
        this.#header.set(HEADER_BYTES + body.length, flags, id, n, Math.max(first, 0), Date.now()),
      );
      writer.commit(span); // W6 (I3)
      Atomics.store(i32, SH_INTENT_STREAM, 0); // W7 (I9)
      return first > 0 ? first : WRITE_CLOSED;
    }
    if (body.length <= maxPiece) {
      const span = recordSpan(body.length);
      if (!writer.hasRoom(span)) {
        if (!wait) {
          this.#encoder.reset(); // the encoder learned shapes the decoder will not see
          return WRITE_NO_ROOM;
        }
        if (!writer.waitForRoom(span, this.#stop)) {
          this.#encoder.reset();
          throw new ClosedError('fabric is closed');
        }
      }
      writer.put(HEADER_BYTES, body); // W1: the body before the claim (I3)
      const first = this.#claim(id, n); // W2-W4 (I8, I9): no wait from here to the commit
      const flags = (first > 0 ? KIND_BATCH : KIND_VOID) | this.#encoder.takeResetFlag();
      writer.put(
        0,
        this.#header.set(HEADER_BYTES + body.length, flags, id, n, Math.max(first, 0), Date.now()),
      );
      writer.commit(span); // W6 (I3)
      Atomics.store(i32, SH_INTENT_STREAM, 0); // W7 (I9)
      return first > 0 ? first : WRITE_CLOSED;
    }
    if (!wait) {
      this.#encoder.reset();
      return WRITE_NO_ROOM;
    }
    return this.#writeFragments(writer, id, n, body, maxPiece);
  }

  /**
   * A body larger than the ring goes as fragments: the claim comes with the first one (so
   * the claim covers the whole batch), MORE marks all but the last, and the drain assembles them
   * before anything is visible. Waiting for room between fragments is allowed: the claim is
   * announced (I9) and the drain keeps draining.
   */
  #writeFragments(writer: RingWriter, id: number, n: number, body: Uint8Array, maxPiece: number): number {
    const i32 = this.#i32;
    let first = 0;
    let kind = KIND_BATCH;
    let reset = this.#encoder.takeResetFlag();
    for (let at = 0; at < body.length; at += maxPiece) {
      const piece = body.subarray(at, Math.min(body.length, at + maxPiece));
      const last = at + piece.length >= body.length;
      const span = recordSpan(piece.length);
      if (!writer.waitForRoom(span, this.#stop)) {
        this.#encoder.reset();
        Atomics.store(i32, SH_INTENT_STREAM, 0);
        throw new ClosedError('fabric is closed');
      }
      writer.put(HEADER_BYTES, piece);
      if (at === 0) {
        first = this.#claim(id, n);
        if (first <= 0) kind = KIND_VOID;
      }
      const flags = kind | reset | (last ? 0 : FLAG_MORE);
      reset = 0;
      writer.put(
        0,
        this.#header.set(HEADER_BYTES + piece.length, flags, id, n, Math.max(first, 0), Date.now()),
      );
      writer.commit(span);
    }
    Atomics.store(i32, SH_INTENT_STREAM, 0);
    return first > 0 ? first : WRITE_CLOSED;
  }

  /** The claim protocol (I8, I9): announce, claim, record. Returns the first sequence or -1. */
  #claim(id: number, n: number): number {
    const i32 = this.#i32;
    Atomics.store(this.#i64, SH_INTENT_FIRST_I64, 0n);
    Atomics.store(i32, SH_INTENT_COUNT, n);
    Atomics.store(i32, SH_INTENT_STREAM, id + 1);
    const first = this.control.claim(id, n);
    if (first > 0) Atomics.store(this.#i64, SH_INTENT_FIRST_I64, BigInt(first));
    return first;
  }

  /**
   * Resolves when `bytes` are free in the ring (without blocking the thread), or rejects with
   * ClosedError when the transport closes first.
   */
  async writable(bytes: number, signal: AbortSignal | undefined): Promise<void> {
    const writer = this.#writer ?? this.#acquire();
    const stop = (): boolean => this.#stop() || signal?.aborted === true;
    if (await writer.waitForRoomAsync(bytes, stop)) return;
    if (signal?.aborted) throw new AbortError(signal.reason);
    throw new ClosedError('fabric is closed');
  }
}

export { REQ_ERR_CLOSED, REQ_ERR_NO_FOLLOW_RING, REQ_ERR_TRUNCATED };
