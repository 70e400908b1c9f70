import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectClient, type MazeTestClient, sendEvents, writeAll } from '../../cli/maze/index.js';
import { type MazeOptions, type MazeServer, mazeMain, startMaze } from '../../cli/maze.js';
import { ErrorCode } from '../../core/errors.js';
import { eventually } from '../helpers/async.js';

const crlf = (lines: string[]) => lines.map((l) => `${l}\r\n`).join('');

/** Every server, client and source a test opens, closed after it. */
const open: { servers: MazeServer[]; sockets: Socket[]; clients: MazeTestClient[] } = {
  servers: [],
  sockets: [],
  clients: [],
};
afterEach(async () => {
  for (const s of open.sockets.splice(0)) s.destroy();
  for (const c of open.clients.splice(0)) c.close();
  await Promise.all(open.servers.splice(0).map((s) => s.close()));
});

async function start(options: MazeOptions = {}): Promise<{ server: MazeServer; log: string[] }> {
  const log: string[] = [];
  const server = await startMaze({ eventPort: 0, clientPort: 0, log: (m) => log.push(m), ...options });
  open.servers.push(server);
  return { server, log };
}

/** Connects clients with these ids and waits until the server has registered all of them. */
async function clients(server: MazeServer, ids: number[]): Promise<MazeTestClient[]> {
  const before = server.stats.clientsAccepted;
  const out = await Promise.all(ids.map((id) => connectClient(server.clientPort, id)));
  open.clients.push(...out);
  await eventually(() => server.stats.clientsAccepted === before + ids.length, 5_000, 'clients to identify');
  return out;
}

async function source(server: MazeServer, lines: string[], keepOpen = true): Promise<Socket> {
  const socket = await sendEvents(server.eventPort, [crlf(lines)], { keepOpen });
  open.sockets.push(socket);
  return socket;
}

const hasLine = (c: MazeTestClient, line: string) => c.until(() => c.lines.includes(line), 5_000, line);

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((item, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]),
  );
}

describe('the worked example', () => {
  const first = ['1|F|2|1', '2|F|3|1', '3|U|3|1', '4|S|1'];

  it.each(permutations(first).map((order) => [order.join(' ')]))(
    'stream mode, events 1-4 sent as %s',
    async (order) => {
      const { server } = await start();
      const [c1, c2, c3] = await clients(server, [1, 2, 3]);
      const src = await source(server, order.split(' '));
      await eventually(() => server.stats.routed === 4, 5_000, 'events 1-4');
      await c1!.until(() => c1!.lines.length === 2);
      await c2!.until(() => c2!.lines.length === 1);
      expect(c1!.lines).toEqual(['1|F|2|1', '2|F|3|1']);
      expect(c2!.lines).toEqual(['4|S|1']);
      await writeAll(src, [crlf(['6|P|1|2', '5|B', '7|B'])]);
      await Promise.all([c1, c2, c3].map((c) => hasLine(c!, '7|B')));
      expect(c1!.lines).toEqual(['1|F|2|1', '2|F|3|1', '5|B', '7|B']);
      expect(c2!.lines).toEqual(['4|S|1', '5|B', '6|P|1|2', '7|B']);
      expect(c3!.lines).toEqual(['5|B', '7|B']);
    },
  );

  it('batch mode (window 4) gives the same result once each batch is complete or the source ends', async () => {
    const { server } = await start({ resequencer: 'batch', window: 4 });
    const [c1, c2, c3] = await clients(server, [1, 2, 3]);
    const src = await source(server, ['4|S|1', '2|F|3|1', '3|U|3|1', '1|F|2|1', '6|P|1|2', '5|B', '7|B']);
    await c2!.until(() => c2!.lines.length === 1);
    expect(c2!.lines).toEqual(['4|S|1']); // the first batch; 5..7 wait for a fourth event
    src.end();
    await Promise.all([c1, c2, c3].map((c) => hasLine(c!, '7|B')));
    expect(c1!.lines).toEqual(['1|F|2|1', '2|F|3|1', '5|B', '7|B']);
    expect(c2!.lines).toEqual(['4|S|1', '5|B', '6|P|1|2', '7|B']);
    expect(c3!.lines).toEqual(['5|B', '7|B']);
  });
});

