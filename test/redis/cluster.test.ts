/**
 * A local 3-master Redis Cluster: streams spread over the slots (each stream's keys on one slot by
 * its hash tag), and the conformance suites run unchanged against it.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFabric, type Fabric } from '../../index.js';
import { sinkSuite } from '../conformance/sink-suite.js';
import { transportSuite } from '../conformance/transport-suite.js';
import { collect, uniqueName } from '../helpers/async.js';
import { type RedisCluster, redisAvailability, startRedisCluster } from '../helpers/redis-server.js';

const redis = redisAvailability('redis cluster (starts 3 local cluster nodes)', true);

describe.skipIf(!redis.available)('redis cluster', () => {
  let cluster: RedisCluster;
  const prefix = `weft-cluster-${process.pid}`;
  beforeAll(async () => {
    cluster = await startRedisCluster(3);
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  const factory = () => createFabric({ transport: 'redis', nodes: cluster.nodes, prefix });

  describe('streams over the slots', () => {
    let fabric: Fabric;
    beforeAll(async () => {
      fabric = await factory();
    });
    afterAll(async () => {
      await fabric?.close();
    });

    it("spreads streams over every master, each stream's keys on one slot, and follows them all", async () => {
      const names = Array.from({ length: 24 }, () => uniqueName('cl'));
      const followers = names.map((n) => collect(fabric.stream<number>(n).follow({ from: 'start' })));
      await Promise.all(followers.map((c) => c.ready));
      await Promise.all(
        names.map(async (n, i) => {
          const s = fabric.stream<number>(n);
          await s.publish(i);
          await s.publishBatch([{ data: i }, { data: i }]);
          await s.close();
        }),
      );
      for (const c of followers) {
        expect(await c.ended).toBeUndefined();
        expect(c.received.map((e) => e.seq)).toEqual([1, 2, 3]);
      }
      const admins = cluster.ports.map((port) => new Redis({ port, host: '127.0.0.1' }));
      try {
        const perNode = await Promise.all(
          admins.map(async (a) => {
            const keys: string[] = [];
            let cursor = '0';
            do {
              const [next, batch] = await a.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
              cursor = next;
              keys.push(...batch);
            } while (cursor !== '0');
            return keys;
          }),
        );
        expect(perNode.every((keys) => keys.length > 0)).toBe(true); // every master holds some streams
        for (const n of names) {
          const holders = perNode.filter((keys) => keys.includes(`${prefix}:{${n}}:log`));
          expect(holders).toHaveLength(1);
          expect(holders[0]).toContain(`${prefix}:{${n}}:meta`); // log and meta on the same node
        }
      } finally {
        for (const a of admins) a.disconnect();
      }
    });
  });

  transportSuite('redis cluster', factory, { settleMs: 10_000, modelRuns: 20 });
  sinkSuite('redis cluster', factory, { modelRuns: 3 });
});
