/**
 * The ring's index arithmetic and its single-threaded behaviour, against naive models: positions
 * are unbounded integers in the model and wrap-safe Uint32 in the ring; indexes are positions mod
 * the capacity. Model-based (fc.commands) for the writer/reader pair: writes fit exactly when the
 * model has room, takes return exactly the model's queued records, empty and full agree.
 *
 * FC_SEED / FC_PATH replay a failure (see test/helpers/fc.ts).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RingReader, RingWriter } from '../../transports/sab/ring.js';
import {
  advance,
  align8,
  copyIn,
  copyOut,
  free,
  HEADER_BYTES,
  indexOf,
  reached,
  recordSpan,
  SH_READ_POS,
  SH_WRITE_POS,
  SHARD_HEADER_BYTES,
  shardBytes,
  used,
} from '../../transports/sab/ring-layout.js';
import { fcParams } from '../helpers/fc.js';

const U32 = 2 ** 32;
const capacities = fc.constantFrom(64, 128, 256, 1024, 4096);
/** Start positions biased to the Uint32 wrap. */
const startPositions = fc.oneof(
  fc.constant(0),
  fc.integer({ min: U32 - 5000, max: U32 - 1 }),
  fc.integer({ min: 0, max: U32 - 1 }),
);
/** Record positions are 8-byte aligned (I7): rings start at 0 and advance by aligned spans. */
const alignedStarts = startPositions.map((p) => (p & ~7) >>> 0);

describe('ring arithmetic', () => {
  it('used, free, index and reached agree with unbounded positions across the 2^32 wrap', () => {
    fc.assert(
      fc.property(
        capacities,
        startPositions,
        fc.array(fc.tuple(fc.boolean(), fc.nat(5000)), { maxLength: 60 }),
        (cap, start, steps) => {
          let W = start; // model: unbounded
          let R = start;
          let w = start >>> 0; // ring: wrap-safe Uint32
          let r = start >>> 0;
          for (const [isWrite, amount] of steps) {
            if (isWrite) {
              const n = Math.min(amount, cap - (W - R));
              W += n;
              w = advance(w, n);
            } else {
              const n = Math.min(amount, W - R);
              R += n;
              r = advance(r, n);
            }
            expect(used(w, r)).toBe(W - R); // I1
            expect(free(w, r, cap)).toBe(cap - (W - R));
            expect(indexOf(w, cap)).toBe(W % cap);
            expect(indexOf(r, cap)).toBe(R % cap);
            expect(w).toBe(W % U32);
            expect(reached(r, r, cap)).toBe(true);
            expect(reached(w, r, cap)).toBe(true); // the writer is at or past the reader
            if (W > R) expect(reached(r, w, cap)).toBe(false);
            const empty = used(w, r) === 0;
            const full = free(w, r, cap) === 0;
            expect(empty).toBe(W === R);
            expect(full).toBe(W - R === cap);
          }
        },
      ),
      fcParams({ numRuns: 300 }),
    );
  });

  it('records are 8-byte aligned and never smaller than their header', () => {
    fc.assert(
      fc.property(fc.nat(1 << 20), (body) => {
        const span = recordSpan(body);
        expect(span % 8).toBe(0);
        expect(span).toBeGreaterThanOrEqual(HEADER_BYTES + body);
        expect(span - (HEADER_BYTES + body)).toBeLessThan(8);
        expect(align8(span)).toBe(span);
      }),
      fcParams({ numRuns: 200 }),
    );
  });

  it('copyIn then copyOut round-trips at any position, in two pieces across the end, touching nothing else', () => {
    fc.assert(
      fc.property(
        capacities,
        startPositions,
        fc.uint8Array({ minLength: 0, maxLength: 4096 }),
        (cap, pos, src) => {
          const bytes = src.subarray(0, Math.min(src.length, cap));
          const data = new Uint8Array(cap).fill(0xa5);
          copyIn(data, cap, pos, bytes);
          const out = new Uint8Array(bytes.length);
          copyOut(data, cap, pos, bytes.length, out);
          expect(out).toEqual(bytes);
          // Every byte outside the written range keeps its canary.
          const at = indexOf(pos, cap);
          for (let i = 0; i < cap; i++) {
            const offset = (i - at + cap) % cap;
            if (offset >= bytes.length) expect(data[i]).toBe(0xa5);
          }
        },
      ),
      fcParams({ numRuns: 300 }),
    );
  });
});

// ---------------------------------------------------------------- writer/reader model

