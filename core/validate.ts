/**
 * Argument validation at the boundary (style point 10): every public call is checked once here,
 * with a message that names the option and the bad value; past this point the code trusts its inputs.
 */
import { AbortError, InvalidArgumentError, show } from './errors.js';
import { validateTopic } from './topic-matcher.js';
import type { RetentionOptions, StartPosition } from './types.js';

/** Stream and sink names: 1-200 characters from a safe set (they become Redis keys and wire fields). */
const NAME = /^[A-Za-z0-9_\-.:@/]{1,200}$/;

export function checkName(what: string, name: unknown): string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new InvalidArgumentError(
      `${what} must be 1-200 characters of A-Z a-z 0-9 _ - . : @ /, got ${show(name)}`,
    );
  }
  return name;
}

/** Rejects keys that are not in `allowed` (a typo must not be silently ignored). */
export function checkKeys(what: string, options: unknown, allowed: readonly string[]): void {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidArgumentError(`${what} must be an object, got ${show(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new InvalidArgumentError(
        `${what} has an unknown option '${key}' (known: ${allowed.join(', ') || 'none'})`,
      );
    }
  }
}

export function checkSeq(what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new InvalidArgumentError(`${what} must be a sequence number (an integer >= 1), got ${show(value)}`);
  }
  return value;
}

export function checkCount(what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError(`${what} must be an integer >= 0, got ${show(value)}`);
  }
  return value;
}

export function checkPositive(what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidArgumentError(`${what} must be a number > 0, got ${show(value)}`);
  }
  return value;
}

export function checkStart(what: string, value: unknown): StartPosition {
  if (value === 'start' || value === 'end') return value;
  if (typeof value === 'number') return checkSeq(what, value);
  throw new InvalidArgumentError(`${what} must be 'start', 'end' or a sequence number, got ${show(value)}`);
}

export function checkSignal(what: string, value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || typeof (value as AbortSignal).aborted !== 'boolean') {
    throw new InvalidArgumentError(`${what} must be an AbortSignal, got ${show(value)}`);
  }
  return value as AbortSignal;
}

export function checkRetention(what: string, options: unknown): RetentionOptions {
  checkKeys(what, options, ['maxLength', 'maxAgeMs', 'ttlMs']);
  const o = (options ?? {}) as RetentionOptions;
  const out: { maxLength?: number; maxAgeMs?: number; ttlMs?: number } = {};
  if (o.maxLength !== undefined) out.maxLength = checkCount(`${what}.maxLength`, o.maxLength);
  if (o.maxAgeMs !== undefined) out.maxAgeMs = checkPositive(`${what}.maxAgeMs`, o.maxAgeMs);
  if (o.ttlMs !== undefined) out.ttlMs = checkPositive(`${what}.ttlMs`, o.ttlMs);
  return out;
}

export function sameRetention(a: RetentionOptions, b: RetentionOptions): boolean {
  return a.maxLength === b.maxLength && a.maxAgeMs === b.maxAgeMs && a.ttlMs === b.ttlMs;
}

/** A topic to publish under. @throws InvalidArgumentError (not a string) or PatternError (malformed). */
export function checkTopic(what: string, topic: unknown): string {
  if (typeof topic !== 'string')
    throw new InvalidArgumentError(`${what} must be a string, got ${show(topic)}`);
  validateTopic(topic);
  return topic;
}

const PUBLISH_KEYS = ['topic', 'signal'];

/**
 * The options of one `publish()`, shared by every publishing handle (core streams, worker streams).
 * Returns the topic. @throws InvalidArgumentError, PatternError, AbortError (signal already aborted).
 */
export function checkPublishOptions(
  options: { topic?: unknown; signal?: unknown } | undefined,
): string | undefined {
  if (options === undefined) return undefined;
  checkKeys('publish options', options, PUBLISH_KEYS);
  const topic = options.topic === undefined ? undefined : checkTopic('publish options.topic', options.topic);
  const signal = checkSignal('publish options.signal', options.signal);
  if (signal?.aborted) throw new AbortError(signal.reason);
  return topic;
}
