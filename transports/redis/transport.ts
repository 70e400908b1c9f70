/**
 * RedisTransport: streams as Redis Streams, for any number of processes, on one server or a cluster.
 *
 * Connections per process: one command connection (every script, auto-pipelined), one reader
 * connection that follows every watched stream (one per watched stream in a cluster), and a small
 * pool of dedicated connections for blocking consumer-group reads. Never one per follower.
 *
 * Errors never stay in a log: a follower whose feed fails ends with the typed error (reader.ts),
 * a call rejects with it, and the transport's `closed` reports the error that closed it.
 */
import { randomBytes } from 'node:crypto';
import type { EventLog } from '../../core/event-log.js';
import type { Transport, TransportSupports } from '../../core/transport.js';
import type { RetentionOptions, WeftEvent } from '../../core/types.js';
import { type Client, checkServer, connectWithin, createClient, type TransportStats } from './client.js';
import { RedisGroups } from './groups.js';
import type { ResolvedOptions } from './options.js';
import { StreamReader, Watch } from './reader.js';
import { RedisStream, type StreamContext } from './stream.js';

export function redisSupports(maxEventBytes: number): TransportSupports {
  return Object.freeze({
    order: 'total',
    replay: true,
    crossThread: true,
    crossProcess: true,
    retention: Object.freeze({ maxLength: true, maxAgeMs: true, ttlMs: true }),
    epochs: true,
    groups: true,
    maxEventBytes,
  });
}

export class RedisTransport implements Transport {
  readonly name = 'redis';
  readonly supports: TransportSupports;
  readonly closed: Promise<Error | undefined>;
  readonly groups: RedisGroups;
  readonly options: ResolvedOptions;
  /** This instance's identity in idempotency records (scripts.ts R3). */
  readonly clientId = randomBytes(8).toString('hex');
  readonly client: Client;
  readonly #stats: TransportStats = { appendCalls: 0, appendEvents: 0, retries: 0, reconnects: 0 };
  #streams = new Map<string, RedisStream>();
  /** Standalone: one reader ('*'); cluster: one per watched stream (by stream name). */
  #readers = new Map<string, StreamReader>();
  #readerCount = 0;
  #isClosed = false;
  #settle!: (e: Error | undefined) => void;
  #ctx: StreamContext;

  constructor(options: ResolvedOptions) {
    this.options = options;
    this.supports = redisSupports(options.maxEventBytes);
    this.client = createClient(options, undefined, this.#stats);
    this.closed = new Promise((resolve) => {
      this.#settle = resolve;
    });
    this.#ctx = {
      client: this.client,
      options,
      clientId: this.clientId,
      stats: this.#stats,
      watch: (stream, log, after) => this.#watch(stream, log, after),
    };
    this.groups = new RedisGroups(this.client, options, (name) => this.#stream(name), this.#stats);
  }

  /** Connects within `connectTimeoutMs` and checks the server. @throws TransportError */
  async connect(): Promise<void> {
    await connectWithin(this.client, this.options.connectTimeoutMs, this.options.where);
    await checkServer(this.client, this.options.where);
  }

  stream(name: string, retention: RetentionOptions): RedisStream {
    let s = this.#streams.get(name);
    if (s === undefined) {
      s = new RedisStream(this.#ctx, name, retention);
      this.#streams.set(name, s);
    }
    return s;
  }

  /** The handle of a stream for group operations (opened with no retention when new). */
  #stream(name: string): RedisStream {
    return this.#streams.get(name) ?? this.stream(name, {});
  }

  #watch(stream: RedisStream, log: EventLog<WeftEvent>, after: number): Watch {
    const w = new Watch(stream, log, after);
    if (this.#isClosed) {
      log.end();
      w.settle();
      return w;
    }
    const route = this.options.mode === 'cluster' ? stream.name : '*';
    let reader = this.#readers.get(route);
    if (reader === undefined) {
      const connectionName = `weft:${this.clientId}:reader:${++this.#readerCount}`;
      const conn = createClient(this.options, connectionName, this.#stats);
      conn.connect().catch(() => {}); // the reader's commands wait for it; failures reach the watches
      reader = new StreamReader(conn, {
        main: this.client,
        blockMs: this.options.blockMs,
        reconnectTimeoutMs: this.options.reconnectTimeoutMs,
        multiplex: this.options.mode === 'standalone',
        connectionName,
        onIdle: (r) => {
          if (this.#readers.get(route) === r) this.#readers.delete(route);
        },
      });
      this.#readers.set(route, reader);
    }
    const r = reader;
    w.stop = () => r.remove(w);
    r.add(w);
    return w;
  }

  /** Counters and gauges for `fabric.metrics()`. */
  metrics(): Record<string, number> {
    let watched = 0;
    for (const r of this.#readers.values()) watched += r.size;
    return {
      append_calls_total: this.#stats.appendCalls,
      append_events_total: this.#stats.appendEvents,
      retries_total: this.#stats.retries,
      reconnects_total: this.#stats.reconnects,
      connected: this.client.status === 'ready' ? 1 : 0,
      reader_connections: this.#readers.size,
      watched_streams: watched,
      blocker_connections: this.groups.blockers,
    };
  }

  async close(): Promise<void> {
    if (this.#isClosed) return;
    this.#isClosed = true;
    for (const r of [...this.#readers.values()]) r.stop();
    this.#readers.clear();
    this.groups.close();
    // Appends already made complete (their callers are waiting for the sequence numbers).
    await Promise.race([
      Promise.all([...this.#streams.values()].map((s) => s.drained().catch(() => {}))),
      new Promise((resolve) => setTimeout(resolve, this.options.reconnectTimeoutMs).unref()),
    ]);
    if (this.client.status === 'ready') {
      // QUIT lets the replies on their way arrive; a dead connection is not waited for.
      const quit = this.client.quit().catch(() => {});
      await Promise.race([quit, new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
    }
    this.client.disconnect();
    this.#settle(undefined);
  }
}