describe('routing', () => {
  it('serves every client of a user id', async () => {
    const { server } = await start();
    const [a, b, other] = await clients(server, [1, 1, 2]);
    await source(server, ['1|P|2|1', '2|F|1|2', '3|S|2', '4|B']);
    await Promise.all([a, b, other].map((c) => hasLine(c!, '4|B')));
    expect(a!.lines).toEqual(['1|P|2|1', '3|S|2', '4|B']);
    expect(b!.lines).toEqual(a!.lines);
    expect(other!.lines).toEqual(['2|F|1|2', '4|B']);
  });

  it('changes the graph for users who are not connected, and a user who connects later follows it', async () => {
    const { server } = await start();
    const [c1] = await clients(server, [1]);
    const src = await source(server, ['1|F|2|1', '2|F|3|1', '3|U|3|1', '4|P|1|2']);
    await eventually(() => server.stats.routed === 4);
    await hasLine(c1!, '2|F|3|1');
    const [c2, c3] = await clients(server, [2, 3]);
    await writeAll(src, [crlf(['5|S|1', '6|B'])]);
    await Promise.all([c1, c2, c3].map((c) => hasLine(c!, '6|B')));
    expect(c2!.lines).toEqual(['5|S|1', '6|B']); // not 4|P|1|2: it was sent before 2 connected
    expect(c3!.lines).toEqual(['6|B']);
  });

  it('forwards each event byte for byte, ending in CRLF also when the source used LF', async () => {
    const { server } = await start();
    const [c7] = await clients(server, [7]);
    await sendEvents(server.eventPort, ['2|P|1|007\n1|F|0007|7\r', '\n3|B\n'], { keepOpen: true });
    await hasLine(c7!, '3|B');
    expect(c7!.lines).toEqual(['1|F|0007|7', '2|P|1|007', '3|B']);
    expect(c7!.lines.join('')).not.toMatch(/[\r\n]/);
  });
});

