/**
 * The 'websocket' transport (Node entry): `createFabric({ transport: 'websocket', url })` connects
 * to a Weft gateway with `ws`; `serveWebSocket({ fabric })` runs one. Browsers import
 * `./browser.js` instead (no Node built-ins, the browser's own WebSocket).
 */
import type { TransportFactory } from '../../core/transport.js';
import { clientFactory, type WebSocketConstructor } from './client.js';

/**
 * Selected by `transport: 'websocket'` or a `ws:`/`wss:` URL. Options: `url` plus
 * `CLIENT_OPTION_KEYS` (token, WebSocket, reconnect, connectTimeoutMs, maxInflightPublishes,
 * onError, onStateChange). Without a `WebSocket` option it uses `ws`.
 */
export const factory: TransportFactory = clientFactory(
  async () => (await import('ws')).WebSocket as unknown as WebSocketConstructor,
);

export type { Backoff, ReconnectOptions } from './backoff.js';
export type {
  ConnectionState,
  SocketLike,
  WebSocketClientOptions,
  WebSocketConstructor,
} from './client.js';
export { CLIENT_OPTION_KEYS, clientFactory, connectWebSocket, WebSocketClientTransport } from './client.js';
export {
  CloseCode,
  Op,
  PROTOCOL_VERSION,
  ProtocolError,
  WireErrorCode,
} from './protocol.js';
export type { GatewayAction, GatewayStats, ServeWebSocketOptions, WebSocketGateway } from './server.js';
export { serveWebSocket } from './server.js';
