#!/usr/bin/env node
/**
 * The `weft` command line. Each subcommand selects its transport exactly as `createFabric()` does:
 * `--url` / `--transport` flags, else `WEFT_URL`, else `--config` / `WEFT_CONFIG` / `./weft.config.json`,
 * else memory. Bad flags or bad config print one clear line and exit 2.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { configFromEnvironment, createFabric, type FabricConfig, WeftError } from '../index.js';
import { runDemo } from './demo.js';
import { mazeMain } from './maze.js';

const USAGE = `weft <command> [options]

commands:
  demo                      the main job: publishers, followers, exactly-once check, summary
  publish <stream> [json|-] publish one JSON event, or newline-delimited JSON from stdin with '-'
  follow <stream>           print events as NDJSON (--from N|start|end, --last N)
  serve [--host h] [--port p] a WebSocket gateway in front of the selected fabric (Prometheus text on /metrics)
  bench [suite...] [--quick] run the benchmarks side by side with their baselines (writes bench/results/)
  maze                      the follower-maze event forwarder (--event-port 9090 --client-port 9099)
  help                      this text

common options:
  --transport <name>        memory (default), sab, websocket, redis
  --url <url>               e.g. redis://127.0.0.1:6379 (selects the transport by scheme)
  --config <file>           a JSON config file (default ./weft.config.json when it exists)
  -h, --help                help for a command

precedence: --url/--transport, then WEFT_URL, then --config/WEFT_CONFIG/./weft.config.json, then memory.`;

export class UsageError extends Error {}

export interface CommonFlags {
  transport?: string | undefined;
  url?: string | undefined;
  config?: string | undefined;
}

export const commonOptions = {
  transport: { type: 'string' },
  url: { type: 'string' },
  config: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The fabric config the flags select, with the documented precedence. */
export function selectConfig(flags: CommonFlags): string | FabricConfig | undefined {
  if (flags.url !== undefined || flags.transport !== undefined) {
    const c: FabricConfig = {};
    if (flags.transport !== undefined) c.transport = flags.transport;
    if (flags.url !== undefined) c.url = flags.url;
    return c;
  }
  const env = { ...process.env };
  if (flags.config !== undefined) {
    delete env.WEFT_URL;
    env.WEFT_CONFIG = flags.config;
  }
  return configFromEnvironment(env);
}

async function publishCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...commonOptions, topic: { type: 'string' } },
    allowPositionals: true,
  });
  if (values.help)
    return print('weft publish <stream> [json|-] [--topic t]: one event, or NDJSON from stdin with -');
  const [name, payload] = positionals;
  if (name === undefined) throw new UsageError('publish needs a stream name');
  const fabric = await createFabric(selectConfig(values));
  try {
    const stream = fabric.stream(name);
    const topic = values.topic;
    if (payload === undefined || payload === '-') {
      let line = 0;
      let buffered = '';
      for await (const chunk of process.stdin) {
        buffered += chunk;
        let nl = buffered.indexOf('\n');
        while (nl >= 0) {
          const text = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          line++;
          if (text !== '')
            process.stdout.write(
              `${await stream.publish(parseJson(text, `stdin line ${line}`), { topic })}\n`,
            );
          nl = buffered.indexOf('\n');
        }
      }
      if (buffered.trim() !== '')
        process.stdout.write(
          `${await stream.publish(parseJson(buffered, `stdin line ${line + 1}`), { topic })}\n`,
        );
    } else {
      process.stdout.write(`${await stream.publish(parseJson(payload, 'the event'), { topic })}\n`);
    }
  } finally {
    await fabric.close();
  }
  return 0;
}

async function followCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...commonOptions, from: { type: 'string' }, last: { type: 'string' } },
    allowPositionals: true,
  });
  if (values.help)
    return print(
      'weft follow <stream> [--from N|start|end] [--last N]: events as NDJSON until the stream closes',
    );
  const [name] = positionals;
  if (name === undefined) throw new UsageError('follow needs a stream name');
  const from =
    values.from === undefined
      ? undefined
      : values.from === 'start' || values.from === 'end'
        ? values.from
        : intFlag('--from', values.from);
  const last = values.last === undefined ? undefined : intFlag('--last', values.last);
  const fabric = await createFabric(selectConfig(values));
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  try {
    for await (const e of fabric.stream(name).follow({ from, last, signal: ac.signal })) {
      process.stdout.write(`${JSON.stringify(e)}\n`);
    }
  } catch (e) {
    if (!ac.signal.aborted) throw e;
  } finally {
    await fabric.close();
  }
  return 0;
}

