/**
 * The single-producer, single-consumer byte ring of one publisher shard: `RingWriter` is the
 * producer's end (a worker), `RingReader` the consumer's (the main thread's drain).
 *
 * Guarantee: the reader sees whole records, in the order the writer committed them, and the
 * writer never overwrites a byte the reader has not released (I1-I7 in ring-layout.ts).
 * Constraint: one writer and one reader per ring; `RingWriter.waitForRoom` blocks (Atomics.wait),
 * so it runs in workers only; the reader never blocks.
 */
import {
  advance,
  copyIn,
  copyOut,
  free,
  H_FRAME_BYTES,
  HEADER_BYTES,
  indexOf,
  reached,
  SH_PRODUCER_NEED,
  SH_PRODUCER_WAITING,
  SH_READ_POS,
  SH_WRITE_POS,
  SHARD_HEADER_BYTES,
  used,
} from './ring-layout.js';

/** Something to wake after a commit (the main thread's doorbell). */
export interface Wakeable {
  ring(): void;
}

export class RingWriter {
  readonly capacity: number;
  readonly #i32: Int32Array;
  readonly #data: Uint8Array;
  readonly #bell: Wakeable;
  /** The whole data region as a Buffer, for encoding records in place (see `inPlace`). */
  readonly #region: Buffer;
  /** Our own copy of WRITE_POS (I2: nobody else stores it). */
  #writePos: number;
  /** The last READ_POS seen; stale in the safe direction (it only grows). */
  #readPos: number;

  constructor(shard: SharedArrayBuffer, capacity: number, bell: Wakeable) {
    this.capacity = capacity;
    this.#i32 = new Int32Array(shard, 0, SHARD_HEADER_BYTES / 4);
    this.#data = new Uint8Array(shard, SHARD_HEADER_BYTES, capacity);
    this.#region = Buffer.from(shard, SHARD_HEADER_BYTES, capacity);
    this.#bell = bell;
    this.#writePos = Atomics.load(this.#i32, SH_WRITE_POS) >>> 0;
    this.#readPos = Atomics.load(this.#i32, SH_READ_POS) >>> 0;
  }

  /** The position the next record starts at. */
  get writePos(): number {
    return this.#writePos;
  }

