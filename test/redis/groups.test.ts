/**
 * Consumer-group operations (the GroupOperations that core's Sink is built on) on a real
 * redis-server: competing consumers, every group its own copy, ack, redelivery with delivery
 * counts, release, blocking reads, waiting on several streams, and the end marker skipped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFabric, type Fabric, type GroupOperations } from '../../index.js';
import { uniqueName } from '../helpers/async.js';
import { type RedisServer, redisAvailability, startRedisServer } from '../helpers/redis-server.js';

const redis = redisAvailability('redis consumer groups');

describe.skipIf(!redis.available)('redis consumer groups', () => {
  let server: RedisServer;
  let fabric: Fabric;
  let groups: GroupOperations;
  beforeAll(async () => {
    server = await startRedisServer();
    fabric = await createFabric({
      transport: 'redis',
      url: server.url,
      prefix: `weft-groups-${process.pid}`,
    });
    groups = fabric.transport.groups!;
    expect(fabric.supports.groups).toBe(true);
  });
  afterAll(async () => {
    await fabric?.close();
    await server?.stop();
  });

  async function seeded(n: number): Promise<string> {
    const name = uniqueName('g');
    await fabric.stream<number>(name).publishBatch(Array.from({ length: n }, (_, i) => ({ data: i + 1 })));
    return name;
  }

  it('competing consumers share a group: each entry goes to one of them, delivery 1', async () => {
    const s = await seeded(10);
    await groups.ensure('workers', s, 'start');
    const a = await groups.read('workers', 'a', s, 4, 0);
    const b = await groups.read('workers', 'b', s, 100, 0);
    expect(a.map((e) => e.event.seq)).toEqual([1, 2, 3, 4]);
    expect(b.map((e) => e.event.seq)).toEqual([5, 6, 7, 8, 9, 10]);
    expect([...a, ...b].every((e) => e.deliveries === 1)).toBe(true);
    expect(b[0]!.event).toMatchObject({ stream: s, seq: 5, data: 5, topic: undefined });
    expect(await groups.read('workers', 'a', s, 10, 0)).toEqual([]);
  });

  it('every group gets its own copy; ensure keeps an existing cursor', async () => {
    const s = await seeded(3);
    await groups.ensure('one', s, 'start');
    await groups.ensure('two', s, 'start');
    expect((await groups.read('one', 'c', s, 10, 0)).map((e) => e.event.seq)).toEqual([1, 2, 3]);
    await groups.ensure('one', s, 'start'); // exists: keeps its cursor
    expect(await groups.read('one', 'c', s, 10, 0)).toEqual([]);
    expect((await groups.read('two', 'c', s, 10, 0)).map((e) => e.event.seq)).toEqual([1, 2, 3]);
  });

  it("starts at 'end' (only later entries) or at a sequence", async () => {
    const s = await seeded(5);
    await groups.ensure('late', s, 'end');
    await groups.ensure('mid', s, 4);
    await fabric.stream<number>(s).publish(6);
    expect((await groups.read('late', 'c', s, 10, 0)).map((e) => e.event.seq)).toEqual([6]);
    expect((await groups.read('mid', 'c', s, 10, 0)).map((e) => e.event.seq)).toEqual([4, 5, 6]);
  });

  it('unacked entries are claimed again with their delivery count; acked ones are not; ack is idempotent', async () => {
    const s = await seeded(4);
    await groups.ensure('g', s, 'start');
    const got = await groups.read('g', 'dead', s, 10, 0);
    expect(got).toHaveLength(4);
    await groups.ack('g', s, [1, 2]);
    await groups.ack('g', s, [1, 2, 99]); // again, and an unknown one: no error
    expect(await groups.claim('g', 'alive', s, 60_000, 10)).toEqual([]); // not idle long enough
    await new Promise((r) => setTimeout(r, 30));
    const again = await groups.claim('g', 'alive', s, 20, 10);
    expect(again.map((e) => [e.event.seq, e.deliveries])).toEqual([
      [3, 2],
      [4, 2],
    ]);
    await new Promise((r) => setTimeout(r, 30));
    const third = await groups.claim('g', 'other', s, 20, 10);
    expect(third.map((e) => [e.event.seq, e.deliveries])).toEqual([
      [3, 3],
      [4, 3],
    ]);
    await groups.ack('g', s, [3, 4]);
    await new Promise((r) => setTimeout(r, 30));
    expect(await groups.claim('g', 'alive', s, 20, 10)).toEqual([]);
  });

  it('release makes entries claimable at once, keeping their delivery count; only its own', async () => {
    const s = await seeded(3);
    await groups.ensure('g', s, 'start');
    await groups.read('g', 'a', s, 10, 0);
    await groups.release('g', 'a', s, [2, 3]);
    const claimed = await groups.claim('g', 'b', s, 60_000, 10);
    expect(claimed.map((e) => [e.event.seq, e.deliveries])).toEqual([
      [2, 2],
      [3, 2],
    ]);
    // 'a' is a stale holder of 2 and 3 now ('b' claimed them): its release leaves them alone.
    await groups.release('g', 'a', s, [2, 3]);
    expect(await groups.claim('g', 'c', s, 60_000, 10)).toEqual([]);
    await groups.release('g', 'b', s, [3]);
    expect((await groups.claim('g', 'c', s, 60_000, 10)).map((e) => [e.event.seq, e.deliveries])).toEqual([
      [3, 3],
    ]);
  });

  it('a blocking read waits for new entries; an abort resolves it with [] at once', async () => {
    const s = await seeded(0);
    await groups.ensure('g', s, 'start');
    const t0 = Date.now();
    const pending = groups.read('g', 'c', s, 10, 5_000);
    setTimeout(() => void fabric.stream<number>(s).publish(42), 50);
    const got = await pending;
    expect(got.map((e) => e.event.data)).toEqual([42]);
    expect(Date.now() - t0).toBeLessThan(2_000);
    const ac = new AbortController();
    const t1 = Date.now();
    const aborted = groups.read('g', 'c', s, 10, 5_000, ac.signal);
    setTimeout(() => ac.abort(), 50);
    expect(await aborted).toEqual([]);
    expect(Date.now() - t1).toBeLessThan(1_000);
    expect(await groups.read('g', 'c', s, 10, 0, AbortSignal.abort())).toEqual([]);
  });

  it('wait watches several streams: resolves on an entry in any, on timeout, or on abort', async () => {
    const a = await seeded(0);
    const b = await seeded(0);
    await groups.ensure('w', a, 'start');
    await groups.ensure('w', b, 'start');
    const t0 = Date.now();
    await groups.wait('w', [a, b], 100);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90);
    const t1 = Date.now();
    const waiting = groups.wait('w', [a, b], 5_000);
    setTimeout(() => void fabric.stream<number>(b).publish(1), 50);
    await waiting;
    expect(Date.now() - t1).toBeLessThan(2_000);
    // The entry is still there for the group (wait does not consume): wait returns at once.
    const t2 = Date.now();
    await groups.wait('w', [a, b], 5_000);
    expect(Date.now() - t2).toBeLessThan(500);
    expect((await groups.read('w', 'c', b, 10, 0)).map((e) => e.event.data)).toEqual([1]);
    const ac = new AbortController();
    const t3 = Date.now();
    const aborted = groups.wait('w', [a, b], 5_000, ac.signal);
    setTimeout(() => ac.abort(), 50);
    await aborted;
    expect(Date.now() - t3).toBeLessThan(1_000);
  });

  it("a closed stream's end marker is not an event: groups skip it", async () => {
    const s = await seeded(2);
    await groups.ensure('g', s, 'start');
    await fabric.stream(s).close();
    expect((await groups.read('g', 'c', s, 10, 0)).map((e) => e.event.seq)).toEqual([1, 2]);
    expect(await groups.read('g', 'c', s, 10, 0)).toEqual([]);
    const t0 = Date.now();
    await groups.wait('g', [s], 300); // the marker was acked and passed: nothing wakes it
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
  });

  it('a group on a stream with a TTL gets the same expiry', async () => {
    const name = uniqueName('gttl');
    const s = fabric.stream<number>(name, { ttlMs: 60_000 });
    await s.info(); // creates the stream (meta only, no log yet)
    await groups.ensure('g', name, 'start');
    const { Redis } = await import('ioredis');
    const admin = new Redis(server.url);
    try {
      const ttl = await admin.pttl(`weft-groups-${process.pid}:{${name}}:log`);
      expect(ttl).toBeGreaterThan(50_000);
    } finally {
      admin.disconnect();
    }
  });
});
