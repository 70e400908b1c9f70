/**
 * Control: the transport-wide shared block: its state, the main thread's doorbell, and the stream
 * directory (a name, a 64-bit sequence counter and a state per stream).
 *
 * Guarantee: every thread claims a stream's sequences from the same counter, so a stream has one
 * dense order however many threads publish to it (I8). Constraints: only the main thread adds names
 * (I12); workers ask it to (a request on their shard's line) and read names lock-free.
 */
import {
  CLOSED_BIT,
  COUNT_MASK,
  CTL_BELL,
  CTL_MAGIC,
  CTL_MAX_STREAMS,
  CTL_SLEEPING,
  CTL_STATE,
  CTL_STREAM_COUNT,
  CTL_VERSION,
  controlBytes,
  counterIndex,
  MAGIC,
  MAX_NAME_BYTES,
  nameLengthIndex,
  nameOffset,
  STATE_OPEN,
  STREAM_OPEN,
  streamStateIndex,
  VERSION,
} from './ring-layout.js';

export class Control {
  readonly sab: SharedArrayBuffer;
  readonly i32: Int32Array;
  readonly i64: BigInt64Array;
  readonly u8: Uint8Array;
  readonly maxStreams: number;

  private constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.i32 = new Int32Array(sab);
    this.i64 = new BigInt64Array(sab);
    this.u8 = new Uint8Array(sab);
    this.maxStreams = Atomics.load(this.i32, CTL_MAX_STREAMS);
  }

  /** Main thread: a fresh block. */
  static create(maxStreams: number): Control {
    const sab = new SharedArrayBuffer(controlBytes(maxStreams));
    const i32 = new Int32Array(sab);
    Atomics.store(i32, CTL_MAX_STREAMS, maxStreams);
    Atomics.store(i32, CTL_VERSION, VERSION);
    Atomics.store(i32, CTL_STATE, STATE_OPEN);
    Atomics.store(i32, CTL_MAGIC, MAGIC);
    return new Control(sab);
  }

  /** A worker: the block the main thread created. @throws Error when it is not a Weft control block of this version. */
  static attach(sab: SharedArrayBuffer): Control {
    const i32 = new Int32Array(sab);
    if (Atomics.load(i32, CTL_MAGIC) !== MAGIC || Atomics.load(i32, CTL_VERSION) !== VERSION) {
      throw new Error('not a Weft sab control block of this version');
    }
    return new Control(sab);
  }

  get state(): number {
    return Atomics.load(this.i32, CTL_STATE);
  }
  setState(state: number): void {
    Atomics.store(this.i32, CTL_STATE, state);
  }

  // ---------------------------------------------------------------- doorbell

  /** Producer side of the wake-up protocol: wakes the drain if (and only if) it parks. */
  ring(): void {
    const i32 = this.i32;
    if (Atomics.load(i32, CTL_SLEEPING) !== 0 && Atomics.exchange(i32, CTL_SLEEPING, 0) !== 0) {
      Atomics.add(i32, CTL_BELL, 1);
      Atomics.notify(i32, CTL_BELL);
    }
  }
  /** Wakes the drain unconditionally (close, recovery). */
  ringAlways(): void {
    Atomics.store(this.i32, CTL_SLEEPING, 0);
    Atomics.add(this.i32, CTL_BELL, 1);
    Atomics.notify(this.i32, CTL_BELL);
  }

  // ---------------------------------------------------------------- directory

  /** Number of complete entries (I12). */
  get streamCount(): number {
    return Atomics.load(this.i32, CTL_STREAM_COUNT);
  }

  /** The id of `name`, or -1 when it is not registered. Reads only complete entries (I12). */
  find(name: string): number {
    const count = this.streamCount;
    const n = name.length;
    const u8 = this.u8;
    outer: for (let id = 0; id < count; id++) {
      if (Atomics.load(this.i32, nameLengthIndex(id)) !== n) continue;
      const at = nameOffset(id);
      for (let i = 0; i < n; i++) if (u8[at + i] !== name.charCodeAt(i)) continue outer;
      return id;
    }
    return -1;
  }

  nameOf(id: number): string {
    const n = Atomics.load(this.i32, nameLengthIndex(id));
    const at = nameOffset(id);
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(this.u8[at + i]!);
    return s;
  }

  /**
   * Main thread only (I12): adds `name` (1-200 ASCII characters, checked by the caller) and
   * returns its id, or -1 when the directory is full.
   */
  register(name: string): number {
    const id = this.streamCount;
    if (id >= this.maxStreams) return -1;
    if (name.length > MAX_NAME_BYTES) throw new RangeError(`stream name longer than ${MAX_NAME_BYTES}`);
    const at = nameOffset(id);
    for (let i = 0; i < name.length; i++) this.u8[at + i] = name.charCodeAt(i);
    Atomics.store(this.i32, nameLengthIndex(id), name.length);
    Atomics.store(this.i32, streamStateIndex(id), STREAM_OPEN);
    Atomics.store(this.i64, counterIndex(id), 0n);
    Atomics.store(this.i32, CTL_STREAM_COUNT, id + 1); // publishes the entry (I12)
    return id;
  }

  // ---------------------------------------------------------------- sequences

  /** Claims `n` sequences of stream `id` (I8): the first of them, or -1 when the stream is closed. */
  claim(id: number, n: number): number {
    const before = Atomics.add(this.i64, counterIndex(id), BigInt(n));
    if (before >= CLOSED_BIT) return -1;
    return Number(before) + 1;
  }

  /** Sequences claimed so far (meaningful until the stream closes; failed claims count after). */
  claimed(id: number): number {
    return Number(Atomics.load(this.i64, counterIndex(id)) & COUNT_MASK);
  }

  /** Closes the counter: later claims fail (I8). Returns the number of sequences claimed before. */
  closeCounter(id: number, state: number): number {
    Atomics.store(this.i32, streamStateIndex(id), state);
    const before = Atomics.or(this.i64, counterIndex(id), CLOSED_BIT);
    return Number(before & COUNT_MASK);
  }

  streamState(id: number): number {
    return Atomics.load(this.i32, streamStateIndex(id));
  }

  /**
   * Restarts a stream's counter at 0 when exactly `claimed` sequences were claimed (a TTL drop
   * of an idle stream). False when a claim raced in, in which case the stream is not idle.
   */
  restartCounter(id: number, claimed: number): boolean {
    const expected = BigInt(claimed);
    return Atomics.compareExchange(this.i64, counterIndex(id), expected, 0n) === expected;
  }
}
