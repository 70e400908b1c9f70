/**
 * The `weft` package entry for Node.js: the core API plus the built-in transports, and a
 * `createFabric()` that also reads `WEFT_URL` and `weft.config.json`.
 *
 * Precedence: an explicit argument, else `WEFT_URL`, else the JSON file named by `WEFT_CONFIG`
 * (or `./weft.config.json` when it exists), else the in-memory transport.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from './core/errors.js';
import { createFabricFrom, type Fabric, type FabricConfig, registerTransport } from './core/fabric.js';
import { memoryTransport } from './transports/memory/index.js';

export * from './core/index.js';
export { GapNotice, type GapReason, isGapNotice } from './transports/sab/gap.js';

registerTransport('memory', memoryTransport);
// The others load only when a config selects them (so `weft` stays light, and a missing optional
// dependency fails with a ConfigError naming the transport).
registerTransport('sab', {
  schemes: ['sab:'],
  load: async () => (await import('./transports/sab/index.js')).factory,
});
registerTransport('websocket', {
  schemes: ['ws:', 'wss:'],
  load: async () => (await import('./transports/websocket/index.js')).factory,
});
registerTransport('redis', {
  schemes: ['redis:', 'rediss:'],
  load: async () => (await import('./transports/redis/index.js')).factory,
});

/**
 * Creates a fabric. With no argument: `WEFT_URL`, else `WEFT_CONFIG` / `./weft.config.json`, else memory.
 * @throws ConfigError for an unknown transport, a bad URL, an unknown option or an unreadable config file.
 */
export function createFabric(config?: string | FabricConfig): Promise<Fabric> {
  try {
    return createFabricFrom(config ?? configFromEnvironment());
  } catch (e) {
    return Promise.reject(e);
  }
}

/** The config `createFabric()` uses when given none (exported for the CLI, which shows it). */
export function configFromEnvironment(
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
): string | FabricConfig | undefined {
  if (env.WEFT_URL) return env.WEFT_URL;
  const explicit = env.WEFT_CONFIG;
  const path = resolve(cwd, explicit || 'weft.config.json');
  if (!explicit && !existsSync(path)) return undefined;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return JSON.parse(text) as FabricConfig;
  } catch (e) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}
