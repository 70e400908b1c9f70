/**
 * Retention on an in-process log, shared by the transports whose log lives in this process
 * (memory, sab): `maxLength` and `maxAgeMs` move the retention cursor; `maxLength: 0` trims
 * without cutting followers (eventstream's model, see EventLog L4).
 */
import { TruncatedError } from './errors.js';
import type { EventLog } from './event-log.js';
import type { RetentionOptions, WeftEvent } from './types.js';

/** Whether appends must move the retention cursor at all (kept out of the hot path when not). */
export function hasRetention(r: RetentionOptions): boolean {
  return r.maxLength !== undefined || r.maxAgeMs !== undefined;
}

/** Applies `maxLength` and `maxAgeMs` after an append at time `now`. */
export function retain(log: EventLog<WeftEvent>, r: RetentionOptions, now: number): void {
  if (r.maxLength !== undefined && log.nextSeq - log.firstSeq > r.maxLength) {
    log.trimTo(log.nextSeq - r.maxLength, r.maxLength > 0);
  }
  if (r.maxAgeMs !== undefined) log.trimOlderThan(now - r.maxAgeMs);
}

/** Applies `maxAgeMs` before a read (an idle stream's old events must not be served). */
export function expire(log: EventLog<WeftEvent>, r: RetentionOptions): EventLog<WeftEvent> {
  if (r.maxAgeMs !== undefined) log.trimOlderThan(Date.now() - r.maxAgeMs);
  return log;
}

/** Up to `limit` retained events from `from` on. @throws TruncatedError when `from` was trimmed. */
export function readRetained(
  stream: string,
  log: EventLog<WeftEvent>,
  from: number,
  limit: number,
): WeftEvent[] {
  if (from < log.firstSeq) throw new TruncatedError(stream, from, log.firstSeq);
  return log.slice(from, limit);
}
