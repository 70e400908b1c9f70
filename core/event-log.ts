/**
 * EventLog: the in-process, append-only linked list of chunks that every follower reads.
 *
 * Guarantee: readers see the events of one log in sequence order, each once, and a publish costs
 * the same whatever the number of readers (one shared wake-up per microtask turn, not one per reader).
 * Constraint: single writer (JavaScript's one thread gives the external synchronisation eventstream asks for).
 *
 * Invariants (cited in the code as L1..L7):
 * - L1 Sequences are dense: `chunk.events[i].seq === chunk.first + i`, and `next.first === chunk.first + chunk.events.length`.
 * - L2 Only the tail chunk grows. A chunk whose `next` is set is sealed: its events never change again
 *      (trimming replaces `events` with an empty array, it never mutates the array a reader was given).
 * - L3 The writer holds only the tail; readers hold their own (chunk, index). A chunk nobody holds and
 *      the retention cursor has passed is garbage.
 * - L4 Retention is a cursor: `#head`/`#headIndex` is the oldest retained event. Trimming a whole chunk
 *      cuts its `next` link and marks it `trimmed`, so a reader left behind pins one chunk, not the chain,
 *      and learns on its next step that it lagged (never a silent skip). Trimming without cutting
 *      (retention 0, eventstream's model) leaves readers their chain: memory is what they have not read.
 * - L5 A reader parks only when it has read everything (it is at the tail). Appends schedule at most one
 *      wake-up per microtask turn, shared by every append of that turn; the wake-up resumes every parked reader.
 * - L6 After `end()`, no append is accepted; readers drain what is there, then finish (or throw the error).
 * - L7 A snapshot chain (Consul's AppendBuffer) is a list of sealed chunks whose last chunk carries a
 *      `link` to a position in a live log: a reader that reaches it continues in the live log at that sequence.
 */

/** The least an entry must carry to live in a log. */
export interface Sequenced {
  readonly seq: number;
  readonly time: number;
}

/** Number of events a chunk takes before a new chunk is linked (a batch larger than this stays whole). */
export const CHUNK_EVENTS = 256;

const EMPTY: readonly never[] = Object.freeze([]);
const RESOLVED = Promise.resolve();

/** Where a reader stands or will stand: a chunk and index, a future sequence of a log, or an error to throw. */
export type LogPosition<E extends Sequenced> =
  | { readonly chunk: Chunk<E>; readonly index: number; readonly log?: EventLog<E> }
  | { readonly waitFor: number; readonly log?: EventLog<E> }
  | { readonly error: Error };

export type ChunkLink<E extends Sequenced> =
  | { readonly log: EventLog<E>; readonly seq: number }
  | { readonly load: () => Promise<LogPosition<E>> };

export class Chunk<E extends Sequenced> {
  /** The sequence of `events[0]` (L1). */
  readonly first: number;
  events: E[];
  next: Chunk<E> | null = null;
  /** Set when retention passed the whole chunk (L4). */
  trimmed = false;
  /**
   * For a snapshot chain's last chunk: where to continue (L7): a position in a live log, or a
   * loader for the next page of history (remote transports), resolved when a reader gets there.
   */
  link: ChunkLink<E> | null = null;
  constructor(first: number, events: E[]) {
    this.first = first;
    this.events = events;
  }
}

/** Something parked on a log's tail, resumed by the shared wake-up (L5). */
export interface Parked {
  /** Index in the log's waiter array, -1 when not parked. Owned by the log. */
  parkIndex: number;
  wake(): void;
}

export interface EventLogOptions {
  /** Sequence of the first event the log will hold. @default 1 */
  start?: number;
  /**
   * Keep at most this many events: each append moves the retention cursor (L4). @default unbounded
   * `0` is eventstream's model: no history for new readers, and no cutting either: a reader keeps
   * the chunks from its position on, and they become garbage as it moves past them.
   */
  retain?: number;
}

