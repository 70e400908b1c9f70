/** A raw protocol client for gateway tests: sends exactly the bytes a test wants, records every answer. */
import { WebSocket } from 'ws';
import { decode, encode, Op, PROTOCOL_VERSION } from '../../transports/websocket/protocol.js';

export interface RawClient {
  readonly ws: WebSocket;
  /** Decoded messages received so far. */
  readonly messages: unknown[][];
  /** Resolves with the close code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
  send(message: unknown[]): void;
  sendBytes(bytes: Uint8Array | string, binary?: boolean): void;
  /** HELLO, then waits for WELCOME. */
  hello(token?: string): Promise<void>;
  /** Waits for a message matching `pred`. */
  next(pred: (m: unknown[]) => boolean, timeoutMs?: number): Promise<unknown[]>;
  close(): void;
}

export async function rawClient(url: string, options: { maxPayload?: number } = {}): Promise<RawClient> {
  const ws = new WebSocket(url, { maxPayload: options.maxPayload });
  const messages: unknown[][] = [];
  const waiters = new Set<() => void>();
  ws.on('message', (data) => {
    try {
      messages.push(decode(data as Buffer));
    } catch {
      messages.push(['undecodable']);
    }
    for (const w of [...waiters]) w();
  });
  ws.on('error', () => {});
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString() });
      for (const w of [...waiters]) w();
    });
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const client: RawClient = {
    ws,
    messages,
    closed,
    send: (m) => ws.send(encode(m)),
    sendBytes: (b, binary = true) => ws.send(b, { binary }),
    async hello(token) {
      client.send([Op.HELLO, PROTOCOL_VERSION, token ?? null, null]);
      await client.next((m) => m[0] === Op.WELCOME);
    },
    next(pred, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = messages.find(pred);
          if (found !== undefined) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(found);
          } else if (ws.readyState === WebSocket.CLOSED) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(
              new Error(`closed before the expected message; got ${JSON.stringify(messages).slice(0, 300)}`),
            );
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out; got ${JSON.stringify(messages).slice(0, 300)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: () => ws.terminate(),
  };
  return client;
}