async function serveCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { ...commonOptions, host: { type: 'string' }, port: { type: 'string' } },
  });
  if (values.help) {
    return print(
      'weft serve [--host 127.0.0.1] [--port 7070] [--transport t | --url u | --config f]: a WebSocket gateway; Ctrl-C stops it',
    );
  }
  const port = values.port === undefined ? 7070 : intFlag('--port', values.port);
  const host = values.host ?? '127.0.0.1';
  const { pino } = await import('pino');
  const { serveWebSocket } = await import('../transports/websocket/index.js');
  const { prometheusText } = await import('../index.js');
  const { createServer } = await import('node:http');
  const log = pino({ name: 'weft-gateway' });
  const fabric = await createFabric(selectConfig(values));
  // One HTTP server: the WebSocket upgrade for clients, and GET /metrics for Prometheus.
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(prometheusText(fabric.metrics(), gatewayMetrics()));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const gateway = await serveWebSocket({
    fabric,
    server,
    onError: (e: Error) => log.warn({ err: e }, 'gateway error'),
  });
  const gatewayMetrics = (): Record<string, number> => {
    const stats = gateway.stats() as unknown as Record<string, unknown>;
    const out: Record<string, number> = { gateway_connections: gateway.connections };
    for (const [k, v] of Object.entries(stats))
      if (typeof v === 'number') out[`gateway_${k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}`] = v;
    return out;
  };
  log.info(
    { url: `ws://${host}:${(server.address() as { port: number }).port}`, transport: fabric.transport.name },
    'listening',
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  log.info('stopping');
  await gateway.close();
  await new Promise((r) => server.close(r));
  await fabric.close();
  return 0;
}

async function benchCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { quick: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
  const { SUITES, runSuites, writeLatest } = await import('../bench/run.js');
  if (values.help) return print(`weft bench [suite...] [--quick]: suites ${SUITES.join(', ')}`);
  const unknown = positionals.filter((p) => !SUITES.includes(p));
  if (unknown.length > 0)
    throw new UsageError(`unknown benchmark suite '${unknown[0]}' (known: ${SUITES.join(', ')})`);
  const started = Date.now();
  const reports = await runSuites(positionals.length > 0 ? positionals : SUITES, values.quick === true);
  writeLatest(reports, values.quick === true, Date.now() - started);
  return 0;
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`${what} is not valid JSON: ${text.length > 60 ? `${text.slice(0, 57)}...` : text}`);
  }
}

export function intFlag(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new UsageError(`${flag} must be a whole number, got '${value}'`);
  return n;
}

function print(text: string): number {
  process.stdout.write(`${text}\n`);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        return print(USAGE);
      case 'demo':
        return await runDemo(rest);
      case 'publish':
        return await publishCommand(rest);
      case 'follow':
        return await followCommand(rest);
      case 'maze':
        return await mazeMain(rest);
      case 'bench':
        return await benchCommand(rest);
      case 'serve':
        return await serveCommand(rest);
      default:
        throw new UsageError(`unknown command '${command}' (try: weft help)`);
    }
  } catch (e) {
    // One clear line; exit 2 for usage and config errors, 1 for failures at run time.
    const err = e as Error & { code?: string };
    const usage =
      e instanceof UsageError ||
      err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ||
      err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' ||
      err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' ||
      err.code === 'WEFT_ERR_CONFIG' ||
      err.code === 'WEFT_ERR_INVALID_ARGUMENT';
    process.stderr.write(`weft: ${e instanceof WeftError ? `${err.code}: ` : ''}${err.message}\n`);
    return usage ? 2 : 1;
  }
}

function isEntry(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntry()) process.exitCode = await main(process.argv.slice(2));
