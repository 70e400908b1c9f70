/**
 * The gateway against bad input, one case at a time: each gets the right close code or a coded
 * error for that request only, and a well-behaved client on the same gateway keeps working.
 * Also: authentication before any data, authorization per action, per-connection limits.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fabric, WeftError } from '../../index.js';
import { CloseCode, Op, PROTOCOL_VERSION } from '../../transports/websocket/protocol.js';
import { collect, eventually, uniqueName } from '../helpers/async.js';
import { client, type Served, serve, sleep } from './helpers.js';
import { rawClient } from './raw-client.js';

let served: Served;
let good: Fabric;
let goodStream: ReturnType<Fabric['stream']>;
let goodFollower: ReturnType<typeof collect>;
let published = 0;
const states: string[] = [];

beforeAll(async () => {
  served = await serve({
    maxPayloadBytes: 4096,
    maxSubscriptions: 5,
    maxStreams: 20,
    helloTimeoutMs: 200,
    authenticate: (token) => (token === 'bad' ? null : { token }),
    authorize: (principal, action, stream) =>
      !(stream.startsWith('secret') && (principal as { token?: string }).token !== 'admin') &&
      !(action === 'publish' && stream.startsWith('readonly')),
  });
  good = await client(served.gateway.url, { onStateChange: (s: string) => states.push(s) });
  goodStream = good.stream(uniqueName('good'));
  goodFollower = collect(goodStream.follow());
  await goodFollower.ready;
});

afterAll(async () => {
  await good.close();
  await served.close();
});

/** After each bad client: the good client still publishes and follows, on its first connection. */
async function goodClientStillWorks(): Promise<void> {
  published++;
  expect(await goodStream.publish(published)).toBe(published);
  await eventually(() => goodFollower.received.length === published, 5000, 'the good follower');
  expect(states.filter((s) => s === 'reconnecting')).toEqual([]);
}

describe('malformed input closes that connection with the right code', () => {
  const cases: [string, (c: Awaited<ReturnType<typeof rawClient>>) => void, number, boolean][] = [
    ['a text message', (c) => c.sendBytes('hello', false), CloseCode.UNSUPPORTED_DATA, true],
    [
      'trailing bytes after a value',
      (c) => c.sendBytes(new Uint8Array([0x01, 0x02])),
      CloseCode.INVALID_PAYLOAD,
      true,
    ],
    [
      'an unknown extension type',
      (c) => c.sendBytes(new Uint8Array([0xc7, 1, 5, 0])),
      CloseCode.INVALID_PAYLOAD,
      true,
    ],
    [
      'truncated MessagePack',
      (c) => c.sendBytes(new Uint8Array([0x93, 0x01])),
      CloseCode.INVALID_PAYLOAD,
      true,
    ],
    ['a map instead of an array', (c) => c.send({ op: 1 } as never), CloseCode.PROTOCOL_ERROR, true],
    ['an unknown opcode', (c) => c.send([99, 1]), CloseCode.PROTOCOL_ERROR, true],
    [
      'a PUBLISH with a string request id',
      (c) => c.send([Op.PUBLISH, 'x', 1, 1, [[1]]]),
      CloseCode.PROTOCOL_ERROR,
      true,
    ],
    ['a PUBLISH with no items', (c) => c.send([Op.PUBLISH, 1, 1, 1, []]), CloseCode.PROTOCOL_ERROR, true],
    [
      'a FOLLOW with a negative position',
      (c) => c.send([Op.FOLLOW, 1, 1, -5, null]),
      CloseCode.PROTOCOL_ERROR,
      true,
    ],
    [
      'a second HELLO',
      (c) => c.send([Op.HELLO, PROTOCOL_VERSION, null, null]),
      CloseCode.PROTOCOL_ERROR,
      true,
    ],
    ['a request before HELLO', (c) => c.send([Op.BOUNDS, 1, 1]), CloseCode.PROTOCOL_ERROR, false],
    [
      'an unsupported protocol version',
      (c) => c.send([Op.HELLO, 99, null, null]),
      CloseCode.UNSUPPORTED_VERSION,
      false,
    ],
    [
      'a message over maxPayloadBytes',
      (c) => c.sendBytes(new Uint8Array(5000)),
      CloseCode.MESSAGE_TOO_BIG,
      true,
    ],
    [
      'a refused token',
      (c) => c.send([Op.HELLO, PROTOCOL_VERSION, 'bad', null]),
      CloseCode.UNAUTHORIZED,
      false,
    ],
  ];
  for (const [what, act, code, hello] of cases) {
    it(`${what}: close ${code}`, async () => {
      const c = await rawClient(served.gateway.url);
      if (hello) await c.hello();
      const before = c.messages.length;
      act(c);
      const closed = await c.closed;
      expect(closed.code).toBe(code);
      if (code >= 4000 || (code !== CloseCode.MESSAGE_TOO_BIG && code !== 1006)) {
        expect(closed.reason).toMatch(/^WEFT_ERR_[A-Z_]+: /);
      }
      if (!hello) expect(c.messages.slice(before)).toEqual([]); // nothing at all before WELCOME
      await goodClientStillWorks();
    });
  }

  it('no HELLO in time: close 1008, and nothing was sent', async () => {
    const c = await rawClient(served.gateway.url);
    const closed = await c.closed;
    expect(closed.code).toBe(CloseCode.POLICY_VIOLATION);
    expect(c.messages).toEqual([]);
    await goodClientStillWorks();
  });
});

