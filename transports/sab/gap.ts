/**
 * GapNotice: what a follower finds in place of events that were claimed but will never be
 * written (their publisher died between claiming the sequences and committing the record, or the
 * record could not be decoded). The stream stays dense: each lost sequence is an event whose
 * `data` is one shared, frozen GapNotice, so followers see 1, 2, 3 ... and are told, never silently
 * skipped (design.md guarantee 3).
 */
import { ErrorCode } from '../../core/errors.js';

/** Why sequences were lost. */
export type GapReason =
  /** The publishing worker exited (threw out of its thread or was terminated) after claiming them. */
  | 'publisher-exit'
  /** The record holding them could not be decoded. */
  | 'undecodable'
  /** The transport closed before their publisher committed them (it stopped answering). */
  | 'closed'
  /** (Worker followers) an event too large for the broadcast ring. */
  | 'too-large';

export class GapNotice {
  readonly code = ErrorCode.GAP;
  readonly stream: string;
  /** First lost sequence (inclusive). */
  readonly from: number;
  /** Last lost sequence (inclusive). */
  readonly to: number;
  readonly reason: GapReason;
  /** The publisher shard, when known (-1 otherwise). */
  readonly shard: number;
  readonly cause: Error | undefined;

  constructor(stream: string, from: number, to: number, reason: GapReason, shard = -1, cause?: Error) {
    this.stream = stream;
    this.from = from;
    this.to = to;
    this.reason = reason;
    this.shard = shard;
    this.cause = cause;
    Object.freeze(this);
  }

  get message(): string {
    const what =
      this.from === this.to ? `sequence ${this.from} was` : `sequences ${this.from}..${this.to} were`;
    return `stream '${this.stream}': ${what} lost (${this.reason}${this.shard >= 0 ? `, shard ${this.shard}` : ''})`;
  }
}

/** True when an event's `data` marks a lost sequence. */
export function isGapNotice(data: unknown): data is GapNotice {
  return data instanceof GapNotice;
}
