/**
 * The `sab` transport's options, their defaults, and their validation (once, at the boundary:
 * a bad value is a ConfigError that names the option and the value).
 */
import { ConfigError, show } from '../../core/errors.js';
import type { TransportSupports } from '../../core/transport.js';
import { isPowerOfTwo, MAX_RING_BYTES, MIN_RING_BYTES } from './ring-layout.js';

/** What a worker follower that falls a whole broadcast ring behind gets. */
export type SlowReaderPolicy =
  /** The publishers wait until it catches up (nothing is lost; a stuck reader stalls publishing). */
  | 'block'
  /** It throws `LaggedError`; the others go on. */
  | 'error';

export interface SabOptions {
  /** Bytes of each publisher shard's ring: a power of two, 4 KiB to 1 GiB. @default 1048576 (1 MiB) */
  ringBytes?: number;
  /**
   * Bytes of the broadcast ring that feeds followers in workers (a power of two, 4 KiB to 1 GiB),
   * or 0 for none (worker `follow()` then throws). @default 1048576 (1 MiB)
   */
  followRingBytes?: number;
  /** Most followers in workers at once. @default 64 */
  maxFollowers?: number;
  /** The default policy for a worker follower that falls a whole broadcast ring behind. @default 'block' */
  slowReader?: SlowReaderPolicy;
  /** Most streams (names in the shared directory). @default 1024 */
  maxStreams?: number;
  /** Events each stream may hold out of order while merging shards. @default 16384 */
  reorderWindow?: number;
  /** How long `close()` waits for publishers that claimed sequences to commit them, in ms. @default 5000 */
  closeTimeoutMs?: number;
}

export interface ResolvedSabOptions {
  readonly ringBytes: number;
  readonly followRingBytes: number;
  readonly maxFollowers: number;
  readonly slowReader: SlowReaderPolicy;
  readonly maxStreams: number;
  readonly reorderWindow: number;
  readonly closeTimeoutMs: number;
}

export const SAB_OPTION_KEYS: readonly string[] = [
  'ringBytes',
  'followRingBytes',
  'maxFollowers',
  'slowReader',
  'maxStreams',
  'reorderWindow',
  'closeTimeoutMs',
];

export const DEFAULTS: ResolvedSabOptions = Object.freeze({
  ringBytes: 2 ** 20,
  followRingBytes: 2 ** 20,
  maxFollowers: 64,
  slowReader: 'block',
  maxStreams: 1024,
  reorderWindow: 16_384,
  closeTimeoutMs: 5_000,
});

export const sabSupports: TransportSupports = Object.freeze({
  order: 'total',
  replay: true,
  crossThread: true,
  crossProcess: false,
  retention: Object.freeze({ maxLength: true, maxAgeMs: true, ttlMs: true }),
  epochs: true,
  groups: false,
});

export function checkRingBytes(what: string, value: unknown, allowZero = false): number {
  if (allowZero && value === 0) return 0;
  if (typeof value !== 'number' || !isPowerOfTwo(value) || value < MIN_RING_BYTES || value > MAX_RING_BYTES) {
    throw new ConfigError(
      `${what} must be a power of two from ${MIN_RING_BYTES} to ${MAX_RING_BYTES}${allowZero ? ', or 0' : ''}, got ${show(value)}`,
    );
  }
  return value;
}

function checkInt(what: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(`${what} must be an integer from ${min} to ${max}, got ${show(value)}`);
  }
  return value;
}

/** @throws ConfigError naming the option and the bad value. */
export function resolveOptions(config: Record<string, unknown>): ResolvedSabOptions {
  const o = { ...DEFAULTS } as { -readonly [K in keyof ResolvedSabOptions]: ResolvedSabOptions[K] };
  if (config.ringBytes !== undefined) o.ringBytes = checkRingBytes('options.ringBytes', config.ringBytes);
  if (config.followRingBytes !== undefined) {
    o.followRingBytes = checkRingBytes('options.followRingBytes', config.followRingBytes, true);
  }
  if (config.maxFollowers !== undefined) {
    o.maxFollowers = checkInt('options.maxFollowers', config.maxFollowers, 1, 4096);
  }
  if (config.slowReader !== undefined) {
    if (config.slowReader !== 'block' && config.slowReader !== 'error') {
      throw new ConfigError(`options.slowReader must be 'block' or 'error', got ${show(config.slowReader)}`);
    }
    o.slowReader = config.slowReader;
  }
  if (config.maxStreams !== undefined) {
    o.maxStreams = checkInt('options.maxStreams', config.maxStreams, 1, 1 << 20);
  }
  if (config.reorderWindow !== undefined) {
    o.reorderWindow = checkInt('options.reorderWindow', config.reorderWindow, 16, 1 << 24);
  }
  if (config.closeTimeoutMs !== undefined) {
    o.closeTimeoutMs = checkInt('options.closeTimeoutMs', config.closeTimeoutMs, 0, 3_600_000);
  }
  return Object.freeze(o);
}