describe('bad requests get a coded error for that request only', () => {
  it('an unknown stream handle, a bad stream name, a bad topic, a bad retention', async () => {
    const c = await rawClient(served.gateway.url);
    await c.hello();
    c.send([Op.BOUNDS, 1, 42]);
    c.send([Op.OPEN, 1, 'a b', null]);
    c.send([Op.PUBLISH, 2, 1, 1, [['x']]]);
    c.send([Op.OPEN, 2, uniqueName('ok'), null]);
    c.send([Op.PUBLISH, 3, 2, 2, [['x', 'a..b']]]);
    c.send([Op.OPEN, 3, uniqueName('ret'), { maxLength: -4 }]);
    c.send([Op.READ, 4, 3, 1, 10]);
    c.send([Op.PUBLISH, 5, 2, 3, [['y', 7]]]);
    c.send([Op.FAIL, 6, 2, { message: 'boom', name: 'Error' }]);
    const err = async (reqId: number) =>
      (await c.next((m) => m[0] === Op.ERROR && m[1] === reqId))[2] as { code: string };
    expect((await err(1)).code).toBe('WEFT_ERR_INVALID_ARGUMENT');
    expect((await err(2)).code).toBe('WEFT_ERR_INVALID_ARGUMENT');
    expect((await err(3)).code).toBe('WEFT_ERR_PATTERN');
    expect((await err(4)).code).toBe('WEFT_ERR_INVALID_ARGUMENT');
    expect((await err(5)).code).toBe('WEFT_ERR_INVALID_ARGUMENT');
    expect(await c.next((m) => m[0] === Op.RESULT && m[1] === 6)).toEqual([Op.RESULT, 6, null]);
    expect(c.ws.readyState).toBe(c.ws.OPEN);
    c.close();
    await goodClientStillWorks();
  });

  it('a flood of FOLLOW beyond maxSubscriptions: END with WEFT_ERR_LIMIT for the excess', async () => {
    const c = await rawClient(served.gateway.url);
    await c.hello();
    c.send([Op.OPEN, 1, uniqueName('flood'), null]);
    for (let sub = 1; sub <= 50; sub++) c.send([Op.FOLLOW, sub, 1, 0, null]);
    const end = await c.next((m) => m[0] === Op.END && m[1] === 6);
    expect((end[2] as { code: string }).code).toBe('WEFT_ERR_LIMIT');
    await c.next((m) => m[0] === Op.END && m[1] === 50);
    await eventually(() => served.gateway.stats().subscriptions >= 5 + 1, 2000); // the good follower too
    expect(served.gateway.stats().subscriptions).toBeLessThanOrEqual(5 + 1);
    c.close();
    await goodClientStillWorks();
  });

  it('streams beyond maxStreams fail every request with WEFT_ERR_LIMIT', async () => {
    const c = await rawClient(served.gateway.url);
    await c.hello();
    for (let sid = 1; sid <= 25; sid++) c.send([Op.OPEN, sid, uniqueName('many'), null]);
    c.send([Op.BOUNDS, 1, 25]);
    c.send([Op.BOUNDS, 2, 20]);
    expect(((await c.next((m) => m[1] === 1 && m[0] === Op.ERROR))[2] as { code: string }).code).toBe(
      'WEFT_ERR_LIMIT',
    );
    expect((await c.next((m) => m[1] === 2))[0]).toBe(Op.RESULT);
    c.close();
    await goodClientStillWorks();
  });
});

describe('authorization', () => {
  it('refuses actions per stream with WEFT_ERR_FORBIDDEN; other streams and principals are unaffected', async () => {
    const user = await client(served.gateway.url, { token: 'user' });
    const admin = await client(served.gateway.url, { token: 'admin' });
    const secret = uniqueName('secret');
    const err = await user
      .stream(secret)
      .publish(1)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WeftError);
    expect((err as WeftError).code).toBe('WEFT_ERR_FORBIDDEN');
    const denied = collect(user.stream(uniqueName('secret')).follow({ from: 'start' }));
    expect(((await denied.ended) as WeftError).code).toBe('WEFT_ERR_FORBIDDEN');
    expect(await admin.stream(secret).publish(1)).toBe(1);
    const ro = uniqueName('readonly');
    await expect(user.stream(ro).publish(1)).rejects.toMatchObject({ code: 'WEFT_ERR_FORBIDDEN' });
    expect(await user.stream(ro).read()).toEqual([]);
    await user.close();
    await admin.close();
    await goodClientStillWorks();
  });
});

describe('limits', () => {
  it('connections beyond maxConnections are closed with 1008', async () => {
    const small = await serve({ maxConnections: 2 });
    const a = await rawClient(small.gateway.url);
    const b = await rawClient(small.gateway.url);
    const c = await rawClient(small.gateway.url);
    expect((await c.closed).code).toBe(CloseCode.POLICY_VIOLATION);
    a.close();
    b.close();
    await sleep(20);
    await small.close();
  });

  it('a gateway close sends 1001 to every client; the gateway stops listening', async () => {
    const g = await serve();
    const c = await rawClient(g.gateway.url);
    await c.hello();
    await g.close();
    expect((await c.closed).code).toBe(CloseCode.GOING_AWAY);
    await expect(rawClient(g.gateway.url)).rejects.toThrow();
  });
});