describe('bad input', () => {
  it('drops malformed lines with a log line each and goes on; a readable sequence still counts', async () => {
    const { server, log } = await start();
    const [c1, c2] = await clients(server, [1, 2]);
    await source(server, ['6|B', '3|F|1', 'x|B', '1|F|2|1', '4|X|1|2', '2|P|1|2', '5|S|1', '']);
    await Promise.all([c1, c2].map((c) => hasLine(c!, '6|B')));
    expect(c1!.lines).toEqual(['1|F|2|1', '6|B']);
    expect(c2!.lines).toEqual(['2|P|1|2', '5|S|1', '6|B']);
    expect(server.stats).toMatchObject({ malformed: 4, routed: 4, held: 0 });
    const dropped = log.filter((m) => m.startsWith('dropped line'));
    expect(dropped).toEqual([
      'dropped line "3|F|1": too few fields for type F',
      'dropped line "x|B": the sequence is not an integer',
      'dropped line "4|X|1|2": unknown event type',
      'dropped line "": the sequence is not an integer',
    ]);
  });

  it('drops over-long lines and an unterminated last line, and logs duplicates', async () => {
    const { server, log } = await start({ maxLineBytes: 16 });
    const [c1] = await clients(server, [1]);
    const src = await source(server, ['1|B', `2|B${' '.repeat(40)}`, '2|B', '1|B', '3|B']);
    await hasLine(c1!, '3|B');
    await writeAll(src, ['4|B']);
    src.end();
    await eventually(() => log.some((m) => m.includes('ended')), 5_000, 'the end of the run');
    expect(c1!.lines).toEqual(['1|B', '2|B', '3|B']);
    expect(log).toContain('dropped a line of 43+ bytes: longer than maxLineBytes (16)');
    expect(log).toContain('dropped event 1: already released or given up in this run');
    expect(log).toContain('dropped an unterminated last line of 3 bytes');
    expect(server.stats).toMatchObject({ malformed: 2, stale: 1 });
  });

  it('stops logging after 100 problems in a run, counts the rest, and summarises', async () => {
    const { server, log } = await start();
    const [c1] = await clients(server, [1]);
    const src = await source(server, [...Array.from({ length: 150 }, () => 'junk'), '1|B']);
    await hasLine(c1!, '1|B');
    src.end();
    await eventually(() => log.some((m) => m.includes('ended')));
    expect(log.filter((m) => m.startsWith('dropped line'))).toHaveLength(100);
    expect(log).toContain('more than 100 problems in this run: the rest are counted, not logged');
    expect(log.at(-1)).toBe(
      'event source run 1 ended (the event source disconnected): 151 lines, 150 dropped (50 not logged), 0 sequences skipped',
    );
    expect(server.stats.malformed).toBe(150);
  });

  it('disconnects a client that sends garbage instead of an id, or nothing; the others go on', async () => {
    const { server, log } = await start({ idTimeoutMs: 100 });
    const garbage = await connectClient(server.clientPort, 'hello\r\n');
    const long = await connectClient(server.clientPort, '1'.repeat(40));
    const silent = await connectClient(server.clientPort, '');
    open.clients.push(garbage, long, silent);
    const [good] = await clients(server, [1]);
    await Promise.all([garbage.closed, long.closed, silent.closed]);
    await source(server, ['1|B']);
    await hasLine(good!, '1|B');
    expect(server.stats).toMatchObject({ clientsRejected: 3, clientsAccepted: 1, clients: 1 });
    expect(log.some((m) => /client .* sent "hello" instead of a user id: disconnected/.test(m))).toBe(true);
    expect(log.some((m) => /sent \d+ bytes without a line end instead of a user id/.test(m))).toBe(true);
    expect(log.some((m) => /sent no user id within 100 ms/.test(m))).toBe(true);
    expect(garbage.lines).toEqual([]);
  });

  it('drops a client that disconnects mid-stream; the others receive everything', async () => {
    const { server, log } = await start();
    const [leaver, stayer] = await clients(server, [1, 2]);
    const src = await source(server, ['1|B']);
    await hasLine(leaver!, '1|B');
    leaver!.close();
    await eventually(() => server.stats.clients === 1, 5_000, 'the server to see the disconnect');
    await writeAll(src, [crlf(['2|P|2|1', '3|F|1|2', '4|B'])]);
    await hasLine(stayer!, '4|B');
    expect(stayer!.lines).toEqual(['1|B', '3|F|1|2', '4|B']);
    expect(log.some((m) => /client .* \(user 1\) disconnected/.test(m))).toBe(true);
  });

  it('disconnects a client that does not read once its buffer is over the limit; the others are not held up', async () => {
    const limit = 64 * 1024;
    const { server, log } = await start({ maxClientBufferBytes: limit });
    const [slow, fast] = await clients(server, [1, 2]);
    slow!.socket.pause();
    const src = await source(server, []);
    // Broadcasts in chunks of 20,000 lines, paced by the fast client, until the slow one is dropped
    // (the kernel buffers a few MiB first).
    let seq = 0;
    while (server.stats.slowClientsDropped === 0 && seq < 3_000_000) {
      let chunk = '';
      for (let i = 0; i < 20_000; i++) chunk += `${++seq}|B\r\n`;
      await writeAll(src, [chunk]);
      const last = `${seq}|B`;
      await fast!.until(() => fast!.lines.at(-1) === last, 10_000, last);
    }
    expect(server.stats.slowClientsDropped).toBe(1);
    slow!.socket.resume(); // a paused socket would not see the close
    await slow!.closed;
    expect(slow!.lines.length).toBeLessThan(seq);
    expect(fast!.lines).toHaveLength(seq);
    expect(fast!.lines.every((line, i) => line === `${i + 1}|B`)).toBe(true);
    expect(
      log.some((m) => /\(user 1\) is too slow: \d+ bytes waiting \(maxClientBufferBytes 65536\)/.test(m)),
    ).toBe(true);
    expect(server.stats.clients).toBe(1);
  }, 30_000);
});

