/**
 * RedisStream: the transport's handle on one stream: append, read, bounds, close and fail, each one
 * script over the stream's two keys (scripts.ts), and `watch`, served by the process's reader.
 *
 * Appends are group-committed: one script call per stream is in flight at a time; appends made
 * meanwhile wait and go together in the next call (each batch stays whole and atomic, and the call
 * carries this client's next counter, which makes a re-send after a reconnect idempotent, R3).
 */
import {
  AbortError,
  ClosedError,
  FrameError,
  InvalidArgumentError,
  TruncatedError,
} from '../../core/errors.js';
import type { EventLog } from '../../core/event-log.js';
import type { StreamBounds, TransportStream } from '../../core/transport.js';
import type { EventInput, RetentionOptions, WeftEvent } from '../../core/types.js';
import { type Client, isConnectionError, retrying, type TransportStats, transportError } from './client.js';
import { decodeEvent, decodeMarker, encodeData, parseId, type RawEntry } from './codec.js';
import { APPEND_MAX_BYTES, APPEND_MAX_EVENTS, HISTORY_PAGE } from './constants.js';
import { type StreamKeys, streamKeys } from './keys.js';
import type { ResolvedOptions } from './options.js';
import type { Watch } from './reader.js';

/** What a stream needs from its transport. */
export interface StreamContext {
  readonly client: Client;
  readonly options: ResolvedOptions;
  /** This transport instance's identity in idempotency records (R3). */
  readonly clientId: string;
  readonly stats: TransportStats;
  /** Starts feeding `log` from the process's reader. */
  watch(stream: RedisStream, log: EventLog<WeftEvent>, after: number): Watch;
}

/** Random words for candidate epochs, drawn from the CSPRNG in blocks (one call per 128 epochs). */
const pool = new Uint32Array(256);
let poolAt = pool.length;

/** A candidate epoch: a random integer in [1, 2^53), as a decimal string (R2). */
export function newEpoch(): string {
  if (poolAt >= pool.length) {
    crypto.getRandomValues(pool);
    poolAt = 0;
  }
  const n = (pool[poolAt++]! & 0x1fffff) * 2 ** 32 + pool[poolAt++]!;
  return String(n === 0 ? 1 : n);
}

interface PendingAppend {
  /** (topic or '', encoded data) per event. */
  readonly parts: (string | Buffer)[];
  readonly n: number;
  readonly bytes: number;
  readonly signal: AbortSignal | undefined;
  resolve(first: number): void;
  reject(e: unknown): void;
}

export class RedisStream implements TransportStream {
  readonly name: string;
  readonly log = undefined;
  readonly epoch = undefined;
  readonly keys: StreamKeys;
  readonly retention: RetentionOptions;
  /** The epoch seen by the last bounds or read: what a new watch expects (R2). */
  knownEpoch: string | undefined;
  /** The last bounds seen: a stream known closed with nothing after `after` needs no watch. */
  #lastBounds: StreamBounds | undefined;
  /** The error given to `fail()` in this process: local followers throw this very object. */
  localFailure: Error | undefined;
  #ctx: StreamContext;
  #queue: PendingAppend[] = [];
  /** The watches feeding this process's mirror of the stream. */
  #watches = new Set<Watch>();
  #inFlight: Promise<void> | undefined;
  #counter = 0;
  #maxLength: number;
  #maxAge: number;
  #ttl: number;

  constructor(ctx: StreamContext, name: string, retention: RetentionOptions) {
    this.name = name;
    this.#ctx = ctx;
    this.keys = streamKeys(ctx.options.prefix, name);
    this.retention = retention;
    this.#maxLength = retention.maxLength ?? -1;
    this.#maxAge = retention.maxAgeMs === undefined ? 0 : Math.ceil(retention.maxAgeMs);
    this.#ttl = retention.ttlMs === undefined ? 0 : Math.ceil(retention.ttlMs);
  }

  #retrying<T>(fn: () => Promise<T>): Promise<T> {
    return retrying(this.#ctx.options.reconnectTimeoutMs, fn, this.#ctx.stats);
  }

