import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ByteSink,
  ClientWriter,
  FollowGraph,
  type LineRange,
  MazeEvent,
  modelRoute,
  parseEvent,
  Router,
} from '../../cli/maze/index.js';
import { fcParams } from '../helpers/fc.js';

class MemorySink implements ByteSink {
  readonly chunks: string[] = [];
  writableLength = 0;
  write(chunk: Uint8Array): boolean {
    this.chunks.push(Buffer.from(chunk).toString('latin1'));
    return true;
  }
}

const event = (text: string): MazeEvent => {
  const parsed = parseEvent(Buffer.from(text), 0, text.length);
  if (!(parsed instanceof MazeEvent)) throw new Error(`bad test event ${text}: ${parsed.reason}`);
  return parsed;
};

/** A line in the middle of a larger buffer, as lines are in a read chunk. */
const range = (text: string): LineRange => {
  const buf = Buffer.from(`##${text}##`);
  return { buf, start: 2, end: 2 + text.length };
};

describe('ClientWriter', () => {
  it('writes the lines of a turn as one chunk, each ending in CRLF, and nothing for an empty turn', () => {
    const sink = new MemorySink();
    const writer = new ClientWriter(1, sink, 1024);
    const long = `3|P|${'1'.repeat(15)}|${'2'.repeat(15)}`; // copied natively, not byte by byte
    expect(writer.enqueue(range('1|B'))).toBe(true);
    expect(writer.enqueue(range('2|P|3|1'))).toBe(false);
    expect(writer.enqueue(range(long))).toBe(false);
    expect(writer.bufferedBytes).toBe(14 + long.length + 2);
    expect(writer.flush()).toBe(true);
    expect(writer.flush()).toBe(true);
    expect(sink.chunks).toEqual([`1|B\r\n2|P|3|1\r\n${long}\r\n`]);
    expect(writer).toMatchObject({ linesWritten: 3, bytesWritten: 16 + long.length });
    expect(writer.enqueue(range('4|B'))).toBe(true);
  });

  it('reports the client as over its bound once the sink holds more than maxBufferedBytes', () => {
    const sink = new MemorySink();
    const writer = new ClientWriter(1, sink, 10);
    writer.enqueue(range('1|B'));
    sink.writableLength = 10;
    expect(writer.flush()).toBe(true);
    sink.writableLength = 11;
    expect(writer.flush()).toBe(false);
  });
});

describe('FollowGraph', () => {
  it('counts edges once, and unfollowing a non-edge changes nothing', () => {
    const graph = new FollowGraph();
    expect(graph.follow(1, 2)).toBe(true);
    expect(graph.follow(1, 2)).toBe(false);
    expect(graph.follow(1, 3)).toBe(true);
    expect(graph.unfollow(4, 2)).toBe(false);
    expect(graph.unfollow(1, 9)).toBe(false);
    expect(graph.edges).toBe(2);
    expect([...graph.followedBy(1)!]).toEqual([2, 3]);
    expect(graph.unfollow(1, 2)).toBe(true);
    expect(graph.unfollow(1, 3)).toBe(true);
    expect(graph.edges).toBe(0);
    expect(graph.followedBy(1)).toBeUndefined();
  });
});

describe('Router', () => {
  const setup = (ids: number[], limit = 1 << 20) => {
    const slow: number[] = [];
    const router = new Router({ onSlowClient: (c) => slow.push(c.userId) });
    const sinks = ids.map((id) => {
      const sink = new MemorySink();
      const writer = new ClientWriter(id, sink, limit);
      router.add(writer);
      return { id, sink, writer };
    });
    return { router, sinks, slow };
  };

  it('delivers a status update to connected followers only, whichever side is smaller', () => {
    // 500 followers of user 1 but 3 connected users; then 2 followers of user 2 and 3 connected.
    const { router, sinks } = setup([2, 400, 1000]);
    const lines: string[] = [];
    for (let f = 1; f <= 500; f++) lines.push(`${lines.length + 1}|F|${f}|1`);
    lines.push(`${lines.length + 1}|F|400|2`, `${lines.length + 2}|F|7|2`);
    lines.push(`${lines.length + 1}|S|1`, `${lines.length + 2}|S|2`);
    for (const line of lines) router.route(event(line));
    router.flush();
    const expected = new Map<number, string>(sinks.map((s) => [s.id, '']));
    modelRoute(lines, [2, 400, 1000], (id, line) => expected.set(id, `${expected.get(id)}${line}\r\n`));
    for (const { id, sink } of sinks) expect(sink.chunks.join('')).toBe(expected.get(id));
    expect(sinks[1]!.sink.chunks.join('')).toContain('|S|1\r\n');
  });

  it('drops what was queued for a removed client, and removing twice is harmless', () => {
    const { router, sinks } = setup([1, 1]);
    router.route(event('1|B'));
    router.remove(sinks[0]!.writer);
    router.remove(sinks[0]!.writer);
    router.route(event('2|P|5|1'));
    router.flush();
    expect(sinks[0]!.sink.chunks).toEqual([]);
    expect(sinks[1]!.sink.chunks).toEqual(['1|B\r\n2|P|5|1\r\n']);
    expect(router.clients).toBe(1);
  });

  it('writes every client before reporting the slow ones', () => {
    const { router, sinks, slow } = setup([1, 2, 3], 0);
    sinks[0]!.sink.writableLength = 1;
    router.route(event('1|B'));
    router.flush();
    expect(slow).toEqual([1]);
    expect(sinks.map((s) => s.sink.chunks.length)).toEqual([1, 1, 1]);
  });
});

describe('Router against the model, with clients joining and leaving', () => {
  const user = fc.integer({ min: 1, max: 4 });
  const step = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.tuple(fc.constantFrom('F', 'U', 'P'), user, user).map(([t, a, b]) => `${t}|${a}|${b}`),
    },
    { weight: 3, arbitrary: user.map((a) => `S|${a}`) },
    { weight: 1, arbitrary: fc.constant('B') },
    { weight: 2, arbitrary: user.map((id) => ({ connect: id })) },
    { weight: 2, arbitrary: fc.nat().map((pick) => ({ disconnect: pick })) },
  );

  it('delivers what the model does to the clients connected at the time of each event', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 60 }), async (steps) => {
        const router = new Router({ onSlowClient: () => {} });
        const lines: string[] = [];
        const live: { id: number; sink: MemorySink; writer: ClientWriter; want: string; since: number }[] =
          [];
        const gone: typeof live = [];
        const settle = (client: (typeof live)[number]) => {
          // The model replays the whole history; the client gets what came after it connected.
          let want = '';
          modelRoute(lines, [client.id], (_, line) => {
            const seq = Number(line.split('|')[0]);
            if (seq > client.since) want += `${line}\r\n`;
          });
          client.want = want;
        };
        for (const s of steps) {
          if (typeof s === 'string') {
            const line = `${lines.length + 1}|${s}`;
            lines.push(line);
            router.route(event(line));
            router.flush();
          } else if ('connect' in s) {
            const sink = new MemorySink();
            const writer = new ClientWriter(s.connect, sink, 1 << 20);
            router.add(writer);
            live.push({ id: s.connect, sink, writer, want: '', since: lines.length });
          } else if (live.length > 0) {
            const [client] = live.splice(s.disconnect % live.length, 1);
            router.remove(client!.writer);
            settle(client!); // its window of the model ends here
            gone.push(client!);
          }
        }
        for (const client of live) settle(client);
        for (const client of [...live, ...gone]) expect(client.sink.chunks.join('')).toBe(client.want);
      }),
      fcParams({ numRuns: 300 }),
    );
  });
});
