/**
 * Shard: the main thread's view of one publisher shard: its ring's reading end, the decoder of its
 * producer, what was taken out of the ring but not yet given to streams (the rest of a chunk, a
 * record waiting for room in its stream's reorder window, fragments of a large batch), and the
 * waiters of `pool.run()` and `pool.close()`.
 * Constraint: main thread only (the drain owns it).
 */
import { BatchDecoder, type RecordHeader } from './codec.js';
import { RingReader } from './ring.js';
import { SH_OWNER, SH_WRITE_POS, SHARD_HEADER_BYTES, shardBytes } from './ring-layout.js';

/** Takes up to this size reuse a per-shard buffer (decoded binaries are then copied out of it). */
export const SCRATCH_BYTES = 16 * 1024;

/** A complete record taken out of the ring, waiting for room in its stream's reorder window. */
export interface Pending {
  flags: number;
  streamId: number;
  count: number;
  first: number;
  time: number;
  body: Uint8Array;
}

/** The main thread's view of one publisher shard. */
export class Shard {
  readonly index: number;
  readonly capacity: number;
  readonly sab: SharedArrayBuffer;
  readonly i32: Int32Array;
  readonly i64: BigInt64Array;
  readonly reader: RingReader;
  readonly decoder = new BatchDecoder();
  chunk: Uint8Array | null = null;
  view: DataView | null = null;
  pos = 0;
  /** Small takes land here (no allocation per record); `chunk` is then a view of it. */
  readonly scratch = new Uint8Array(SCRATCH_BYTES);
  readonly #scratchView = new DataView(this.scratch.buffer);
  /** @internal */
  viewOf(chunk: Uint8Array): DataView {
    return chunk.buffer === this.scratch.buffer
      ? this.#scratchView
      : new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
  /** Fragments of a batch larger than the ring, and the header of its first fragment. */
  fragments: Uint8Array[] = [];
  fragHeader: RecordHeader | null = null;
  /** A complete record that did not fit its stream's reorder window yet. */
  blocked: Pending | null = null;
  /** Set after an undecodable record: records are lost until the producer resets its encoder. */
  poisoned: Error | undefined;
  /** The owner exited: drain what it committed, then free the ring (I11). */
  dead = false;
  removed = false;
  readonly #idle: (() => void)[] = [];
  readonly #taken: { target: number; resolve: () => void }[] = [];

  constructor(index: number, capacity: number) {
    this.index = index;
    this.capacity = capacity;
    this.sab = new SharedArrayBuffer(shardBytes(capacity));
    this.i32 = new Int32Array(this.sab, 0, SHARD_HEADER_BYTES / 4);
    this.i64 = new BigInt64Array(this.sab, 0, SHARD_HEADER_BYTES / 8);
    this.reader = new RingReader(this.sab, capacity);
  }

  get owner(): number {
    return Atomics.load(this.i32, SH_OWNER);
  }

  /** Nothing committed is left anywhere on the main thread's side or in the ring. */
  get drained(): boolean {
    return (
      this.blocked === null &&
      (this.chunk === null || this.pos >= this.chunk.length) &&
      this.reader.available() === 0
    );
  }

  /** Resolves once the ring has no owner and nothing left to drain. */
  whenIdle(): Promise<void> {
    if (this.owner === 0 && this.drained) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }
  /**
   * Resolves once everything committed to the ring so far has been taken out and given to its
   * streams (or the owner died: its records are then drained by the recovery).
   */
  whenTaken(): Promise<void> {
    const target = Atomics.load(this.i32, SH_WRITE_POS) >>> 0;
    if (this.#isTaken(target)) return Promise.resolve();
    return new Promise((resolve) => this.#taken.push({ target, resolve }));
  }

  #isTaken(target: number): boolean {
    if (this.dead) return true;
    const behind = (target - this.reader.readPos) >>> 0;
    const passed = behind === 0 || behind > this.capacity;
    return passed && this.blocked === null && (this.chunk === null || this.pos >= this.chunk.length);
  }

  /** @internal */
  settleTaken(): void {
    if (this.#taken.length === 0) return;
    let keep = 0;
    for (const w of this.#taken) {
      if (this.#isTaken(w.target)) w.resolve();
      else this.#taken[keep++] = w;
    }
    this.#taken.length = keep;
  }

  /** @internal */
  settleIdle(): void {
    if (this.owner !== 0 || !this.drained) return;
    for (const r of this.#idle.splice(0)) r();
  }
}
