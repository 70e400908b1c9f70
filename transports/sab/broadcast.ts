/**
 * Broadcaster: the main thread's end of the broadcast ring that feeds followers in workers
 * (Disruptor style: one writer, a cursor per reading worker). For each stream a worker follows, a
 * copier moves the stream's events from its log into the ring, in sequence order.
 *
 * Guarantee (B1-B6 in ring-layout.ts): a worker follower sees its stream's events in order, each
 * once, from its start on; a reader with the 'block' policy is never overrun (the writer waits,
 * and while it waits the drain stops taking from the publish rings, so publishers wait too: no loss,
 * bounded memory); a reader with the 'error' policy that falls a whole ring behind gets LaggedError;
 * events trimmed by retention before they could be copied are reported, never skipped.
 * Constraint: main thread only; it never blocks (a blocked copier is retried on the next pass).
 */
import type { EventLog } from '../../core/event-log.js';
import type { WeftEvent } from '../../core/types.js';
import { broadcastBody, HeaderWriter, StandaloneEncoder } from './codec.js';
import type { Control } from './control.js';
import { GapNotice } from './gap.js';
import {
  advance,
  B_CLAIM_POS,
  B_READERS_WAITING,
  B_STATE,
  B_WRITE_POS,
  B_WRITER_WAITING,
  broadcastBytes,
  broadcastDataOffset,
  copyIn,
  FLAG_FAILED,
  HEADER_BYTES,
  KIND_BATCH,
  KIND_END,
  KIND_TRIMMED,
  REQ_ERR_TRUNCATED,
  recordSpan,
  SLOT_BLOCK,
  SLOT_CURSOR,
  SLOT_FREE,
  SLOT_LAG,
  SLOT_OWNER,
  SLOT_STATE,
  SLOT_STREAM,
  slotIndex,
  used,
} from './ring-layout.js';
import type { SabStream } from './stream.js';

/** Most events per broadcast record, and most bytes written per pass. */
const MAX_RECORD_EVENTS = 256;
const PASS_BYTES = 256 * 1024;

interface Copier {
  readonly stream: SabStream;
  readonly log: EventLog<WeftEvent>;
  /** The next sequence to copy. */
  next: number;
}

export interface BroadcastHost {
  readonly control: Control;
  onError(error: Error): void;
}

export class Broadcaster {
  readonly sab: SharedArrayBuffer;
  readonly capacity: number;
  readonly maxReaders: number;
  readonly #host: BroadcastHost;
  readonly #i32: Int32Array;
  readonly #data: Uint8Array;
  readonly #copiers = new Map<number, Copier>();
  readonly #encoder = new StandaloneEncoder();
  readonly #header = new HeaderWriter();
  /** Our own copy of B_WRITE_POS (B1). */
  #writePos = 0;

  constructor(host: BroadcastHost, capacity: number, maxReaders: number) {
    this.#host = host;
    this.capacity = capacity;
    this.maxReaders = maxReaders;
    this.sab = new SharedArrayBuffer(broadcastBytes(capacity, maxReaders));
    this.#i32 = new Int32Array(this.sab);
    this.#data = new Uint8Array(this.sab, broadcastDataOffset(maxReaders), capacity);
  }

  /** Copiers with something to do (the drain does not park while there are). */
  get hasWork(): boolean {
    if (this.#copiers.size === 0) return false;
    for (const c of this.#copiers.values()) if (c.next < c.log.nextSeq || c.log.ended) return true;
    return false;
  }

  /**
   * A worker joined as a follower of `stream` from sequence `from` (its cursor is already set,
   * B5): make sure the stream's copier copies from `from` on, rewinding it when it is past (B6:
   * other readers skip what they already have). Returns 0, or REQ_ERR_TRUNCATED with the oldest
   * retained sequence when `from` was trimmed.
   */
  follow(stream: SabStream, from: number): { code: number; arg: number } {
    const log = stream.log;
    if (from < log.firstSeq) return { code: REQ_ERR_TRUNCATED, arg: log.firstSeq };
    let c = this.#copiers.get(stream.id);
    if (c === undefined || c.log !== log) {
      c = { stream, log, next: from };
      this.#copiers.set(stream.id, c);
      stream.watched = true;
    } else if (from < c.next) {
      c.next = from;
    }
    return { code: 0, arg: 0 };
  }

  /**
   * Copies what it can into the ring. `blocked` when a 'block' reader holds the ring back: the
   * drain then stops taking from the publish rings until the reader moves (back-pressure).
   */
  pump(): { progress: boolean; blocked: boolean } {
    if (this.#copiers.size === 0) return IDLE;
    const followed = this.#followedStreams();
    let progress = false;
    let blocked = false;
    // At most half the ring per pass: followers get a turn between passes ('error' readers are
    // not waited for, so a pass must not lap them on its own).
    let budget = Math.min(PASS_BYTES, this.capacity >>> 1);
    for (const [id, c] of this.#copiers) {
      if (!followed.has(id)) {
        this.#copiers.delete(id);
        c.stream.watched = false;
        continue;
      }
      const log = c.log;
      const name = c.stream.name;
      if (c.next < log.firstSeq) {
        // Trimmed before it could be copied: tell the readers (they get LaggedError if they wanted it).
        const count = log.firstSeq - c.next;
        if (!this.#write(KIND_TRIMMED, id, count, c.next, Date.now(), EMPTY)) {
          blocked = true;
          break;
        }
        c.next = log.firstSeq;
        progress = true;
      }
      while (c.next < log.nextSeq && budget > 0) {
        let events = log.slice(c.next, MAX_RECORD_EVENTS);
        let body = this.#encode(events);
        // A record must fit half the ring (so that it can always be written): fewer events, or a notice.
        while (body !== undefined && recordSpan(body.length) > this.capacity >>> 1 && events.length > 1) {
          events = events.slice(0, events.length >>> 1);
          body = this.#encode(events);
        }
        if (body === undefined || recordSpan(body.length) > this.capacity >>> 1) {
          const e = events[0]!;
          const notice = new GapNotice(name, e.seq, e.seq, 'too-large');
          events = [{ stream: name, seq: e.seq, time: e.time, topic: e.topic, data: notice }];
          body = this.#encode(events)!;
        }
        if (!this.#write(KIND_BATCH, id, events.length, c.next, events[0]!.time, body)) {
          blocked = true;
          break;
        }
        budget -= body.length;
        c.next += events.length;
        progress = true;
      }
      if (blocked) break;
      if (log.ended && c.next >= log.nextSeq) {
        const error = log.error;
        const body =
          error === undefined
            ? EMPTY
            : this.#encoder.encode({
                name: error.name,
                message: error.message,
                code: (error as { code?: string }).code,
              });
        if (!this.#write(KIND_END | (error ? FLAG_FAILED : 0), id, 0, log.nextSeq, Date.now(), body)) {
          blocked = true;
          break;
        }
        this.#copiers.delete(id);
        c.stream.watched = false;
        progress = true;
      }
    }
    return progress || blocked ? { progress, blocked } : IDLE;
  }

  #encode(events: readonly WeftEvent[]): Uint8Array | undefined {
    try {
      return this.#encoder.encode(broadcastBody(events));
    } catch (e) {
      this.#host.onError(e as Error);
      return undefined;
    }
  }

