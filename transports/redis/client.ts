/**
 * Connections: how the transport's ioredis clients are made, connected within a deadline, and how
 * their errors become Weft's typed errors.
 *
 * Reconnection policy (the same for every connection): ioredis reconnects with a short backoff
 * (capped at 200 ms); a command caught by a dropped connection, or issued while there is none,
 * fails at the next failed attempt, and `retrying` sends it again until `reconnectTimeoutMs` has
 * passed. Every call Weft repeats is idempotent (an append carries its counter, scripts.ts R3;
 * reads, close and group calls are idempotent by nature), so a re-send never applies anything twice.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { FrameError, TransportError, WeftError } from '../../core/errors.js';
import { MIN_SERVER_VERSION } from './constants.js';
import type { ResolvedOptions } from './options.js';
import { SCRIPTS, type ScriptCommands } from './scripts.js';

export type Client = (Redis | Cluster) & ScriptCommands;

/** Counters the transport reports through `metrics()`. */
export interface TransportStats {
  appendCalls: number;
  appendEvents: number;
  /** Calls sent again after a connection error. */
  retries: number;
  /** Reconnect attempts, over every connection. */
  reconnects: number;
}

/** The reconnect delay after the n-th failed attempt. */
function backoff(attempt: number): number {
  return Math.min(25 * 2 ** attempt, 200);
}

function nodeOptions(o: ResolvedOptions, name: string | undefined): RedisOptions {
  const first = o.endpoints[0]!;
  const base: RedisOptions = {
    lazyConnect: true,
    connectTimeout: Math.min(o.connectTimeoutMs, o.reconnectTimeoutMs),
    retryStrategy: backoff,
    // Commands fail at each failed reconnect attempt; `retrying` re-sends the idempotent ones until
    // the outage budget is spent, so a call fails after reconnectTimeoutMs (+ one backoff), never sooner.
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: true,
    enableOfflineQueue: true,
    enableReadyCheck: true,
  };
  if (first.username !== undefined) base.username = first.username;
  if (first.password !== undefined) base.password = first.password;
  if (first.tls) base.tls = {};
  if (name !== undefined) base.connectionName = name;
  // RESP2: replies keep the array shapes the transport decodes (ioredis 6 defaults to RESP3, whose
  // maps the generic `callBuffer` returns flattened).
  return { ...base, ...(o.redisOptions as RedisOptions), protocol: 2 };
}

/**
 * A new client: a standalone connection, or a cluster client. `name` (CLIENT SETNAME) lets a
 * dedicated reader be found after a reconnect. Not connected yet: call `connectWithin`.
 */
export function createClient(o: ResolvedOptions, name?: string, stats?: TransportStats): Client {
  let client: Redis | Cluster;
  if (o.mode === 'cluster') {
    client = new Cluster(
      o.endpoints.map((e) => ({ host: e.host, port: e.port })),
      {
        lazyConnect: true,
        redisOptions: nodeOptions(o, name),
        clusterRetryStrategy: (n: number) => backoff(n),
        enableOfflineQueue: true,
        enableReadyCheck: true,
        retryDelayOnFailover: 100,
        maxRedirections: Math.max(16, Math.ceil(o.reconnectTimeoutMs / 100)),
      },
    );
  } else {
    const e = o.endpoints[0]!;
    client = new Redis({ ...nodeOptions(o, name), host: e.host, port: e.port, db: e.db });
  }
  // ioredis emits 'error' for every failed attempt; the failures reach Weft through the commands
  // and the connect deadline, so a listener must exist (an unhandled 'error' would crash the process).
  client.on('error', () => {});
  if (stats !== undefined) {
    client.on('reconnecting', () => {
      stats.reconnects++;
    });
  }
  for (const [command, definition] of Object.entries(SCRIPTS)) client.defineCommand(command, definition);
  return client as Client;
}

/** Errors that no amount of reconnecting cures: fail `createFabric` at once with them. */
const FATAL =
  /WRONGPASS|NOAUTH|NOPERM|invalid password|invalid username|Unknown RESP type|Protocol error|ERR unknown command|not a redis/i;

/**
 * Connects `client` and waits until it is ready, at most `timeoutMs`.
 * @throws TransportError naming the address and the last connection error.
 */
