/**
 * Drain: the main thread's side of the publish rings. It takes committed records out of every
 * shard's ring, decodes them and hands them to their streams, answers workers' requests, and
 * recovers the ring of a worker that died.
 *
 * Guarantee: every committed record reaches its stream once, whole, in its ring's order (I10),
 * and every sequence a dead worker claimed but never committed is reported as lost (GapNotice)
 * instead of stalling its stream: see "Dead publishers" in docs/ring-buffer.md.
 * Constraints: main thread only; it never blocks (it parks with `Atomics.waitAsync`, I6); between
 * two passes it yields to the event loop so that followers and I/O run.
 */
import { FrameError, TransportError } from '../../core/errors.js';
import type { WeftEvent } from '../../core/types.js';
import { emptyHeader, readHeader, topicAt } from './codec.js';
import type { Control } from './control.js';
import {
  advance,
  align8,
  CTL_BELL,
  CTL_SLEEPING,
  FLAG_MORE,
  FLAG_RESET,
  HEADER_BYTES,
  KIND_BATCH,
  KIND_VOID,
  MAX_NAME_BYTES,
  REQ_DONE,
  REQ_ERR_CLOSED,
  REQ_ERR_DIRECTORY_FULL,
  REQ_FAILED,
  REQ_FOLLOW,
  REQ_IDLE,
  REQ_PENDING,
  REQ_REGISTER,
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
  SH_WRITE_POS,
} from './ring-layout.js';
import { Shard } from './shard.js';
import type { SabStream } from './stream.js';

/** Most bytes taken out of one ring per pass (whole records; at least one). */
const MAX_CHUNK_BYTES = 64 * 1024;
/**
 * Events one pass hands to streams before it yields (records are not split): bounds the burst a
 * follower sees between two of its turns, so a small `maxLength` does not make it lag.
 */
const PASS_EVENT_BUDGET = 8192;
/** How often the search for sequences lost to a dead worker runs while one may exist. */
const SUSPECT_INTERVAL_MS = 5;

/** What the drain needs from its transport. */
export interface DrainHost {
  readonly control: Control;
  /** The stream with directory id `id` (opened implicitly when a worker published first). */
  streamById(id: number): SabStream;
  /** Registers a name for a worker: its id, or -1 when the directory is full, -2 when closed. */
  registerName(name: string): number;
  /** A worker asks to follow a stream from a sequence: code 0, or a REQ_ERR_* code and its argument. */
  follow?(streamId: number, from: number): { code: number; arg: number };
  /** Moves events into the broadcast ring; `blocked` while a 'block' reader holds it back. */
  pumpBroadcast?(): { progress: boolean; blocked: boolean };
  /** Whether the broadcast ring has copying to do. */
  readonly broadcastHasWork?: boolean;
  /** A background failure (never swallowed). */
  onError(error: Error): void;
}

interface Suspect {
  readonly streamId: number;
  readonly count: number;
  readonly shard: number;
}

export class Drainer {
  readonly #host: DrainHost;
  readonly #control: Control;
  #shards: Shard[] = [];
  #nextShardIndex = 0;
  #running = false;
  #stopped = false;
  #loop: Promise<void> | undefined;
  /** Ambiguous claims of dead workers (died between announcing and recording a claim, I9). */
  #suspects: Suspect[] = [];
  #lastSuspectCheck = 0;
  /** Streams with lost ranges waiting for window room. */
  readonly #lostStreams = new Set<SabStream>();
  readonly #header = emptyHeader();
  /** Events this pass may still hand to streams (PASS_EVENT_BUDGET). */
  #budget = 0;
  #roundRobin = 0;
  /** A 'block' worker follower holds the broadcast ring back (publish rings are not drained). */
  #broadcastBlocked = false;
  readonly #peek = new Uint8Array(HEADER_BYTES);
  readonly #peekView = new DataView(this.#peek.buffer);
  /** Records taken out of rings, parks of the loop, passes: for tests and metrics. */
  records = 0;
  parks = 0;
  passes = 0;

  constructor(host: DrainHost) {
    this.#host = host;
    this.#control = host.control;
  }

  get shards(): readonly Shard[] {
    return this.#shards;
  }

