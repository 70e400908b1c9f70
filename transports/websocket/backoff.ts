/**
 * Reconnect back-off: exponential with jitter, so that many clients cut at once by a gateway
 * restart do not come back in lockstep. Pure and browser-safe.
 */
import { ConfigError, show } from '../../core/errors.js';

export interface ReconnectOptions {
  /** Delay before the first reconnect attempt, in ms. @default 100 */
  initialDelayMs?: number;
  /** Upper bound of the delay, in ms. @default 5000 */
  maxDelayMs?: number;
  /** Growth of the delay per failed attempt. @default 2 */
  factor?: number;
  /** Fraction of the delay taken off at random (0: none, 1: anywhere in [0, delay]). @default 0.5 */
  jitter?: number;
  /** Attempts in a row before giving up (the transport then fails with a TransportError). @default Infinity */
  maxAttempts?: number;
}

export type Backoff = Required<ReconnectOptions>;

const KEYS = ['initialDelayMs', 'maxDelayMs', 'factor', 'jitter', 'maxAttempts'];

/** Checks and completes reconnect options; `false` means "never reconnect" (maxAttempts 0). */
export function resolveBackoff(o: ReconnectOptions | false | undefined): Backoff {
  if (o === false) o = { maxAttempts: 0 };
  if (o === undefined) o = {};
  if (o === null || typeof o !== 'object') {
    throw new ConfigError(`websocket option reconnect must be an object or false, got ${show(o)}`);
  }
  for (const key of Object.keys(o)) {
    if (!KEYS.includes(key)) {
      throw new ConfigError(
        `websocket option reconnect has an unknown key '${key}' (known: ${KEYS.join(', ')})`,
      );
    }
  }
  const num = (
    key: keyof ReconnectOptions,
    fallback: number,
    min: number,
    max = Number.POSITIVE_INFINITY,
  ) => {
    const v = o[key] ?? fallback;
    if (typeof v !== 'number' || Number.isNaN(v) || v < min || v > max) {
      throw new ConfigError(
        `websocket option reconnect.${key} must be a number in [${min}, ${max}], got ${show(v)}`,
      );
    }
    return v;
  };
  const initialDelayMs = num('initialDelayMs', 100, 0);
  return {
    initialDelayMs,
    maxDelayMs: num('maxDelayMs', Math.max(5_000, initialDelayMs), initialDelayMs),
    factor: num('factor', 2, 1),
    jitter: num('jitter', 0.5, 0, 1),
    maxAttempts: num('maxAttempts', Number.POSITIVE_INFINITY, 0),
  };
}

/** The delay before attempt `attempt` (1-based) of a run of failures. */
export function backoffDelay(attempt: number, b: Backoff, random: () => number = Math.random): number {
  const base = Math.min(b.maxDelayMs, b.initialDelayMs * b.factor ** Math.max(0, attempt - 1));
  return Math.round(base * (1 - b.jitter * random()));
}
