/**
 * StreamReader: the one blocking reader that feeds core's local mirrors, on its own connection.
 * On one server a single reader serves every watched stream of the process with one
 * `XREAD BLOCK ... STREAMS k1 k2 ...` (a new stream interrupts the read with CLIENT UNBLOCK); in a
 * cluster, where one XREAD cannot span slots, each watched stream has its own reader. However many
 * followers a stream has in this process, it costs one reader entry, never a connection each.
 *
 * Guarantee: each watch appends to its log exactly the events after its start, in order, once
 * (`log.append` is only ever given the log's next sequence), or ends the log with a typed error:
 * - the end marker: the log ends (closed) or ends with the failure's error (R4);
 * - an ID of another epoch, a meta key gone or changed after a reconnect or a TTL lapse:
 *   `StreamResetError` (R2; a restore to an older state counts too);
 * - events trimmed before this reader got them: `LaggedError` (never a silent skip);
 * - a foreign entry: `FrameError`; a key of the wrong type, or no connection for longer than
 *   `reconnectTimeoutMs`: `TransportError`.
 * A dropped connection alone loses nothing: the read is re-sent from the last ID delivered.
 */
import {
  FrameError,
  LaggedError,
  StreamResetError,
  TransportError,
  type WeftError,
} from '../../core/errors.js';
import type { EventLog } from '../../core/event-log.js';
import type { WeftEvent } from '../../core/types.js';
import { type Client, isConnectionError, sleep, transportError } from './client.js';
import { decodeEvent, decodeMarker, failureError, parseId, type RawEntry } from './codec.js';
import { ID_PART_MAX, READ_COUNT } from './constants.js';
import type { RedisStream } from './stream.js';

/** One stream fed by a reader. */
export class Watch {
  readonly stream: RedisStream;
  readonly key: string;
  readonly log: EventLog<WeftEvent>;
  /** The next sequence the log expects. */
  next: number;
  /** The last entry ID read (XREAD continues after it). */
  lastId: string;
  /** The epoch every event ID must carry; resolved before the first read when unknown. */
  epoch: string | undefined;
  done = false;
  /** Resolves when the watch has ended its log or was stopped. */
  readonly finished: Promise<void>;
  /** @internal */
  settle!: () => void;
  /** Stops feeding the log (core's `watch(...).stop()`). */
  stop: () => void = () => {};

  constructor(stream: RedisStream, log: EventLog<WeftEvent>, after: number) {
    this.finished = new Promise((resolve) => {
      this.settle = resolve;
    });
    this.stream = stream;
    this.key = stream.keys.log;
    this.log = log;
    this.next = after + 1;
    this.lastId = `${after}-${ID_PART_MAX}`;
    this.epoch = stream.knownEpoch;
  }
}

export interface ReaderContext {
  /** The transport's command connection: CLIENT UNBLOCK, epoch checks, TYPE checks. */
  readonly main: Client;
  readonly blockMs: number;
  readonly reconnectTimeoutMs: number;
  /** Whether one XREAD may carry several streams (one server) or not (a cluster). */
  readonly multiplex: boolean;
  /** The name set on the reader's connection, to find it again after a reconnect. */
  readonly connectionName: string;
  /** Called when the reader has no watch left and is stopped (the transport forgets it). */
  onIdle?(reader: StreamReader): void;
}

export class StreamReader {
  readonly #conn: Client;
  readonly #ctx: ReaderContext;
  #watches = new Map<string, Watch>();
  #running = false;
  #stopped = false;
  #idle: (() => void) | undefined;
  /** The XREAD in flight, and whether the watch set changed since it was sent. */
  #pending: Promise<unknown> | undefined;
  #dirty = false;
  #unblocking = false;
  #clientId: number | undefined;
  #everReady = false;
  #outageTimer: ReturnType<typeof setTimeout> | undefined;
  #ttlTimer: ReturnType<typeof setInterval> | undefined;

