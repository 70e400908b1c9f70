/**
 * Fuzz: random bytes, random MessagePack values, random opcode-shaped arrays and mutated valid
 * messages thrown at the gateway, from many connections, while a well-behaved client publishes
 * and follows on the same gateway. The gateway must stay up, answer each fuzz connection with a
 * close or coded errors only, and the good client must see every event once, on its first connection.
 *
 * FC_SEED / FC_PATH replay a failure; FC_RUNS_SCALE makes it longer.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Fabric } from '../../index.js';
import { encode, Op, PROTOCOL_VERSION } from '../../transports/websocket/protocol.js';
import { collect, eventually, uniqueName } from '../helpers/async.js';
import { fcParams } from '../helpers/fc.js';
import { client, denseProblem, type Served, serve, sleep } from './helpers.js';
import { rawClient } from './raw-client.js';

let served: Served;
let good: Fabric;
const states: string[] = [];

beforeAll(async () => {
  served = await serve({
    maxPayloadBytes: 16 * 1024,
    maxSubscriptions: 20,
    maxStreams: 50,
    helloTimeoutMs: 500,
  });
  good = await client(served.gateway.url, { onStateChange: (s: string) => states.push(s) });
});
afterAll(async () => {
  await good.close();
  await served.close();
});

const FUZZ_STREAM = 'fuzz-target';

/** Valid messages to mutate. */
const templates: unknown[][] = [
  [Op.HELLO, PROTOCOL_VERSION, 'token', null],
  [Op.OPEN, 1, FUZZ_STREAM, { maxLength: 5 }],
  [Op.PUBLISH, 1, 1, 1, [['data', 'topic.a'], [{ x: [1, 2] }]]],
  [Op.READ, 2, 1, 1, 100],
  [Op.BOUNDS, 3, 1],
  [Op.FOLLOW, 1, 1, 0, null],
  [Op.UNFOLLOW, 1],
  [Op.FAIL, 4, 1, { message: 'x' }],
  [Op.GROUP, 5, 'read', ['g', 'c', FUZZ_STREAM, 10, 0]],
  [Op.PONG, 1],
];

const scalar = fc.oneof(
  fc.integer({ min: -5, max: 2 ** 33 }),
  fc.double(),
  fc.string({ maxLength: 20 }),
  fc.constant(null),
  fc.boolean(),
  fc.constantFrom(FUZZ_STREAM, 'start', 'end', 'a..b', ''),
);
const value = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    scalar,
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 5 }), tie('v'), { maxKeys: 3 }),
  ),
})).v;

const message: fc.Arbitrary<Uint8Array | string> = fc.oneof(
  // random bytes
  fc.uint8Array({ minLength: 1, maxLength: 64 }),
  // any MessagePack value
  value.map((v) => encode([v]).subarray(1)),
  // opcode-shaped arrays with random fields
  fc
    .tuple(fc.integer({ min: 0, max: 30 }), fc.array(value, { maxLength: 6 }))
    .map(([op, rest]) => encode([op, ...rest])),
  // a valid message with bytes flipped, cut or appended
  fc
    .tuple(
      fc.constantFrom(...templates),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      fc.oneof(fc.constant(0), fc.integer({ min: -8, max: 8 })),
    )
    .map(([t, flips, resize]) => {
      let b = Uint8Array.from(encode(t));
      for (const [at, byte] of flips) b[at % b.length] = byte;
      if (resize < 0) b = b.subarray(0, Math.max(1, b.length + resize));
      else if (resize > 0) b = Uint8Array.from([...b, ...new Array<number>(resize).fill(0xa1)]);
      return b;
    }),
  // sometimes a text frame
  fc.string({ maxLength: 10 }),
);

it('random and mutated frames never take the gateway down or disturb a well-behaved client', async () => {
  const name = uniqueName('fuzz-good');
  const s = good.stream<number>(name);
  const follower = collect(s.follow({ from: 'start' }));
  await follower.ready;
  let published = 0;
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.boolean(),
      fc.array(message, { minLength: 1, maxLength: 8 }),
      async (hello, messages) => {
        runs++;
        const c = await rawClient(served.gateway.url);
        if (hello) await c.hello();
        for (const m of messages) {
          if (c.ws.readyState !== c.ws.OPEN) break;
          if (typeof m === 'string') c.sendBytes(m, false);
          else c.sendBytes(m);
        }
        // Either the gateway closes it (a coded close), or it answered what it could; then we leave.
        await Promise.race([c.closed, sleep(10)]);
        c.close();
        // Every message the gateway sent is a well-formed protocol message.
        for (const m of c.messages) expect(m[0]).not.toBe('undecodable');
        published++;
        expect(await s.publish(published)).toBe(published);
      },
    ),
    fcParams({ numRuns: 300 }),
  );
  await eventually(() => follower.received.length === published, 10_000, 'the good follower to catch up');
  expect(
    denseProblem(
      follower.received.map((e) => e.seq),
      1,
    ),
  ).toBeUndefined();
  expect(states.filter((x) => x !== 'open')).toEqual([]); // never reconnected
  const stats = served.gateway.stats();
  expect(stats.protocolErrors).toBeGreaterThan(runs / 4);
  // Every fuzz connection is gone; only the good one remains.
  await eventually(() => served.gateway.connections === 1, 5000, 'fuzz connections to close');
  expect(served.gateway.stats().subscriptions).toBe(1);
});
