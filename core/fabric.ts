/**
 * Fabric: a set of named streams (and sinks) over one transport, chosen by config.
 *
 * Choosing a transport is config, not code: `{ transport: 'memory' }`, a URL such as
 * `'redis://127.0.0.1:6379'`, or (through the Node entry) `WEFT_URL` and `weft.config.json`.
 * Transports register themselves by name; core never imports one (style point 1).
 */
import { ClosedError, ConfigError, ErrorCode, InvalidArgumentError, show, WeftError } from './errors.js';
import type { FabricMetrics } from './metrics.js';
import { checkSinkOptions, Sink, type SinkOptions } from './sink.js';
import { Stream } from './stream.js';
import type {
  PublisherPool,
  PublisherPoolOptions,
  Transport,
  TransportConfig,
  TransportFactory,
} from './transport.js';
import type { StreamOptions } from './types.js';
import { checkName, checkRetention, sameRetention } from './validate.js';

/** A registered transport: its URL schemes, and how to load its factory (lazily, so unused ones cost nothing). */
export interface TransportEntry {
  readonly schemes: readonly string[];
  load(): TransportFactory | Promise<TransportFactory>;
}

const registry = new Map<string, TransportEntry>();

/**
 * Makes a transport selectable by name (and by its URL schemes). A factory registers at once;
 * an entry with `load()` is imported only when a config selects it. Registering a name again replaces it.
 */
export function registerTransport(name: string, factory: TransportFactory | TransportEntry): void {
  const entry: TransportEntry =
    'load' in factory ? factory : { schemes: factory.schemes ?? [], load: () => factory };
  registry.set(name, entry);
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
 * Turns a URL or config object into a checked `TransportConfig` and the factory it selects.
 * @throws ConfigError naming what is wrong (unknown transport, bad URL, unknown option).
 */
export async function resolveConfig(
  config: string | FabricConfig | undefined,
): Promise<{ config: TransportConfig; factory: TransportFactory }> {
  if (config === undefined) return resolveConfig({ transport: 'memory' });
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
    const byScheme = [...registry].find(([, e]) => e.schemes.includes(scheme))?.[0];
    if (byScheme === undefined) {
      const known = [...registry.values()].flatMap((e) => e.schemes);
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
  const entry = registry.get(name);
  if (entry === undefined) {
    throw new ConfigError(`unknown transport ${show(name)} (known: ${transportNames().join(', ')})`);
  }
  let factory: TransportFactory;
  try {
    factory = await entry.load();
  } catch (e) {
    throw new ConfigError(`transport '${name}' could not be loaded: ${(e as Error).message}`, { cause: e });
  }
  for (const key of Object.keys(config)) {
    if (key !== 'transport' && key !== 'url' && !factory.options.includes(key)) {
      throw new ConfigError(
        `unknown option '${key}' for transport '${name}' (known: ${['url', ...factory.options].join(', ')})`,
      );
    }
  }
  return { config: { ...config, transport: name }, factory };
}

/** Creates a fabric from an explicit config (the Node entry's `createFabric` also reads env and file). */
export async function createFabricFrom(config: string | FabricConfig | undefined): Promise<Fabric> {
  const resolved = await resolveConfig(config);
  const transport = await resolved.factory.create(resolved.config);
  return new Fabric(transport);
}

export class Fabric {
  readonly transport: Transport;
  #streams = new Map<string, Stream<unknown>>();
  #sinks = new Set<Sink<unknown>>();
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

  /**
   * A sink (consumer group) named `name` over `options.streams`: its `consume()` loops compete for
   * matching events, with ack, redelivery after `ackTimeoutMs`, and a dead-letter stream.
   * @throws InvalidArgumentError for bad options; WeftError WEFT_ERR_UNSUPPORTED without group support.
   */
  sink<T = unknown>(name: string, options: SinkOptions<T>): Sink<T> {
    checkName('sink name', name);
    const checked = checkSinkOptions(name, options);
    if (this.#closed) throw new ClosedError(`fabric is closed (sink '${name}')`);
    const groups = this.transport.groups;
    if (groups === undefined) {
      throw new WeftError(
        ErrorCode.UNSUPPORTED,
        `transport '${this.transport.name}' has no consumer groups for sinks`,
      );
    }
    const sink = new Sink<T>(this, groups, name, checked);
    this.#sinks.add(sink as Sink<unknown>);
    return sink;
  }

  /**
   * A pool of sharded publishers in worker threads (transports with `supports.crossThread`).
   * @throws WeftError WEFT_ERR_UNSUPPORTED on transports without worker publishers.
   */
  async publishers(options: PublisherPoolOptions): Promise<PublisherPool> {
    if (this.#closed) throw new ClosedError('fabric is closed');
    const t = this.transport;
    if (t.publishers === undefined) {
      throw new WeftError(
        ErrorCode.UNSUPPORTED,
        `transport '${t.name}' has no worker publishers (use { transport: 'sab' })`,
      );
    }
    return t.publishers(options);
  }

  /** Counters of this fabric's streams, sinks and transport, as seen from this process. */
  metrics(): FabricMetrics {
    return {
      transport: this.transport.name,
      streams: [...this.#streams.values()].map((s) => s.metrics()),
      sinks: [...this.#sinks].map((s) => ({ sink: s.name, ...s.stats })),
      transportMetrics: this.transport.metrics?.() ?? {},
    };
  }

  /** Closes the fabric and its transport: followers finish; later calls throw ClosedError. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#sinks].map((s) => s.close()));
    for (const s of this.#streams.values()) s.shutdown();
    await this.transport.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