  constructor(conn: Client, ctx: ReaderContext) {
    this.#conn = conn;
    this.#ctx = ctx;
    conn.on('close', this.#onClose);
    conn.on('ready', this.#onReady);
  }

  get size(): number {
    return this.#watches.size;
  }

  add(w: Watch): void {
    this.#watches.set(w.key, w);
    this.#armTtl();
    if (!this.#running) {
      this.#running = true;
      void this.#run();
    } else if (this.#idle !== undefined) {
      this.#idle();
    } else {
      this.#interrupt();
    }
  }

  remove(w: Watch): void {
    w.done = true;
    w.settle();
    if (this.#watches.get(w.key) === w) this.#watches.delete(w.key);
    this.#armTtl();
    if (this.#watches.size === 0 && !this.#ctx.multiplex) this.stop();
  }

  /** Stops reading and closes the connection (the watches' logs are ended by their owners). */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const w of this.#watches.values()) {
      w.done = true;
      w.settle();
    }
    this.#watches.clear();
    clearTimeout(this.#outageTimer);
    clearInterval(this.#ttlTimer);
    this.#conn.off('close', this.#onClose);
    this.#conn.off('ready', this.#onReady);
    this.#idle?.();
    this.#conn.disconnect();
    this.#ctx.onIdle?.(this);
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      if (this.#watches.size === 0) {
        await new Promise<void>((resolve) => {
          this.#idle = resolve;
        });
        this.#idle = undefined;
        continue;
      }
      try {
        await this.#resolveEpochs();
        if (this.#ctx.multiplex && this.#clientId === undefined) {
          this.#clientId = Number(await this.#conn.client('ID'));
        }
        const keys: string[] = [];
        const ids: string[] = [];
        // The watches this read is for: a reply goes to them only (not to a watch of the same key made since).
        const asked = new Map<string, Watch>();
        for (const w of this.#watches.values()) {
          if (w.epoch === undefined) continue;
          keys.push(w.key);
          ids.push(w.lastId);
          asked.set(w.key, w);
        }
        if (keys.length === 0) continue;
        this.#dirty = false;
        const read = this.#conn.callBuffer('XREAD', [
          'COUNT',
          READ_COUNT,
          'BLOCK',
          this.#ctx.blockMs,
          'STREAMS',
          ...keys,
          ...ids,
        ]);
        this.#pending = read;
        let res: unknown;
        try {
          res = await read;
        } finally {
          this.#pending = undefined;
        }
        if (res !== null && res !== undefined) this.#dispatch(res as [Buffer, RawEntry[]][], asked);
      } catch (e) {
        if (this.#stopped) break;
        await this.#onError(e);
      }
    }
  }

  /** A watch made without a known epoch learns it from the stream's bounds (which also create the stream). */
  async #resolveEpochs(): Promise<void> {
    for (const w of [...this.#watches.values()]) {
      if (w.epoch !== undefined) continue;
      try {
        w.epoch = (await w.stream.bounds()).epoch;
      } catch (e) {
        if (isConnectionError((e as Error).cause ?? e)) throw e;
        this.#end(w, e as Error); // this stream's problem (a foreign key, a wrong type): not the others'
      }
    }
  }

  #dispatch(res: [Buffer, RawEntry[]][], asked: Map<string, Watch>): void {
    for (const [keyBuf, entries] of res) {
      const w = asked.get(keyBuf.toString());
      if (w === undefined || w.done) continue;
      try {
        this.#deliver(w, entries);
      } catch (e) {
        this.#end(w, e as Error);
      }
    }
  }

  #deliver(w: Watch, entries: RawEntry[]): void {
    const name = w.stream.name;
    let batch: WeftEvent[] = [];
    const flush = (): void => {
      if (batch.length > 0 && !w.log.ended) w.log.append(batch);
      batch = [];
    };
    for (const [idBuf, fields] of entries) {
      const id = idBuf.toString('latin1');
      const { seq, part } = parseId(id);
      if (part !== w.epoch) {
        flush();
        const marker = part === '0' ? decodeMarker(fields) : undefined;
        if (part === '0' && marker === undefined) {
          this.#end(w, new FrameError(`redis key '${w.key}' holds entry ${id} that Weft did not write`));
        } else if (marker === undefined) {
          this.#end(
            w,
            new StreamResetError(name, w.epoch, part, 'was recreated (an entry of another epoch arrived)'),
          );
        } else if (marker.state === 'closed') {
          this.#end(w, undefined);
        } else {
          const local = w.stream.localFailure;
          this.#end(w, local?.message === marker.message ? local : failureError(marker.message, marker.name));
        }
        return;
      }
      w.lastId = id;
      if (seq < w.next) continue; // already delivered (cannot happen with XREAD after lastId; cheap to guard)
      if (seq > w.next) {
        flush();
        this.#end(w, new LaggedError(name, w.next, seq));
        return;
      }
      batch.push(decodeEvent(name, seq, fields, w.key, id));
      w.next++;
    }
    flush();
  }

  #end(w: Watch, error: Error | undefined): void {
    if (w.done) return;
    w.log.end(error);
    this.remove(w);
  }

  #failAll(error: WeftError): void {
    for (const w of [...this.#watches.values()]) this.#end(w, error);
  }

  async #onError(e: unknown): Promise<void> {
    if (isConnectionError(e)) {
      // ioredis reconnects; the outage timer (armed on 'close') ends the watches if it lasts too long.
      await sleep(50);
      return;
    }
    // A reply error: find the stream(s) it concerns, so one bad key does not stop the others.
    const main = this.#ctx.main;
    let culprits = 0;
    for (const w of [...this.#watches.values()]) {
      const type = await main.type(w.key).catch(() => 'unknown');
      if (type !== 'stream' && type !== 'none' && type !== 'unknown') {
        culprits++;
        this.#end(w, transportError(e, `follow of '${w.stream.name}'`));
      }
    }
    if (culprits === 0) this.#failAll(transportError(e, 'follow'));
  }

  #onClose = (): void => {
    this.#clientId = undefined;
    if (this.#outageTimer !== undefined || this.#stopped) return;
    this.#outageTimer = setTimeout(() => {
      this.#outageTimer = undefined;
      if (this.#conn.status === 'ready') return;
      this.#failAll(
        new TransportError(
          `follow: lost the connection to Redis for more than ${this.#ctx.reconnectTimeoutMs} ms (reconnectTimeoutMs)`,
        ),
      );
    }, this.#ctx.reconnectTimeoutMs); // not unref'd: a follower waiting in this process must get its error
  };

  #onReady = (): void => {
    clearTimeout(this.#outageTimer);
    this.#outageTimer = undefined;
    if (this.#everReady) void this.#verify(false);
    this.#everReady = true;
  };

  /**
   * Checks each watched stream (or only those with a TTL) against its meta key: gone, another
   * epoch, or an older last sequence than already delivered ends the watch with StreamResetError.
   */
  async #verify(ttlOnly: boolean): Promise<void> {
    const ws = [...this.#watches.values()].filter(
      (w) => w.epoch !== undefined && (!ttlOnly || w.stream.retention.ttlMs !== undefined),
    );
    const delivered = ws.map((w) => w.next - 1);
    let metas: (string | null)[][];
    try {
      metas = await Promise.all(ws.map((w) => this.#ctx.main.hmget(w.stream.keys.meta, 'epoch', 'seq')));
    } catch {
      return; // no connection: the outage timer or the next check decides
    }
    for (let i = 0; i < ws.length; i++) {
      const w = ws[i]!;
      if (w.done) continue;
      const [epoch, seq] = metas[i]!;
      if (epoch === null || epoch === undefined) {
        this.#end(
          w,
          new StreamResetError(w.stream.name, w.epoch, undefined, 'was dropped (TTL, or lost by Redis)'),
        );
      } else if (epoch !== w.epoch) {
        this.#end(w, new StreamResetError(w.stream.name, w.epoch, epoch, 'was recreated'));
      } else if (Number(seq) < delivered[i]!) {
        this.#end(
          w,
          new StreamResetError(
            w.stream.name,
            w.epoch,
            epoch,
            `was restored to an older state (last ${seq} < ${delivered[i]})`,
          ),
        );
      }
    }
  }

  /** Streams with a TTL are checked at twice the rate of the shortest TTL, so a drop is seen promptly. */
  #armTtl(): void {
    let min = Number.POSITIVE_INFINITY;
    for (const w of this.#watches.values()) min = Math.min(min, w.stream.retention.ttlMs ?? min);
    clearInterval(this.#ttlTimer);
    this.#ttlTimer = undefined;
    if (Number.isFinite(min) && !this.#stopped) {
      this.#ttlTimer = setInterval(() => void this.#verify(true), Math.max(25, Math.floor(min / 2)));
      this.#ttlTimer.unref?.();
    }
  }

  /** Makes the XREAD in flight return at once so the next one carries the new watch set. */
  #interrupt(): void {
    this.#dirty = true;
    if (!this.#ctx.multiplex || this.#pending === undefined || this.#unblocking) return;
    this.#unblocking = true;
    void (async () => {
      try {
        // UNBLOCK answers 0 when the read has not reached the server yet: try again until it has.
        for (let attempt = 0; this.#pending !== undefined && this.#dirty && !this.#stopped; attempt++) {
          const id = this.#clientId ?? (await this.#findId());
          if (id !== undefined && Number(await this.#ctx.main.client('UNBLOCK', id)) === 1) break;
          await sleep(attempt < 10 ? 1 : 20);
        }
      } catch {
        // The read returns by itself within blockMs.
      } finally {
        this.#unblocking = false;
      }
    })();
  }

  /** After a reconnect the reader's connection is busy with the re-sent XREAD: find its ID by name. */
  async #findId(): Promise<number | undefined> {
    const list = String(await this.#ctx.main.call('CLIENT', 'LIST', 'TYPE', 'normal'));
    const name = this.#ctx.connectionName;
    for (const line of list.split('\n')) {
      if (line.includes(` name=${name} `)) {
        const id = /^id=(\d+)/.exec(line)?.[1];
        if (id !== undefined) return (this.#clientId = Number(id));
      }
    }
    return undefined;
  }
}
