/**
 * go-event-log's own scenarios (wk8/go-event-log event_log_test.go), on a real redis-server:
 * many producers and followers, max length, TTL after the last add, and tail / tail N / tail from
 * each followed by live events, each seen exactly once.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFabric, type Fabric, type WeftEvent } from '../../index.js';
import { collect, eventually, uniqueName } from '../helpers/async.js';
import { type RedisServer, redisAvailability, startRedisServer } from '../helpers/redis-server.js';

const redis = redisAvailability('redis go-event-log scenarios');

describe.skipIf(!redis.available)('redis: go-event-log scenarios', () => {
  let server: RedisServer;
  let admin: Redis;
  const prefix = `weft-gel-${process.pid}`;
  const fabrics: Fabric[] = [];
  const open = async (): Promise<Fabric> => {
    const f = await createFabric({ transport: 'redis', url: server.url, prefix });
    fabrics.push(f);
    return f;
  };

  beforeAll(async () => {
    server = await startRedisServer();
    admin = new Redis(server.url);
  });
  afterAll(async () => {
    await Promise.all(fabrics.map((f) => f.close()));
    admin?.disconnect();
    await server?.stop();
  });

  it('20 producers x 20 entries, 60 followers in 3 processes-worth of connections: every entry seen exactly 60 times, in order', async () => {
    const name = uniqueName('gel');
    const followerFabrics = await Promise.all([open(), open(), open()]);
    const collectors = Array.from({ length: 60 }, (_, i) =>
      collect(followerFabrics[i % 3]!.stream<{ p: number; i: number }>(name).follow({ from: 'start' })),
    );
    await Promise.all(collectors.map((c) => c.ready));
    const producers = await Promise.all(Array.from({ length: 20 }, () => open()));
    await Promise.all(
      producers.map(async (f, p) => {
        const s = f.stream<{ p: number; i: number }>(name);
        for (let i = 0; i < 20; i++) {
          if (i % 5 === 4) await s.publishBatch([{ data: { p, i } }]);
          else await s.publish({ p, i });
        }
      }),
    );
    await producers[0]!.stream(name).close();
    const ends = await Promise.all(collectors.map((c) => c.ended));
    expect(ends.every((e) => e === undefined)).toBe(true);
    const seen = new Map<string, number>();
    for (const c of collectors) {
      expect(c.received.map((e) => e.seq)).toEqual(Array.from({ length: 400 }, (_, k) => k + 1));
      for (const e of c.received) {
        const key = `${e.data.p}:${e.data.i}`;
        seen.set(key, (seen.get(key) ?? 0) + 1);
      }
      // Each producer's own entries arrive in the order it added them.
      for (let p = 0; p < 20; p++) {
        const mine = c.received.filter((e) => e.data.p === p).map((e) => e.data.i);
        expect(mine).toEqual(Array.from({ length: 20 }, (_, k) => k));
      }
    }
    expect(seen.size).toBe(400);
    expect([...seen.values()].every((n) => n === 60)).toBe(true);
  });

  it('max length 3 after 200 adds: three entries readable, and Redis holds a bounded log', async () => {
    const f = await open();
    const name = uniqueName('maxlen');
    const s = f.stream<number>(name, { maxLength: 3 });
    for (let i = 1; i <= 200; i++) await s.publish(i);
    expect((await s.read()).map((e) => e.data)).toEqual([198, 199, 200]);
    expect(await s.info()).toMatchObject({ first: 198, last: 200, length: 3 });
    // Physically: maxLength + trimSlack (+ one radix node) at most.
    expect(await admin.xlen(`${prefix}:{${name}}:log`)).toBeLessThanOrEqual(200);
    // A stream with a small trimSlack is trimmed close to maxLength.
    const tight = await createFabric({ transport: 'redis', url: server.url, prefix, trimSlack: 0 });
    fabrics.push(tight);
    const t = tight.stream<number>(uniqueName('maxlen0'), { maxLength: 3 });
    for (let i = 1; i <= 500; i++) await t.publish(i);
    expect((await t.read()).map((e) => e.data)).toEqual([498, 499, 500]);
    expect(await admin.xlen(`${prefix}:{${t.name}}:log`)).toBeLessThanOrEqual(103);
  });

  it('TTL after the last add: each add re-arms it; idle past it, the stream is gone from Redis and starts over', async () => {
    const f = await open();
    const name = uniqueName('ttl');
    const s = f.stream<number>(name, { ttlMs: 400 });
    const log = `${prefix}:{${name}}:log`;
    const meta = `${prefix}:{${name}}:meta`;
    await s.publish(1);
    const epoch = (await s.info()).epoch;
    for (let i = 2; i <= 5; i++) {
      await new Promise((r) => setTimeout(r, 150));
      await s.publish(i);
      const [pttlLog, pttlMeta] = await Promise.all([admin.pttl(log), admin.pttl(meta)]);
      expect(pttlLog).toBeGreaterThan(250); // re-armed by this add
      expect(pttlMeta).toBeGreaterThan(250);
    }
    expect((await s.read()).map((e) => e.data)).toEqual([1, 2, 3, 4, 5]);
    const follower = collect(s.follow({ from: 'start' }));
    await eventually(() => follower.received.length === 5, 5_000, 'history');
    await eventually(() => false, 700).catch(() => {});
    expect(await admin.exists(log, meta)).toBe(0);
    // The follower of the dropped stream learns it with a typed error, not silence.
    const end = await follower.ended;
    expect((end as { code?: string }).code).toBe('WEFT_ERR_STREAM_RESET');
    expect(await s.publish(1)).toBe(1);
    expect((await s.info()).epoch).not.toBe(epoch);
  });

  it('tail, tail N and tail from, each followed by live events, each seen once', async () => {
    const f = await open();
    const g = await open(); // live events come from another connection
    const name = uniqueName('tail');
    const s = f.stream<number>(name);
    await s.publishBatch(Array.from({ length: 10 }, (_, i) => ({ data: i + 1 })));
    const whole = s.follow({ from: 'start' });
    const lastN = s.follow({ last: 3 });
    const from = s.follow({ from: 7 });
    const cs = [collect(whole), collect(lastN), collect(from)];
    await Promise.all(cs.map((c) => c.ready));
    const other = g.stream<number>(name);
    for (let i = 11; i <= 15; i++) await other.publish(i);
    await other.close();
    await Promise.all(cs.map((c) => c.ended));
    const seqs = (c: { received: WeftEvent<number>[] }) => c.received.map((e) => e.seq);
    expect(seqs(cs[0]!)).toEqual(range(1, 15));
    expect(seqs(cs[1]!)).toEqual(range(8, 15));
    expect(seqs(cs[2]!)).toEqual(range(7, 15));
    for (const c of cs) expect(c.received.map((e) => e.data)).toEqual(seqs(c));
  });
});

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
