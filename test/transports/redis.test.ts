/** The conformance suites (streams, then sinks), unchanged, against a real redis-server (started here, or REDIS_URL). */
import { afterAll, beforeAll, describe } from 'vitest';
import { createFabric } from '../../index.js';
import { sinkSuite } from '../conformance/sink-suite.js';
import { transportSuite } from '../conformance/transport-suite.js';
import { type RedisServer, redisAvailability, startRedisServer } from '../helpers/redis-server.js';

const redis = redisAvailability('redis conformance');

describe.skipIf(!redis.available)('redis', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    await server?.stop();
  });
  const prefix = `weft-test-${process.pid}-${Date.now().toString(36)}`;
  const factory = () => createFabric({ transport: 'redis', url: server.url, prefix });
  transportSuite('redis', factory, { settleMs: 10_000 });
  sinkSuite('redis', factory, { modelRuns: 10 });
});