export async function connectWithin(client: Client, timeoutMs: number, where: string): Promise<void> {
  if (client.status !== 'ready') {
    await new Promise<void>((resolve, reject) => {
      let last: Error | undefined;
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        client.off('ready', onReady);
        client.off('error', onError);
        client.off('node error', onError);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onReady = (): void => finish();
      const onError = (e: Error): void => {
        last = e;
        if (FATAL.test(e.message)) {
          finish(new TransportError(`cannot use Redis at ${where}: ${e.message}`, { cause: e }));
        }
      };
      const timer = setTimeout(() => {
        finish(
          new TransportError(
            `could not connect to Redis at ${where} within ${timeoutMs} ms${last ? `: ${last.message}` : ''}`,
            { cause: last },
          ),
        );
      }, timeoutMs);
      client.on('ready', onReady);
      client.on('error', onError);
      client.on('node error', onError);
      if (client.status === 'wait' || client.status === 'end' || client.status === 'close') {
        client.connect().catch((e: unknown) => {
          if (e instanceof Error) last = e;
        });
      }
    });
  }
}

/** Checks that the server has every command Weft uses. @throws TransportError for an older server. */
export async function checkServer(client: Client, where: string): Promise<string> {
  let info: string;
  try {
    const node = client instanceof Cluster ? client.nodes('master')[0] : client;
    if (node === undefined) throw new Error('no master node known');
    info = await node.info('server');
  } catch (e) {
    throw transportError(e, `checking the Redis server at ${where}`);
  }
  const version = /redis_version:([\d.]+)/.exec(info)?.[1] ?? '0';
  const parts = version.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const have = parts[i] ?? 0;
    const need = MIN_SERVER_VERSION[i]!;
    if (have > need) break;
    if (have < need) {
      throw new TransportError(
        `Redis at ${where} is version ${version}; Weft needs ${MIN_SERVER_VERSION.join('.')} or newer`,
      );
    }
  }
  return version;
}

/** True for errors that mean "no working connection right now" (as opposed to a reply error). */
export function isConnectionError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  if (e.name === 'MaxRetriesPerRequestError' || e.name === 'ClusterAllFailedError') return true;
  return /Connection is closed|Stream isn't writeable|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|None of startup nodes|Failed to refresh slots|CLUSTERDOWN|LOADING|max retries per request|Command timed out/i.test(
    e.message,
  );
}

/** Drops the " script: <sha>, on @user_script:N." that Redis appends to script errors. */
function clean(message: string): string {
  return message.replace(/\s*script: [0-9a-f]+, on @user_script:\d+\.?$/, '');
}

/** Turns anything a Redis call threw into a WeftError whose message starts with `what`. */
export function transportError(e: unknown, what: string): WeftError {
  if (e instanceof WeftError) return e;
  const err = e instanceof Error ? e : new Error(String(e));
  const m = clean(err.message);
  if (m.startsWith('WEFTFOREIGN ')) return new FrameError(`${what}: ${m.slice(12)}`, { cause: err });
  if (m.startsWith('WRONGTYPE')) {
    return new TransportError(
      `${what}: a key of this stream holds another kind of value (${m}); is the key prefix shared with another application?`,
      { cause: err },
    );
  }
  if (/equal or smaller than the target stream top item/.test(m)) {
    return new FrameError(`${what}: the stream holds entries that Weft did not write (${m})`, { cause: err });
  }
  if (isConnectionError(err))
    return new TransportError(`${what}: Redis is unreachable (${m})`, { cause: err });
  return new TransportError(`${what}: ${m}`, { cause: err });
}

/**
 * Runs `fn`, and again after connection errors, until it succeeds or `budgetMs` has passed since
 * the first try (then the last error is thrown). Only for idempotent calls.
 */
export function retrying<T>(budgetMs: number, fn: () => Promise<T>, stats?: TransportStats): Promise<T> {
  const started = Date.now();
  // The common case costs no more than the call itself; retries take the slow path.
  return fn().catch((e: unknown) => {
    if (!isConnectionError(e)) throw e;
    return retryingAfter(budgetMs, started, fn, e, stats);
  });
}

async function retryingAfter<T>(
  budgetMs: number,
  started: number,
  fn: () => Promise<T>,
  error: unknown,
  stats: TransportStats | undefined,
): Promise<T> {
  let last = error;
  for (let attempt = 0; ; attempt++) {
    const left = budgetMs - (Date.now() - started);
    if (left <= 0) throw last;
    await sleep(Math.min(left, attempt < 3 ? 10 : 50));
    if (stats !== undefined) stats.retries++;
    try {
      return await fn();
    } catch (e) {
      if (!isConnectionError(e)) throw e;
      last = e;
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