describe('resequencing', () => {
  it('gives up a sequence that stays missing for gapTimeoutMs (stream mode)', async () => {
    const { server, log } = await start({ gapTimeoutMs: 50 });
    const [c1] = await clients(server, [1]);
    await source(server, ['2|B', '3|B']);
    await hasLine(c1!, '3|B');
    expect(c1!.lines).toEqual(['2|B', '3|B']);
    expect(log).toContain('gave up sequence 1 (missing for longer than gapTimeoutMs)');
    expect(server.stats.seqsSkipped).toBe(1);
  });

  it('gives up missing sequences when an event arrives a full window ahead (stream mode)', async () => {
    const { server, log } = await start({ window: 4 });
    const [c1] = await clients(server, [1]);
    const src = await source(server, ['2|B', '6|B']);
    await hasLine(c1!, '2|B');
    await writeAll(src, [crlf(['4|B', '3|B', '5|B', '1|B', '7|B'])]);
    await hasLine(c1!, '7|B');
    expect(c1!.lines).toEqual(['2|B', '3|B', '4|B', '5|B', '6|B', '7|B']);
    expect(log).toContain('gave up sequence 1 (an event arrived a full window ahead of it)');
    expect(server.stats).toMatchObject({ seqsSkipped: 1, stale: 1 });
  });

  it('batch mode orders within a batch only: an event later than its batch is dropped', async () => {
    const lines = ['2|B', '3|B', '1|B', '4|B'];
    const batch = await start({ resequencer: 'batch', window: 2 });
    const [b] = await clients(batch.server, [1]);
    await source(batch.server, lines, false);
    await hasLine(b!, '4|B');
    expect(b!.lines).toEqual(['2|B', '3|B', '4|B']);
    expect(batch.server.stats).toMatchObject({ stale: 1, seqsSkipped: 1 });
    const stream = await start({ window: 4 });
    const [s] = await clients(stream.server, [1]);
    await source(stream.server, lines, false);
    await hasLine(s!, '4|B');
    expect(s!.lines).toEqual(['1|B', '2|B', '3|B', '4|B']);
  });

  it('starts a new run at sequence 1 for each event-source connection, keeping the follow graph', async () => {
    const { server, log } = await start();
    const [c1, c2] = await clients(server, [1, 2]);
    await source(server, ['1|F|2|1', '2|B'], false);
    await hasLine(c2!, '2|B');
    await eventually(() => log.some((m) => m.startsWith('event source run 1 ended')));
    await source(server, ['2|B', '1|S|1']);
    await Promise.all([c1, c2].map((c) => c!.until(() => c!.lines.length === 3)));
    expect(c2!.lines).toEqual(['2|B', '1|S|1', '2|B']);
    expect(c1!.lines).toEqual(['1|F|2|1', '2|B', '2|B']);
    expect(server.stats.runs).toBe(2);
  });

  it('a second event source replaces the first: what the first left held is released, then a new run starts', async () => {
    const { server, log } = await start();
    const [c1] = await clients(server, [1]);
    const first = await source(server, ['2|P|0|1', '3|P|0|1']);
    await eventually(() => server.stats.held === 2);
    const firstClosed = new Promise((resolve) => first.once('close', resolve));
    await source(server, ['1|B']);
    await firstClosed;
    await hasLine(c1!, '1|B');
    expect(c1!.lines).toEqual(['2|P|0|1', '3|P|0|1', '1|B']);
    expect(log.some((m) => /event source .* connected: disconnecting the previous one/.test(m))).toBe(true);
    expect(log).toContain('gave up sequence 1 (still missing when the event source closed)');
  });
});

