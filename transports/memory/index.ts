/**
 * The in-memory transport: the embedded default and the reference every other transport is
 * tested against. A stream is a core `EventLog` in this process; appends assign the dense
 * sequences synchronously, so a batch is visible whole before any reader runs.
 *
 * Retention: `maxLength` and `maxAgeMs` move the log's retention cursor at each append (and
 * `maxAgeMs` also before each read); `ttlMs` drops the stream when nothing was appended for that
 * long: its followers throw `StreamResetError` and the next append starts a new epoch at 1.
 */

import { ClosedError, StreamResetError } from '../../core/errors.js';
import { EventLog } from '../../core/event-log.js';
import { expire, hasRetention, readRetained, retain } from '../../core/retention.js';
import type {
  StreamBounds,
  Transport,
  TransportFactory,
  TransportStream,
  TransportSupports,
} from '../../core/transport.js';
import type { EventInput, RetentionOptions, WeftEvent } from '../../core/types.js';
import { MemoryGroups } from './groups.js';

export const memorySupports: TransportSupports = Object.freeze({
  order: 'total',
  replay: true,
  crossThread: false,
  crossProcess: false,
  retention: Object.freeze({ maxLength: true, maxAgeMs: true, ttlMs: true }),
  epochs: true,
  groups: true,
});

export function newEpoch(): string {
  const c = globalThis.crypto;
  if (c?.randomUUID !== undefined) return c.randomUUID().slice(0, 18).replace(/-/g, '');
  return Math.random().toString(16).slice(2, 18);
}

/** One stream's state; replaced as a whole when the stream is dropped by TTL. */
class Generation {
  readonly log = new EventLog<WeftEvent>();
  readonly epoch = newEpoch();
  closed = false;
  failure: Error | undefined;
  lastAppend = Date.now();
}

export class MemoryStream implements TransportStream {
  readonly name: string;
  #retention: RetentionOptions;
  /** Whether appends must move the retention cursor (kept out of the hot path when not). */
  #retained: boolean;
  #gen = new Generation();
  #ttlTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(name: string, retention: RetentionOptions) {
    this.name = name;
    this.#retention = {};
    this.#retained = false;
    this.configure(retention);
  }

  /** Sets the retention (when a stream opened implicitly, e.g. by a sink, is then opened by a user). */
  configure(retention: RetentionOptions): void {
    this.#retention = retention;
    this.#retained = hasRetention(retention);
    clearTimeout(this.#ttlTimer);
    this.#ttlTimer = undefined;
    if (retention.ttlMs !== undefined) this.#armTtl(retention.ttlMs);
  }

  get log(): EventLog<WeftEvent> {
    return this.#gen.log;
  }
  get epoch(): string {
    return this.#gen.epoch;
  }

  appendOne(data: unknown, topic: string | undefined): number {
    const gen = this.#gen;
    if (gen.closed) throw this.#closedError(gen);
    const log = gen.log;
    const seq = log.nextSeq;
    const time = Date.now();
    log.appendOne({ stream: this.name, seq, time, topic, data });
    gen.lastAppend = time;
    if (this.#retained) retain(log, this.#retention, time);
    return seq;
  }

  append(batch: readonly EventInput[]): number {
    const gen = this.#gen;
    if (gen.closed) throw this.#closedError(gen);
    const log = gen.log;
    const first = log.nextSeq;
    const time = Date.now();
    const name = this.name;
    const events = new Array<WeftEvent>(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const e = batch[i]!;
      events[i] = { stream: name, seq: first + i, time, topic: e.topic, data: e.data };
    }
    log.append(events);
    gen.lastAppend = time;
    if (this.#retained) retain(log, this.#retention, time);
    return first;
  }

  async read(from: number, limit: number): Promise<WeftEvent[]> {
    return readRetained(this.name, expire(this.#gen.log, this.#retention), from, limit);
  }

  async bounds(): Promise<StreamBounds> {
    const log = expire(this.#gen.log, this.#retention);
    const gen = this.#gen;
    return { epoch: gen.epoch, first: log.firstSeq, next: log.nextSeq, closed: gen.closed };
  }

  async close(): Promise<void> {
    const gen = this.#gen;
    if (gen.closed) return;
    gen.closed = true;
    gen.log.end();
  }

  async fail(error: Error): Promise<void> {
    const gen = this.#gen;
    if (gen.closed) return;
    gen.closed = true;
    gen.failure = error;
    gen.log.end(error);
  }

  /** Ends the stream as the transport closes (followers finish cleanly). */
  shutdown(): void {
    clearTimeout(this.#ttlTimer);
    this.#ttlTimer = undefined;
    this.#gen.log.end();
  }

  #closedError(gen: Generation): ClosedError {
    const e = new ClosedError(`stream '${this.name}' is ${gen.failure ? 'failed' : 'closed'}`);
    if (gen.failure) (e as { cause?: unknown }).cause = gen.failure;
    return e;
  }

  /** One timer per stream, re-armed lazily: an append only stores its time (no timer churn per publish). */
  #armTtl(ttlMs: number): void {
    const check = (): void => {
      const gen = this.#gen;
      const idle = Date.now() - gen.lastAppend;
      if (idle >= ttlMs) {
        const next = new Generation();
        this.#gen = next;
        gen.log.end(
          new StreamResetError(
            this.name,
            gen.epoch,
            next.epoch,
            `was dropped after ${ttlMs} ms without appends`,
          ),
        );
        this.#ttlTimer = setTimeout(check, ttlMs);
      } else {
        this.#ttlTimer = setTimeout(check, ttlMs - idle);
      }
      this.#ttlTimer.unref?.();
    };
    this.#ttlTimer = setTimeout(check, ttlMs);
    this.#ttlTimer.unref?.();
  }
}

export class MemoryTransport implements Transport {
  readonly name = 'memory';
  readonly supports = memorySupports;
  readonly closed: Promise<Error | undefined>;
  #streams = new Map<string, MemoryStream>();
  #settle!: (e: Error | undefined) => void;
  #isClosed = false;

  constructor() {
    this.closed = new Promise((resolve) => {
      this.#settle = resolve;
    });
  }

  readonly groups = new MemoryGroups((name) => this.#open(name, undefined).log);
  /** Streams opened only by a sink so far: their first explicit open sets the retention. */
  #implicit = new Set<string>();

  stream(name: string, retention: RetentionOptions): MemoryStream {
    return this.#open(name, retention);
  }

  #open(name: string, retention: RetentionOptions | undefined): MemoryStream {
    let s = this.#streams.get(name);
    if (s === undefined) {
      s = new MemoryStream(name, retention ?? {});
      if (retention === undefined) this.#implicit.add(name);
      if (this.#isClosed) s.shutdown();
      this.#streams.set(name, s);
    } else if (retention !== undefined && this.#implicit.delete(name)) {
      s.configure(retention);
    }
    return s;
  }

  async close(): Promise<void> {
    if (this.#isClosed) return;
    this.#isClosed = true;
    for (const s of this.#streams.values()) s.shutdown();
    this.#settle(undefined);
  }
}

export const memoryTransport: TransportFactory = {
  options: [],
  schemes: ['memory:'],
  create: () => new MemoryTransport(),
};
