/**
 * Real Redis servers for tests: `startRedisServer()` runs a `redis-server` child process on a free
 * loopback port with its own `--dir` under the OS temp dir (or uses `REDIS_URL`, an external server
 * the tests cannot restart); `startRedisCluster()` runs a local 3-master Redis Cluster.
 *
 * Where no `redis-server` binary exists the Redis tests skip, with the reason printed, unless
 * `CI=true`: there a missing binary fails the run (it must never go green by skipping).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Redis } from 'ioredis';

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** False for `REDIS_URL`: an external server that tests cannot restart or stop. */
  readonly managed: boolean;
  /** Stops the server gracefully (SIGTERM: the append-only file is flushed) and starts it again on the same port and dir. */
  restart(options?: { downMs?: number }): Promise<void>;
  /** Stops the server gracefully, keeping its dir (for `start`). */
  halt(): Promise<void>;
  /** Starts a halted server again on the same port and dir. */
  start(): Promise<void>;
  /** Stops the server and removes its dir. Idempotent. */
  stop(): Promise<void>;
}

export interface RedisCluster {
  readonly nodes: string[];
  readonly ports: number[];
  stop(): Promise<void>;
}

export type RedisAvailability = { available: true; external: boolean } | { available: false; reason: string };

/** The `redis-server` binary on PATH (or REDIS_SERVER), if any. */
export function redisServerBinary(): string | undefined {
  const candidates = process.env.REDIS_SERVER
    ? [process.env.REDIS_SERVER]
    : (process.env.PATH ?? '')
        .split(delimiter)
        .filter(Boolean)
        .map((d) => join(d, 'redis-server'));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {}
  }
  return undefined;
}

/**
 * Whether Redis tests can run here. Prints why not; under CI=true a missing server throws instead.
 * `needsBinary`: the caller must start its own servers (restarts, a cluster): REDIS_URL is not enough.
 */
export function redisAvailability(what: string, needsBinary = false): RedisAvailability {
  const external = process.env.REDIS_URL;
  if (external && !needsBinary) return { available: true, external: true };
  if (redisServerBinary() !== undefined) return { available: true, external: false };
  const reason = `${what}: no redis-server binary on PATH${external ? ' (REDIS_URL is set, but this test starts its own servers)' : ' and REDIS_URL is not set'}`;
  if (process.env.CI === 'true')
    throw new Error(`${reason}; under CI=true Redis tests must run (install redis-server)`);
  console.warn(`SKIPPED ${reason}`);
  return { available: false, reason };
}

/** A free loopback port; `busPort` also requires port + 10000 free (Redis Cluster's bus). */
export async function freePort(busPort = false): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = busPort ? 20_000 + Math.floor(Math.random() * 30_000) : await ephemeralPort();
    if (!(await portFree(port))) continue;
    if (busPort && !(await portFree(port + 10_000))) continue;
    return port;
  }
  throw new Error('no free port found');
}

function ephemeralPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** Starts a server (or returns REDIS_URL's). `appendonly`: persistence on, so a restart keeps the data. */
export async function startRedisServer(
  options: { appendonly?: boolean; args?: string[]; external?: boolean } = {},
): Promise<RedisServer> {
  const external = process.env.REDIS_URL;
  if (external && options.external !== false && !options.appendonly && !options.args) {
    return {
      url: external,
      port: Number(new URL(external).port || 6379),
      managed: false,
      restart: async () => {
        throw new Error('REDIS_URL is an external server: tests cannot restart it');
      },
      halt: async () => {
        throw new Error('REDIS_URL is an external server: tests cannot stop it');
      },
      start: async () => {},
      stop: async () => {},
    };
  }
  const bin = redisServerBinary();
  if (bin === undefined) throw new Error('no redis-server binary on PATH');
  const port = await freePort(options.args?.includes('--cluster-enabled') ?? false);
  const dir = mkdtempSync(join(tmpdir(), `weft-redis-${port}-`));
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    options.appendonly ? 'yes' : 'no',
    '--daemonize',
    'no',
    '--protected-mode',
    'no',
    ...(options.args ?? []),
  ];
  let child: ChildProcess | undefined;
  let stopped = false;
  const start = async (): Promise<void> => {
    if (stopped) throw new Error(`redis-server on port ${port} was stopped`);
    const c = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(c);
    let stderr = '';
    c.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    c.once('exit', () => children.delete(c));
    child = c;
    try {
      await waitPong(port, 10_000, () => c.exitCode !== null);
    } catch (e) {
      c.kill('SIGKILL');
      throw new Error(`redis-server on port ${port} did not start: ${(e as Error).message} ${stderr}`);
    }
  };
  const halt = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (c === undefined || c.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await start();
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    managed: true,
    async restart({ downMs = 0 } = {}) {
      await halt();
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      await start();
    },
    halt,
    start,
    async stop() {
      if (stopped) return;
      stopped = true;
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves when the server answers PING with PONG (not LOADING). */
async function waitPong(port: number, timeoutMs: number, dead: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (dead()) throw new Error('the process exited');
    last = await new Promise<string>((resolve) => {
      const s = new Socket();
      let got = '';
      const done = (v: string) => {
        s.destroy();
        resolve(v);
      };
      s.setTimeout(500, () => done('timeout'));
      s.once('error', (e) => done(e.message));
      s.on('data', (d) => {
        got += d.toString();
        if (got.includes('\r\n')) done(got.trim());
      });
      s.connect(port, '127.0.0.1', () => s.write('PING\r\n'));
    });
    if (last === '+PONG' || last.startsWith('-NOAUTH')) return; // up (with a password: up and guarded)
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no PONG within ${timeoutMs} ms (last: ${last})`);
}

/** Starts `size` cluster-enabled masters, assigns the 16384 slots evenly, waits for cluster_state:ok. */
export async function startRedisCluster(size = 3): Promise<RedisCluster> {
  const servers: RedisServer[] = [];
  try {
    for (let i = 0; i < size; i++) {
      servers.push(
        await startRedisServer({
          external: false,
          args: [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            `nodes-${i}.conf`,
            '--cluster-node-timeout',
            '5000',
          ],
        }),
      );
    }
    const admins = servers.map((s) => new Redis({ port: s.port, host: '127.0.0.1', lazyConnect: true }));
    try {
      for (const a of admins) await a.connect();
      const per = Math.floor(16384 / size);
      for (let i = 0; i < size; i++) {
        const from = i * per;
        const to = i === size - 1 ? 16383 : (i + 1) * per - 1;
        await admins[i]!.call('CLUSTER', 'ADDSLOTSRANGE', from, to);
      }
      for (let i = 1; i < size; i++) await admins[i]!.call('CLUSTER', 'MEET', '127.0.0.1', servers[0]!.port);
      const deadline = Date.now() + 20_000;
      for (;;) {
        const infos = await Promise.all(admins.map((a) => a.call('CLUSTER', 'INFO') as Promise<string>));
        const known = await Promise.all(admins.map((a) => a.call('CLUSTER', 'NODES') as Promise<string>));
        const ok =
          infos.every((s) => s.includes('cluster_state:ok')) &&
          known.every((s) => s.trim().split('\n').length === size);
        if (ok) break;
        if (Date.now() > deadline) throw new Error(`cluster not ok after 20 s: ${infos.join(' | ')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      for (const a of admins) a.disconnect();
    }
  } catch (e) {
    await Promise.all(servers.map((s) => s.stop()));
    throw e;
  }
  return {
    nodes: servers.map((s) => s.url),
    ports: servers.map((s) => s.port),
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}