interface Model {
  cap: number;
  /** Queued records (bodies), in commit order. */
  queue: Uint8Array[];
  usedBytes: number;
}
interface Real {
  writer: RingWriter;
  reader: RingReader;
  data: Uint8Array;
  canary: Uint8Array;
}
type Cmd = fc.Command<Model, Real>;

/** A record whose body encodes its own length and a pattern, so a torn or misplaced one shows. */
function body(len: number, salt: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + salt) & 0xff;
  return b;
}

function header(frame: number): Uint8Array {
  const h = new Uint8Array(HEADER_BYTES);
  new DataView(h.buffer).setUint32(0, frame, true);
  return h;
}

class WriteCmd implements Cmd {
  constructor(
    readonly len: number,
    readonly salt: number,
  ) {}
  check = () => true;
  run(m: Model, r: Real): void {
    const span = recordSpan(this.len);
    const fits = span <= m.cap - m.usedBytes;
    expect(r.writer.hasRoom(span)).toBe(fits);
    if (!fits) return;
    const b = body(this.len, this.salt);
    r.writer.put(HEADER_BYTES, b);
    r.writer.put(0, header(HEADER_BYTES + this.len));
    r.writer.commit(span);
    m.queue.push(b);
    m.usedBytes += span;
  }
  toString = () => `write(${this.len}, salt ${this.salt})`;
}

class TakeCmd implements Cmd {
  constructor(readonly maxBytes: number) {}
  check = () => true;
  run(m: Model, r: Real): void {
    expect(r.reader.available()).toBe(m.usedBytes);
    const chunk = r.reader.take(this.maxBytes);
    if (m.queue.length === 0) {
      expect(chunk).toBeNull();
      return;
    }
    expect(chunk).not.toBeNull();
    const view = new DataView(chunk!.buffer, chunk!.byteOffset, chunk!.byteLength);
    let at = 0;
    let taken = 0;
    while (at < chunk!.length) {
      const frame = view.getUint32(at, true);
      const expected = m.queue.shift()!;
      expect(frame).toBe(HEADER_BYTES + expected.length);
      expect(chunk!.subarray(at + HEADER_BYTES, at + frame)).toEqual(expected);
      at += align8(frame);
      taken++;
    }
    expect(at).toBe(chunk!.length);
    // At least one record; never more than maxBytes unless a single record is larger.
    expect(taken).toBeGreaterThanOrEqual(1);
    if (taken > 1) expect(chunk!.length).toBeLessThanOrEqual(this.maxBytes);
    m.usedBytes -= chunk!.length;
    expect(r.reader.available()).toBe(m.usedBytes);
  }
  toString = () => `take(${this.maxBytes})`;
}

class CheckCmd implements Cmd {
  check = () => true;
  run(m: Model, r: Real): void {
    expect(r.writer.freeBytes).toBeLessThanOrEqual(m.cap - m.usedBytes); // stale in the safe direction
    expect(r.writer.hasRoom(m.cap - m.usedBytes)).toBe(true);
    expect(r.writer.hasRoom(m.cap - m.usedBytes + 1)).toBe(false); // full means full
    for (const b of r.canary) expect(b).toBe(0x5a);
  }
  toString = () => 'check';
}

describe('ring writer and reader on one thread', () => {
  it('model-based: writes fit exactly when there is room; takes return the records in order, intact', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(256, 1024),
        alignedStarts,
        fc.commands(
          [
            fc.tuple(fc.nat(1200), fc.nat(255)).map(([len, salt]) => new WriteCmd(len, salt)),
            fc.integer({ min: 1, max: 2048 }).map((n) => new TakeCmd(n)),
            fc.constant(new CheckCmd()),
          ],
          { maxCommands: 80 },
        ),
        (cap, start, cmds) => {
          const sab = new SharedArrayBuffer(shardBytes(cap) + 64);
          const i32 = new Int32Array(sab, 0, SHARD_HEADER_BYTES / 4);
          Atomics.store(i32, SH_WRITE_POS, start | 0);
          Atomics.store(i32, SH_READ_POS, start | 0);
          const canary = new Uint8Array(sab, shardBytes(cap), 64).fill(0x5a);
          const real: Real = {
            writer: new RingWriter(sab, cap, { ring() {} }),
            reader: new RingReader(sab, cap),
            data: new Uint8Array(sab, SHARD_HEADER_BYTES, cap),
            canary,
          };
          fc.modelRun(() => ({ model: { cap, queue: [], usedBytes: 0 }, real }), cmds);
        },
      ),
      fcParams({ numRuns: 200 }),
    );
  });
});
