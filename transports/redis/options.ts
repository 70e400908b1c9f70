/**
 * The Redis transport's options: parsed and checked once, when the fabric is created (style point 10).
 * Every problem is a `ConfigError` that names the option and the bad value.
 *
 * Options come from the config object (`{ transport: 'redis', url, prefix, ... }`) and, so that one
 * URL (e.g. `WEFT_URL`) can carry everything, from the URL's query (`redis://h:6379/0?prefix=app`).
 */
import { ConfigError, show } from '../../core/errors.js';
import type { TransportConfig } from '../../core/transport.js';
import {
  DEFAULT_BLOCK_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_MAX_EVENT_BYTES,
  DEFAULT_PREFIX,
  DEFAULT_RECONNECT_TIMEOUT_MS,
  DEFAULT_TRIM_SLACK,
} from './constants.js';

/** What a user may put in the fabric config for `transport: 'redis'`. */
export interface RedisTransportOptions {
  /** One server: `redis://[user:password@]host[:port][/db][?option=value...]`, or `rediss://` for TLS. */
  url?: string;
  /** A Redis Cluster: some of its nodes, as URLs (`redis://host:port`) or `{ host, port }`. Exclusive with `url`. */
  nodes?: readonly (string | { host: string; port: number })[];
  /** Prefix of every key. No braces (they would change the cluster slot). @default 'weft' */
  prefix?: string;
  /** How long `createFabric` waits for the first connection before failing. @default 5000 */
  connectTimeoutMs?: number;
  /**
   * How long a lost connection may stay lost: calls wait (and are retried idempotently) this long,
   * then fail with `TransportError`; followers then end with `TransportError`. @default 10000
   */
  reconnectTimeoutMs?: number;
  /** Longest single blocking read before the reader re-checks its streams. @default 5000 */
  blockMs?: number;
  /**
   * Events kept in Redis beyond `maxLength`, so followers in other processes that are briefly
   * behind lose nothing. Reads never show more than `maxLength`. @default 1000
   */
  trimSlack?: number;
  /** Largest msgpack-encoded `data` of one event, in bytes. @default 8 MiB */
  maxEventBytes?: number;
  /** Passed to ioredis as is (e.g. `tls`, `password`, `username`, `connectionName`). */
  redisOptions?: Record<string, unknown>;
}

/** Option keys accepted besides `transport` (core rejects any other). */
export const OPTION_KEYS: readonly string[] = [
  'url',
  'nodes',
  'prefix',
  'connectTimeoutMs',
  'reconnectTimeoutMs',
  'blockMs',
  'trimSlack',
  'maxEventBytes',
  'redisOptions',
];

/** The URL query parameters accepted (numbers are parsed). */
const QUERY_KEYS = [
  'prefix',
  'connectTimeoutMs',
  'reconnectTimeoutMs',
  'blockMs',
  'trimSlack',
  'maxEventBytes',
];

export interface Endpoint {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls: boolean;
}

/** Checked options, with defaults applied. */
export interface ResolvedOptions {
  readonly mode: 'standalone' | 'cluster';
  /** The one server (standalone) or the startup nodes (cluster). */
  readonly endpoints: readonly Endpoint[];
  readonly prefix: string;
  readonly connectTimeoutMs: number;
  readonly reconnectTimeoutMs: number;
  readonly blockMs: number;
  readonly trimSlack: number;
  readonly maxEventBytes: number;
  readonly redisOptions: Readonly<Record<string, unknown>>;
  /** For messages: where we connect. */
  readonly where: string;
}

const PREFIX = /^[A-Za-z0-9_\-.:@/]{1,100}$/;