  /** A new ring for a publisher shard. */
  addShard(capacity: number): Shard {
    const shard = new Shard(this.#nextShardIndex++, capacity);
    this.#shards = [...this.#shards, shard];
    this.start();
    return shard;
  }

  /** Forgets a shard whose ring has no owner and nothing left. */
  removeShard(shard: Shard): void {
    shard.removed = true;
    this.#shards = this.#shards.filter((s) => s !== shard);
  }

  /** Starts the loop (idempotent). */
  start(): void {
    if (this.#running || this.#stopped) return;
    this.#running = true;
    this.#loop = this.#run();
  }

  /** Wakes the loop now (a stream closes, a thread exited, ...). */
  kick(): void {
    this.#control.ringAlways();
  }

  // ------------------------------------------------------------------ the loop

  /**
   * The loop, as callbacks rather than `await` (no promise per pass): a pass, then the next one
   * through setImmediate (I/O and timers run between), or a park on the doorbell when idle.
   */
  #run(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#loopDone = resolve;
      setImmediate(this.#tick);
    });
  }
  #loopDone: (() => void) | undefined;

  readonly #tick = (): void => {
    if (this.#stopped) {
      this.#exit();
      return;
    }
    try {
      if (this.pass()) {
        setImmediate(this.#tick); // followers (microtasks), I/O and timers run before the next pass
        return;
      }
      // Nothing to take: park at once (wake-up protocol in ring-layout.ts: announce, re-check, wait).
      // No spinning: a spinning main thread loses the scheduler's wake-up preference to CPU-bound
      // producers on a busy machine, and then waits a whole time slice (milliseconds) for data.
      const ctl = this.#control.i32;
      const bell = Atomics.load(ctl, CTL_BELL);
      Atomics.store(ctl, CTL_SLEEPING, 1);
      if (this.#hasWork()) {
        Atomics.store(ctl, CTL_SLEEPING, 0);
        setImmediate(this.#tick);
        return;
      }
      const timeout = this.#needsPolling() ? SUSPECT_INTERVAL_MS : Number.POSITIVE_INFINITY;
      this.parks++;
      const w = Atomics.waitAsync(ctl, CTL_BELL, bell, timeout);
      if (w.async) w.value.then(this.#woken);
      else this.#woken();
    } catch (e) {
      this.#stopped = true;
      this.#host.onError(new TransportError(`sab drain failed: ${(e as Error).message}`, { cause: e }));
      this.#exit();
    }
  };

  readonly #woken = (): void => {
    Atomics.store(this.#control.i32, CTL_SLEEPING, 0);
    this.#tick();
  };

  #exit(): void {
    this.#running = false;
    this.#loopDone?.();
  }

  /** Stops the loop after its current pass. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.kick();
    await this.#loop;
  }

  /** Whether any ring, request or recovery step has work (checked before parking). */
  #hasWork(): boolean {
    for (const s of this.#shards) {
      if (Atomics.load(s.i32, SH_REQ_STATE) === REQ_PENDING) return true;
      if (s.dead && s.drained) return true;
    }
    // Held back by a worker follower: wait until it moves (it rings the bell; polled as a backstop).
    if (this.#broadcastBlocked) return false;
    if (this.#host.broadcastHasWork === true) return true;
    for (const s of this.#shards) if (s.reader.available() > 0 && s.blocked === null) return true;
    return false;
  }

  #needsPolling(): boolean {
    return (
      this.#suspects.length > 0 ||
      this.#lostStreams.size > 0 ||
      this.#broadcastBlocked ||
      this.#shards.some((s) => s.blocked)
    );
  }

  /**
   * One pass: answers requests, moves the broadcast ring on, takes at most one chunk per ring,
   * recovers dead shards, and searches for lost sequences. Synchronous. True when anything moved.
   */
  pass(): boolean {
    this.passes++;
    let progress = false;
    const shards = this.#shards;
    for (let i = 0; i < shards.length; i++) {
      const s = shards[i]!;
      if (Atomics.load(s.i32, SH_REQ_STATE) === REQ_PENDING) {
        this.#serve(s);
        progress = true;
      }
    }
    let blocked = false;
    if (this.#host.pumpBroadcast !== undefined) {
      const b = this.#host.pumpBroadcast();
      progress ||= b.progress;
      blocked = b.blocked;
    }
    this.#broadcastBlocked = blocked;
    // While a blocking worker follower holds the broadcast ring back, publishers wait (back-pressure).
    if (!blocked) {
      this.#budget = PASS_EVENT_BUDGET;
      const n = shards.length;
      const from = this.#roundRobin++ % Math.max(1, n);
      for (let i = 0; i < n && this.#budget > 0; i++) {
        if (this.#drainShard(shards[(from + i) % n]!)) progress = true;
      }
    }
    if (this.#lostStreams.size > 0) {
      for (const s of this.#lostStreams) {
        if (s.retryLost()) progress = true;
        if (!s.hasLost) this.#lostStreams.delete(s);
      }
    }
    for (let i = 0; i < shards.length; i++) {
      const s = shards[i]!;
      if (s.dead && s.drained) {
        this.#finalize(s);
        progress = true;
      } else if (!s.dead && s.owner === 0) {
        s.settleIdle();
      }
      s.settleTaken();
    }
    if (this.#suspects.length > 0 && Date.now() - this.#lastSuspectCheck >= SUSPECT_INTERVAL_MS) {
      this.#lastSuspectCheck = Date.now();
      if (this.#searchLost()) progress = true;
    }
    return progress;
  }

  // ------------------------------------------------------------------ records

  /** Takes the records of one ring that fit their streams now. True when any was taken. */
  #drainShard(shard: Shard): boolean {
    let progress = false;
    if (shard.blocked !== null) {
      const b = shard.blocked;
      if (
        !this.#deliver(shard, b.flags, b.streamId, b.count, b.first, b.time, b.body, 0, b.body.length, false)
      ) {
        return false;
      }
      shard.blocked = null;
      progress = true;
    }
    let took = false;
    const h = this.#header;
    while (this.#budget > 0) {
      let chunk = shard.chunk;
      if (chunk === null || shard.pos >= chunk.length) {
        if (took) break; // one new chunk per ring per pass: fairness between shards
        chunk = shard.reader.take(MAX_CHUNK_BYTES, shard.scratch);
        if (chunk === null) {
          shard.chunk = null;
          break;
        }
        took = true;
        shard.chunk = chunk;
        shard.view = shard.viewOf(chunk);
        shard.pos = 0;
      }
      const view = shard.view!;
      const at = shard.pos;
      readHeader(view, at, h);
      if (h.frameBytes < HEADER_BYTES || at + h.frameBytes > chunk.length) {
        this.#corrupt(shard, `frame of ${h.frameBytes} bytes at ring offset ${at}`);
        shard.chunk = null;
        return true;
      }
      shard.pos = at + align8(h.frameBytes);
      progress = true;
      this.records++;
      const scratch = chunk.buffer === shard.scratch.buffer;
      const start = at + HEADER_BYTES;
      const end = at + h.frameBytes;
      if ((h.flags & FLAG_MORE) !== 0) {
        if (shard.fragHeader === null) shard.fragHeader = { ...h };
        // The scratch buffer is reused: keep a copy.
        shard.fragments.push(scratch ? chunk.slice(start, end) : chunk.subarray(start, end));
        continue;
      }
      // Decode from the chunk itself (msgpackr caches its DataView on it: nothing per record); the
      // scratch buffer is passed whole, for the same reason.
      let src = scratch ? shard.scratch : chunk;
      let from = start;
      let to = end;
      let flags = h.flags;
      if (shard.fragments.length > 0) {
        src = concat(shard.fragments, chunk.subarray(start, end));
        from = 0;
        to = src.length;
        flags |= shard.fragHeader!.flags & FLAG_RESET;
        shard.fragments = [];
        shard.fragHeader = null;
      }
      this.#budget -= h.count;
      const inScratch = src === shard.scratch;
      if (!this.#deliver(shard, flags, h.streamId, h.count, h.first, h.time, src, from, to, inScratch)) {
        shard.blocked = {
          flags,
          streamId: h.streamId,
          count: h.count,
          first: h.first,
          time: h.time,
          body: inScratch ? src.slice(from, to) : src.subarray(from, to), // the scratch buffer is reused
        };
        break;
      }
    }
    return progress;
  }

  /**
   * Decodes one complete record (its body is `src[start..end)`) and gives its events to their stream. False (and nothing done)
   * when the batch does not fit the stream's reorder window yet; it is retried on a later pass.
   */
  #deliver(
    shard: Shard,
    flags: number,
    streamId: number,
    count: number,
    first: number,
    time: number,
    src: Uint8Array,
    start: number,
    end: number,
    inScratch: boolean,
  ): boolean {
    const kind = flags & 0xff;
    if (kind === KIND_VOID) {
      // The claim failed (stream closed): decode only to keep this producer's decoder in step.
      this.#decode(shard, flags, count, src, start, end, true);
      return true;
    }
    if (kind !== KIND_BATCH || streamId >= this.#control.streamCount || count < 1 || !(first >= 1)) {
      this.#corrupt(shard, `record kind ${kind}, stream ${streamId}, count ${count}, first ${first}`);
      return true;
    }
    const stream = this.#host.streamById(streamId);
    if (!stream.fits(first, count)) return false;
    const values = this.#decode(shard, flags, count, src, start, end, inScratch);
    if (values === undefined) {
      stream.acceptLost(first, count, 'undecodable', shard.index, shard.poisoned);
      this.#lostStreams.add(stream);
      return true;
    }
    // The events take the values' array over (shifted by one: values[0] holds the topics).
    const name = stream.name;
    const topics = values[0];
    const events = values as WeftEvent[];
    if (topics === null || typeof topics === 'string') {
      const topic = topics ?? undefined;
      for (let i = 0; i < count; i++) {
        events[i] = { stream: name, seq: first + i, time, topic, data: values[i + 1] };
      }
    } else {
      for (let i = 0; i < count; i++) {
        events[i] = {
          stream: name,
          seq: first + i,
          time,
          topic: topicAt(values, i, topics),
          data: values[i + 1],
        };
      }
    }
    events.length = count;
    stream.accept(events);
    return true;
  }

  /** The body's values, or undefined when this shard's records cannot be decoded (until a reset). */
  #decode(
    shard: Shard,
    flags: number,
    count: number,
    src: Uint8Array,
    start: number,
    end: number,
    copyBuffers: boolean,
  ): unknown[] | undefined {
    if (shard.poisoned !== undefined) {
      if ((flags & FLAG_RESET) === 0) return undefined;
      shard.poisoned = undefined;
    }
    try {
      return shard.decoder.decode(src, start, end, flags, count, copyBuffers);
    } catch (e) {
      shard.poisoned = e as Error;
      // Ask the producer to start its encoder afresh (its next record carries FLAG_RESET).
      Atomics.store(shard.i32, SH_DECODER_RESET, 1);
      this.#host.onError(e as Error);
      return undefined;
    }
  }

  #corrupt(shard: Shard, what: string): void {
    const e = new FrameError(`shard ${shard.index}: malformed ring record (${what})`);
    shard.poisoned = e;
    Atomics.store(shard.i32, SH_DECODER_RESET, 1);
    this.#host.onError(e);
  }