export class EventLog<E extends Sequenced> {
  #tail: Chunk<E>;
  #head: Chunk<E>;
  #headIndex = 0;
  #next: number;
  #waiters: Parked[] = [];
  #wakeScheduled = false;
  #ended = false;
  #error: Error | undefined;
  /** Retained chunks from #head to #tail, for O(log n) positioning; entries before #chunkHead are dead. */
  #chunks: Chunk<E>[];
  #chunkHead = 0;

  #retain: number;

  constructor(options: EventLogOptions = {}) {
    this.#next = options.start ?? 1;
    this.#retain = options.retain ?? Number.POSITIVE_INFINITY;
    this.#tail = new Chunk<E>(this.#next, []);
    this.#head = this.#tail;
    this.#chunks = [this.#tail];
  }

  /** The sequence the next appended event must carry. */
  get nextSeq(): number {
    return this.#next;
  }
  /** The oldest retained sequence; equals `nextSeq` when nothing is retained. */
  get firstSeq(): number {
    return this.#head.first + this.#headIndex;
  }
  /** Number of events retained. */
  get length(): number {
    return this.#next - this.firstSeq;
  }
  get ended(): boolean {
    return this.#ended;
  }
  /** The terminal error, when the log ended with one (Consul's AppendErr). */
  get error(): Error | undefined {
    return this.#error;
  }
  /** Number of parked readers (for tests and metrics). */
  get parkedCount(): number {
    return this.#waiters.length;
  }

