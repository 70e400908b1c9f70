/**
 * The write side of one user client: lines queued during a turn go out as one socket write at the
 * end of it, each followed by CRLF. Buffering is bounded: once the bytes the sink has not yet
 * handed to the kernel pass `maxBufferedBytes`, `flush()` reports the client as too slow and the
 * caller disconnects it, so a slow client never holds more than that bound, nor stalls the others.
 */

/** What a client writer writes to: a `net.Socket`, or a counting stub in benchmarks and tests. */
export interface ByteSink {
  /** Takes ownership of `chunk`. The return value (backpressure) is ignored: the bound is checked instead. */
  write(chunk: Uint8Array): boolean;
  /** Bytes accepted by `write` and not yet handed to the kernel. */
  readonly writableLength: number;
}

/** A line to forward: `buf[start..end)`, without terminator (a `MazeEvent` is one). */
export interface LineRange {
  readonly buf: Buffer;
  readonly start: number;
  readonly end: number;
}

const CRLF_LENGTH = 2;
const CR = 0x0d;
const LF = 0x0a;
/** Up to this length a byte loop beats `Buffer#copy` (a native call). */
const SHORT_LINE = 48;

export class ClientWriter {
  /** The user id this client identified as. */
  readonly userId: number;
  readonly #sink: ByteSink;
  readonly #maxBufferedBytes: number;
  /** Lines queued this turn and their total size with CRLFs. */
  readonly #lines: LineRange[] = [];
  #queuedBytes = 0;
  #linesWritten = 0;
  #bytesWritten = 0;

  constructor(userId: number, sink: ByteSink, maxBufferedBytes: number) {
    this.userId = userId;
    this.#sink = sink;
    this.#maxBufferedBytes = maxBufferedBytes;
  }

  /** Lines written to the sink so far. */
  get linesWritten(): number {
    return this.#linesWritten;
  }

  /** Bytes written to the sink so far. */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  /** Bytes queued this turn plus bytes the sink still holds. */
  get bufferedBytes(): number {
    return this.#queuedBytes + this.#sink.writableLength;
  }

  /**
   * Queues one line for the end of the turn. Its bytes must stay unchanged until `flush()`.
   * Returns true when this is the first line of the turn (the caller then remembers to flush
   * this client).
   */
  enqueue(line: LineRange): boolean {
    this.#queuedBytes += line.end - line.start + CRLF_LENGTH;
    return this.#lines.push(line) === 1;
  }

  /**
   * Writes the lines queued this turn as one chunk, each ending in CRLF. Returns false when the
   * client is over its bound afterwards (the caller should disconnect it), else true.
   */
  flush(): boolean {
    const lines = this.#lines;
    const n = lines.length;
    if (n !== 0) {
      const out = Buffer.allocUnsafe(this.#queuedBytes);
      let offset = 0;
      for (let i = 0; i < n; i++) {
        const line = lines[i]!;
        const buf = line.buf;
        const end = line.end;
        if (end - line.start <= SHORT_LINE) {
          for (let k = line.start; k < end; k++) out[offset++] = buf[k]!;
        } else {
          offset += buf.copy(out, offset, line.start, end);
        }
        out[offset++] = CR;
        out[offset++] = LF;
      }
      this.#bytesWritten += offset;
      this.#linesWritten += n;
      lines.length = 0;
      this.#queuedBytes = 0;
      this.#sink.write(out);
    }
    return this.#sink.writableLength <= this.#maxBufferedBytes;
  }

  /** Drops what is queued (the client is going away). */
  discard(): void {
    this.#lines.length = 0;
    this.#queuedBytes = 0;
  }
}
