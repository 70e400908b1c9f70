/**
 * The client against a scripted gateway (raw `ws`, speaking protocol v1 by hand): what it does with
 * duplicated, overlapping and gapped EVENTS (resequencer: each event once, a gap re-requested),
 * multi-message groups, malformed messages, refused tokens, oversized publishes, bad config.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { ConfigError, createFabric, type Fabric, type WeftEvent } from '../../index.js';
import { decode, encode, Op } from '../../transports/websocket/protocol.js';
import { collect, eventually } from '../helpers/async.js';
import { serve } from './helpers.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

type Script = (msg: unknown[], send: (m: unknown[]) => void, raw: (b: Uint8Array | string) => void) => void;

/** A fake gateway: WELCOME on HELLO, empty bounds, and `script` for everything else. */
async function fakeGateway(script: Script) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const received: unknown[][] = [];
  let connections = 0;
  wss.on('connection', (ws) => {
    connections++;
    const send = (m: unknown[]) => ws.send(encode(m));
    ws.on('message', (data) => {
      const msg = decode(data as Buffer);
      received.push(msg);
      if (msg[0] === Op.HELLO) {
        send([
          Op.WELCOME,
          1,
          {
            session: 'fake',
            resumed: false,
            maxPayloadBytes: 4096,
            heartbeatMs: 60_000,
            supports: {
              replay: true,
              retention: { maxLength: true, maxAgeMs: true, ttlMs: true },
              epochs: true,
              groups: false,
            },
          },
        ]);
      } else if (msg[0] === Op.BOUNDS) {
        send([Op.RESULT, msg[1], ['e1', 1, 1, false]]);
      } else {
        script(msg, send, (b) => ws.send(b));
      }
    });
  });
  cleanup.push(() => new Promise<void>((resolve) => wss.close(() => resolve())));
  return {
    url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}`,
    received,
    get connections() {
      return connections;
    },
    closeAll() {
      for (const c of wss.clients) c.terminate();
    },
  };
}

async function connect(url: string, extra: Record<string, unknown> = {}): Promise<Fabric> {
  const f = await createFabric({
    transport: 'websocket',
    url,
    reconnect: { initialDelayMs: 2, maxDelayMs: 20 },
    ...extra,
  });
  cleanup.push(() => f.close());
  return f;
}

/** Events from..to, flat on the wire: time, topic, data per event. */
const evs = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => [1000 + from + i, null, from + i]).flat();

describe('the resequencer between the wire and the mirror', () => {
  it('drops duplicated and overlapping events, and re-requests a gap instead of skipping it', async () => {
    const follows: unknown[][] = [];
    const gw = await fakeGateway((msg, send) => {
      if (msg[0] !== Op.FOLLOW) return;
      follows.push(msg);
      const subId = msg[1] as number;
      send([Op.STARTED, subId, 'e1', 7]);
      if (follows.length === 1) {
        send([Op.EVENTS, 7, 1, 0, evs(1, 3)]);
        send([Op.EVENTS, 7, 2, 0, evs(2, 5)]); // overlap 2..3
        send([Op.EVENTS, 7, 5, 0, evs(5, 5)]); // duplicate 5
        send([Op.EVENTS, 7, 8, 0, evs(8, 9)]); // gap: 6 and 7 never come on this subscription
      } else {
        // The re-subscription asks from the last delivered sequence.
        expect(msg[3]).toBe(5);
        send([Op.EVENTS, 7, 6, 0, evs(6, 10)]);
      }
    });
    const fabric = await connect(gw.url);
    const c = collect(fabric.stream<number>('s').follow({ from: 'start' }));
    await eventually(() => c.received.length >= 10, 5000, 'ten events');
    await new Promise((r) => setTimeout(r, 20));
    expect(c.received.map((e) => e.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(c.received.map((e) => e.data)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(follows.length).toBe(2);
    const m = fabric.metrics().transportMetrics;
    expect(m.resubscribes_total).toBe(1);
    expect(m.duplicates_dropped_total).toBeGreaterThanOrEqual(3); // 2, 3, 5, and 8, 9 again
    expect(m.connected).toBe(1);
    expect(gw.received.some((m) => m[0] === Op.UNFOLLOW && m[1] === follows[0]![1])).toBe(true);
  });

  it('delivers a multi-message group as one batch', async () => {
    const gw = await fakeGateway((msg, send) => {
      if (msg[0] !== Op.FOLLOW) return;
      const subId = msg[1] as number;
      send([Op.STARTED, subId, 'e1', 7]);
      send([Op.EVENTS, 7, 1, 1, evs(1, 2)]);
      send([Op.EVENTS, 7, 3, 1, evs(3, 4)]);
      send([Op.EVENTS, 7, 5, 0, evs(5, 6)]);
      send([Op.END, subId, null]);
    });
    const fabric = await connect(gw.url);
    const f = fabric.stream<number>('s').follow({ from: 'start' });
    const batches: number[][] = [];
    for await (const b of f.batches()) batches.push(b.map((e: WeftEvent<number>) => e.seq));
    expect(batches).toEqual([[1, 2, 3, 4, 5, 6]]);
  });
});

describe('hostile or broken gateways', () => {
  it('a malformed message drops the connection, is reported, and the client reconnects and resumes', async () => {
    let follows = 0;
    const errors: Error[] = [];
    const gw = await fakeGateway((msg, send, raw) => {
      if (msg[0] !== Op.FOLLOW) return;
      follows++;
      const subId = msg[1] as number;
      send([Op.STARTED, subId, 'e1', 7]);
      if (follows === 1) {
        send([Op.EVENTS, 7, 1, 0, evs(1, 2)]);
        raw(new Uint8Array([0xc1, 0xff])); // not MessagePack
      } else {
        expect(msg[3]).toBe(2);
        send([Op.EVENTS, 7, 3, 0, evs(3, 4)]);
      }
    });
    const fabric = await connect(gw.url, { onError: (e: Error) => errors.push(e) });
    const c = collect(fabric.stream<number>('s').follow({ from: 'start' }));
    await eventually(() => c.received.length >= 4, 5000, 'four events');
    expect(c.received.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(gw.connections).toBe(2);
    expect(errors.some((e) => (e as { code?: string }).code === 'WEFT_ERR_FRAME')).toBe(true);
  });

  it('a publish larger than the gateway accepts is rejected locally with a clear error', async () => {
    const gw = await fakeGateway(() => {});
    const fabric = await connect(gw.url);
    const err = await fabric
      .stream('s')
      .publish('x'.repeat(10_000))
      .catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('WEFT_ERR_INVALID_ARGUMENT');
    expect((err as Error).message).toMatch(/4096/);
    expect(fabric.supports.maxEventBytes).toBe(4096);
  });
});

describe('handshake and config', () => {
  it('a refused token fails createFabric with WEFT_ERR_UNAUTHORIZED and no data is sent before auth', async () => {
    const served = await serve({ authenticate: (token) => (token === 'good' ? { user: 'u' } : null) });
    cleanup.push(() => served.close());
    const bad = await createFabric({ transport: 'websocket', url: served.gateway.url, token: 'bad' }).catch(
      (e: unknown) => e,
    );
    expect((bad as { code?: string }).code).toBe('WEFT_ERR_UNAUTHORIZED');
    const good = await createFabric({
      transport: 'websocket',
      url: served.gateway.url,
      token: async () => 'good',
    });
    expect(await good.stream('s').publish(1)).toBe(1);
    await good.close();
  });

  it('rejects bad options with a ConfigError naming them', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ url: 'http://x' }, /url/],
      [{ url: 'ws://127.0.0.1:1', reconnect: { jitter: 3 } }, /jitter/],
      [{ url: 'ws://127.0.0.1:1', maxInflightPublishes: 0 }, /maxInflightPublishes/],
      [{ url: 'ws://127.0.0.1:1', token: 5 }, /token/],
      [{ url: 'ws://127.0.0.1:1', tokn: 'x' }, /tokn/],
    ];
    for (const [config, message] of cases) {
      const err = await createFabric({ transport: 'websocket', ...config }).catch((e: unknown) => e);
      expect(err, JSON.stringify(config)).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(message);
    }
  });

  it('an unreachable gateway fails createFabric within connectTimeoutMs', async () => {
    const started = Date.now();
    const err = await createFabric({
      transport: 'websocket',
      url: 'ws://127.0.0.1:9',
      connectTimeoutMs: 300,
      reconnect: { initialDelayMs: 20 },
    }).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('WEFT_ERR_TRANSPORT');
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
