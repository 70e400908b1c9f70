/**
 * A loopback TCP proxy for network-failure tests: it forwards every connection to a target and
 * can cut all of them at once (a RST, as when a NAT or load balancer drops the flow), or freeze
 * one direction (bytes stop flowing, nobody is told: a dead peer).
 */
import { createServer, type Server, type Socket } from 'node:net';

interface Pair {
  client: Socket;
  upstream: Socket;
  frozenToClient: boolean;
  frozenToServer: boolean;
}

export class TcpProxy {
  readonly port: number;
  /** Connections cut so far. */
  cuts = 0;
  /** Connections accepted so far. */
  accepted = 0;
  #server: Server;
  #pairs = new Set<Pair>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  private constructor(server: Server, port: number) {
    this.#server = server;
    this.port = port;
  }

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined;
    const server = createServer((client) => proxy!.#accept(client, targetPort, targetHost));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    proxy = new TcpProxy(server, port);
    return proxy;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }
  get open(): number {
    return this.#pairs.size;
  }

  #accept(client: Socket, port: number, host: string): void {
    this.accepted++;
    const upstream = new (client.constructor as typeof Socket)();
    const pair: Pair = { client, upstream, frozenToClient: false, frozenToServer: false };
    this.#pairs.add(pair);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const end = () => {
      if (!this.#pairs.delete(pair)) return;
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.on('data', (d) => {
      if (!pair.frozenToServer) upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!pair.frozenToClient) client.write(d);
    });
    client.pause();
    upstream.connect(port, host, () => client.resume());
  }

  /** Cuts every open connection (RST both ways). Returns how many were cut. */
  cut(): number {
    let n = 0;
    for (const p of [...this.#pairs]) {
      this.#pairs.delete(p);
      for (const s of [p.client, p.upstream]) {
        if (typeof s.resetAndDestroy === 'function' && !s.destroyed && s.readyState === 'open')
          s.resetAndDestroy();
        else s.destroy();
      }
      n++;
    }
    this.cuts += n;
    return n;
  }

  /** Cuts every `minMs..maxMs` (random) until `stop()`. */
  cutEvery(minMs: number, maxMs = minMs, onCut?: (n: number) => void): void {
    const next = () => {
      this.#timer = setTimeout(
        () => {
          const n = this.cut();
          onCut?.(n);
          next();
        },
        minMs + Math.random() * (maxMs - minMs),
      );
    };
    next();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Drops the bytes of the connections open now, in one or both directions (silently: the peers
   * see a dead network). Connections made later are not affected. A frozen connection has lost
   * bytes, so it is only good for cutting.
   */
  freeze(direction: 'toClient' | 'toServer' | 'both' = 'both'): void {
    for (const p of this.#pairs) {
      if (direction !== 'toServer') p.frozenToClient = true;
      if (direction !== 'toClient') p.frozenToServer = true;
    }
  }

  /**
   * Stops reading from one side of every open connection (no byte is lost): TCP back-pressure
   * builds up behind it, as with a slow network or a client that does not read.
   */
  stall(direction: 'toClient' | 'toServer' = 'toClient'): void {
    for (const p of this.#pairs) (direction === 'toClient' ? p.upstream : p.client).pause();
  }

  /** Undoes `stall` on the connections still open. */
  unstall(): void {
    for (const p of this.#pairs) {
      p.upstream.resume();
      p.client.resume();
    }
  }

  async close(): Promise<void> {
    this.stop();
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
