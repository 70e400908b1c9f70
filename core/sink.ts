/**
 * Sink: a consumer group (pulse/ponos sinks, Redis consumer groups, JetStream durable consumers),
 * written once in core on a transport's `GroupOperations`.
 *
 * Guarantees: each sink name gets every matching event of its streams; the `consume()` loops of one
 * sink compete (each event goes to one of them at a time); delivery is at-least-once with ack: an
 * event not acked within `ackTimeoutMs` (or nacked, or held by a loop that stopped) is redelivered
 * with its delivery count, and after `maxDeliveries` it is moved to the dead-letter stream and
 * reported, never dropped. Ack is idempotent. Events that do not match the filter are acked as soon
 * as they are read: they are never handed out and never stay pending.
 */
import { AbortError, ClosedError, InvalidArgumentError, show } from './errors.js';
import type { Stream } from './stream.js';
import { matchesPattern, validatePattern } from './topic-matcher.js';
import type { GroupEntry, GroupOperations } from './transport.js';
import type { StartPosition, WeftEvent } from './types.js';
import { checkKeys, checkName, checkPositive, checkSignal, checkStart } from './validate.js';

export interface SinkOptions<T = unknown> {
  /** The streams this sink reads (at least one). */
  streams: readonly string[];
  /** Topic patterns (`orders.*`, `orders.>`): only events whose topic matches one are delivered. */
  topics?: readonly string[] | undefined;
  /** A custom predicate; with `topics`, both must accept the event. */
  match?: ((event: WeftEvent<T>) => boolean) | undefined;
  /** Where a new sink starts on each stream; an existing sink keeps its cursor. @default 'start' */
  from?: StartPosition | undefined;
  /** Redelivery after this long without ack. @default 30_000 */
  ackTimeoutMs?: number | undefined;
  /** Deliveries before an event goes to the dead-letter stream. @default 5 */
  maxDeliveries?: number | undefined;
  /** The dead-letter stream. @default `${name}.dead` */
  deadLetter?: string | undefined;
  /** Called for each event moved to the dead-letter stream (in addition to the stream itself). */
  onDeadLetter?: ((letter: DeadLetter<T>) => void) | undefined;
}

/** What the dead-letter stream receives. */
export interface DeadLetter<T = unknown> {
  sink: string;
  stream: string;
  seq: number;
  time: number;
  topic: string | undefined;
  data: T;
  deliveries: number;
}

export interface ConsumeOptions {
  signal?: AbortSignal | undefined;
  /** Entries fetched per read. @default 64 */
  batchSize?: number | undefined;
}

/** One delivery of an event to one consume loop. */
export interface Delivery<T = unknown> {
  readonly event: WeftEvent<T>;
  /** 1 on first delivery, 2 on the first redelivery, ... */
  readonly deliveries: number;
  /** Acknowledges the event (idempotent). */
  ack(): Promise<void>;
  /** Asks for redelivery now (to any consume loop of this sink). */
  nack(): Promise<void>;
}

export interface SinkStats {
  delivered: number;
  acked: number;
  redelivered: number;
  filtered: number;
  deadLettered: number;
}

const SINK_KEYS = [
  'streams',
  'topics',
  'match',
  'from',
  'ackTimeoutMs',
  'maxDeliveries',
  'deadLetter',
  'onDeadLetter',
];
const CONSUME_KEYS = ['signal', 'batchSize'];

/** What a sink needs from its fabric. */
export interface SinkOwner {
  readonly isClosed: boolean;
  stream<T>(name: string): Stream<T>;
}

let consumerCounter = 0;
function consumerId(sink: string): string {
  const rnd = globalThis.crypto?.randomUUID?.().slice(0, 8) ?? Math.random().toString(16).slice(2, 10);
  return `${sink}:${rnd}:${++consumerCounter}`;
}

/** Validates sink options once (style point 10). */
export function checkSinkOptions<T>(
  name: string,
  options: SinkOptions<T>,
): Required<Omit<SinkOptions<T>, 'topics' | 'match' | 'onDeadLetter'>> & SinkOptions<T> {
  const what = `sink '${name}' options`;
  checkKeys(what, options, SINK_KEYS);
  if (options === undefined || !Array.isArray(options.streams) || options.streams.length === 0) {
    throw new InvalidArgumentError(
      `${what}.streams must be a non-empty array of stream names, got ${show(options?.streams)}`,
    );
  }
  for (const [i, s] of options.streams.entries()) checkName(`${what}.streams[${i}]`, s);
  if (options.topics !== undefined) {
    if (!Array.isArray(options.topics))
      throw new InvalidArgumentError(
        `${what}.topics must be an array of topic patterns, got ${show(options.topics)}`,
      );
    for (const t of options.topics) validatePattern(t);
  }
  if (options.match !== undefined && typeof options.match !== 'function') {
    throw new InvalidArgumentError(`${what}.match must be a function, got ${show(options.match)}`);
  }
  if (options.onDeadLetter !== undefined && typeof options.onDeadLetter !== 'function') {
    throw new InvalidArgumentError(
      `${what}.onDeadLetter must be a function, got ${show(options.onDeadLetter)}`,
    );
  }
  const maxDeliveries = options.maxDeliveries ?? 5;
  if (!Number.isSafeInteger(maxDeliveries) || maxDeliveries < 1) {
    throw new InvalidArgumentError(
      `${what}.maxDeliveries must be an integer >= 1, got ${show(options.maxDeliveries)}`,
    );
  }
  return {
    ...options,
    streams: [...options.streams],
    from: options.from === undefined ? 'start' : checkStart(`${what}.from`, options.from),
    ackTimeoutMs:
      options.ackTimeoutMs === undefined
        ? 30_000
        : checkPositive(`${what}.ackTimeoutMs`, options.ackTimeoutMs),
    maxDeliveries,
    deadLetter: checkName(`${what}.deadLetter`, options.deadLetter ?? `${name}.dead`),
  };
}