  // ------------------------------------------------------------------ requests

  #serve(shard: Shard): void {
    const i32 = shard.i32;
    const kind = Atomics.load(i32, SH_REQ_KIND);
    const len = Atomics.load(i32, SH_REQ_LEN);
    let state = REQ_DONE;
    let result = 0;
    if (kind === REQ_REGISTER && len >= 1 && len <= MAX_NAME_BYTES) {
      const bytes = new Uint8Array(shard.sab, SH_REQ_NAME, len);
      let name = '';
      for (let i = 0; i < len; i++) name += String.fromCharCode(bytes[i]!);
      const id = this.#host.registerName(name);
      if (id >= 0) result = id;
      else {
        state = REQ_FAILED;
        result = id === -1 ? REQ_ERR_DIRECTORY_FULL : REQ_ERR_CLOSED;
      }
    } else if (kind === REQ_FOLLOW && this.#host.follow !== undefined && len < this.#control.streamCount) {
      const streamId = len;
      const from = Number(Atomics.load(shard.i64, SH_REQ_ARG_I64));
      const r = this.#host.follow(streamId, from);
      if (r.code !== 0) {
        state = REQ_FAILED;
        result = r.code;
        Atomics.store(shard.i64, SH_REQ_ARG_I64, BigInt(r.arg));
      }
    } else {
      state = REQ_FAILED;
      result = 0;
    }
    Atomics.store(i32, SH_REQ_RESULT, result);
    Atomics.store(i32, SH_REQ_STATE, state);
    Atomics.notify(i32, SH_REQ_STATE);
  }

  // ------------------------------------------------------------------ dead publishers

  /**
   * The thread `threadId` that may own `shard` has exited (its Worker emitted 'exit': it runs no
   * more code). When it owned the ring: what it committed is drained as usual; its claim in
   * flight, if any (I9), is reported lost unless its record was committed; then the ring is freed.
   */
  onThreadExit(shard: Shard, threadId: number): void {
    if (shard.dead) return;
    const owner = shard.owner;
    if (owner !== threadId) {
      // Not the owner: it wrote nothing (I11). A claim announced on an unowned ring breaks I11 and
      // can only be the exited thread's: recover it (holding the ring meanwhile, so that a new
      // owner cannot start) rather than let its stream stall.
      const i32 = shard.i32;
      if (owner === 0 && Atomics.load(i32, SH_INTENT_STREAM) !== 0) {
        if (Atomics.compareExchange(i32, SH_OWNER, 0, -1) === 0) {
          this.#recoverClaim(shard);
          Atomics.store(i32, SH_OWNER, 0);
          Atomics.notify(i32, SH_OWNER);
          this.kick();
        }
      }
      return;
    }
    shard.dead = true;
    const i32 = shard.i32;
    if (Atomics.load(i32, SH_REQ_STATE) === REQ_PENDING) Atomics.store(i32, SH_REQ_STATE, REQ_IDLE);
    this.#recoverClaim(shard);
    this.kick();
  }

  /** The claim a dead producer left in flight (I9): reported lost, or searched for when unknown. */
  #recoverClaim(shard: Shard): void {
    const i32 = shard.i32;
    const st = Atomics.load(i32, SH_INTENT_STREAM);
    if (st !== 0) {
      const streamId = st - 1;
      const count = Atomics.load(i32, SH_INTENT_COUNT);
      const first = Number(Atomics.load(shard.i64, SH_INTENT_FIRST_I64));
      if (first > 0) {
        // The claim is known; lost unless its (final) record made it into the ring.
        if (!this.#committed(shard, streamId, first)) {
          const stream = this.#host.streamById(streamId);
          stream.acceptLost(first, count, 'publisher-exit', shard.index);
          this.#lostStreams.add(stream);
        }
      } else if (streamId < this.#control.streamCount) {
        // Died between announcing and recording the claim: it may or may not have claimed.
        this.#suspects.push({ streamId, count, shard: shard.index });
      }
      Atomics.store(i32, SH_INTENT_STREAM, 0);
      Atomics.store(shard.i64, SH_INTENT_FIRST_I64, 0n);
    }
  }

  /** Frees a dead shard's drained ring for the next owner (I11). */
  #finalize(shard: Shard): void {
    shard.fragments = [];
    shard.fragHeader = null;
    shard.chunk = null;
    shard.view = null;
    shard.decoder.reset();
    shard.poisoned = undefined;
    shard.dead = false;
    const i32 = shard.i32;
    Atomics.store(i32, SH_DECODER_RESET, 0);
    Atomics.store(i32, SH_OWNER, 0);
    Atomics.notify(i32, SH_OWNER);
    shard.settleIdle();
  }

  /** Whether `shard` holds a committed final record of stream `streamId` starting at `first`. */
  #committed(shard: Shard, streamId: number, first: number): boolean {
    let found = false;
    this.#visitPending(shard, (flags, id, f) => {
      if (id === streamId && f === first && (flags & FLAG_MORE) === 0) found = true;
      return found;
    });
    return found;
  }

  /**
   * Calls `visit(flags, streamId, first, count)` for every record of `shard` not yet given to its
   * stream: the blocked one, the partial fragments, the rest of the chunk, the ring. Stops when
   * `visit` returns true.
   */
  #visitPending(
    shard: Shard,
    visit: (flags: number, streamId: number, first: number, count: number) => boolean,
  ): void {
    const b = shard.blocked;
    if (b !== null && visit(b.flags, b.streamId, b.first, b.count)) return;
    const fh = shard.fragHeader;
    if (fh !== null && visit(fh.flags, fh.streamId, fh.first, fh.count)) return;
    const h = emptyHeader();
    const chunk = shard.chunk;
    if (chunk !== null) {
      const view = shard.view!;
      for (let at = shard.pos; at + HEADER_BYTES <= chunk.length; ) {
        readHeader(view, at, h);
        if (h.frameBytes < HEADER_BYTES) break;
        if (visit(h.flags, h.streamId, h.first, h.count)) return;
        at += align8(h.frameBytes);
      }
    }
    const reader = shard.reader;
    const end = Atomics.load(shard.i32, SH_WRITE_POS) >>> 0; // I4
    for (let pos = reader.readPos; pos !== end; ) {
      reader.peek(pos, HEADER_BYTES, this.#peek);
      readHeader(this.#peekView, 0, h);
      if (h.frameBytes < HEADER_BYTES) break;
      if (visit(h.flags, h.streamId, h.first, h.count)) return;
      pos = advance(pos, align8(h.frameBytes));
    }
  }

  /**
   * For each stream with an ambiguous dead claim: if its next sequence G is claimed, no live
   * worker's claim in flight covers G, and no pending record or lost range covers it, then G was
   * claimed by a worker that died before committing: G up to the next sequence that is known to
   * come is reported lost. The order of the checks matters: the counter, then the claims in
   * flight, then the pending records (a worker that commits G after the second check must have
   * had its claim in flight during it).
   */
  #searchLost(): boolean {
    let progress = false;
    const remaining: Suspect[] = [];
    const seen = new Set<number>();
    for (const suspect of this.#suspects) {
      if (seen.has(suspect.streamId)) {
        remaining.push(suspect);
        continue;
      }
      seen.add(suspect.streamId);
      const stream = this.#host.streamById(suspect.streamId);
      const r = this.#searchStream(stream, suspect.shard);
      if (r === 'filled') progress = true;
      // Caught up: the suspect never claimed. Filled: its claim is reported (one suspect per fill).
      if (r === 'wait' && !stream.isEnded) remaining.push(suspect);
    }
    // Keep suspects of streams not examined this round.
    this.#suspects = remaining;
    return progress;
  }

  #searchStream(stream: SabStream, shard: number): 'caught-up' | 'wait' | 'filled' {
    const id = stream.id;
    const g = stream.next;
    const claimed = stream.claimedCount;
    if (g > claimed) return 'caught-up';
    let above = claimed + 1;
    // Claims in flight of live workers (I9).
    for (const s of this.#shards) {
      if (s.dead || s.owner === 0) continue;
      if (Atomics.load(s.i32, SH_INTENT_STREAM) !== id + 1) continue;
      const f = Number(Atomics.load(s.i64, SH_INTENT_FIRST_I64));
      const n = Atomics.load(s.i32, SH_INTENT_COUNT);
      // Unknown yet, or moved on to another claim while we looked: ask again later.
      if (f === 0 || Atomics.load(s.i32, SH_INTENT_STREAM) !== id + 1) return 'wait';
      if (f <= g && g < f + n) return 'wait';
      if (f > g && f < above) above = f;
    }
    // Committed records not delivered yet, and lost ranges waiting for room.
    let covered = false;
    for (const s of this.#shards) {
      this.#visitPending(s, (_flags, streamId, first, count) => {
        if (streamId !== id) return false;
        if (first <= g && g < first + count) covered = true;
        else if (first > g && first < above) above = first;
        return covered;
      });
      if (covered) return 'wait';
    }
    const lost = stream.lostAround(g);
    if (lost.covers) return 'wait';
    above = Math.min(above, lost.above, stream.heldAbove(g));
    stream.acceptLost(g, above - g, 'publisher-exit', shard);
    this.#lostStreams.add(stream);
    return 'filled';
  }

  // ------------------------------------------------------------------ closing

  /**
   * Drains until every stream has ended (they were closed by the caller) or `timeoutMs` passed;
   * then reports what is still missing as lost ('closed') so that every follower finishes.
   */
  async finish(streams: Iterable<SabStream>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const list = [...streams];
    for (;;) {
      while (this.pass()) await yieldToLoop();
      const open = list.filter((s) => !s.isEnded);
      if (open.length === 0) return;
      if (Date.now() >= deadline) {
        for (const s of open) {
          const g = s.next;
          const claimed = s.claimedCount;
          if (claimed >= g) s.acceptLost(g, claimed - g + 1, 'closed', -1);
        }
        while (this.pass()) await yieldToLoop();
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }
}

function concat(parts: Uint8Array[], last: Uint8Array): Uint8Array {
  let n = last.length;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  out.set(last, at);
  return out;
}

/** Lets the event loop turn once (timers, I/O, then this). */
function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
