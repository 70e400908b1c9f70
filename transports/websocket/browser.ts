/**
 * The browser entry: Weft's core API plus the WebSocket client, registered as the 'websocket'
 * transport over the browser's own WebSocket. No Node built-ins (bundle it with esbuild/vite as is).
 *
 *   import { createFabric } from 'weft/browser';
 *   const fabric = await createFabric({ transport: 'websocket', url: 'wss://example.com/weft', token });
 */
import { createFabricFrom, type Fabric, type FabricConfig, registerTransport } from '../../core/fabric.js';
import { clientFactory } from './client.js';

export * from '../../core/index.js';
export type { ReconnectOptions } from './backoff.js';
export type {
  ConnectionState,
  SocketLike,
  WebSocketClientOptions,
  WebSocketConstructor,
} from './client.js';
export { CLIENT_OPTION_KEYS, clientFactory, connectWebSocket, WebSocketClientTransport } from './client.js';
export { CloseCode, PROTOCOL_VERSION, WireErrorCode } from './protocol.js';

registerTransport('websocket', clientFactory());

/** Creates a fabric (in a browser: `{ transport: 'websocket', url }` or a `ws:`/`wss:` URL). */
export function createFabric(config: string | FabricConfig): Promise<Fabric> {
  return createFabricFrom(config);
}