export class Sink<T = unknown> {
  readonly name: string;
  readonly stats: SinkStats = { delivered: 0, acked: 0, redelivered: 0, filtered: 0, deadLettered: 0 };
  #groups: GroupOperations;
  #owner: SinkOwner;
  #options: ReturnType<typeof checkSinkOptions<T>>;
  #streams: string[];
  #ensured = new Map<string, Promise<void>>();
  #closing = new AbortController();
  #loops = new Set<Promise<void>>();
  /** Loops suspended at a `yield` (the caller's code runs). */
  #paused = new Set<Promise<void>>();
  /** Idle loops of this handle: aborted to wake them (a nack here, a stream added). */
  #pokes = new Set<AbortController>();
  #claimNow = false;

  /** @internal Use `fabric.sink(name, options)`. */
  constructor(
    owner: SinkOwner,
    groups: GroupOperations,
    name: string,
    options: ReturnType<typeof checkSinkOptions<T>>,
  ) {
    this.name = name;
    this.#owner = owner;
    this.#groups = groups;
    this.#options = options;
    this.#streams = [...options.streams];
    for (const s of this.#streams) this.#ensure(s);
  }

  /** The streams this sink reads now. */
  get streams(): readonly string[] {
    return this.#streams;
  }

  /** Starts reading another stream (at the sink's `from` when the group is new there). */
  async addStream(stream: string): Promise<void> {
    checkName('addStream stream', stream);
    this.#checkOpen();
    if (!this.#streams.includes(stream)) this.#streams = [...this.#streams, stream];
    await this.#ensure(stream);
    this.#poke(false);
  }

  #poke(claim: boolean): void {
    if (claim) this.#claimNow = true;
    for (const p of this.#pokes) p.abort();
    this.#pokes.clear();
  }

  /** Stops reading a stream; its group cursor stays, so adding it back resumes where it was. */
  async removeStream(stream: string): Promise<void> {
    checkName('removeStream stream', stream);
    this.#streams = this.#streams.filter((s) => s !== stream);
  }

  /**
   * A consume loop: competes with the other loops of this sink for its events. Ends when the sink
   * or fabric closes; `break` or abort releases its unacked deliveries for redelivery at once.
   */
  consume(options?: ConsumeOptions): AsyncIterableIterator<Delivery<T>> {
    checkKeys('consume options', options, CONSUME_KEYS);
    const signal = checkSignal('consume options.signal', options?.signal);
    const batchSize = options?.batchSize ?? 64;
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
      throw new InvalidArgumentError(
        `consume options.batchSize must be an integer >= 1, got ${show(batchSize)}`,
      );
    }
    // An async generator cannot be interrupted while it awaits, so `return()` (a `break`) first
    // aborts the loop's own signal: a waiting read ends at once, then the generator finishes.
    const local = new AbortController();
    const gen = this.#loop(signal, batchSize, local.signal);
    return {
      next: () => gen.next(),
      return: async () => {
        local.abort();
        return gen.return(undefined);
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  /**
   * Stops every consume loop of this sink handle; their unacked deliveries are released. Idempotent.
   * Waits for loops busy in I/O; a loop paused at a delivery (the caller's code runs) finishes when
   * it is resumed, so calling `close()` from inside a consume loop does not deadlock.
   */
  async close(): Promise<void> {
    this.#closing.abort();
    await Promise.allSettled([...this.#loops].filter((l) => !this.#paused.has(l)));
  }

  #ensure(stream: string): Promise<void> {
    let p = this.#ensured.get(stream);
    if (p === undefined) {
      p = this.#groups.ensure(this.name, stream, this.#options.from);
      p.catch(() => this.#ensured.delete(stream));
      this.#ensured.set(stream, p);
    }
    return p;
  }

  #checkOpen(): void {
    if (this.#owner.isClosed || this.#closing.signal.aborted)
      throw new ClosedError(`sink '${this.name}' is closed`);
  }

  #accepts(e: WeftEvent<T>): boolean {
    const topics = this.#options.topics;
    if (topics !== undefined) {
      if (e.topic === undefined || !topics.some((p) => matchesPattern(p, e.topic as string))) return false;
    }
    const match = this.#options.match;
    return match === undefined || match(e);
  }

  async *#loop(
    signal: AbortSignal | undefined,
    batchSize: number,
    local: AbortSignal,
  ): AsyncGenerator<Delivery<T>, void, undefined> {
    if (signal?.aborted) throw new AbortError(signal.reason);
    this.#checkOpen();
    const consumer = consumerId(this.name);
    const groups = this.#groups;
    const group = this.name;
    const o = this.#options;
    const claimEveryMs = Math.max(5, Math.min(o.ackTimeoutMs / 2, 1_000));
    // Entries read or claimed by this loop and not yet acked or nacked, by stream: released when it stops.
    const inHand = new Map<string, Set<number>>();
    const closing = this.#closing.signal;
    const stop = AbortSignal.any(signal === undefined ? [closing, local] : [signal, closing, local]);
    let done!: () => void;
    const finished = new Promise<void>((resolve) => {
      done = resolve;
    });
    this.#loops.add(finished);
    let lastClaim = 0;
    try {
      while (!stop.aborted && !this.#owner.isClosed) {
        const streams = this.#streams;
        await Promise.all(streams.map((s) => this.#ensure(s)));
        const batch: { stream: string; entry: GroupEntry }[] = [];
        const now = Date.now();
        if (now - lastClaim >= claimEveryMs || this.#claimNow) {
          this.#claimNow = false;
          lastClaim = now;
          for (const s of streams) {
            for (const entry of await groups.claim(group, consumer, s, o.ackTimeoutMs, batchSize))
              batch.push({ stream: s, entry });
          }
        }
        for (const s of streams) {
          if (batch.length >= batchSize) break;
          for (const entry of await groups.read(group, consumer, s, batchSize - batch.length, 0))
            batch.push({ stream: s, entry });
        }
        if (batch.length === 0) {
          // Wait for new entries, a release elsewhere, a local nack or addStream (a poke), or the claim interval.
          const poke = new AbortController();
          this.#pokes.add(poke);
          await groups.wait(group, streams, claimEveryMs, AbortSignal.any([stop, poke.signal]));
          this.#pokes.delete(poke);
          lastClaim = 0; // after a quiet spell, look for released or timed-out deliveries first
          continue;
        }
        // From here the loop holds the whole batch: if it stops, `finally` releases what it still holds.
        for (const { stream, entry } of batch) {
          let held = inHand.get(stream);
          if (held === undefined) inHand.set(stream, (held = new Set()));
          held.add(entry.event.seq);
        }
        const readAt = Date.now();
        for (const { stream, entry } of batch) {
          const e = entry.event as WeftEvent<T>;
          const held = inHand.get(stream)!;
          if (Date.now() - readAt >= o.ackTimeoutMs) {
            // Prefetched but not handed out within the ack timeout: another loop may have claimed it
            // by now, so it is not handed out here (it stays pending and is redelivered by the claim).
            held.delete(e.seq);
            continue;
          }
          if (!this.#accepts(e)) {
            this.stats.filtered++;
            held.delete(e.seq);
            await groups.ack(group, stream, [e.seq]);
            continue;
          }
          if (entry.deliveries > o.maxDeliveries) {
            held.delete(e.seq);
            await this.#deadLetter(stream, entry);
            continue;
          }
          if (stop.aborted) break;
          this.stats.delivered++;
          if (entry.deliveries > 1) this.stats.redelivered++;
          let settled = false;
          const settle = async (ack: boolean): Promise<void> => {
            if (settled) return;
            settled = true;
            held.delete(e.seq);
            if (ack) {
              this.stats.acked++;
              await groups.ack(group, stream, [e.seq]);
            } else {
              await groups.release(group, consumer, stream, [e.seq]);
              this.#poke(true);
            }
          };
          this.#paused.add(finished);
          try {
            yield {
              event: e,
              deliveries: entry.deliveries,
              ack: () => settle(true),
              nack: () => settle(false),
            };
          } finally {
            this.#paused.delete(finished);
          }
        }
      }
      if (signal?.aborted) throw new AbortError(signal.reason);
    } finally {
      for (const [stream, seqs] of inHand) {
        if (seqs.size > 0) await groups.release(group, consumer, stream, [...seqs]).catch(() => {});
      }
      this.#loops.delete(finished);
      done();
    }
  }

  async #deadLetter(stream: string, entry: GroupEntry): Promise<void> {
    const e = entry.event as WeftEvent<T>;
    const letter: DeadLetter<T> = {
      sink: this.name,
      stream,
      seq: e.seq,
      time: e.time,
      topic: e.topic,
      data: e.data,
      deliveries: entry.deliveries - 1,
    };
    await this.#owner.stream<DeadLetter<T>>(this.#options.deadLetter).publish(letter, { topic: e.topic });
    await this.#groups.ack(this.name, stream, [e.seq]);
    this.stats.deadLettered++;
    this.#options.onDeadLetter?.(letter);
  }
}