  /** Stream ids some reader follows (slots not FREE). */
  #followedStreams(): Set<number> {
    const out = new Set<number>();
    for (let k = 0; k < this.maxReaders; k++) {
      if (Atomics.load(this.#i32, slotIndex(k, SLOT_STATE)) === SLOT_FREE) continue;
      const s = Atomics.load(this.#i32, slotIndex(k, SLOT_STREAM));
      if (s > 0) out.add(s - 1);
    }
    return out;
  }

  /** Whether every 'block' reader leaves room for `span` more bytes (B3). */
  #room(span: number): boolean {
    const end = advance(this.#writePos, span);
    for (let k = 0; k < this.maxReaders; k++) {
      if (Atomics.load(this.#i32, slotIndex(k, SLOT_STATE)) !== SLOT_BLOCK) continue;
      const cursor = Atomics.load(this.#i32, slotIndex(k, SLOT_CURSOR)) >>> 0;
      if (used(end, cursor) > this.capacity) return false;
    }
    return true;
  }

  /** Writes one record (B2), or returns false (and asks readers to ring when they move) when blocked (B3). */
  #write(
    flags: number,
    streamId: number,
    count: number,
    first: number,
    time: number,
    body: Uint8Array,
  ): boolean {
    const span = recordSpan(body.length);
    const i32 = this.#i32;
    if (!this.#room(span)) {
      Atomics.store(i32, B_WRITER_WAITING, 1);
      if (!this.#room(span)) return false; // a reader that moves now sees the flag and rings
    }
    Atomics.store(i32, B_WRITER_WAITING, 0);
    const end = advance(this.#writePos, span);
    Atomics.store(i32, B_CLAIM_POS, end | 0); // B2: readers of the 'error' policy validate against it
    copyIn(this.#data, this.capacity, advance(this.#writePos, HEADER_BYTES), body);
    copyIn(
      this.#data,
      this.capacity,
      this.#writePos,
      this.#header.set(HEADER_BYTES + body.length, flags, streamId, count, first, time),
    );
    this.#writePos = end;
    Atomics.store(i32, B_WRITE_POS, end | 0); // B2
    if (Atomics.load(i32, B_READERS_WAITING) > 0) Atomics.notify(i32, B_WRITE_POS);
    return true;
  }

  /** Frees the reader slots of a thread that exited (it cannot leave by itself). */
  onThreadExit(threadId: number): void {
    for (let k = 0; k < this.maxReaders; k++) {
      if (Atomics.load(this.#i32, slotIndex(k, SLOT_OWNER)) !== threadId) continue;
      const state = Atomics.load(this.#i32, slotIndex(k, SLOT_STATE));
      if (state === SLOT_BLOCK || state === SLOT_LAG || state !== SLOT_FREE) {
        Atomics.store(this.#i32, slotIndex(k, SLOT_STATE), SLOT_FREE);
      }
    }
  }

  /** The transport closed: readers finish (what is in the ring is still theirs to read). */
  shutdown(): void {
    Atomics.store(this.#i32, B_STATE, 1);
    Atomics.notify(this.#i32, B_WRITE_POS);
    for (const c of this.#copiers.values()) c.stream.watched = false;
    this.#copiers.clear();
  }
}

const EMPTY = new Uint8Array(0);
const IDLE = Object.freeze({ progress: false, blocked: false });
