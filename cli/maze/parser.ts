/**
 * The follower-maze wire format, parsed straight from received Buffers: lines `seq|type|from|to`
 * ending in CRLF or LF. No string is created per line: the sequence and user ids are read digit by
 * digit and the line's original bytes are kept as a slice for forwarding. A bad line yields a
 * `BadLine` with a reason (and its sequence when that part was readable), never an exception.
 */

const LF = 0x0a;
const CR = 0x0d;
const PIPE = 0x7c;
const ZERO = 0x30;
const NINE = 0x39;
/** 15 decimal digits always fit a safe integer (2^53 has 16). */
const MAX_DIGITS = 15;

/** Event types, by the byte that names them on the wire. */
export const EventKind = {
  Follow: 0x46, // F
  Unfollow: 0x55, // U
  Broadcast: 0x42, // B
  Private: 0x50, // P
  Status: 0x53, // S
} as const;
export type EventKind = (typeof EventKind)[keyof typeof EventKind];

/**
 * One parsed event. Its line (without terminator) is `buf[start..end)`: at first a range of the
 * chunk it was read from (no copy); `detach()` gives it its own bytes, which the pipeline does for
 * an event still held when its chunk is done (so a held event pins its few bytes, not a 64 KiB
 * read buffer).
 */
export class MazeEvent {
  readonly seq: number;
  readonly kind: EventKind;
  /** The sender: the follower for F/U, the author for P/S; -1 for B. */
  readonly from: number;
  /** The recipient for F/U/P; -1 for B and S. */
  readonly to: number;
  buf: Buffer;
  start: number;
  end: number;
  constructor(
    seq: number,
    kind: EventKind,
    from: number,
    to: number,
    buf: Buffer,
    start: number,
    end: number,
  ) {
    this.seq = seq;
    this.kind = kind;
    this.from = from;
    this.to = to;
    this.buf = buf;
    this.start = start;
    this.end = end;
  }

  /** The line as a Buffer view (allocates: for tests and logs, not the hot path). */
  get line(): Buffer {
    return this.buf.subarray(this.start, this.end);
  }

  /** Copies the line into a buffer of its own. */
  detach(): void {
    const length = this.end - this.start;
    const own = Buffer.allocUnsafe(length);
    this.buf.copy(own, 0, this.start, this.end);
    this.buf = own;
    this.start = 0;
    this.end = length;
  }
}

/** A line that is not a valid event. `seq` is its sequence when that field parsed (else 0). */
export class BadLine {
  readonly seq: number;
  readonly reason: string;
  constructor(seq: number, reason: string) {
    this.seq = seq;
    this.reason = reason;
  }
}

// Scratch result of readInteger (single-threaded: no re-entrance between the write and the read).
let parsedValue = 0;

/**
 * Reads a non-empty run of at most MAX_DIGITS decimal digits at `i`, stopping at `|` or `end`.
 * Returns the index after the digits (the `|` or `end`) with the value in `parsedValue`, or -1.
 */
function readInteger(buf: Buffer, i: number, end: number): number {
  const first = i;
  let value = 0;
  while (i < end) {
    const c = buf[i]!;
    if (c === PIPE) break;
    if (c < ZERO || c > NINE) return -1;
    value = value * 10 + (c - ZERO);
    i++;
  }
  if (i === first || i - first > MAX_DIGITS) return -1;
  parsedValue = value;
  return i;
}

function kindName(kind: number): string {
  return String.fromCharCode(kind);
}

/**
 * Parses one event line, `buf[start..end)` without its terminator. Fields: a sequence (an integer
 * >= 1), a one-letter type (F U B P S) and the user ids that type takes (decimal integers >= 0):
 * `seq|F|from|to`, `seq|U|from|to`, `seq|B`, `seq|P|from|to`, `seq|S|from`. Anything else,
 * including a missing or an extra field, is a `BadLine`.
 */
export function parseEvent(buf: Buffer, start: number, end: number): MazeEvent | BadLine {
  let i = readInteger(buf, start, end);
  if (i < 0) return new BadLine(0, 'the sequence is not an integer');
  const seq = parsedValue;
  if (seq < 1) return new BadLine(0, 'the sequence must be >= 1');
  if (i === end) return new BadLine(seq, 'too few fields: no type');
  i++;
  if (i === end || (i + 1 < end && buf[i + 1] !== PIPE)) return new BadLine(seq, 'unknown event type');
  const kind = buf[i]!;
  i++;
  let ids: number;
  switch (kind) {
    case EventKind.Broadcast:
      ids = 0;
      break;
    case EventKind.Status:
      ids = 1;
      break;
    case EventKind.Follow:
    case EventKind.Unfollow:
    case EventKind.Private:
      ids = 2;
      break;
    default:
      return new BadLine(seq, 'unknown event type');
  }
  let from = -1;
  let to = -1;
  for (let k = 0; k < ids; k++) {
    if (i === end) return new BadLine(seq, `too few fields for type ${kindName(kind)}`);
    i = readInteger(buf, i + 1, end);
    if (i < 0) return new BadLine(seq, 'a user id is not an integer');
    if (k === 0) from = parsedValue;
    else to = parsedValue;
  }
  if (i !== end) return new BadLine(seq, `too many fields for type ${kindName(kind)}`);
  return new MazeEvent(seq, kind as EventKind, from, to, buf, start, end);
}

