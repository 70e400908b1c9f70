import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BadLine,
  EventKind,
  LineSplitter,
  MazeEvent,
  parseEvent,
  parseUserId,
  showLine,
} from '../../cli/maze/index.js';
import { fcParams } from '../helpers/fc.js';

const parse = (text: string) => {
  const buf = Buffer.from(text, 'latin1');
  return parseEvent(buf, 0, buf.length);
};

describe('parseEvent', () => {
  it.each([
    ['666|F|60|50', 666, EventKind.Follow, 60, 50],
    ['1|U|12|9', 1, EventKind.Unfollow, 12, 9],
    ['542532|B', 542532, EventKind.Broadcast, -1, -1],
    ['43|P|32|56', 43, EventKind.Private, 32, 56],
    ['634|S|32', 634, EventKind.Status, 32, -1],
    ['7|F|0|007', 7, EventKind.Follow, 0, 7],
    ['999999999999999|B', 999_999_999_999_999, EventKind.Broadcast, -1, -1],
  ])('parses %s', (text, seq, kind, from, to) => {
    const event = parse(text);
    expect(event).toBeInstanceOf(MazeEvent);
    expect(event).toMatchObject({ seq, kind, from, to });
    expect((event as MazeEvent).line.toString('latin1')).toBe(text);
  });

  it('keeps a view of the original bytes, not a copy', () => {
    const buf = Buffer.from('xx12|B\r\n');
    const event = parseEvent(buf, 2, 6) as MazeEvent;
    buf[2] = 0x39;
    expect(event.line.toString()).toBe('92|B');
  });

  it.each([
    ['', 0, 'not an integer'],
    ['x|B', 0, 'not an integer'],
    [' 1|B', 0, 'not an integer'],
    ['-1|B', 0, 'not an integer'],
    ['1.5|B', 0, 'not an integer'],
    ['0|B', 0, '>= 1'],
    ['1234567890123456|B', 0, 'not an integer'],
    ['1', 1, 'too few fields'],
    ['1|', 1, 'unknown event type'],
    ['2|X|1|2', 2, 'unknown event type'],
    ['2|FF|1|2', 2, 'unknown event type'],
    ['2|f|1|2', 2, 'unknown event type'],
    ['3|F|1', 3, 'too few fields for type F'],
    ['3|F|1|', 3, 'not an integer'],
    ['3|U', 3, 'too few fields for type U'],
    ['3|P|1', 3, 'too few fields for type P'],
    ['3|S', 3, 'too few fields for type S'],
    ['4|F|1|2|3', 4, 'too many fields for type F'],
    ['4|B|1', 4, 'too many fields for type B'],
    ['4|S|1|2', 4, 'too many fields for type S'],
    ['5|P|a|2', 5, 'not an integer'],
    ['5|F||2', 5, 'not an integer'],
    ['5|B ', 5, 'unknown event type'],
    ['5|S|1 ', 5, 'not an integer'],
  ])('rejects %j (sequence %d readable: %s)', (text, seq, reason) => {
    const bad = parse(text);
    expect(bad).toBeInstanceOf(BadLine);
    expect((bad as BadLine).seq).toBe(seq);
    expect((bad as BadLine).reason).toContain(reason);
  });
});

describe('parseUserId', () => {
  it('takes digits only', () => {
    const id = (text: string) => parseUserId(Buffer.from(text), 0, text.length);
    expect(id('42')).toBe(42);
    expect(id('0')).toBe(0);
    expect(id('')).toBe(-1);
    expect(id('4 2')).toBe(-1);
    expect(id('hello')).toBe(-1);
    expect(id('1|2')).toBe(-1);
    expect(id('12345678901234567')).toBe(-1);
  });
});

describe('showLine', () => {
  it('quotes and shortens what it shows', () => {
    const long = Buffer.from('x'.repeat(200));
    expect(showLine(long, 0, long.length)).toBe(JSON.stringify(`${'x'.repeat(77)}...`));
    expect(showLine(Buffer.from('a\tb'), 0, 3)).toBe('"a\\tb"');
  });
});

describe('LineSplitter', () => {
  const split = (chunks: Buffer[], maxLineBytes = 64) => {
    const lines: string[] = [];
    const overlong: number[] = [];
    const splitter = new LineSplitter(
      maxLineBytes,
      (buf, start, end) => lines.push(buf.toString('latin1', start, end)),
      (bytes) => overlong.push(bytes),
    );
    for (const chunk of chunks) splitter.push(chunk);
    return { lines, overlong, unterminated: splitter.finish() };
  };

  it('yields the same lines however the bytes are cut into chunks, with CRLF or LF endings', async () => {
    const line = fc.stringMatching(/^[0-9|A-Z]{0,20}$/);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(line, fc.boolean()), { maxLength: 30 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        async (lines, cuts) => {
          const bytes = Buffer.from(lines.map(([text, crlf]) => text + (crlf ? '\r\n' : '\n')).join(''));
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const chunks: Buffer[] = [];
          let from = 0;
          for (const point of [...points, bytes.length]) {
            chunks.push(bytes.subarray(from, point));
            from = point;
          }
          const out = split(chunks);
          expect(out.lines).toEqual(lines.map(([text]) => text));
          expect(out.overlong).toEqual([]);
          expect(out.unterminated).toBe(0);
        },
      ),
      fcParams({ numRuns: 200 }),
    );
  });

  it('drops an over-long line, in one chunk or across many, and goes on with the next', () => {
    const long = `1|B${'0'.repeat(100)}`;
    const one = split([Buffer.from(`${long}\r\n2|B\r\n`)]);
    expect(one.lines).toEqual(['2|B']);
    expect(one.overlong).toHaveLength(1);
    const bytes = Buffer.from(`1|B\n${long}\r\n3|B\n`);
    const many = split(Array.from(bytes, (_, i) => bytes.subarray(i, i + 1)));
    expect(many.lines).toEqual(['1|B', '3|B']);
    expect(many.overlong).toHaveLength(1);
  });

  it('reports an unterminated last line instead of yielding it', () => {
    const out = split([Buffer.from('1|B\r\n2|S|1')]);
    expect(out.lines).toEqual(['1|B']);
    expect(out.unterminated).toBe(5);
  });

  it('copies a partial line out of the read buffer (so it does not pin the buffer)', () => {
    const chunk = Buffer.from('1|B\r\n2|');
    const { lines } = ((): { lines: string[] } => {
      const lines: string[] = [];
      const splitter = new LineSplitter(
        64,
        (buf, start, end) => lines.push(buf.toString('latin1', start, end)),
        () => {},
      );
      splitter.push(chunk);
      chunk.fill(0x37); // the reader reuses its buffer
      splitter.push(Buffer.from('B\r\n'));
      return { lines };
    })();
    expect(lines).toEqual(['1|B', '2|B']);
  });
});
