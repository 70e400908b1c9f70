/** Shared set-up for the WebSocket tests: a gateway over a memory fabric, and clients. */
import { createFabric, type Fabric, type FabricConfig } from '../../index.js';
import {
  type ServeWebSocketOptions,
  serveWebSocket,
  type WebSocketClientTransport,
  type WebSocketGateway,
} from '../../transports/websocket/index.js';

export interface Served {
  backing: Fabric;
  gateway: WebSocketGateway;
  close(): Promise<void>;
}

export async function serve(options: Partial<ServeWebSocketOptions> = {}): Promise<Served> {
  const backing = options.fabric ?? (await createFabric({ transport: 'memory' }));
  const gateway = await serveWebSocket({ port: 0, ...options, fabric: backing });
  return {
    backing,
    gateway,
    async close() {
      await gateway.close();
      await backing.close();
    },
  };
}

/** A client fabric with quick reconnects (tests cut connections on purpose). */
export function client(url: string, options: Omit<FabricConfig, 'url' | 'transport'> = {}): Promise<Fabric> {
  return createFabric({
    transport: 'websocket',
    url,
    reconnect: { initialDelayMs: 2, maxDelayMs: 40 },
    ...options,
  });
}

export function wsTransport(fabric: Fabric): WebSocketClientTransport {
  return fabric.transport as WebSocketClientTransport;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Dense run check: returns a description of the first problem, or undefined. */
export function denseProblem(seqs: readonly number[], from: number): string | undefined {
  for (let i = 0; i < seqs.length; i++) {
    if (seqs[i] !== from + i) return `at index ${i}: got ${seqs[i]}, want ${from + i}`;
  }
  return undefined;
}
