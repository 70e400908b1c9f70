/**
 * BroadcastReader: one worker follower's cursor on the broadcast ring (B1-B6 in ring-layout.ts).
 *
 * Guarantee: it yields its stream's events in sequence order from its start, each once (B6); it
 * never reads a byte the writer overwrote without knowing it (a 'block' reader is never overrun,
 * B3; an 'error' reader validates every record and throws LaggedError when it was, B4).
 * Constraint: one reader object per follower, used by one thread; it never blocks its thread
 * (it waits with Atomics.waitAsync).
 */
import { threadId } from 'node:worker_threads';
import { ErrorCode, LaggedError, WeftError } from '../../core/errors.js';
import type { WeftEvent } from '../../core/types.js';
import { emptyHeader, eventsOfBroadcast, newStandaloneDecoder, readHeader } from './codec.js';
import type { Control } from './control.js';
import type { SlowReaderPolicy } from './options.js';
import {
  advance,
  align8,
  B_CLAIM_POS,
  B_READERS_WAITING,
  B_STATE,
  B_WRITE_POS,
  B_WRITER_WAITING,
  broadcastDataOffset,
  copyOut,
  FLAG_FAILED,
  HEADER_BYTES,
  KIND_BATCH,
  KIND_END,
  KIND_TRIMMED,
  SLOT_BLOCK,
  SLOT_CURSOR,
  SLOT_FREE,
  SLOT_JOINING,
  SLOT_LAG,
  SLOT_OWNER,
  SLOT_STATE,
  SLOT_STREAM,
  slotIndex,
  used,
} from './ring-layout.js';

export type ReadResult =
  | { readonly kind: 'events'; readonly events: WeftEvent[] }
  | { readonly kind: 'none' }
  | { readonly kind: 'end'; readonly error: Error | undefined };

const NONE: ReadResult = Object.freeze({ kind: 'none' });

export class BroadcastReader {
  readonly streamId: number;
  readonly streamName: string;
  readonly policy: SlowReaderPolicy;
  readonly #i32: Int32Array;
  readonly #data: Uint8Array;
  readonly #capacity: number;
  readonly #maxReaders: number;
  readonly #control: Control;
  readonly #decoder = newStandaloneDecoder();
  readonly #head = new Uint8Array(HEADER_BYTES);
  readonly #headView = new DataView(this.#head.buffer);
  readonly #h = emptyHeader();
  #slot = -1;
  #cursor = 0;
  /** The next sequence to deliver (B6). */
  expected = 1;

  constructor(
    sab: SharedArrayBuffer,
    capacity: number,
    maxReaders: number,
    control: Control,
    streamId: number,
    streamName: string,
    policy: SlowReaderPolicy,
  ) {
    this.#i32 = new Int32Array(sab);
    this.#data = new Uint8Array(sab, broadcastDataOffset(maxReaders), capacity);
    this.#capacity = capacity;
    this.#maxReaders = maxReaders;
    this.#control = control;
    this.streamId = streamId;
    this.streamName = streamName;
    this.policy = policy;
  }

  get joined(): boolean {
    return this.#slot >= 0;
  }

