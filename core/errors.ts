/**
 * Weft's errors. Every error Weft raises is a `WeftError` with a stable string `code`
 * (`WEFT_ERR_*`); callers branch on `code` or on the few subclasses below, never on message text.
 * The list of codes, one sentence each, is in docs/errors.md.
 */

export const ErrorCode = {
  INVALID_ARGUMENT: 'WEFT_ERR_INVALID_ARGUMENT',
  INVALID_OPERATION: 'WEFT_ERR_INVALID_OPERATION',
  CONFIG: 'WEFT_ERR_CONFIG',
  CLOSED: 'WEFT_ERR_CLOSED',
  ABORTED: 'WEFT_ERR_ABORTED',
  TRUNCATED: 'WEFT_ERR_TRUNCATED',
  LAGGED: 'WEFT_ERR_LAGGED',
  STREAM_RESET: 'WEFT_ERR_STREAM_RESET',
  TIMEOUT: 'WEFT_ERR_TIMEOUT',
  WINDOW_FULL: 'WEFT_ERR_WINDOW_FULL',
  GAP: 'WEFT_ERR_GAP',
  PATTERN: 'WEFT_ERR_PATTERN',
  FRAME: 'WEFT_ERR_FRAME',
  TRANSPORT: 'WEFT_ERR_TRANSPORT',
  UNSUPPORTED: 'WEFT_ERR_UNSUPPORTED',
  UNAUTHORIZED: 'WEFT_ERR_UNAUTHORIZED',
  FORBIDDEN: 'WEFT_ERR_FORBIDDEN',
  LIMIT: 'WEFT_ERR_LIMIT',
  UNCONFIRMED: 'WEFT_ERR_UNCONFIRMED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The base of every error Weft raises. */
export class WeftError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'WeftError';
  }
}

/** A bad argument, option or value: the message names the option and the value it got. */
export class InvalidArgumentError extends WeftError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.INVALID_ARGUMENT, message, options);
    this.name = 'InvalidArgumentError';
  }
}

/** A call that is not allowed in the object's present state (e.g. iterating a follower twice at once). */
export class InvalidOperationError extends WeftError {
  constructor(message: string) {
    super(ErrorCode.INVALID_OPERATION, message);
    this.name = 'InvalidOperationError';
  }
}

/** A bad configuration: unknown transport, malformed URL, unreadable config file. */
export class ConfigError extends WeftError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.CONFIG, message, options);
    this.name = 'ConfigError';
  }
}

/** The stream, sink or fabric was closed; nothing more can be published to it. */
export class ClosedError extends WeftError {
  constructor(message = 'closed') {
    super(ErrorCode.CLOSED, message);
    this.name = 'ClosedError';
  }
}

/** The caller's AbortSignal fired. `cause` is `signal.reason`. */
export class AbortError extends WeftError {
  constructor(reason?: unknown) {
    super(ErrorCode.ABORTED, 'the operation was aborted', { cause: reason });
    this.name = 'AbortError';
  }
}

/**
 * The requested start position is older than the oldest event the stream still retains.
 * `firstAvailable` is the oldest sequence that can be read now (`lastSeq + 1` when nothing is retained).
 */
export class TruncatedError extends WeftError {
  readonly requested: number;
  readonly firstAvailable: number;
  constructor(stream: string, requested: number, firstAvailable: number) {
    super(
      ErrorCode.TRUNCATED,
      `stream '${stream}': sequence ${requested} is no longer retained; the oldest available is ${firstAvailable}`,
    );
    this.name = 'TruncatedError';
    this.requested = requested;
    this.firstAvailable = firstAvailable;
  }
}

/**
 * A follower fell further behind than retention (or the transport's lag limit) allows: the events
 * it had not yet taken were trimmed. `nextSeq` is what it would have read next; `firstAvailable`
 * is where it can restart.
 */
export class LaggedError extends WeftError {
  readonly nextSeq: number;
  readonly firstAvailable: number;
  constructor(stream: string, nextSeq: number, firstAvailable: number) {
    super(
      ErrorCode.LAGGED,
      `stream '${stream}': follower fell behind; sequence ${nextSeq} was trimmed (oldest available ${firstAvailable})`,
    );
    this.name = 'LaggedError';
    this.nextSeq = nextSeq;
    this.firstAvailable = firstAvailable;
  }
}

/** The stream was dropped (TTL) or recreated: its identity (epoch) changed under the caller. */
export class StreamResetError extends WeftError {
  readonly expectedEpoch: string | undefined;
  readonly epoch: string | undefined;
  constructor(
    stream: string,
    expectedEpoch: string | undefined,
    epoch: string | undefined,
    why = 'was reset',
  ) {
    super(
      ErrorCode.STREAM_RESET,
      `stream '${stream}' ${why} (epoch ${expectedEpoch ?? '?'} -> ${epoch ?? 'none'})`,
    );
    this.name = 'StreamResetError';
    this.expectedEpoch = expectedEpoch;
    this.epoch = epoch;
  }
}

/** A timer ran out. */
export class TimeoutError extends WeftError {
  constructor(message: string) {
    super(ErrorCode.TIMEOUT, message);
    this.name = 'TimeoutError';
  }
}

/** A malformed frame or record arrived on the wire. */
export class FrameError extends WeftError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.FRAME, message, options);
    this.name = 'FrameError';
  }
}

/** The transport underneath failed (connection lost, server error). `cause` holds the original. */
export class TransportError extends WeftError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.TRANSPORT, message, options);
    this.name = 'TransportError';
  }
}

/** Throws `AbortError` at once when the signal has already fired (style point 8). */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortError(signal.reason);
}

/** A readable rendering of a bad value for error messages. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  if (value === null || typeof value !== 'object') return String(value);
  try {
    const s = JSON.stringify(value);
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return Object.prototype.toString.call(value);
  }
}
