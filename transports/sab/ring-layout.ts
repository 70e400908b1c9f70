/**
 * RingLayout: every byte offset of the `sab` transport's shared memory, and the protocol that
 * governs it. Nothing outside this module hard-codes an offset.
 *
 * Guarantee: a record (one published batch) becomes visible to the consumer whole or not at all,
 * in the order its producer committed it; no byte is overwritten before its reader released it.
 * Constraints: each publish ring has exactly one producer (one worker thread, the ring's *owner*)
 * and one consumer (the main thread's drain); roles never change while the owner lives.
 *
 * ## Positions and indexes
 * A *position* counts bytes written since the ring was created: a wrap-safe Uint32 (it wraps at
 * 2^32; stored in an Int32 slot as `pos | 0`, loaded as `Atomics.load(..) >>> 0`). An *index* is
 * a byte offset into the data region: `position & (capacity - 1)`. Capacity is a power of two in
 * [MIN_RING_BYTES, MAX_RING_BYTES] (2^30 at most), so `(write - read) >>> 0` is the exact number
 * of used bytes. A variable holds one or the other and is named for it (`...Pos` / `...Index`).
 * Sequence numbers are a different thing again: 64-bit counters (BigInt64), one per stream.
 *
 * ## Shared memory
 * ```text
 * control SAB (one per transport)
 * 0    +--------------------------------------------------------------+
 *      | MAGIC | VERSION | STATE | MAX_STREAMS | STREAM_COUNT          |  header (main writes)
 * 128  +--------------------------------------------------------------+
 *      | BELL | SLEEPING                                               |  doorbell line
 * 256  +--------------------------------------------------------------+
 *      | directory entry 0 (256 B): COUNTER i64 | STATE | NAME_LEN |   |
 *      |   NAME[200] ...                                               |  main is the only writer
 *      | directory entry 1 ...                                         |  of names; anyone claims
 *      | ...  (MAX_STREAMS entries)                                    |  from COUNTER (Atomics.add)
 *      +--------------------------------------------------------------+
 *
 * shard SAB (one per publisher shard: one ring, one producer)
 * 0    +--------------------------------------------------------------+
 *      | WRITE_POS | . | INTENT_FIRST i64 | INTENT_STREAM | INTENT_COUNT|  producer line
 * 128  +--------------------------------------------------------------+
 *      | READ_POS                                                      |  consumer line
 * 256  +--------------------------------------------------------------+
 *      | PRODUCER_WAITING | OWNER | DECODER_RESET | PRODUCER_NEED      |  shared line
 * 384  +--------------------------------------------------------------+
 *      | REQ_STATE | REQ_RESULT | REQ_KIND | REQ_LEN | REQ_ARG i64 |    |  request line
 *      | REQ_NAME[200]                                                 |
 * 1024 +--------------------------------------------------------------+
 *      | data: `capacity` bytes of records, 8-byte aligned            |
 *      |   ... | record | record | (free) | record ...                 |
 *      +--------------------------------------------------------------+
 *              ^read index              ^write index
 *
 * record (8-byte aligned; may wrap around the end of the data region)
 * 0    FRAME_BYTES u32 (header + body, before padding) | FLAGS u32 (kind | MORE | RESET)
 * 8    STREAM_ID u32 | COUNT u32 (events in the batch)
 * 16   FIRST_SEQ f64 | TIME f64 (ms since the epoch)
 * 32   body: msgpackr bytes of [topics, data0, data1, ...] (or one fragment of them)
 * ```
 * Producer-owned and consumer-owned words sit 128 bytes apart (two cache lines on every common
 * CPU, and one adjacent-line prefetch pair), so a producer's stores never invalidate the line the
 * consumer polls, and vice versa.
 *
 * ## Invariants (cited in the code as I1..I12)
 * - I1  `0 <= (WRITE_POS - READ_POS) >>> 0 <= capacity`.
 * - I2  Only the ring's owner stores WRITE_POS; only the main thread's drain stores READ_POS.
 * - I3  A record's bytes (header and body) are written before WRITE_POS is stored past them.
 * - I4  The consumer loads WRITE_POS before it reads any byte below it; it never reads at or past it.
 * - I5  The producer writes only into `[WRITE_POS, READ_POS + capacity)`; the consumer stores
 *       READ_POS past a record only after it copied the record out (so the bytes are free after).
 * - I6  Control words are only ever touched through `Atomics` (every JS Atomics operation is
 *       sequentially consistent; plain typed-array accesses are unordered). Payload bytes are
 *       plain accesses, ordered by I3/I4.
 * - I7  Records start at 8-byte aligned positions and advance by `align8(FRAME_BYTES)`; the first
 *       8 bytes of a record never straddle the end of the data region (capacity is a multiple of 8).
 * - I8  Sequences are claimed with `Atomics.add(COUNTER, n)` (one claim per record, claimed by the
 *       record's producer after its bytes are reserved and before its header is written); a claim
 *       that finds CLOSED_BIT set has failed, and its record is committed as VOID.
 * - I9  The producer publishes its claim (INTENT_STREAM, INTENT_COUNT, then INTENT_FIRST after the
 *       claim) before the claim, and clears INTENT_STREAM only after WRITE_POS is stored. Between
 *       the claim and the commit there is no wait, no allocation that can throw, and no user code.
 * - I10 Per shard, records are committed in claim order; so for every stream, a shard's records
 *       carry increasing sequences, and the oldest uncommitted claim of all is at the head of its
 *       ring (which is why merging with a bounded window can always make progress).
 * - I11 OWNER is set by a producer with `compareExchange(0 -> threadId)` before its first write and
 *       is cleared only by the main thread, after that thread has exited and its ring is drained
 *       (the main thread holds an unowned ring with -1 while it recovers a claim left on it).
 * - I12 The directory's names are written by the main thread only, before STREAM_COUNT is stored
 *       past the entry; a worker reads an entry only below STREAM_COUNT.
 *
 * ## Wake-up protocol (re-check the condition after every wake; waits have timeouts as a backstop)
 * - Consumer parks (main thread, `Atomics.waitAsync` only): `v = load(BELL)`; `store(SLEEPING, 1)`;
 *   re-check every ring; if all are empty, `waitAsync(BELL, v)`; on wake `store(SLEEPING, 0)`.
 * - Producer, after each commit: `if (load(SLEEPING) && exchange(SLEEPING, 0)) { add(BELL, 1);
 *   notify(BELL) }`. Either the producer's load precedes the consumer's store of SLEEPING (then the
 *   consumer's re-check sees the commit) or the producer rings the bell (then `waitAsync` returns
 *   'not-equal' or is notified). The same rule serves registration requests and reader progress.
 * - Producer waits for room (worker, `Atomics.wait` only): `store(PRODUCER_NEED, need)` (the
 *   READ_POS that frees what it needs, with hysteresis: at least a quarter of the ring);
 *   `store(PRODUCER_WAITING, 1)`; re-load READ_POS; if it is still short, `wait(READ_POS, seen)`.
 *   The consumer, after storing READ_POS, notifies READ_POS when PRODUCER_WAITING is set and
 *   READ_POS has reached PRODUCER_NEED: one wake-up per quarter ring, not one per record.
 *
 * The broadcast ring (worker followers) has its own layout below, with invariants B1..B6.
 */

