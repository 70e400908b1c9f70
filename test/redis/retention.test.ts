/**
 * Retention on Redis beyond the conformance cases: maxLength as a logical window (live followers in
 * other processes still get every event, even with maxLength 0), maxAgeMs applied at read time.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFabric, type Fabric, TruncatedError } from '../../index.js';
import { collect, uniqueName } from '../helpers/async.js';
import { type RedisServer, redisAvailability, startRedisServer } from '../helpers/redis-server.js';

const redis = redisAvailability('redis retention');

describe.skipIf(!redis.available)('redis retention', () => {
  let server: RedisServer;
  let a: Fabric;
  let b: Fabric;
  const prefix = `weft-ret-${process.pid}`;
  beforeAll(async () => {
    server = await startRedisServer();
    a = await createFabric({ transport: 'redis', url: server.url, prefix });
    b = await createFabric({ transport: 'redis', url: server.url, prefix });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await server?.stop();
  });

  it('maxLength 0: no history for readers, yet live followers in another process get every event', async () => {
    const name = uniqueName('len0');
    const c = collect(b.stream<number>(name, { maxLength: 0 }).follow());
    await c.ready;
    const s = a.stream<number>(name, { maxLength: 0 });
    for (let i = 1; i <= 300; i++) void s.publish(i);
    await s.publish(301);
    expect(await s.read()).toEqual([]);
    expect(await s.info()).toMatchObject({ first: 302, last: 301, length: 0 });
    await expect(s.read({ from: 301 })).rejects.toBeInstanceOf(TruncatedError);
    await s.close();
    expect(await c.ended).toBeUndefined();
    expect(c.received.map((e) => e.seq)).toEqual(Array.from({ length: 301 }, (_, i) => i + 1));
  });

  it('maxLength is exact for readers whatever the physical trimming; a follow from start begins at the window', async () => {
    const name = uniqueName('len5');
    const s = a.stream<number>(name, { maxLength: 5 });
    await s.publishBatch(Array.from({ length: 50 }, (_, i) => ({ data: i + 1 })));
    expect((await s.read()).map((e) => e.seq)).toEqual([46, 47, 48, 49, 50]);
    const c = collect(b.stream<number>(name, { maxLength: 5 }).follow({ from: 'start' }));
    await c.ready;
    await s.publish(51);
    await s.close();
    await c.ended;
    expect(c.received.map((e) => e.seq)).toEqual([46, 47, 48, 49, 50, 51]);
  });

  it('maxAgeMs trims by server time at read time too, from the head only', async () => {
    const name = uniqueName('age');
    const s = a.stream<number>(name, { maxAgeMs: 200 });
    await s.publishBatch([{ data: 1 }, { data: 2 }]);
    await new Promise((r) => setTimeout(r, 300));
    await b.stream<number>(name).publish(3); // another process, no maxAge of its own
    expect((await s.read()).map((e) => e.seq)).toEqual([3]); // trimmed by this read
    const admin = new Redis(server.url);
    try {
      expect(await admin.xlen(`${prefix}:{${name}}:log`)).toBe(1);
    } finally {
      admin.disconnect();
    }
    const err = await s.read({ from: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TruncatedError);
    expect((err as TruncatedError).firstAvailable).toBe(3);
  });
});