  /** Resolves when no append is in flight or queued (used by the transport's close). */
  async drained(): Promise<void> {
    while (this.#inFlight !== undefined) await this.#inFlight;
  }

  appendOne(data: unknown, topic: string | undefined, signal?: AbortSignal): Promise<number> {
    try {
      const d = this.#encode(data, 0);
      return this.#enqueue([topic ?? '', d], 1, d.length, signal);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  append(batch: readonly EventInput[], signal?: AbortSignal): Promise<number> {
    try {
      const parts = new Array<string | Buffer>(batch.length * 2);
      let bytes = 0;
      for (let i = 0; i < batch.length; i++) {
        const e = batch[i]!;
        const d = this.#encode(e.data, i);
        parts[2 * i] = e.topic ?? '';
        parts[2 * i + 1] = d;
        bytes += d.length;
      }
      return this.#enqueue(parts, batch.length, bytes, signal);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #encode(data: unknown, index: number): Buffer {
    let d: Buffer;
    try {
      d = encodeData(data);
    } catch (e) {
      throw new InvalidArgumentError(
        `stream '${this.name}': event ${index} cannot be encoded: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
    const max = this.#ctx.options.maxEventBytes;
    if (d.length > max) {
      throw new InvalidArgumentError(
        `stream '${this.name}': event ${index} is ${d.length} bytes encoded, over maxEventBytes ${max}`,
      );
    }
    return d;
  }

  #enqueue(
    parts: (string | Buffer)[],
    n: number,
    bytes: number,
    signal: AbortSignal | undefined,
  ): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.#queue.push({ parts, n, bytes, signal, resolve, reject });
      if (this.#inFlight === undefined) this.#inFlight = this.#send();
    });
  }

  /** Sends what is queued, one call at a time, until the queue is empty. */
  async #send(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        // Take whole appends up to the call's limits (a single batch is never split).
        const queue = this.#queue;
        const take: PendingAppend[] = [];
        let n = 0;
        let bytes = 0;
        let i = 0;
        for (; i < queue.length; i++) {
          const next = queue[i]!;
          if (take.length > 0 && (n + next.n > APPEND_MAX_EVENTS || bytes + next.bytes > APPEND_MAX_BYTES))
            break;
          // Not sent yet: an abort still cancels it (once sent, it completes).
          if (next.signal?.aborted) {
            next.reject(new AbortError(next.signal.reason));
            continue;
          }
          take.push(next);
          n += next.n;
          bytes += next.bytes;
        }
        this.#queue = i === queue.length ? [] : queue.slice(i);
        if (take.length > 0) await this.#call(take, n);
      }
    } finally {
      this.#inFlight = undefined;
    }
  }

  async #call(take: PendingAppend[], n: number): Promise<void> {
    const argv: (string | number | Buffer)[] = [
      newEpoch(),
      this.#ctx.clientId,
      ++this.#counter,
      this.#maxLength,
      this.#ctx.options.trimSlack,
      this.#maxAge,
      this.#ttl,
      n,
    ];
    for (const t of take) for (const p of t.parts) argv.push(p);
    const { client, options } = this.#ctx;
    const started = Date.now();
    let result: number | [string, string, string];
    try {
      // The same call again after a connection error (same counter): applied at most once (R3).
      this.#ctx.stats.appendCalls++;
      this.#ctx.stats.appendEvents += n;
      result = await retrying(
        options.reconnectTimeoutMs,
        () => client.weftAppend(this.keys.meta, this.keys.log, argv),
        this.#ctx.stats,
      );
    } catch (e) {
      const err = transportError(e, `publish to '${this.name}'`);
      if (isConnectionError(e)) {
        err.message += ` for ${Date.now() - started} ms; the events were either not appended or appended exactly once`;
      }
      for (const t of take) t.reject(err);
      return;
    }
    if (typeof result === 'number') {
      let first = result;
      for (const t of take) {
        t.resolve(first);
        first += t.n;
      }
      return;
    }
    let err: Error;
    if (result[0] === 'closed') {
      err = new ClosedError(`stream '${this.name}' is ${result[1]}`);
      if (result[1] === 'failed')
        (err as { cause?: unknown }).cause = this.localFailure ?? new Error(result[2]);
    } else {
      err = transportError(
        new Error(`a newer append of this client was applied first (${result[1]})`),
        `publish to '${this.name}'`,
      );
    }
    for (const t of take) t.reject(err);
  }

  async read(from: number, limit: number, signal?: AbortSignal): Promise<WeftEvent[]> {
    const count = Math.max(1, Math.min(limit, HISTORY_PAGE));
    let r: [Buffer, number, number, unknown[]];
    try {
      r = await abortable(
        this.#retrying(() =>
          this.#ctx.client.weftReadBuffer(this.keys.meta, this.keys.log, [
            from,
            count,
            this.#maxLength,
            this.#maxAge,
          ]),
        ),
        signal,
      );
    } catch (e) {
      throw transportError(e, `read of '${this.name}'`);
    }
    const epoch = r[0].toString();
    const first = Number(r[2]);
    if (epoch !== '') this.knownEpoch = epoch;
    if (from < first) throw new TruncatedError(this.name, from, first);
    const entries = r[3] as RawEntry[];
    const out: WeftEvent[] = [];
    let expect = from;
    for (const [idBuf, fields] of entries) {
      const id = idBuf.toString('latin1');
      const { seq, part } = parseId(id);
      if (part === '0' && decodeMarker(fields) !== undefined) break; // the end marker: after the last event (R4)
      if (part !== epoch || seq !== expect) {
        throw new FrameError(
          `read of '${this.name}': redis key '${this.keys.log}' holds entry ${id} out of place`,
        );
      }
      out.push(decodeEvent(this.name, seq, fields, this.keys.log, id));
      expect++;
      if (out.length >= limit) break;
    }
    return out;
  }

  async bounds(signal?: AbortSignal): Promise<StreamBounds> {
    let r: [string, number, string, number];
    try {
      const argv = [newEpoch(), this.#ttl, this.#maxLength, this.#maxAge];
      r = await abortable(
        this.#retrying(() => this.#ctx.client.weftBounds(this.keys.meta, this.keys.log, argv)),
        signal,
      );
    } catch (e) {
      throw transportError(e, `bounds of '${this.name}'`);
    }
    const epoch = String(r[0]);
    this.knownEpoch = epoch;
    const b = { epoch, first: Number(r[3]), next: Number(r[1]) + 1, closed: r[2] === 'closed' };
    this.#lastBounds = b;
    return { ...b, closed: r[2] !== '' };
  }

  watch(log: EventLog<WeftEvent>, after: number): { stop(): void } {
    const b = this.#lastBounds;
    if (b?.closed && after + 1 >= b.next) {
      // Closed (not failed) with nothing after `after`: nothing can come; end now rather than after a round trip.
      log.end();
      return { stop: () => {} };
    }
    const w = this.#ctx.watch(this, log, after);
    this.#watches.add(w);
    void w.finished.then(() => this.#watches.delete(w));
    return w;
  }

  async close(): Promise<void> {
    await this.#end('closed', '', '');
  }

  async fail(error: Error): Promise<void> {
    this.localFailure ??= error;
    await this.#end('failed', error.message, error.name);
  }

  async #end(state: 'closed' | 'failed', message: string, name: string): Promise<void> {
    // Appends made before the close come before its marker.
    await this.drained();
    try {
      const argv = [newEpoch(), this.#ttl, state, message, name];
      await this.#retrying(() => this.#ctx.client.weftEnd(this.keys.meta, this.keys.log, argv));
    } catch (e) {
      throw transportError(e, `${state === 'closed' ? 'close' : 'fail'} of '${this.name}'`);
    }
    // In this process, as with an in-process log: when close() resolves, the local followers have
    // been handed the end (the reader delivers the marker after every event before it).
    if (this.#watches.size > 0) {
      const ms = this.#ctx.options.reconnectTimeoutMs;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all([...this.#watches].map((w) => w.finished)),
        new Promise((resolve) => {
          timer = setTimeout(resolve, ms);
        }),
      ]);
      clearTimeout(timer);
      await new Promise((resolve) => setImmediate(resolve)); // their wake-ups run in microtasks
    }
  }
}

/** Races `p` with the signal: an abort rejects at once with AbortError (the reply, when it comes, is dropped). */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return p;
  if (signal.aborted) return Promise.reject(new AbortError(signal.reason));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new AbortError(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
