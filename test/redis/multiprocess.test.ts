/**
 * Dense sequences across processes: several real Node processes publish to one stream at once
 * (singles and batches, many in flight each) while this process follows it.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFabric, type Fabric } from '../../index.js';
import { collect, uniqueName } from '../helpers/async.js';
import { type RedisServer, redisAvailability, startRedisServer } from '../helpers/redis-server.js';

const redis = redisAvailability('redis multi-process publishing');
const PROCESSES = 4;
const EACH = 300;

function runPublisher(args: string[]): Promise<number[]> {
  const script = fileURLToPath(new URL('./publisher-process.ts', import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.once('exit', (code) => {
      if (code === 0) resolve(JSON.parse(out) as number[]);
      else reject(new Error(`publisher ${args[3]} exited with ${code}: ${err}`));
    });
  });
}

describe.skipIf(!redis.available)('redis: publishing from several processes', () => {
  let server: RedisServer;
  let fabric: Fabric;
  const prefix = `weft-mp-${process.pid}`;
  beforeAll(async () => {
    server = await startRedisServer();
    fabric = await createFabric({ transport: 'redis', url: server.url, prefix });
  });
  afterAll(async () => {
    await fabric?.close();
    await server?.stop();
  });

  it(`${PROCESSES} processes x ${EACH} events: sequences dense 1..N, each event once, each process in its order`, async () => {
    const name = uniqueName('mp');
    const s = fabric.stream<{ p: number; i: number }>(name);
    const follower = collect(s.follow({ from: 'start' }));
    await follower.ready;
    const given = await Promise.all(
      Array.from({ length: PROCESSES }, (_, p) =>
        runPublisher([server.url, prefix, name, String(p), String(EACH)]),
      ),
    );
    const total = PROCESSES * EACH;
    const all = given.flat().sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: total }, (_, i) => i + 1)); // no seq given twice, none skipped
    await s.close();
    expect(await follower.ended).toBeUndefined();
    const events = follower.received;
    expect(events.map((e) => e.seq)).toEqual(all);
    for (let p = 0; p < PROCESSES; p++) {
      const mine = events.filter((e) => e.data.p === p);
      expect(mine.map((e) => e.data.i)).toEqual(Array.from({ length: EACH }, (_, i) => i));
      // What the process was told matches what was stored.
      expect(mine.map((e) => e.seq).sort((a, b) => a - b)).toEqual([...given[p]!].sort((a, b) => a - b));
    }
  });
});
