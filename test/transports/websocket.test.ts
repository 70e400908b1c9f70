/**
 * The conformance suite over the WebSocket transport, unchanged: a client fabric talking over
 * loopback to a gateway in the same process, backed by a memory fabric. The second run goes
 * through a TCP proxy that cuts every connection at random intervals: every case must hold across
 * reconnects (resume from the last delivered sequence, idempotent publish retries). The sink suite
 * runs over the gateway's consumer-group proxy, directly and through the cutting proxy.
 */
import { afterAll } from 'vitest';
import { createFabric, type Fabric } from '../../index.js';
import { serveWebSocket, type WebSocketGateway } from '../../transports/websocket/index.js';
import { sinkSuite } from '../conformance/sink-suite.js';
import { transportSuite } from '../conformance/transport-suite.js';
import { TcpProxy } from '../websocket/tcp-proxy.js';

const gateways: WebSocketGateway[] = [];
const proxies: TcpProxy[] = [];
afterAll(async () => {
  for (const p of proxies) await p.close();
  for (const g of gateways) await g.close();
  if (proxies.length > 0)
    console.log(
      `websocket conformance: ${proxies.reduce((n, p) => n + p.cuts, 0)} connections cut under the suites`,
    );
});

const fastReconnect = { initialDelayMs: 2, maxDelayMs: 40 };

/** A client fabric behind a proxy that cuts its TCP connection every 30-150 ms (CUT_MIN/CUT_MAX). */
async function cutFabric(): Promise<Fabric> {
  const backing = await createFabric({ transport: 'memory' });
  const gateway = await serveWebSocket({ fabric: backing, port: 0 });
  gateways.push(gateway);
  const proxy = await TcpProxy.start(gateway.port);
  proxies.push(proxy);
  const fabric = await createFabric({ transport: 'websocket', url: proxy.url, reconnect: fastReconnect });
  proxy.cutEvery(Number(process.env.CUT_MIN ?? 30), Number(process.env.CUT_MAX ?? 150));
  return fabric;
}

transportSuite('websocket', async () => {
  const backing = await createFabric({ transport: 'memory' });
  const gateway = await serveWebSocket({ fabric: backing, port: 0 });
  gateways.push(gateway);
  return createFabric({ transport: 'websocket', url: gateway.url });
});

transportSuite('websocket, connection cut every 30-150 ms', cutFabric, { settleMs: 10_000 });

// Sinks over the wire: the gateway runs the memory fabric's consumer-group operations.
sinkSuite(
  'websocket',
  async () => {
    const backing = await createFabric({ transport: 'memory' });
    const gateway = await serveWebSocket({ fabric: backing, port: 0 });
    gateways.push(gateway);
    return createFabric({ transport: 'websocket', url: gateway.url });
  },
  { modelRuns: 8 },
);

// Sinks over a connection cut every 30-150 ms: group reads and claims are answered once per key
// (a retry gets the same entries), waits wake on reconnect, acks are idempotent.
sinkSuite('websocket, connection cut every 30-150 ms', cutFabric, { modelRuns: 5 });