  /** Free bytes as last seen (may be stale: the true value is at least this). */
  get freeBytes(): number {
    return free(this.#writePos, this.#readPos, this.capacity);
  }

  /** Whether `span` bytes are free; re-reads READ_POS only when the cached view says no. */
  hasRoom(span: number): boolean {
    if (free(this.#writePos, this.#readPos, this.capacity) >= span) return true;
    this.#readPos = Atomics.load(this.#i32, SH_READ_POS) >>> 0;
    return free(this.#writePos, this.#readPos, this.capacity) >= span;
  }

  /**
   * Blocks (Atomics.wait, workers only) until `span` bytes are free. Returns false, without
   * waiting longer, as soon as `stop()` returns true (checked at least every `sliceMs`).
   */
  waitForRoom(span: number, stop: () => boolean, sliceMs = 50): boolean {
    const i32 = this.#i32;
    const cap = this.capacity;
    while (!this.hasRoom(span)) {
      if (stop()) return false;
      // Wake me when `want` bytes are free (hysteresis: fewer wake-ups than one per record).
      const want = Math.min(cap, Math.max(span, cap >>> 2));
      const need = advance(this.#writePos, want - cap);
      Atomics.store(i32, SH_PRODUCER_NEED, need | 0);
      Atomics.store(i32, SH_PRODUCER_WAITING, 1);
      // Re-check after announcing the wait: the reader notifies only when it sees the flag.
      const seen = Atomics.load(i32, SH_READ_POS);
      if (!reached(seen >>> 0, need, cap)) Atomics.wait(i32, SH_READ_POS, seen, sliceMs);
      Atomics.store(i32, SH_PRODUCER_WAITING, 0);
    }
    return true;
  }

  /** `waitForRoom` for code that must not block its thread (Atomics.waitAsync). */
  async waitForRoomAsync(span: number, stop: () => boolean, sliceMs = 50): Promise<boolean> {
    const i32 = this.#i32;
    const cap = this.capacity;
    while (!this.hasRoom(span)) {
      if (stop()) return false;
      const need = advance(this.#writePos, Math.min(cap, span) - cap);
      Atomics.store(i32, SH_PRODUCER_NEED, need | 0);
      Atomics.store(i32, SH_PRODUCER_WAITING, 1);
      const seen = Atomics.load(i32, SH_READ_POS);
      if (!reached(seen >>> 0, need, cap)) {
        const w = Atomics.waitAsync(i32, SH_READ_POS, seen, sliceMs);
        if (w.async) await w.value;
      }
      Atomics.store(i32, SH_PRODUCER_WAITING, 0);
    }
    return true;
  }

  /**
   * The data region and the index where a record's body can be encoded in place, when every byte
   * from the write index to the end of the region is free and there are at least `minBytes` of them
   * (I5: an encoder writing there touches no byte the reader has not released). Undefined otherwise.
   */
  inPlace(minBytes: number): { region: Buffer; bodyIndex: number; room: number } | undefined {
    const index = indexOf(this.#writePos, this.capacity);
    const room = this.capacity - index;
    if (room < minBytes) return undefined;
    // Free up to the end iff every used byte lies below the write index.
    if (used(this.#writePos, this.#readPos) > index) {
      this.#readPos = Atomics.load(this.#i32, SH_READ_POS) >>> 0;
      if (used(this.#writePos, this.#readPos) > index) return undefined;
    }
    return { region: this.#region, bodyIndex: index + HEADER_BYTES, room };
  }

  /** Writes `bytes` at `offset` bytes into the record that starts at the current write position (I5). */
  put(offset: number, bytes: Uint8Array): void {
    copyIn(this.#data, this.capacity, advance(this.#writePos, offset), bytes);
  }

  /** Publishes the record of `span` bytes that starts at the write position (I3), and wakes the reader. */
  commit(span: number): void {
    this.#writePos = advance(this.#writePos, span);
    Atomics.store(this.#i32, SH_WRITE_POS, this.#writePos | 0);
    this.#bell.ring();
  }
}

export class RingReader {
  readonly capacity: number;
  /** Counters for metrics and tests: takes, bytes taken, producer wake-ups sent. */
  readonly stats = { takes: 0, bytes: 0, wakes: 0 };
  readonly #i32: Int32Array;
  readonly #data: Uint8Array;
  readonly #view: DataView;
  /** Our own copy of READ_POS (I2). */
  #readPos: number;

  constructor(shard: SharedArrayBuffer, capacity: number) {
    this.capacity = capacity;
    this.#i32 = new Int32Array(shard, 0, SHARD_HEADER_BYTES / 4);
    this.#data = new Uint8Array(shard, SHARD_HEADER_BYTES, capacity);
    this.#view = new DataView(shard, SHARD_HEADER_BYTES, capacity);
    this.#readPos = Atomics.load(this.#i32, SH_READ_POS) >>> 0;
  }

  get readPos(): number {
    return this.#readPos;
  }

  /** Committed bytes not yet taken (I4: WRITE_POS is loaded before anything below it is read). */
  available(): number {
    return used(Atomics.load(this.#i32, SH_WRITE_POS) >>> 0, this.#readPos);
  }

  /**
   * Copies whole committed records out (at most `maxBytes` of them, but at least one) into a
   * fresh, private buffer (or into `scratch` when they fit it), then releases their ring bytes
   * (I5). `null` when the ring is empty. The copy is what lets the producer go on while the
   * records are decoded, and decoding from private memory is twice as fast as from shared memory.
   */
  take(maxBytes: number, scratch?: Uint8Array): Uint8Array | null {
    const writePos = Atomics.load(this.#i32, SH_WRITE_POS) >>> 0; // I4
    let n = used(writePos, this.#readPos);
    if (n === 0) return null;
    if (n > maxBytes) n = this.#wholeRecords(n, maxBytes);
    // Small takes reuse the caller's buffer (no allocation per record at low rates): then nothing
    // decoded from it may keep a view of it (see BatchDecoder's copyBuffers).
    const out = scratch !== undefined && n <= scratch.length ? scratch.subarray(0, n) : new Uint8Array(n);
    copyOut(this.#data, this.capacity, this.#readPos, n, out);
    this.release(n);
    this.stats.takes++;
    this.stats.bytes += n;
    return out;
  }

  /** The 8-byte-aligned length of the record at `position` (I7: its first word never straddles the end). */
  frameAt(position: number): number {
    return this.#view.getUint32(indexOf(position, this.capacity) + H_FRAME_BYTES, true);
  }

  /** Reads `length` committed bytes at `position` without releasing them (for inspection). */
  peek(position: number, length: number, dst: Uint8Array): void {
    copyOut(this.#data, this.capacity, position, length, dst);
  }

  /** Releases `n` bytes (I5) and wakes a producer that waits for room. */
  release(n: number): void {
    this.#readPos = advance(this.#readPos, n);
    Atomics.store(this.#i32, SH_READ_POS, this.#readPos | 0);
    const i32 = this.#i32;
    if (
      Atomics.load(i32, SH_PRODUCER_WAITING) !== 0 &&
      reached(this.#readPos, Atomics.load(i32, SH_PRODUCER_NEED) >>> 0, this.capacity)
    ) {
      Atomics.notify(i32, SH_READ_POS);
      this.stats.wakes++;
    }
  }

  /** The bytes of the longest run of whole records from READ_POS within `maxBytes` (at least one record). */
  #wholeRecords(availableBytes: number, maxBytes: number): number {
    let n = 0;
    let pos = this.#readPos;
    while (n < availableBytes) {
      const frame = this.frameAt(pos);
      const span = (Math.max(frame, HEADER_BYTES) + 7) & ~7;
      if (n > 0 && n + span > maxBytes) break;
      n += span;
      pos = advance(pos, span);
    }
    return Math.min(n, availableBytes);
  }
}