export function resolveOptions(config: TransportConfig): ResolvedOptions {
  const c = config as TransportConfig & RedisTransportOptions;
  if (c.url !== undefined && c.nodes !== undefined) {
    throw new ConfigError(`redis: give config.url (one server) or config.nodes (a cluster), not both`);
  }
  const fromQuery: Record<string, string> = {};
  let endpoints: Endpoint[];
  let mode: 'standalone' | 'cluster';
  if (c.nodes !== undefined) {
    if (!Array.isArray(c.nodes) || c.nodes.length === 0) {
      throw new ConfigError(
        `redis: config.nodes must be a non-empty array of URLs or { host, port }, got ${show(c.nodes)}`,
      );
    }
    endpoints = c.nodes.map((n, i) => nodeEndpoint(`config.nodes[${i}]`, n));
    mode = 'cluster';
  } else {
    const url = c.url ?? 'redis://127.0.0.1:6379';
    endpoints = [parseUrl('config.url', url, fromQuery)];
    mode = 'standalone';
  }
  const pick = (key: keyof RedisTransportOptions): unknown =>
    c[key] !== undefined ? c[key] : fromQuery[key];
  const prefix = pick('prefix') ?? DEFAULT_PREFIX;
  if (typeof prefix !== 'string' || !PREFIX.test(prefix)) {
    throw new ConfigError(
      `redis: config.prefix must be 1-100 characters of A-Z a-z 0-9 _ - . : @ / (no braces), got ${show(prefix)}`,
    );
  }
  const redisOptions = c.redisOptions ?? {};
  if (redisOptions === null || typeof redisOptions !== 'object' || Array.isArray(redisOptions)) {
    throw new ConfigError(`redis: config.redisOptions must be an object, got ${show(redisOptions)}`);
  }
  const first = endpoints[0]!;
  return {
    mode,
    endpoints,
    prefix,
    connectTimeoutMs: positiveInt('connectTimeoutMs', pick('connectTimeoutMs'), DEFAULT_CONNECT_TIMEOUT_MS),
    reconnectTimeoutMs: positiveInt(
      'reconnectTimeoutMs',
      pick('reconnectTimeoutMs'),
      DEFAULT_RECONNECT_TIMEOUT_MS,
    ),
    blockMs: positiveInt('blockMs', pick('blockMs'), DEFAULT_BLOCK_MS),
    trimSlack: positiveInt('trimSlack', pick('trimSlack'), DEFAULT_TRIM_SLACK, true),
    maxEventBytes: positiveInt('maxEventBytes', pick('maxEventBytes'), DEFAULT_MAX_EVENT_BYTES),
    redisOptions,
    where:
      mode === 'cluster'
        ? `cluster ${endpoints.map((e) => `${e.host}:${e.port}`).join(',')}`
        : `${first.tls ? 'rediss' : 'redis'}://${first.host}:${first.port}/${first.db}`,
  };
}

function positiveInt(key: string, value: unknown, fallback: number, zeroOk = false): number {
  if (value === undefined) return fallback;
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < (zeroOk ? 0 : 1)) {
    throw new ConfigError(`redis: config.${key} must be an integer >= ${zeroOk ? 0 : 1}, got ${show(value)}`);
  }
  return n;
}

function parseUrl(what: string, url: unknown, query?: Record<string, string>): Endpoint {
  if (typeof url !== 'string') throw new ConfigError(`redis: ${what} must be a string, got ${show(url)}`);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError(`redis: ${what} is not a valid URL: ${show(url)}`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new ConfigError(`redis: ${what} must use redis:// or rediss://, got ${show(url)}`);
  }
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw new ConfigError(`redis: ${what} has no host: ${show(url)}`);
  const port = u.port === '' ? 6379 : Number(u.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError(`redis: ${what} has a bad port: ${show(url)}`);
  }
  const path = u.pathname.replace(/^\//, '');
  const db = path === '' ? 0 : Number(path);
  if (!/^\d*$/.test(path) || !Number.isInteger(db) || db < 0) {
    throw new ConfigError(`redis: ${what} path must be a database number (/0, /1, ...), got ${show(url)}`);
  }
  for (const [key, value] of u.searchParams) {
    if (query === undefined || !QUERY_KEYS.includes(key)) {
      throw new ConfigError(
        `redis: ${what} has an unknown query parameter '${key}' (known: ${query === undefined ? 'none' : QUERY_KEYS.join(', ')})`,
      );
    }
    query[key] = value;
  }
  const endpoint: Endpoint = { host, port, db, tls: u.protocol === 'rediss:' };
  if (u.username !== '') endpoint.username = decodeURIComponent(u.username);
  if (u.password !== '') endpoint.password = decodeURIComponent(u.password);
  return endpoint;
}

function nodeEndpoint(what: string, node: unknown): Endpoint {
  if (typeof node === 'string') {
    const e = parseUrl(what, node);
    if (e.db !== 0) throw new ConfigError(`redis: ${what}: a cluster has only database 0, got ${show(node)}`);
    return e;
  }
  const n = node as { host?: unknown; port?: unknown } | null;
  if (
    n === null ||
    typeof n !== 'object' ||
    typeof n.host !== 'string' ||
    n.host === '' ||
    typeof n.port !== 'number' ||
    !Number.isInteger(n.port) ||
    n.port < 1 ||
    n.port > 65535
  ) {
    throw new ConfigError(`redis: ${what} must be a URL or { host, port }, got ${show(node)}`);
  }
  return { host: n.host, port: n.port, db: 0, tls: false };
}
