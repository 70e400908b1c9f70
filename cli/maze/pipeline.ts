/**
 * The event path, without sockets: chunks from the event source are split into lines, parsed,
 * put back in sequence order by Weft's `Resequencer`, and routed; each turn (`flush()`) ends
 * with one write per client that got lines. A run is one source connection: `startRun()`
 * restarts the sequence at 1, `endRun()` releases what is still held. Bad input is dropped,
 * counted and logged (at most `LOG_LIMIT` lines per run, then a summary); it never stops a run.
 *
 * Memory: the resequencer window (an event still held when its turn ends is copied out of the
 * read buffer: at most `window * maxLineBytes` bytes), one partial line, and what one turn queued.
 */
import { Resequencer, type ResequencerGap } from '../../core/resequencer.js';
import { BadLine, LineSplitter, MazeEvent, parseEvent, showLine } from './parser.js';
import type { Router } from './router.js';

/** Bad-input log lines per run before the rest are only counted (the run's summary has the totals). */
export const LOG_LIMIT = 100;

export interface EventPipelineOptions {
  /** `stream`: exact order; `batch`: efr's batch resequencer (sorted batches of `window`). */
  mode: 'stream' | 'batch';
  /** Stream: how far ahead of the lowest missing sequence an event may arrive. Batch: the batch size. */
  window: number;
  /** Stream mode: how long a missing sequence is waited for (Infinity: until the window overflows). */
  gapTimeoutMs: number;
  /** Lines longer than this (without terminator) are dropped. */
  maxLineBytes: number;
  router: Router;
  log: (message: string) => void;
}

/** Counters since construction (summed over runs). */
export interface PipelineStats {
  /** Source connections (runs) started. */
  runs: number;
  /** Lines read from the event source, good or bad. */
  linesRead: number;
  /** Lines dropped because they are not valid events (including over-long and unterminated ones). */
  malformed: number;
  /** Events dropped because their sequence had already arrived in this run. */
  duplicates: number;
  /** Events dropped because their sequence had already been released or given up in this run. */
  stale: number;
  /** Sequences given up: never arrived before the window moved past them, a timeout, or the run's end. */
  seqsSkipped: number;
  /** Events released in order and routed. */
  routed: number;
}

/** Either an event, or the placeholder of a bad line whose sequence was readable (it keeps the run going). */
type Slot = MazeEvent | BadLine;

export class EventPipeline {
  readonly #router: Router;
  readonly #log: (message: string) => void;
  readonly #resequencer: Resequencer<Slot>;
  readonly #splitter: LineSplitter;
  readonly #timed: boolean;
  /** Events that a push since the last flush left held (some may have been released since). */
  readonly #heldSinceFlush: MazeEvent[] = [];

  #runs = 0;
  #linesRead = 0;
  #malformed = 0;
  #duplicates = 0;
  #stale = 0;
  #seqsSkipped = 0;

  // Per run, for the log limit and the summary.
  #runLines = 0;
  #runBad = 0;
  #runSkipped = 0;
  #runLogged = 0;

