/**
 * Back-pressure and slow clients: a subscription is fed only as fast as its socket drains; a
 * client that falls more than `maxLagEvents` behind is cut with 4008 and resumes (exactly once)
 * when retention allows; a client that pipelines reads it never consumes cannot grow the
 * gateway's buffers; a follower that is behind gets many events per message.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { TruncatedError } from '../../index.js';
import { CloseCode, Op } from '../../transports/websocket/protocol.js';
import { collect, eventually, tick, uniqueName } from '../helpers/async.js';
import { client, denseProblem, serve, sleep } from './helpers.js';
import { rawClient } from './raw-client.js';
import { TcpProxy } from './tcp-proxy.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

const payload = 'x'.repeat(400);
const HIGH = 64 * 1024;

describe('slow clients', () => {
  it('a client that stops reading is fed up to the high watermark only, then cut with 4008; a fast client is unaffected', async () => {
    const served = await serve({ highWaterBytes: HIGH, maxLagEvents: 2_000, lagCheckMs: 20 });
    cleanup.push(() => served.close());
    const name = uniqueName('slow');
    const fast = await client(served.gateway.url);
    cleanup.push(() => fast.close());
    const fastFollower = collect(fast.stream(name).follow({ from: 'start' }));
    await fastFollower.ready;

    const slow = await rawClient(served.gateway.url);
    await slow.hello();
    slow.send([Op.OPEN, 1, name, null]);
    slow.send([Op.FOLLOW, 1, 1, 0, null]);
    await slow.next((m) => m[0] === Op.STARTED);
    slow.ws.pause(); // stops reading: kernel buffers fill, then the gateway's

    const server = served.backing.stream(name);
    let n = 0;
    while (served.gateway.stats().lagCuts === 0 && n < 200_000) {
      await server.publishBatch(Array.from({ length: 100 }, () => ({ data: payload })));
      n += 100;
      await tick(); // the fast client shares this process: let it read
    }
    expect(served.gateway.stats().lagCuts).toBe(1);
    // What the gateway itself held for any socket stayed near the high watermark (one frame over at most).
    expect(served.gateway.stats().peakBufferedBytes).toBeLessThan(HIGH + 300 * 1024);
    slow.ws.resume();
    const closed = await slow.closed;
    expect([CloseCode.LAGGED, 1006]).toContain(closed.code);
    if (closed.code === CloseCode.LAGGED) expect(closed.reason).toMatch(/^WEFT_ERR_LAGGED: /);
    await eventually(() => fastFollower.received.length === n, 20_000, 'the fast follower');
    expect(
      denseProblem(
        fastFollower.received.map((e) => e.seq),
        1,
      ),
    ).toBeUndefined();
  });

  it('a Weft client cut for lagging resumes exactly once when retention allows', async () => {
    const served = await serve({ highWaterBytes: HIGH, maxLagEvents: 1_000, lagCheckMs: 20 });
    cleanup.push(() => served.close());
    const proxy = await TcpProxy.start(served.gateway.port);
    cleanup.push(() => proxy.close());
    const name = uniqueName('resume-lag');
    const fabric = await client(proxy.url);
    cleanup.push(() => fabric.close());
    const c = collect(fabric.stream(name).follow({ from: 'start' }));
    await c.ready;
    proxy.stall('toClient'); // a slow network: nothing is lost, nothing moves
    const server = served.backing.stream(name);
    let n = 0;
    while (served.gateway.stats().lagCuts === 0 && n < 200_000) {
      await server.publishBatch(Array.from({ length: 100 }, () => ({ data: payload })));
      n += 100;
      if (n % 2_000 === 0) await sleep(1);
    }
    expect(served.gateway.stats().lagCuts).toBe(1);
    proxy.unstall();
    await eventually(() => c.received.length >= n, 20_000, `the follower to resume to ${n}`);
    expect(c.received.length).toBe(n);
    expect(
      denseProblem(
        c.received.map((e) => e.seq),
        1,
      ),
    ).toBeUndefined();
    expect(proxy.accepted).toBeGreaterThanOrEqual(2);
  });

  it('a Weft client cut for lagging past retention gets TruncatedError, not a jump', async () => {
    const served = await serve({ highWaterBytes: HIGH, maxLagEvents: 1_000, lagCheckMs: 20 });
    cleanup.push(() => served.close());
    const proxy = await TcpProxy.start(served.gateway.port);
    cleanup.push(() => proxy.close());
    const name = uniqueName('trunc-lag');
    const fabric = await client(proxy.url);
    cleanup.push(() => fabric.close());
    const c = collect(fabric.stream(name, { maxLength: 3_000 }).follow({ from: 'start' }));
    await c.ready;
    proxy.stall('toClient');
    const server = served.backing.stream(name, { maxLength: 3_000 });
    let n = 0;
    while (served.gateway.stats().lagCuts === 0 && n < 200_000) {
      await server.publishBatch(Array.from({ length: 100 }, () => ({ data: payload })));
      n += 100;
      if (n % 2_000 === 0) await sleep(1);
    }
    for (let i = 0; i < 50; i++)
      await server.publishBatch(Array.from({ length: 100 }, () => ({ data: payload })));
    proxy.unstall();
    const end = await c.ended;
    expect(end).toBeInstanceOf(TruncatedError);
    const seqs = c.received.map((e) => e.seq);
    expect(denseProblem(seqs, 1)).toBeUndefined();
    expect((end as TruncatedError).requested).toBe(seqs.length + 1);
  });
});

describe('bounded gateway memory', () => {
  it('pipelined reads that are never consumed do not grow the gateway past its watermarks', async () => {
    const served = await serve({ highWaterBytes: HIGH, maxBufferedBytes: 256 * 1024 });
    cleanup.push(() => served.close());
    const name = uniqueName('reads');
    await served.backing.stream(name).publishBatch(Array.from({ length: 1_000 }, () => ({ data: payload })));
    const c = await rawClient(served.gateway.url);
    await c.hello();
    c.send([Op.OPEN, 1, name, null]);
    c.ws.pause();
    for (let i = 1; i <= 2_000; i++) c.send([Op.READ, i, 1, 1, 1_000]); // ~400 KiB answers each
    await sleep(300);
    const peak = served.gateway.stats().peakBufferedBytes;
    expect(peak).toBeLessThan(HIGH + 2 * 300 * 1024);
    c.close();
  });

  it('a follower that is behind gets many events per message', async () => {
    const served = await serve();
    cleanup.push(() => served.close());
    const name = uniqueName('batching');
    await served.backing.stream(name).publishBatch(Array.from({ length: 10_000 }, (_, i) => ({ data: i })));
    for (let i = 0; i < 10_000; i++) served.backing.stream(name).publish(i);
    const fabric = await client(served.gateway.url);
    cleanup.push(() => fabric.close());
    const before = served.gateway.stats().messagesSent;
    const c = collect(fabric.stream(name).follow({ from: 'start' }));
    await eventually(() => c.received.length === 20_000, 10_000, 'history');
    const messages = served.gateway.stats().messagesSent - before;
    expect(messages).toBeLessThan(200);
  });
});
