/**
 * Resume, exactly once: connections cut under publishers and followers (through a TCP proxy),
 * acknowledgements lost, a gateway restarted with an empty memory fabric, retention passing a
 * disconnected follower, a silent (frozen) network.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  createFabric,
  type Fabric,
  StreamResetError,
  TransportError,
  TruncatedError,
  WeftError,
  type WeftEvent,
} from '../../index.js';
import { backoffDelay, resolveBackoff } from '../../transports/websocket/backoff.js';
import { serveWebSocket } from '../../transports/websocket/index.js';
import { collect, eventually, uniqueName } from '../helpers/async.js';
import { client, denseProblem, type Served, serve, sleep, wsTransport } from './helpers.js';
import { TcpProxy } from './tcp-proxy.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

async function setup(options: Parameters<typeof serve>[0] = {}) {
  const served = await serve(options);
  const proxy = await TcpProxy.start(served.gateway.port);
  cleanup.push(
    () => served.close(),
    () => proxy.close(),
  );
  return { ...served, proxy };
}
async function track(f: Fabric | Promise<Fabric>): Promise<Fabric> {
  const fabric = await f;
  cleanup.push(() => fabric.close());
  return fabric;
}

describe('resume after cuts', () => {
  it('every follower sees every event exactly once, in order, checked after each of 15 cuts', async () => {
    const { proxy, backing } = await setup();
    const pub = await track(client(proxy.url));
    const sub = await track(client(proxy.url));
    const name = uniqueName('cuts');
    const s = sub.stream<number>(name);
    const p = pub.stream<number>(name);
    await p.publishBatch([1, 2, 3, 4, 5].map((data) => ({ data })));
    const followers = [
      collect(s.follow({ from: 'start' })),
      collect(s.follow({ last: 3 })),
      collect(s.follow({ from: 4 })),
    ];
    const starts = [1, 3, 4];
    await Promise.all(followers.map((f) => f.ready));
    let next = 6;
    let confirmed = 5;
    let publishing = true;
    const publisher = (async () => {
      while (publishing) {
        // Five publishes in flight at a time: cuts land between send and acknowledgement.
        const batch = [next, next + 1, next + 2, next + 3, next + 4];
        next += 5;
        const seqs = await Promise.all(batch.map((v) => p.publish(v)));
        expect(seqs).toEqual(batch); // published in order, applied once: data === seq
        confirmed = batch[4]!;
      }
    })();
    for (let cut = 1; cut <= 15; cut++) {
      await sleep(15 + Math.random() * 40);
      proxy.cut();
      const target = confirmed;
      await eventually(
        () =>
          followers.every((f) => f.received.length > 0 && f.received[f.received.length - 1]!.seq >= target),
        10_000,
        `followers to reach ${target} after cut ${cut}`,
      );
      followers.forEach((f, i) => {
        const seqs = f.received.map((e: WeftEvent<number>) => e.seq);
        expect(denseProblem(seqs, starts[i]!), `follower ${i} after cut ${cut}`).toBeUndefined();
        for (const e of f.received) expect(e.data).toBe(e.seq);
      });
    }
    publishing = false;
    await publisher;
    await p.close();
    for (const f of followers) expect(await f.ended).toBeUndefined();
    const stored = await backing.stream<number>(name).read();
    expect(stored.length).toBe(confirmed);
    expect(stored.every((e) => e.data === e.seq)).toBe(true);
    expect(proxy.cuts).toBeGreaterThanOrEqual(15);
    expect(sub.metrics().transportMetrics.reconnects_total).toBeGreaterThanOrEqual(15);
  });

  it('a publish whose acknowledgement was lost is confirmed after the reconnect, and applied once', async () => {
    const { proxy, backing, gateway } = await setup();
    const fabric = await track(client(proxy.url));
    const name = uniqueName('ack');
    const s = fabric.stream(name);
    expect(await s.publish('a')).toBe(1);
    proxy.freeze('toClient'); // the gateway gets the publish; its answer is lost
    const pending = s.publish('b');
    const applied = async () => (await backing.stream(name).read()).length === 2;
    for (let i = 0; i < 200 && !(await applied()); i++) await sleep(5);
    expect(await applied()).toBe(true);
    proxy.cut();
    expect(await pending).toBe(2);
    expect((await backing.stream(name).read()).map((e) => e.data)).toEqual(['a', 'b']);
    expect(gateway.stats().deduplicatedPublishes).toBeGreaterThanOrEqual(1);
  });

  it('a dropped message in flight is sent again after the reconnect (nothing lost)', async () => {
    const { proxy, backing } = await setup();
    const fabric = await track(client(proxy.url));
    const name = uniqueName('lost');
    const s = fabric.stream(name);
    await s.publish(0);
    proxy.freeze('toServer'); // the publishes never reach the gateway
    const pending = [s.publish(1), s.publishBatch([{ data: 2 }, { data: 3 }])];
    await sleep(30);
    expect((await backing.stream(name).read()).length).toBe(1);
    proxy.cut();
    expect(await Promise.all(pending)).toEqual([2, [3, 4]]);
    expect((await backing.stream(name).read()).map((e) => e.data)).toEqual([0, 1, 2, 3]);
  });
});

describe('what cannot be resumed is reported, never skipped', () => {
  it('a resume past retention ends the follower with TruncatedError after what it had', async () => {
    const { proxy, backing } = await setup();
    const fabric = await track(client(proxy.url));
    const name = uniqueName('trunc');
    const s = fabric.stream<number>(name, { maxLength: 10 });
    const c = collect(s.follow({ from: 'start' }));
    await c.ready;
    await s.publishBatch([1, 2, 3].map((data) => ({ data })));
    await eventually(() => c.received.length === 3, 5000, 'three events');
    proxy.freeze('both');
    const server = backing.stream<number>(name, { maxLength: 10 });
    for (let i = 4; i <= 100; i++) await server.publish(i);
    proxy.cut();
    const end = await c.ended;
    expect(end).toBeInstanceOf(TruncatedError);
    expect((end as TruncatedError).requested).toBe(4);
    expect((end as TruncatedError).firstAvailable).toBe(91);
    expect(c.received.map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  it('a gateway restarted with an empty fabric is detected: StreamResetError, not the wrong history', async () => {
    const a = await serve();
    const port = a.gateway.port;
    const fabric = await track(client(a.gateway.url, { reconnect: { initialDelayMs: 20, maxDelayMs: 50 } }));
    const name = uniqueName('epoch');
    const s = fabric.stream<string>(name);
    await s.publishBatch([{ data: 'old-1' }, { data: 'old-2' }]);
    const c = collect(s.follow({ from: 'start' }));
    await eventually(() => c.received.length === 2, 5000, 'history');
    await a.close();
    // A new gateway on the same port, over a new memory fabric that also has a stream of that name.
    const b = await serve({ port });
    cleanup.push(() => b.close());
    await b.backing
      .stream<string>(name)
      .publishBatch([{ data: 'new-1' }, { data: 'new-2' }, { data: 'new-3' }]);
    const end = await c.ended;
    expect(end).toBeInstanceOf(StreamResetError);
    expect(c.received.map((e) => e.data)).toEqual(['old-1', 'old-2']);
  });

  it('publishes sent before the gateway lost the session are rejected as unconfirmed, later ones go through', async () => {
    const a = await serve();
    const proxy = await TcpProxy.start(a.gateway.port);
    cleanup.push(() => proxy.close());
    const fabric = await track(client(proxy.url));
    const s = fabric.stream(uniqueName('session'));
    await s.publish('x');
    proxy.freeze('toServer');
    const lost = s.publish('in flight');
    await sleep(20);
    await a.close(); // the gateway and its sessions are gone
    const b = await serveWebSocket({ fabric: await createFabric(), port: a.gateway.port });
    cleanup.push(() => b.close());
    proxy.cut();
    const err = await lost.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WeftError);
    expect((err as WeftError).code).toBe('WEFT_ERR_UNCONFIRMED');
    expect(await s.publish('after')).toBe(1); // the new gateway's fresh stream
  });
});

describe('liveness', () => {
  it('a silent network is detected by heartbeats; the follower continues with no gap', async () => {
    const { proxy, backing } = await setup({ heartbeatMs: 60 });
    const fabric = await track(client(proxy.url));
    const name = uniqueName('hb');
    const s = fabric.stream<number>(name);
    const c = collect(s.follow({ from: 'start' }));
    await c.ready;
    const server = backing.stream<number>(name);
    await server.publish(1);
    await eventually(() => c.received.length === 1, 5000);
    proxy.freeze('both');
    await server.publish(2);
    await server.publish(3);
    const before = proxy.accepted;
    await eventually(() => proxy.accepted > before, 5000, 'a reconnect after heartbeat silence');
    await eventually(() => c.received.length === 3, 5000, 'events 2 and 3');
    expect(c.received.map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  it('reconnect delays grow exponentially with jitter, capped', () => {
    const b = resolveBackoff({ initialDelayMs: 100, maxDelayMs: 1000, factor: 2, jitter: 0.5 });
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, b, () => 0))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
    expect([1, 2, 3].map((n) => backoffDelay(n, b, () => 1))).toEqual([50, 100, 200]);
    expect(() => resolveBackoff({ jitter: 2 })).toThrow(/jitter/);
    expect(() => resolveBackoff({ intialDelayMs: 1 } as never)).toThrow(/intialDelayMs/);
  });

  it('after maxAttempts the transport fails: pending calls and followers get a TransportError', async () => {
    const served: Served = await serve();
    const fabric = await createFabric({
      transport: 'websocket',
      url: served.gateway.url,
      reconnect: { initialDelayMs: 5, maxDelayMs: 10, maxAttempts: 3 },
    });
    const s = fabric.stream(uniqueName('giveup'));
    const c = collect(s.follow());
    await c.ready;
    await served.close();
    const pending = s.publish(1);
    expect(await pending.catch((e: unknown) => e)).toBeInstanceOf(TransportError);
    expect(await c.ended).toBeInstanceOf(TransportError);
    expect(await fabric.transport.closed).toBeInstanceOf(TransportError);
    expect(wsTransport(fabric).state).toBe('closed');
    await fabric.close();
  });
});
