/**
 * The publish ring across two real threads: a generator worker writes records of random sizes
 * (records larger than half the ring included, so the ring wraps inside records all the time); the
 * main thread is the verifier: every record once, in order, its body intact, nothing written
 * outside the ring (canaries before and after the data region).
 *
 * Litmus (message passing, I3/I4): the consumer loads WRITE_POS, then reads the record below it.
 *   ACCEPTABLE  WRITE_POS not yet moved: the record is not read yet.
 *   ACCEPTABLE  WRITE_POS moved: every byte of the record is the producer's.
 *   FORBIDDEN   WRITE_POS moved, but a byte of the record is stale (torn or old).
 *   FORBIDDEN   a record skipped, repeated or out of order; a canary changed.
 *
 * Bounded by default; WEFT_STRESS=1 runs 50x longer. WEFT_STRESS_SEED replays a run.
 */
import { describe, expect, it } from 'vitest';
import { RingReader } from '../../transports/sab/ring.js';
import {
  align8,
  H_COUNT,
  H_FIRST,
  H_FRAME_BYTES,
  HEADER_BYTES,
  SH_REQ_NAME,
  SHARD_HEADER_BYTES,
  shardBytes,
} from '../../transports/sab/ring-layout.js';
import { patternByte, random, STRESS_SCALE, STRESS_SEED, startWorker } from './helpers.js';

const CANARY = 0x5c;

describe('publish ring across threads', () => {
  for (const capacity of [4096, 65536]) {
    it(`${capacity}-byte ring: every record arrives once, in order, intact; the ring never writes outside itself`, async () => {
      const records = (capacity === 4096 ? 20_000 : 4_000) * STRESS_SCALE;
      const seed = STRESS_SEED + capacity;
      console.log(
        `ring stress: capacity ${capacity}, ${records} records, seed ${seed} (WEFT_STRESS_SEED=${STRESS_SEED})`,
      );
      const sab = new SharedArrayBuffer(shardBytes(capacity) + 256);
      const bytes = new Uint8Array(sab);
      // Canaries: the unused tail of the control lines, and 256 bytes after the data region.
      bytes.fill(CANARY, SH_REQ_NAME + 256, SHARD_HEADER_BYTES);
      bytes.fill(CANARY, shardBytes(capacity));
      const reader = new RingReader(sab, capacity);
      const worker = startWorker('ring-generator', { sab, capacity, records, seed });
      const done = new Promise<{ large: number }>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      const rand = random(seed ^ 0x9e3779b9);
      const outcomes = { notYet: 0, intact: 0, torn: 0, outOfOrder: 0 };
      let expected = 1;
      let busyBlocks = 0;
      while (expected <= records) {
        if (rand() < 0.02) {
          // Stall the consumer now and then so the producer fills the ring and waits.
          const until = performance.now() + rand() * 3;
          while (performance.now() < until);
          busyBlocks++;
        }
        const chunk = reader.take(1 + Math.floor(rand() * capacity * 1.5));
        if (chunk === null) {
          outcomes.notYet++;
          await new Promise((resolve) => setImmediate(resolve));
          continue;
        }
        const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        for (let at = 0; at < chunk.length; ) {
          const frame = view.getUint32(at + H_FRAME_BYTES, true);
          const len = view.getUint32(at + H_COUNT, true);
          const seq = view.getFloat64(at + H_FIRST, true);
          if (seq !== expected || frame !== HEADER_BYTES + len) {
            outcomes.outOfOrder++;
            expect.fail(`record ${expected}: got seq ${seq}, frame ${frame}, len ${len}`);
          }
          let ok = true;
          for (let j = 0; j < len; j++) {
            if (chunk[at + HEADER_BYTES + j] !== patternByte(seq, j)) {
              ok = false;
              break;
            }
          }
          if (ok) outcomes.intact++;
          else outcomes.torn++;
          expected++;
          at += align8(frame);
        }
      }
      const { large } = await done;
      await worker.terminate();
      console.log(
        `ring stress outcomes: ${JSON.stringify(outcomes)}; records > half the ring: ${large}; consumer stalls: ${busyBlocks}`,
      );
      expect(outcomes.torn).toBe(0); // FORBIDDEN
      expect(outcomes.outOfOrder).toBe(0); // FORBIDDEN
      expect(outcomes.intact).toBe(records);
      expect(large).toBeGreaterThan(records / 50);
      for (let i = SH_REQ_NAME + 256; i < SHARD_HEADER_BYTES; i++) expect(bytes[i]).toBe(CANARY);
      for (let i = shardBytes(capacity); i < bytes.length; i++) expect(bytes[i]).toBe(CANARY);
      expect(reader.available()).toBe(0);
    });
  }
});