// ------------------------------------------------------------------ sizes

/** Bytes between words owned by different threads. */
export const LINE = 128;
export const MIN_RING_BYTES = 4096;
export const MAX_RING_BYTES = 2 ** 30;
/** The protocol's magic number ('WEFT' little-endian) and version, checked by every worker. */
export const MAGIC = 0x54464557;
export const VERSION = 1;

// ------------------------------------------------------------------ control SAB (Int32 indexes)

export const CTL_MAGIC = 0;
export const CTL_VERSION = 1;
/** Transport state: 0 open, 1 closing (no new claims), 2 closed. */
export const CTL_STATE = 2;
export const CTL_MAX_STREAMS = 3;
/** Entries below this are complete (I12). */
export const CTL_STREAM_COUNT = 4;
/** Doorbell line. */
export const CTL_BELL = LINE / 4;
export const CTL_SLEEPING = LINE / 4 + 1;

export const STATE_OPEN = 0;
export const STATE_CLOSING = 1;
export const STATE_CLOSED = 2;

/** Byte offset of the stream directory, and the size of one entry. */
export const DIR_OFFSET = 2 * LINE;
export const DIR_ENTRY_BYTES = 256;
/** Within an entry (bytes): the claim counter (BigInt64), its state, its name. */
export const ENTRY_COUNTER = 0;
export const ENTRY_STATE = 8;
export const ENTRY_NAME_LEN = 12;
export const ENTRY_NAME = 16;
export const MAX_NAME_BYTES = 200;
/** Entry states: open, closed (by close()), failed (by fail()). */
export const STREAM_OPEN = 0;
export const STREAM_CLOSED = 1;
export const STREAM_FAILED = 2;
/**
 * Set in a counter by close/fail (`Atomics.or`): a claim that returns a value with this bit has
 * failed (I8). The low bits still count claims, so `Atomics.or`'s result is the final count.
 */
