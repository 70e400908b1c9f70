/**
 * Faults on a real redis-server: restarts (with and without persistence), killed connections,
 * blocking reads timing out, outages longer than the budget, and bad input of every kind
 * (URLs, unreachable or non-Redis servers, keys of the wrong type, foreign entries, oversized events).
 */
import { createServer, type Server } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  createFabric,
  type Fabric,
  FrameError,
  InvalidArgumentError,
  StreamResetError,
  TransportError,
  type WeftEvent,
} from '../../index.js';
import type { RedisTransport } from '../../transports/redis/index.js';
import { collect, eventually, uniqueName } from '../helpers/async.js';
import { freePort, type RedisServer, redisAvailability, startRedisServer } from '../helpers/redis-server.js';

const managed = redisAvailability('redis fault tests (restarts need a local redis-server)', true);
const any = redisAvailability('redis bad-input tests');

const fabrics: Fabric[] = [];
async function open(url: string, extra: Record<string, unknown> = {}): Promise<Fabric> {
  const f = await createFabric({ transport: 'redis', url, prefix: `weft-fault-${process.pid}`, ...extra });
  fabrics.push(f);
  return f;
}
afterEach(async () => {
  await Promise.all(fabrics.splice(0).map((f) => f.close()));
});

/** Publishes 1, 2, 3 ... until stopped, awaiting each; records what resolved and what failed. */
function publisher(f: Fabric, name: string, id: number) {
  const s = f.stream<{ p: number; n: number }>(name);
  const ok: number[] = [];
  const failed: unknown[] = [];
  let stop = false;
  const done = (async () => {
    for (let n = 0; !stop; n++) {
      try {
        await s.publish({ p: id, n });
        ok.push(n);
      } catch (e) {
        failed.push(e);
        if (failed.length === 1) console.error('publish failed:', e);
        await new Promise((r) => setTimeout(r, 10)); // never spin on a failing call
      }
    }
  })();
  return {
    ok,
    failed,
    stop: async () => {
      stop = true;
      await done;
    },
  };
}

/** Checks the log: dense, each (p, n) once, and exactly what the publishers saw resolve. */
async function checkLog(f: Fabric, name: string, pubs: { ok: number[] }[]) {
  const events = (await f.stream<{ p: number; n: number }>(name).read()) as WeftEvent<{
    p: number;
    n: number;
  }>[];
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  const keys = events.map((e) => `${e.data.p}:${e.data.n}`);
  expect(new Set(keys).size).toBe(keys.length); // nothing applied twice
  const want = pubs.flatMap((p, i) => p.ok.map((n) => `${i}:${n}`));
  expect([...keys].sort()).toEqual([...want].sort()); // nothing lost
  return events;
}