  /**
   * Appends events that already carry their sequences, which must continue the log densely (L1).
   * The events of one call become visible together: no reader runs between two of them.
   */
  append(events: readonly E[]): void {
    if (this.#ended) throw new Error('EventLog: append after end');
    const n = events.length;
    if (n === 0) return;
    const tail = this.#tail;
    if (tail.events.length < CHUNK_EVENTS) {
      for (let i = 0; i < n; i++) tail.events.push(events[i]!);
    } else {
      const chunk = new Chunk<E>(this.#next, events.slice());
      tail.next = chunk; // seals the old tail (L2)
      this.#tail = chunk;
      this.#chunks.push(chunk);
    }
    this.#next += n;
    if (this.#next - this.firstSeq > this.#retain) this.trimTo(this.#next - this.#retain, this.#retain > 0);
    if (this.#waiters.length > 0) this.#scheduleWake();
  }

  /** Appends one event (the hot path of a single publish). */
  appendOne(event: E): void {
    if (this.#ended) throw new Error('EventLog: append after end');
    const tail = this.#tail;
    if (tail.events.length < CHUNK_EVENTS) {
      tail.events.push(event);
    } else {
      const chunk = new Chunk<E>(this.#next, [event]);
      tail.next = chunk;
      this.#tail = chunk;
      this.#chunks.push(chunk);
    }
    this.#next++;
    if (this.#next - this.firstSeq > this.#retain) this.trimTo(this.#next - this.#retain, this.#retain > 0);
    if (this.#waiters.length > 0) this.#scheduleWake();
  }

  /** Ends the log (L6): readers drain, then finish, or throw `error` when one is given. Idempotent. */
  end(error?: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    if (this.#waiters.length > 0) this.#scheduleWake();
  }

  /**
   * Moves the retention cursor so that `seq` becomes the oldest retained event (L4).
   * A `seq` at or before the present first is a no-op; beyond `nextSeq` it is clamped.
   */
  trimTo(seq: number, cut = true): void {
    if (seq > this.#next) seq = this.#next;
    if (seq <= this.firstSeq) return;
    let head = this.#head;
    while (head !== this.#tail && head.first + head.events.length <= seq) {
      const next = head.next!;
      if (cut) {
        head.trimmed = true;
        head.events = EMPTY as unknown as E[];
        head.next = null; // a reader left behind pins this chunk only (L4)
      }
      this.#chunks[this.#chunkHead++] = undefined as unknown as Chunk<E>;
      head = next;
    }
    this.#head = head;
    this.#headIndex = seq - head.first;
    if (this.#chunkHead > 64 && this.#chunkHead * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#chunkHead);
      this.#chunkHead = 0;
    }
  }

  /** Trims every retained event older than `cutoff` (by `time`). Amortized O(1) per trimmed event. */
  trimOlderThan(cutoff: number): void {
    let head = this.#head;
    let index = this.#headIndex;
    for (;;) {
      const events = head.events;
      if (index >= events.length) {
        if (head.next === null) break;
        head = head.next;
        index = 0;
        continue;
      }
      if (events[events.length - 1]!.time < cutoff && head.next !== null) {
        head = head.next;
        index = 0;
        continue;
      }
      while (index < events.length && events[index]!.time < cutoff) index++;
      break;
    }
    this.trimTo(head.first + index);
  }

  /**
   * Positions a reader at `seq` (firstSeq <= seq <= nextSeq): returns the chunk and index holding it.
   * The caller checks the bounds; a `seq` of `nextSeq` gives the tail's end (a reader that waits).
   */
  locate(seq: number): { chunk: Chunk<E>; index: number } {
    const chunks = this.#chunks;
    let lo = this.#chunkHead;
    let hi = chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (chunks[mid]!.first <= seq) lo = mid;
      else hi = mid - 1;
    }
    const chunk = chunks[lo]!;
    return { chunk, index: seq - chunk.first };
  }

  /** Copies out up to `limit` retained events from `seq` on (firstSeq <= seq). */
  slice(seq: number, limit = Number.POSITIVE_INFINITY): E[] {
    const out: E[] = [];
    if (seq >= this.#next || limit <= 0) return out;
    let { chunk, index } = this.locate(seq);
    let c: Chunk<E> | null = chunk;
    while (c !== null && out.length < limit) {
      const events = c.events;
      const end = Math.min(events.length, index + (limit - out.length));
      for (let i = index; i < end; i++) out.push(events[i]!);
      c = c.next;
      index = 0;
    }
    return out;
  }

  /** Parks a reader on the tail until the next append or end (L5). */
  park(p: Parked): void {
    if (p.parkIndex >= 0) return;
    p.parkIndex = this.#waiters.length;
    this.#waiters.push(p);
  }

  /** Removes a parked reader (abort, break). O(1). */
  unpark(p: Parked): void {
    const i = p.parkIndex;
    if (i < 0) return;
    const waiters = this.#waiters;
    const last = waiters.pop()!;
    if (last !== p) {
      waiters[i] = last;
      last.parkIndex = i;
    }
    p.parkIndex = -1;
  }

  /** The tail chunk, for readers that start at the end (Consul's FollowAfter). */
  get tail(): Chunk<E> {
    return this.#tail;
  }

  #scheduleWake(): void {
    if (this.#wakeScheduled) return;
    this.#wakeScheduled = true;
    // A reaction on a settled promise is a microtask too, at a third of queueMicrotask's cost in
    // Node (which wraps each callback for async_hooks).
    RESOLVED.then(this.#wake);
  }

  #wake = (): void => {
    this.#wakeScheduled = false;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (let i = 0; i < waiters.length; i++) {
      const w = waiters[i]!;
      w.parkIndex = -1;
      w.wake();
    }
  };
}

/**
 * Builds a snapshot chain (Consul's AppendBuffer): sealed chunks holding `events` (dense, L1),
 * whose end continues in `live` at the sequence after the last event (L7). Returns the first chunk.
 */
export function snapshotChain<E extends Sequenced>(
  events: E[],
  live: EventLog<E>,
  continueAt: number,
): Chunk<E> {
  const first = events.length > 0 ? events[0]!.seq : continueAt;
  const chunk = new Chunk<E>(first, events);
  chunk.link = { log: live, seq: first + events.length };
  return chunk;
}