export const CLOSED_BIT = 1n << 62n;
export const COUNT_MASK = CLOSED_BIT - 1n;

export function controlBytes(maxStreams: number): number {
  return DIR_OFFSET + maxStreams * DIR_ENTRY_BYTES;
}
/** BigInt64 index of stream `id`'s counter in the control SAB. */
export function counterIndex(id: number): number {
  return (DIR_OFFSET + id * DIR_ENTRY_BYTES + ENTRY_COUNTER) / 8;
}
/** Int32 index of stream `id`'s state word. */
export function streamStateIndex(id: number): number {
  return (DIR_OFFSET + id * DIR_ENTRY_BYTES + ENTRY_STATE) / 4;
}
export function nameLengthIndex(id: number): number {
  return (DIR_OFFSET + id * DIR_ENTRY_BYTES + ENTRY_NAME_LEN) / 4;
}
/** Byte offset of stream `id`'s name. */
export function nameOffset(id: number): number {
  return DIR_OFFSET + id * DIR_ENTRY_BYTES + ENTRY_NAME;
}

// ------------------------------------------------------------------ shard SAB (Int32 indexes)

/** Producer line. */
export const SH_WRITE_POS = 0;
/** BigInt64 index: first sequence of the claim in flight, 0n while unknown (I9). */
export const SH_INTENT_FIRST_I64 = 1;
/** Stream id + 1 of the claim in flight, 0 when none (I9). */
export const SH_INTENT_STREAM = 4;
export const SH_INTENT_COUNT = 5;
/** Consumer line. */
export const SH_READ_POS = LINE / 4;
/** Shared line. */
export const SH_PRODUCER_WAITING = (2 * LINE) / 4;
/** The owning thread's id, 0 when the ring is free, -1 while the main thread recovers it (I11). */
export const SH_OWNER = (2 * LINE) / 4 + 1;
/** Set by the main thread when it could not decode this shard's records: the producer resets its encoder. */
export const SH_DECODER_RESET = (2 * LINE) / 4 + 2;
/** While PRODUCER_WAITING: the READ_POS at which the producer has the room it waits for. */
export const SH_PRODUCER_NEED = (2 * LINE) / 4 + 3;
/** Request line: a worker asks the main thread for something (register a stream, join a follow). */
export const SH_REQ_STATE = (3 * LINE) / 4;
export const SH_REQ_RESULT = (3 * LINE) / 4 + 1;
export const SH_REQ_KIND = (3 * LINE) / 4 + 2;
export const SH_REQ_LEN = (3 * LINE) / 4 + 3;
/** BigInt64 index of the request's numeric argument. */
export const SH_REQ_ARG_I64 = (3 * LINE) / 8 + 2;
/** Byte offset of the request's name. */
export const SH_REQ_NAME = 3 * LINE + 24;
export const SHARD_HEADER_BYTES = 1024;