  constructor(options: EventPipelineOptions) {
    this.#router = options.router;
    this.#log = options.log;
    const onGap = (gap: ResequencerGap): void => this.#gap(gap);
    this.#timed = options.mode === 'stream' && options.gapTimeoutMs !== Number.POSITIVE_INFINITY;
    this.#resequencer =
      options.mode === 'stream'
        ? new Resequencer<Slot>({
            window: options.window,
            mode: 'stream',
            onOverflow: 'skip',
            gapTimeoutMs: options.gapTimeoutMs,
            onGap,
          })
        : new Resequencer<Slot>({ window: options.window, mode: 'batch', onGap });
    this.#splitter = new LineSplitter(
      options.maxLineBytes,
      (buf, start, end) => this.#line(buf, start, end),
      (bytes) => {
        this.#malformed++;
        this.#bad(`dropped a line of ${bytes}+ bytes: longer than maxLineBytes (${options.maxLineBytes})`);
      },
    );
  }

  get stats(): PipelineStats {
    return {
      runs: this.#runs,
      linesRead: this.#linesRead,
      malformed: this.#malformed,
      duplicates: this.#duplicates,
      stale: this.#stale,
      seqsSkipped: this.#seqsSkipped,
      routed: this.#router.routed,
    };
  }

  /** Events held by the resequencer, waiting for a lower sequence. */
  get held(): number {
    return this.#resequencer.size;
  }

  /** True when `poll()` has work to do (a gap timeout is set): the caller runs it on a timer. */
  get needsPoll(): boolean {
    return this.#timed;
  }

  /** Starts a new run: sequences start again at 1, and whatever is still held is dropped. */
  startRun(): void {
    this.#resequencer.reset(1);
    this.#heldSinceFlush.length = 0;
    this.#splitter.finish();
    this.#runs++;
    this.#runLines = this.#runBad = this.#runSkipped = this.#runLogged = 0;
  }

  /**
   * Feeds one chunk from the source: parses it, resequences, and routes what is released (queued
   * per client). Nothing is written until `flush()`, and `chunk` must stay unchanged until then.
   */
  push(chunk: Buffer): void {
    this.#splitter.push(chunk);
  }

  /**
   * Ends a turn: writes what was queued since the last flush (one write per client) and copies
   * the still-held events out of the chunks pushed since. Call it once per event-loop turn (the
   * server does, from `setImmediate`), so that chunks read in the same turn share their writes.
   */
  flush(): void {
    this.#router.flush();
    this.#detachHeld();
  }

  /**
   * Ends the run: drops an unterminated last line, releases everything still held (the gaps
   * between are given up and logged), writes it, and logs the run's summary.
   */
  endRun(why: string): void {
    const pending = this.#splitter.finish();
    if (pending > 0) {
      this.#malformed++;
      this.#bad(`dropped an unterminated last line of ${pending} bytes`);
    }
    this.#release(this.#resequencer.flush());
    this.#router.flush();
    this.#heldSinceFlush.length = 0;
    const suppressed = this.#runLogged > LOG_LIMIT ? ` (${this.#runLogged - LOG_LIMIT} not logged)` : '';
    this.#log(
      `event source run ${this.#runs} ended (${why}): ${this.#runLines} lines, ` +
        `${this.#runBad} dropped${suppressed}, ${this.#runSkipped} sequences skipped`,
    );
  }

  /** Applies the gap timeout (stream mode with `gapTimeoutMs`); routes and writes what it releases. */
  poll(): void {
    if (!this.#timed) return;
    const released = this.#resequencer.poll();
    if (released.length === 0) return;
    this.#release(released);
    this.#router.flush();
  }

  #line(buf: Buffer, start: number, end: number): void {
    this.#linesRead++;
    this.#runLines++;
    const parsed = parseEvent(buf, start, end);
    if (parsed instanceof BadLine) {
      this.#malformed++;
      this.#bad(`dropped line ${showLine(buf, start, end)}: ${parsed.reason}`);
      // Its sequence is known: take its place so that the run does not wait for it.
      if (parsed.seq > 0) this.#push(parsed);
      return;
    }
    this.#push(parsed);
  }

  #push(slot: Slot): void {
    const resequencer = this.#resequencer;
    const seq = slot.seq;
    const held = resequencer.size;
    const next = resequencer.next;
    const released = resequencer.push(seq, slot);
    const n = released.length;
    if (n === 0) {
      if (resequencer.size !== held) {
        if (slot instanceof MazeEvent) this.#heldSinceFlush.push(slot);
      } else if (seq < next) {
        this.#stale++;
        this.#bad(`dropped event ${seq}: already released or given up in this run`);
      } else {
        this.#duplicates++;
        this.#bad(`dropped event ${seq}: duplicate sequence`);
      }
      return;
    }
    // Released in order, so this item was released iff the last one released is at or past it.
    if (released[n - 1]!.seq < seq && slot instanceof MazeEvent) this.#heldSinceFlush.push(slot);
    this.#release(released);
  }

  /**
   * Events still held when their turn ends get their own copy of their line, so that the read
   * buffer can go. Most held events are released within their turn and never copied.
   */
  #detachHeld(): void {
    const held = this.#heldSinceFlush;
    if (held.length === 0) return;
    // Held items are exactly those at or above `next` (in both modes).
    const next = this.#resequencer.next;
    for (let i = 0; i < held.length; i++) {
      const event = held[i]!;
      if (event.seq >= next) event.detach();
    }
    held.length = 0;
  }

  #release(released: readonly Slot[]): void {
    const router = this.#router;
    for (let i = 0; i < released.length; i++) {
      const slot = released[i]!;
      if (slot instanceof MazeEvent) router.route(slot);
    }
  }

  #gap(gap: ResequencerGap): void {
    const count = gap.to - gap.from + 1;
    this.#seqsSkipped += count;
    this.#runSkipped += count;
    const which = gap.from === gap.to ? `sequence ${gap.from}` : `sequences ${gap.from}..${gap.to}`;
    this.#bad(`gave up ${which} (${GAP_REASONS[gap.reason]})`, false);
  }

  /** Logs a bad-input line, up to LOG_LIMIT per run. */
  #bad(message: string, counts = true): void {
    if (counts) this.#runBad++;
    const logged = ++this.#runLogged;
    if (logged <= LOG_LIMIT) this.#log(message);
    else if (logged === LOG_LIMIT + 1) {
      this.#log(`more than ${LOG_LIMIT} problems in this run: the rest are counted, not logged`);
    }
  }
}

const GAP_REASONS: Record<ResequencerGap['reason'], string> = {
  overflow: 'an event arrived a full window ahead of it',
  timeout: 'missing for longer than gapTimeoutMs',
  flush: 'still missing when the event source closed',
  batch: 'not in its batch (batch mode)',
};
