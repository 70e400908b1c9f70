/**
 * Fabric: a set of named streams (and sinks) over one transport, chosen by config.
 *
 * Choosing a transport is config, not code: `{ transport: 'memory' }`, a URL such as
 * `'redis://127.0.0.1:6379'`, or (through the Node entry) `WEFT_URL` and `weft.config.json`.
 * Transports register themselves by name; core never imports one (style point 1).
 */
import { ClosedError, ConfigError, InvalidArgumentError, show } from './errors.js';
import { Stream } from './stream.js';
import type { Transport, TransportConfig, TransportFactory } from './transport.js';
import type { StreamOptions } from './types.js';
import { checkName, checkRetention, sameRetention } from './validate.js';

const registry = new Map<string, TransportFactory>();

/** Makes a transport selectable by name (and by its URL schemes). Registering a name twice replaces it. */
export function registerTransport(name: string, factory: TransportFactory): void {
  registry.set(name, factory);
}

/** The registered transport names. */
export function transportNames(): string[] {
  return [...registry.keys()];
}

/** A fabric's configuration: the transport's name plus that transport's own options. */
export interface FabricConfig {
  /** 'memory' (default), 'sab', 'websocket' or 'redis'. */
  transport?: string;
  /** A URL that selects the transport by its scheme and carries its address. */
  url?: string;
  [option: string]: unknown;
}

/**
 * Turns a URL or config object into a checked `TransportConfig`.
 * @throws ConfigError naming what is wrong (unknown transport, bad URL, unknown option).
 */
export function resolveConfig(config: string | FabricConfig | undefined): TransportConfig {
  if (config === undefined) return { transport: 'memory' };
  if (typeof config === 'string') return resolveConfig({ url: config });
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new ConfigError(`fabric config must be an object or a URL string, got ${show(config)}`);
  }
  let name = config.transport;
  if (name !== undefined && typeof name !== 'string') {
    throw new ConfigError(`config.transport must be a string, got ${show(name)}`);
  }
  if (config.url !== undefined) {
    if (typeof config.url !== 'string')
      throw new ConfigError(`config.url must be a string, got ${show(config.url)}`);
    const scheme = /^([a-z][a-z0-9+.-]*:)/i.exec(config.url)?.[1]?.toLowerCase();
    if (scheme === undefined) {
      throw new ConfigError(
        `config.url must start with a scheme such as memory: or redis://, got ${show(config.url)}`,
      );
    }
    const byScheme = [...registry].find(([, f]) => f.schemes?.includes(scheme))?.[0];
    if (byScheme === undefined) {
      const known = [...registry.values()].flatMap((f) => f.schemes ?? []);
      throw new ConfigError(`config.url has an unknown scheme '${scheme}' (known: ${known.join(' ')})`);
    }
    if (name !== undefined && name !== byScheme) {
      throw new ConfigError(
        `config.transport '${name}' does not match config.url scheme '${scheme}' (${byScheme})`,
      );
    }
    name = byScheme;
  }
  name ??= 'memory';
  const factory = registry.get(name);
  if (factory === undefined) {
    throw new ConfigError(`unknown transport ${show(name)} (known: ${transportNames().join(', ')})`);
  }
  for (const key of Object.keys(config)) {
    if (key !== 'transport' && key !== 'url' && !factory.options.includes(key)) {
      throw new ConfigError(
        `unknown option '${key}' for transport '${name}' (known: ${['url', ...factory.options].join(', ')})`,
      );
    }
  }
  return { ...config, transport: name };
}

/** Creates a fabric from an explicit config (the Node entry's `createFabric` also reads env and file). */
export async function createFabricFrom(config: string | FabricConfig | undefined): Promise<Fabric> {
  const resolved = resolveConfig(config);
  const factory = registry.get(resolved.transport)!;
  const transport = await factory.create(resolved);
  return new Fabric(transport);
}

export class Fabric {
  readonly transport: Transport;
  #streams = new Map<string, Stream<unknown>>();
  #closed = false;

  /** @internal Use `createFabric()`. */
  constructor(transport: Transport) {
    this.transport = transport;
  }

  get supports(): Transport['supports'] {
    return this.transport.supports;
  }
  get isClosed(): boolean {
    return this.#closed;
  }

  /**
   * The stream named `name`, opened with these retention options. Opening the same name again
   * returns the same handle; different options for an open stream are an error.
   * @throws InvalidArgumentError for a bad name or options, ClosedError after `close()`.
   */
  stream<T = unknown>(name: string, options?: StreamOptions): Stream<T> {
    checkName('stream name', name);
    const retention = checkRetention(`stream '${name}' options`, options);
    if (this.#closed) throw new ClosedError(`fabric is closed (stream '${name}')`);
    const open = this.#streams.get(name);
    if (open !== undefined) {
      if (options !== undefined && !sameRetention(open.options, retention)) {
        throw new InvalidArgumentError(
          `stream '${name}' is already open with options ${show(open.options)}, got ${show(retention)}`,
        );
      }
      return open as Stream<T>;
    }
    const s = new Stream<T>(this, this.transport.stream(name, retention), retention);
    this.#streams.set(name, s as Stream<unknown>);
    return s;
  }

  /** Closes the fabric and its transport: followers finish; later calls throw ClosedError. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.transport.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