/** Request states. */
export const REQ_IDLE = 0;
export const REQ_PENDING = 1;
export const REQ_DONE = 2;
export const REQ_FAILED = 3;
/** Request kinds. */
export const REQ_REGISTER = 1;
export const REQ_FOLLOW = 2;
/** REQ_RESULT codes for REQ_FAILED. */
export const REQ_ERR_DIRECTORY_FULL = 1;
export const REQ_ERR_CLOSED = 2;
export const REQ_ERR_TRUNCATED = 3;
export const REQ_ERR_NO_FOLLOW_RING = 4;

export function shardBytes(capacity: number): number {
  return SHARD_HEADER_BYTES + capacity;
}

// ------------------------------------------------------------------ records

export const HEADER_BYTES = 32;
export const H_FRAME_BYTES = 0;
export const H_FLAGS = 4;
export const H_STREAM = 8;
export const H_COUNT = 12;
export const H_FIRST = 16;
export const H_TIME = 24;

/** Record kinds (low byte of FLAGS). */
export const KIND_BATCH = 1;
/** A record whose claim failed (stream closed): decoded (to keep the decoder in step) and dropped. */
export const KIND_VOID = 2;
/** Broadcast ring: the stream ended (FLAG_FAILED: with an error, in the body). */
export const KIND_END = 3;
/** Broadcast ring: sequences `first .. first + count - 1` were trimmed before they could be copied. */
export const KIND_TRIMMED = 4;
export const FLAG_FAILED = 0x400;
/** More fragments of the same batch follow in this ring. */
export const FLAG_MORE = 0x100;
/** The decoder must start afresh before this record (a new producer, or an encoder reset). */
export const FLAG_RESET = 0x200;

// ------------------------------------------------------------------ broadcast SAB (worker followers)
/*
 * One broadcast ring per transport; the main thread is its only writer, any worker a reader.
 * ```text
 * 0    | B_WRITE_POS | B_CLAIM_POS | B_READERS_WAITING | B_WRITER_WAITING | B_STATE | writer line
 * 128  | reader slot 0: STATE | CURSOR | OWNER | STREAM+1 |                     one line per reader
 * 256  | reader slot 1 ...                                                   |
 * ...  | (MAX_READERS slots)                                                 |
 * D    | data: `capacity` bytes of records (same record format; bodies are self-contained) |
 * ```
 * - B1 Only the main thread stores B_WRITE_POS and B_CLAIM_POS; a reader stores only its own CURSOR.
 * - B2 The writer stores B_CLAIM_POS = end before writing a record's bytes, and B_WRITE_POS = end after.
 * - B3 Before writing up to position `end`, the writer checks every slot whose STATE is BLOCK:
 *      `end - CURSOR <= capacity`; when one is behind, it waits (no byte of that reader is overwritten).
 * - B4 A LAG reader validates a record after copying it: the bytes are intact iff
 *      `load(B_CLAIM_POS) - recordPos <= capacity`; otherwise it lagged and is told so (LaggedError).
 * - B5 A reader joins by claiming a FREE slot (compareExchange), storing CURSOR = load(B_WRITE_POS),
 *      then its STATE; a writer that missed the join writes only at or after that cursor (no loss).
 * - B6 A reader delivers only the sequence it expects next and skips others: a replay it asked for
 *      (the main thread rewinds that stream's copier) repeats events, never reorders them.
 * Wake-ups: a reader that waits for data increments B_READERS_WAITING, re-loads B_WRITE_POS, then
 * `waitAsync(B_WRITE_POS, seen)`; the writer, after storing B_WRITE_POS, notifies when the count is
 * above 0. A blocked writer stores B_WRITER_WAITING = 1 and re-checks; a reader, after storing its
 * CURSOR, rings the main thread's doorbell when the flag is set.
 */