  /**
   * Claims a reader slot and places the cursor at the writer's position (B5); re-places it if
   * the writer lapped it while joining. @throws WeftError when every slot is taken.
   */
  join(): void {
    const i32 = this.#i32;
    for (let k = 0; k < this.#maxReaders; k++) {
      if (Atomics.compareExchange(i32, slotIndex(k, SLOT_STATE), SLOT_FREE, SLOT_JOINING) === SLOT_FREE) {
        this.#slot = k;
        break;
      }
    }
    if (this.#slot < 0) {
      throw new WeftError(
        ErrorCode.INVALID_OPERATION,
        `too many worker followers: all ${this.#maxReaders} slots are taken (options.maxFollowers)`,
      );
    }
    const k = this.#slot;
    Atomics.store(i32, slotIndex(k, SLOT_OWNER), threadId);
    Atomics.store(i32, slotIndex(k, SLOT_STREAM), this.streamId + 1);
    this.#cursor = Atomics.load(i32, B_WRITE_POS) >>> 0;
    Atomics.store(i32, slotIndex(k, SLOT_CURSOR), this.#cursor | 0);
    Atomics.store(i32, slotIndex(k, SLOT_STATE), this.policy === 'block' ? SLOT_BLOCK : SLOT_LAG);
    // B5: until the state above was visible the writer did not wait for us; if it lapped the
    // cursor meanwhile, start again from where it is now (nothing we owe was written yet).
    while (used(Atomics.load(i32, B_CLAIM_POS) >>> 0, this.#cursor) > this.#capacity) {
      this.#cursor = Atomics.load(i32, B_WRITE_POS) >>> 0;
      Atomics.store(i32, slotIndex(k, SLOT_CURSOR), this.#cursor | 0);
    }
  }

  /** Leaves: the writer stops waiting for this cursor. Idempotent. */
  leave(): void {
    if (this.#slot < 0) return;
    const i32 = this.#i32;
    Atomics.store(i32, slotIndex(this.#slot, SLOT_STATE), SLOT_FREE);
    this.#slot = -1;
    if (Atomics.load(i32, B_WRITER_WAITING) !== 0) this.#control.ring();
  }

  /** True once the transport closed. */
  get closed(): boolean {
    return Atomics.load(this.#i32, B_STATE) !== 0;
  }

  /**
   * Takes the records the writer committed (up to `maxEvents` events of this stream), moving the
   * cursor past them. @throws LaggedError when overrun (B4) or when events this follower expects
   * were trimmed before they could be copied.
   */
  read(maxEvents: number): ReadResult {
    const i32 = this.#i32;
    const cap = this.#capacity;
    const writePos = Atomics.load(i32, B_WRITE_POS) >>> 0; // I4's rule, here for B2
    let out: WeftEvent[] | undefined;
    let end: ReadResult | undefined;
    const h = this.#h;
    while (this.#cursor !== writePos && (out === undefined || out.length < maxEvents) && end === undefined) {
      const at = this.#cursor;
      copyOut(this.#data, cap, at, HEADER_BYTES, this.#head);
      readHeader(this.#headView, 0, h);
      const frame = h.frameBytes;
      const sane = frame >= HEADER_BYTES && align8(frame) <= used(writePos, at);
      const mine = sane && h.streamId === this.streamId;
      let body: Uint8Array | undefined;
      if (mine && frame > HEADER_BYTES) {
        body = new Uint8Array(frame - HEADER_BYTES);
        copyOut(this.#data, cap, advance(at, HEADER_BYTES), body.length, body);
      }
      // B4: the bytes we copied are intact iff the writer has not claimed past them by a whole ring.
      if (!sane || used(Atomics.load(i32, B_CLAIM_POS) >>> 0, at) > cap) this.#lagged();
      this.#cursor = advance(at, align8(frame));
      Atomics.store(i32, slotIndex(this.#slot, SLOT_CURSOR), this.#cursor | 0);
      if (Atomics.load(i32, B_WRITER_WAITING) !== 0) this.#control.ring();
      if (!mine) continue;
      const kind = h.flags & 0xff;
      if (kind === KIND_BATCH) {
        if (h.first + h.count <= this.expected || h.first > this.expected) continue; // B6: a replay or ahead
        const events = eventsOfBroadcast(this.#decoder.unpack(body!), this.streamName, h.first, h.count);
        for (const e of events) {
          if (e.seq !== this.expected) continue;
          (out ??= []).push(e);
          this.expected++;
        }
      } else if (kind === KIND_TRIMMED) {
        if (this.expected >= h.first && this.expected < h.first + h.count) {
          throw new LaggedError(this.streamName, this.expected, h.first + h.count);
        }
      } else if (kind === KIND_END) {
        // Only an end at or before what we have ends us (a replay we asked for may still come, B6).
        if (this.expected >= h.first) end = { kind: 'end', error: this.#endError(h.flags, body) };
      }
    }
    if (out !== undefined) {
      if (end !== undefined) this.#pendingEnd = end;
      return { kind: 'events', events: out };
    }
    if (end !== undefined) return end;
    if (this.#pendingEnd !== undefined) return this.#pendingEnd;
    return NONE;
  }
  #pendingEnd: ReadResult | undefined;

  #endError(flags: number, body: Uint8Array | undefined): Error | undefined {
    if ((flags & FLAG_FAILED) === 0) return undefined;
    let info: { name?: string; message?: string; code?: string } = {};
    try {
      if (body !== undefined) info = this.#decoder.unpack(body) as typeof info;
    } catch {
      // keep the generic message
    }
    const e = new WeftError(
      info.code ?? ErrorCode.TRANSPORT,
      info.message ?? `stream '${this.streamName}' failed`,
    );
    if (info.name !== undefined) e.name = info.name;
    return e;
  }

  #lagged(): never {
    throw new LaggedError(this.streamName, this.expected, this.expected);
  }

  /**
   * Resolves when the writer has moved past the cursor, the transport closed, or `timeoutMs`
   * passed (re-check after every wake).
   */
  async wait(timeoutMs: number): Promise<void> {
    const i32 = this.#i32;
    Atomics.add(i32, B_READERS_WAITING, 1);
    try {
      const seen = Atomics.load(i32, B_WRITE_POS);
      if (seen >>> 0 !== this.#cursor || Atomics.load(i32, B_STATE) !== 0) return;
      const w = Atomics.waitAsync(i32, B_WRITE_POS, seen, timeoutMs);
      if (w.async) await w.value;
    } finally {
      Atomics.sub(i32, B_READERS_WAITING, 1);
    }
  }

  /** Whether anything is committed past the cursor. */
  get hasData(): boolean {
    return Atomics.load(this.#i32, B_WRITE_POS) >>> 0 !== this.#cursor;
  }
}