function expectExactlyOnce(received: WeftEvent[], total: number) {
  expect(received.map((e) => e.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
}

describe.skipIf(!managed.available)('redis faults', () => {
  let server: RedisServer;
  let admin: Redis;
  beforeAll(async () => {
    server = await startRedisServer({ appendonly: true });
    admin = new Redis(server.url, { maxRetriesPerRequest: null, retryStrategy: () => 20 });
    admin.on('error', () => {});
  });
  afterAll(async () => {
    admin?.disconnect();
    await server?.stop();
  });

  it('a Redis restart (append-only file on) while publishers and followers run: nothing lost, nothing twice', async () => {
    const name = uniqueName('restart');
    const [p1, p2, fl] = await Promise.all([open(server.url), open(server.url), open(server.url)]);
    const followers = Array.from({ length: 5 }, () => collect(fl.stream(name).follow({ from: 'start' })));
    await Promise.all(followers.map((c) => c.ready));
    const pubs = [publisher(p1, name, 0), publisher(p2, name, 1)];
    await eventually(() => pubs.every((p) => p.ok.length > 50), 10_000, 'publishing');
    await server.restart({ downMs: 200 });
    const after = pubs.map((p) => p.ok.length);
    await eventually(
      () => pubs.every((p, i) => p.ok.length > after[i]! + 50),
      10_000,
      'publishing after restart',
    );
    await Promise.all(pubs.map((p) => p.stop()));
    expect(pubs.flatMap((p) => p.failed)).toEqual([]); // retried through the outage, idempotently
    const events = await checkLog(p1, name, pubs);
    await p1.stream(name).close();
    for (const c of followers) {
      expect(await c.ended).toBeUndefined();
      expectExactlyOnce(c.received, events.length);
    }
  });

  it('CLIENT KILL of the blocked reader, and of every connection, loses and repeats nothing', async () => {
    const name = uniqueName('kill');
    const f = await open(server.url);
    const c = collect(f.stream(name).follow({ from: 'start' }));
    await c.ready;
    const pubs = [publisher(await open(server.url), name, 0)];
    for (let round = 0; round < 3; round++) {
      await eventually(() => pubs[0]!.ok.length > (round + 1) * 40, 10_000, 'publishing');
      // The reader reconnects after each kill: wait until it is back, blocked, then kill it again.
      let readers: string[] = [];
      for (const deadline = Date.now() + 5_000; readers.length === 0 && Date.now() < deadline; ) {
        const list = String(await admin.call('CLIENT', 'LIST', 'TYPE', 'normal'));
        readers = list.split('\n').filter((l) => / name=weft:[0-9a-f]+:reader:/.test(l));
        if (readers.length === 0) await new Promise((r) => setTimeout(r, 10));
      }
      expect(readers.length).toBe(1);
      for (const line of readers) await admin.call('CLIENT', 'KILL', 'ID', /^id=(\d+)/.exec(line)![1]!);
    }
    // Now every connection but the admin's, publishers included (their in-flight appends are re-sent).
    await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    const n = pubs[0]!.ok.length;
    await eventually(() => pubs[0]!.ok.length > n + 40, 10_000, 'publishing after kill');
    await pubs[0]!.stop();
    expect(pubs[0]!.failed).toEqual([]);
    const m = f.transport.metrics?.() ?? {};
    expect(m.reconnects_total).toBeGreaterThan(0); // the killed reader came back, counted
    expect(m.reader_connections).toBe(1);
    const events = await checkLog(f, name, pubs);
    await f.stream(name).close();
    expect(await c.ended).toBeUndefined();
    expectExactlyOnce(c.received, events.length);
  });

  it('an append sent twice (a reply lost, the call re-sent) is applied once and answers the same sequence', async () => {
    const f = await open(server.url);
    const t = f.transport as RedisTransport;
    const name = uniqueName('idem');
    const s = f.stream<number>(name);
    await s.publish(1);
    const meta = `weft-fault-${process.pid}:{${name}}:meta`;
    const log = `weft-fault-${process.pid}:{${name}}:log`;
    // The exact call a publish makes: epoch candidate, client id, counter, retention, n, (topic, data).
    const argv = [
      '1',
      'test-client',
      1,
      -1,
      1000,
      0,
      0,
      2,
      '',
      Buffer.from([0x02]),
      'a.b',
      Buffer.from([0x03]),
    ];
    expect(await t.client.weftAppend(meta, log, argv)).toBe(2);
    expect(await t.client.weftAppend(meta, log, argv)).toBe(2); // the re-send: not applied again
    const next = [...argv];
    next[2] = 2;
    next[7] = 1;
    next.length = 10;
    expect(await t.client.weftAppend(meta, log, next)).toBe(4);
    expect(await t.client.weftAppend(meta, log, argv)).toEqual(['stale', expect.stringMatching(/^2:4:/)]);
    expect((await s.read()).map((e) => [e.seq, e.data, e.topic])).toEqual([
      [1, 1, undefined],
      [2, 2, undefined],
      [3, 3, 'a.b'],
      [4, 2, undefined],
    ]);
  });

  it('blocking reads that time out again and again lose nothing (blockMs 20)', async () => {
    const f = await open(server.url, { blockMs: 20 });
    const g = await open(server.url);
    const name = uniqueName('block');
    const c = collect(f.stream<number>(name).follow());
    await c.ready;
    const s = g.stream<number>(name);
    for (let i = 1; i <= 12; i++) {
      await s.publish(i);
      await new Promise((r) => setTimeout(r, 25 + (i % 3) * 15));
    }
    await s.close();
    expect(await c.ended).toBeUndefined();
    expectExactlyOnce(c.received, 12);
  });
});

describe.skipIf(!managed.available)('redis outages and data loss', () => {
  it('an outage longer than reconnectTimeoutMs ends followers and publishes with TransportError; the fabric recovers', async () => {
    const server = await startRedisServer();
    try {
      const f = await open(server.url, { reconnectTimeoutMs: 400 });
      const s = f.stream(uniqueName('outage'));
      await s.publish(1);
      const c = collect(s.follow());
      await c.ready;
      await server.halt();
      const t0 = Date.now();
      const err = await s.publish(2).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TransportError);
      expect((err as Error).message).toMatch(/unreachable/);
      const end = await c.ended;
      expect(end).toBeInstanceOf(TransportError);
      expect(Date.now() - t0).toBeLessThan(2_000); // a 400 ms budget + one backoff (200 ms), not the default 10 s
      await server.start();
      // The server is back (empty: no persistence): the transport works again.
      const fresh = f.stream<number>(uniqueName('after'));
      expect(await fresh.publish(7)).toBe(1);
    } finally {
      await Promise.all(fabrics.splice(0).map((f) => f.close()));
      await server.stop();
    }
  });

  it('a restart that loses the data (no persistence) ends followers with StreamResetError', async () => {
    const server = await startRedisServer();
    try {
      const f = await open(server.url);
      const name = uniqueName('lost');
      const s = f.stream<number>(name);
      await s.publishBatch([{ data: 1 }, { data: 2 }]);
      const epoch = (await s.info()).epoch;
      const c = collect(s.follow({ from: 'start' }));
      await eventually(() => c.received.length === 2, 5_000, 'history');
      await server.restart();
      const end = await c.ended;
      expect(end).toBeInstanceOf(StreamResetError);
      expect((end as StreamResetError).expectedEpoch).toBe(epoch);
      expect(await s.publish(1)).toBe(1); // a new life of the stream
      expect((await s.info()).epoch).not.toBe(epoch);
    } finally {
      await Promise.all(fabrics.splice(0).map((f) => f.close()));
      await server.stop();
    }
  });
});

describe('redis bad input', () => {
  it('rejects malformed configs with ConfigError naming the option', async () => {
    const cases: [unknown, RegExp][] = [
      ['redis://', /no host|valid URL/],
      ['redis://127.0.0.1:99999', /port|valid URL/],
      ['redis://127.0.0.1:6379/abc', /database number/],
      ['redis://127.0.0.1:6379/0?prefx=a', /unknown query parameter 'prefx'/],
      [{ transport: 'redis', url: 'http://127.0.0.1' }, /scheme|redis:\/\//],
      [{ transport: 'redis', prefix: 'a{b}' }, /prefix/],
      [{ transport: 'redis', url: 'redis://a', nodes: ['redis://b'] }, /not both/],
      [{ transport: 'redis', nodes: [] }, /nodes/],
      [{ transport: 'redis', nodes: [{ host: 'x', port: 'y' }] }, /nodes\[0\]/],
      [{ transport: 'redis', connectTimeoutMs: -1 }, /connectTimeoutMs/],
      [{ transport: 'redis', blockMs: 1.5 }, /blockMs/],
      [{ transport: 'redis', redisOptions: 3 }, /redisOptions/],
      [{ transport: 'redis', colour: 'red' }, /unknown option 'colour'/],
    ];
    for (const [config, message] of cases) {
      const err = await createFabric(config as never).catch((e: unknown) => e);
      expect(err, JSON.stringify(config)).toBeInstanceOf(ConfigError);
      expect((err as Error).message, JSON.stringify(config)).toMatch(message);
    }
  });

  it('an unreachable server fails createFabric within connectTimeoutMs with TransportError', async () => {
    const port = await freePort();
    const t0 = Date.now();
    const err = await createFabric({
      transport: 'redis',
      url: `redis://127.0.0.1:${port}`,
      connectTimeoutMs: 300,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as Error).message).toMatch(new RegExp(`127.0.0.1:${port}.*300 ms.*ECONNREFUSED`));
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it('a server that does not speak Redis fails createFabric at once with TransportError', async () => {
    const srv: Server = createServer((sock) => {
      sock.on('data', () => sock.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as { port: number }).port;
    try {
      const t0 = Date.now();
      const err = await createFabric(`redis://127.0.0.1:${port}`).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TransportError);
      expect(Date.now() - t0).toBeLessThan(4_000);
    } finally {
      srv.close();
    }
  });

  describe.skipIf(!managed.available)('against a server with a password', () => {
    it('a wrong password fails createFabric at once with TransportError; the right one works', async () => {
      const server = await startRedisServer({ args: ['--requirepass', 'sekret'] });
      try {
        const t0 = Date.now();
        const url = server.url.replace('redis://', 'redis://:wrong@');
        const err = await createFabric(url).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(TransportError);
        expect((err as Error).message).toMatch(/WRONGPASS|invalid password/);
        expect(Date.now() - t0).toBeLessThan(2_000);
        const f = await open(server.url.replace('redis://', 'redis://:sekret@'));
        expect(await f.stream(uniqueName('auth')).publish(1)).toBe(1);
      } finally {
        await Promise.all(fabrics.splice(0).map((f) => f.close()));
        await server.stop();
      }
    });
  });

  describe.skipIf(!any.available)('against a server', () => {
    let server: RedisServer;
    let admin: Redis;
    const prefix = `weft-bad-${process.pid}`;
    beforeAll(async () => {
      server = await startRedisServer();
      admin = new Redis(server.url);
    });
    afterAll(async () => {
      admin?.disconnect();
      await server?.stop();
    });

    it('a URL carries options in its query; createFabric(url) works', async () => {
      const f = await createFabric(`${server.url}/0?prefix=${prefix}-q&blockMs=100`);
      fabrics.push(f);
      const name = uniqueName('q');
      await f.stream(name).publish('x');
      expect(await admin.exists(`${prefix}-q:{${name}}:log`, `${prefix}-q:{${name}}:meta`)).toBe(2);
    });

    it('keys of the wrong type give TransportError; the other streams keep working', async () => {
      const f = await open(server.url, { prefix });
      const bad = uniqueName('wrongtype');
      const good = uniqueName('good');
      const gc = collect(f.stream<number>(good).follow());
      await gc.ready;
      await admin.set(`${prefix}:{${bad}}:meta`, 'not a hash');
      const s = f.stream(bad);
      for (const call of [() => s.publish(1), () => s.read(), () => s.info()]) {
        const err = await call().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(TransportError);
        expect((err as Error).message).toMatch(/another kind of value|WRONGTYPE/);
      }
      // A log key of the wrong type under a follower: the follower ends with TransportError.
      const bad2 = uniqueName('wrongtype2');
      const s2 = f.stream(bad2);
      await s2.publish(1);
      const c = collect(s2.follow());
      await c.ready;
      await admin.del(`${prefix}:{${bad2}}:log`);
      await admin.set(`${prefix}:{${bad2}}:log`, 'oops');
      await admin.hset(`${prefix}:{${bad2}}:meta`, 'seq', '1');
      await f.stream<number>(good).publish(1);
      const end = await c.ended;
      expect(end).toBeInstanceOf(TransportError);
      await f.stream<number>(good).publish(2);
      await eventually(() => gc.received.length === 2, 5_000, 'the good stream');
      expect(gc.received.map((e) => e.data)).toEqual([1, 2]);
    });

    it('a stream written by something else gives FrameError, never a crash or garbage', async () => {
      const f = await open(server.url, { prefix });
      // A key Weft did not create.
      const foreign = uniqueName('foreign');
      await admin.xadd(`${prefix}:{${foreign}}:log`, '*', 'foo', 'bar');
      for (const call of [() => f.stream(foreign).publish(1), () => f.stream(foreign).info()]) {
        const err = await call().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(FrameError);
        expect((err as Error).message).toMatch(/not written by Weft/);
      }
      // Entries added by something else to a Weft stream: followers and publishers say so; a read of
      // the sequences Weft assigned still answers (the foreign entry is outside them).
      const mixed = uniqueName('mixed');
      const s = f.stream<number>(mixed);
      await s.publish(1);
      const c = collect(s.follow({ from: 'start' }));
      await eventually(() => c.received.length === 1, 5_000, 'first');
      await admin.xadd(`${prefix}:{${mixed}}:log`, '*', 'foo', 'bar');
      expect(await c.ended).toBeInstanceOf(FrameError);
      await expect(s.publish(2)).rejects.toBeInstanceOf(FrameError);
      expect((await s.read()).map((e) => e.data)).toEqual([1]);
    });

    it('an event over maxEventBytes is rejected with InvalidArgumentError and appends nothing', async () => {
      const f = await open(server.url, { prefix, maxEventBytes: 1_000 });
      const s = f.stream(uniqueName('big'));
      const err = await s.publish('x'.repeat(2_000)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as Error).message).toMatch(/maxEventBytes 1000/);
      await expect(s.publishBatch([{ data: 1 }, { data: 'y'.repeat(5_000) }])).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
      expect(await s.read()).toEqual([]);
    });
  });
});