export const B_WRITE_POS = 0;
export const B_CLAIM_POS = 1;
export const B_READERS_WAITING = 2;
export const B_WRITER_WAITING = 3;
/** 0 open; 1 once the transport closed (readers finish after what is in the ring). */
export const B_STATE = 4;
export const B_SLOTS_OFFSET = LINE;
export const B_SLOT_BYTES = LINE;
export const SLOT_STATE = 0;
export const SLOT_CURSOR = 1;
export const SLOT_OWNER = 2;
export const SLOT_STREAM = 3;
/** Slot states. */
export const SLOT_FREE = 0;
export const SLOT_JOINING = 1;
export const SLOT_BLOCK = 2;
export const SLOT_LAG = 3;

export function broadcastBytes(capacity: number, maxReaders: number): number {
  return B_SLOTS_OFFSET + maxReaders * B_SLOT_BYTES + capacity;
}
export function broadcastDataOffset(maxReaders: number): number {
  return B_SLOTS_OFFSET + maxReaders * B_SLOT_BYTES;
}
/** Int32 index of word `word` of reader slot `slot`. */
export function slotIndex(slot: number, word: number): number {
  return (B_SLOTS_OFFSET + slot * B_SLOT_BYTES) / 4 + word;
}

// ------------------------------------------------------------------ position arithmetic (pure)

/** A position `bytes` further on (wraps at 2^32). */
export function advance(position: number, bytes: number): number {
  return (position + bytes) >>> 0;
}
/** Whether position `pos` is at or past `target` (both within one capacity of each other). */
export function reached(pos: number, target: number, capacity: number): boolean {
  return (pos - target) >>> 0 <= capacity;
}
/** Bytes between `read` and `write` (I1: never more than the capacity for a sound ring). */
export function used(writePos: number, readPos: number): number {
  return (writePos - readPos) >>> 0;
}
/** Bytes the producer may still write. */
export function free(writePos: number, readPos: number, capacity: number): number {
  return capacity - used(writePos, readPos);
}
/** The data index of a position. */
export function indexOf(position: number, capacity: number): number {
  return position & (capacity - 1);
}
/** Rounds up to a multiple of 8 (records start 8-byte aligned, I7). */
export function align8(bytes: number): number {
  return (bytes + 7) & ~7;
}
/** The ring bytes a record with a body of `bodyBytes` occupies. */
export function recordSpan(bodyBytes: number): number {
  return align8(HEADER_BYTES + bodyBytes);
}
export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Copies `src` into the ring's data region at `position`, in two pieces when it wraps (I5: caller checked the room). */
export function copyIn(data: Uint8Array, capacity: number, position: number, src: Uint8Array): void {
  const index = indexOf(position, capacity);
  const first = capacity - index;
  if (src.length <= first) {
    data.set(src, index);
  } else {
    data.set(src.subarray(0, first), index);
    data.set(src.subarray(first), 0);
  }
}

/** Copies `length` bytes at `position` out of the ring into `dst` at `dstOffset`, in two pieces when it wraps. */
export function copyOut(
  data: Uint8Array,
  capacity: number,
  position: number,
  length: number,
  dst: Uint8Array,
  dstOffset = 0,
): void {
  const index = indexOf(position, capacity);
  const first = capacity - index;
  if (length <= first) {
    dst.set(data.subarray(index, index + length), dstOffset);
  } else {
    dst.set(data.subarray(index, capacity), dstOffset);
    dst.set(data.subarray(0, length - first), dstOffset + first);
  }
}