/**
 * Parses a client's identification line: a user id (decimal digits, at most 15) and nothing else.
 * Returns the id, or -1.
 */
export function parseUserId(buf: Buffer, start: number, end: number): number {
  const i = readInteger(buf, start, end);
  return i === end ? parsedValue : -1;
}

/** A short printable rendering of a bad line for a log message (at most 80 characters). */
export function showLine(buf: Buffer, start: number, end: number): string {
  const cut = end - start > 80;
  const text = buf.toString('latin1', start, cut ? start + 77 : end);
  return JSON.stringify(cut ? `${text}...` : text);
}

/**
 * Splits a byte stream into lines ending in LF (an optional CR before it is not part of the line)
 * and calls `onLine(buf, start, end)` for each, in order. Lines within one chunk are reported as
 * ranges of that chunk (no copy); only a line spanning chunks is copied. A line longer than
 * `maxLineBytes` is reported to `onOverlong(bytesSoFar)` as soon as it is known to be too long
 * (once), and skipped up to its LF, so memory stays bounded.
 *
 * The ranges passed to `onLine` are valid only during the call unless the callee keeps the Buffer.
 */
export class LineSplitter {
  readonly #maxLineBytes: number;
  readonly #onLine: (buf: Buffer, start: number, end: number) => void;
  readonly #onOverlong: (bytes: number) => void;
  /** The start of a line that has not ended yet (at most maxLineBytes + 1 bytes). */
  #carry: Buffer | undefined;
  /** Inside an over-long line (already reported): skip to the next LF. */
  #skipping = false;

  constructor(
    maxLineBytes: number,
    onLine: (buf: Buffer, start: number, end: number) => void,
    onOverlong: (bytes: number) => void,
  ) {
    this.#maxLineBytes = maxLineBytes;
    this.#onLine = onLine;
    this.#onOverlong = onOverlong;
  }

  /** Bytes of an unterminated line held so far (0 at a line boundary or inside an over-long line). */
  get pendingBytes(): number {
    return this.#carry?.length ?? 0;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    if (this.#carry !== undefined || this.#skipping) {
      const lf = chunk.indexOf(LF);
      if (lf === -1) {
        this.#hold(chunk);
        return;
      }
      if (this.#skipping) {
        this.#skipping = false;
      } else {
        const line = Buffer.concat([this.#carry!, chunk.subarray(0, lf)]);
        this.#carry = undefined;
        this.#emit(line, 0, line.length);
      }
      pos = lf + 1;
    }
    const length = chunk.length;
    while (pos < length) {
      const lf = chunk.indexOf(LF, pos);
      if (lf === -1) break;
      this.#emit(chunk, pos, lf);
      pos = lf + 1;
    }
    if (pos < length) this.#hold(chunk.subarray(pos));
  }

  /**
   * Ends the input. Returns the length of an unterminated final line, which is dropped (it may be
   * a line cut short by a dropped connection), or 0 (also after an over-long line, already reported).
   */
  finish(): number {
    const pending = this.pendingBytes;
    this.#carry = undefined;
    this.#skipping = false;
    return pending;
  }

  #emit(buf: Buffer, start: number, lf: number): void {
    const end = lf > start && buf[lf - 1] === CR ? lf - 1 : lf;
    if (end - start > this.#maxLineBytes) this.#onOverlong(end - start);
    else this.#onLine(buf, start, end);
  }

  /** Keeps the start of an unterminated line; reports it and skips the rest once it is too long. */
  #hold(part: Buffer): void {
    if (this.#skipping) return;
    // A copy: the start of a line must not pin the whole read buffer it came in.
    const held = this.#carry === undefined ? Buffer.from(part) : Buffer.concat([this.#carry, part]);
    // + 1: a CR that may still be followed by LF is not part of the line.
    if (held.length > this.#maxLineBytes + 1) {
      this.#carry = undefined;
      this.#skipping = true;
      this.#onOverlong(held.length);
    } else {
      this.#carry = held;
    }
  }
}