describe('startMaze', () => {
  it.each([
    [{ window: 0 }, 'options.window must be an integer from 1 to 16777216, got 0'],
    [{ eventPort: 70000 }, 'options.eventPort must be an integer from 0 to 65535, got 70000'],
    [{ resequencer: 'fast' }, `options.resequencer must be 'stream' or 'batch', got "fast"`],
    [{ resequencer: 'batch', gapTimeoutMs: 10 }, "options.gapTimeoutMs applies to resequencer 'stream' only"],
    [{ maxClientBufferBytes: -1 }, 'options.maxClientBufferBytes must be an integer'],
    [{ log: 'stderr' }, 'options.log must be a function'],
    [
      { idTimeoutMs: 2 ** 31 },
      'options.idTimeoutMs must be a number of ms from 1 to 2147483647, or Infinity',
    ],
    [{ gapTimeoutMs: 0 }, 'options.gapTimeoutMs must be a number of ms'],
    [{ colour: true }, 'options.colour is not a maze option'],
  ])('rejects %j with a coded error naming the option', async (options, message) => {
    const error = await startMaze({ eventPort: 0, clientPort: 0, ...(options as MazeOptions) }).catch(
      (e) => e,
    );
    expect(error).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, name: 'InvalidArgumentError' });
    expect(error.message).toContain(message);
  });

  it('rejects with AbortError for an aborted signal, and closes when the signal fires later', async () => {
    const error = await startMaze({ eventPort: 0, clientPort: 0, signal: AbortSignal.abort('no') }).catch(
      (e) => e,
    );
    expect(error).toMatchObject({ code: ErrorCode.ABORTED, name: 'AbortError', cause: 'no' });
    const controller = new AbortController();
    const { server } = await start({ signal: controller.signal });
    const [c1] = await clients(server, [1]);
    controller.abort();
    await c1!.closed;
  });

  it('rejects when a port is taken, and closes what it opened', async () => {
    const { server } = await start();
    const error = await startMaze({ eventPort: 0, clientPort: server.eventPort }).catch((e) => e);
    expect(error).toMatchObject({ code: 'EADDRINUSE' });
  });

  it('close() ends every client after what was written, and is idempotent', async () => {
    const { server } = await start();
    const [c1] = await clients(server, [1]);
    await source(server, ['1|B']);
    await hasLine(c1!, '1|B');
    await Promise.all([server.close(), server.close()]);
    await c1!.closed;
    await expect(connectClient(server.clientPort, 1)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

describe('mazeMain', () => {
  const run = async (argv: string[], signal?: AbortSignal, onListening?: (s: MazeServer) => void) => {
    const stdout: string[] = [];
    const stderr: string[] = [];
    const code = await mazeMain(argv, {
      stdout: (l) => stdout.push(l),
      stderr: (l) => stderr.push(l),
      signal: signal ?? AbortSignal.abort(),
      ...(onListening ? { onListening } : {}),
    });
    return { code, stdout, stderr };
  };

  it.each([
    [['--window', 'abc'], '--window must be an integer from 1 to 16777216, got "abc"'],
    [['--window', '0'], '--window must be an integer'],
    [['--event-port', '-1'], '--event-port'],
    [['--client-port', '65536'], '--client-port must be an integer from 0 to 65535'],
    [['--resequencer', 'fast'], '--resequencer must be stream or batch, got "fast"'],
    [['--bogus'], "Unknown option '--bogus'"],
    [['extra'], 'extra'],
    [['--window'], '--window'],
  ])('%j: one line on stderr, exit code 2', async (argv, fragment) => {
    const { code, stdout, stderr } = await run(argv);
    expect(code).toBe(2);
    expect(stdout).toEqual([]);
    expect(stderr).toHaveLength(1);
    expect(stderr[0]).toMatch(/^weft maze: .* \(see weft maze --help\)$/);
    expect(stderr[0]).toContain(fragment);
  });

  it('--help prints the usage and exits 0', async () => {
    const { code, stdout } = await run(['--help']);
    expect(code).toBe(0);
    expect(stdout[0]).toContain('Usage: weft maze');
    expect(stdout[0]).toContain('--resequencer');
  });

  it('runs the server until the signal, then exits 0', async () => {
    const controller = new AbortController();
    let server: MazeServer | undefined;
    const done = run(
      ['--event-port', '0', '--client-port', '0', '--resequencer', 'batch', '--window', '2'],
      controller.signal,
      (s) => {
        server = s;
      },
    );
    await eventually(() => server !== undefined);
    const c = await connectClient(server!.clientPort, 'nope\r\n');
    await c.closed;
    controller.abort();
    const { code, stdout, stderr } = await done;
    expect(code).toBe(0);
    expect(stdout).toEqual([
      `weft maze: event source on 127.0.0.1:${server!.eventPort}, clients on 127.0.0.1:${server!.clientPort} (batch resequencer, window 2)`,
    ]);
    expect(stderr.some((l) => /^weft maze: client .* sent "nope" instead of a user id/.test(l))).toBe(true);
  });

  it('exits 1 with one line when it cannot listen', async () => {
    const { server } = await start();
    const { code, stderr } = await run(['--event-port', String(server.eventPort)]);
    expect(code).toBe(1);
    expect(stderr).toHaveLength(1);
    expect(stderr[0]).toMatch(/^weft maze: cannot start: .*EADDRINUSE/);
  });
});
