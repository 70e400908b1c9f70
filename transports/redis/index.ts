/**
 * The 'redis' transport: Redis Streams behind Weft's Transport contract, from one server to a
 * Redis Cluster. Select it with `createFabric('redis://host:6379')`,
 * `{ transport: 'redis', url, prefix }` or `{ transport: 'redis', nodes: [...] }` (a cluster).
 *
 * Guarantees (docs/redis.md): dense sequences per stream across every process, assigned in the
 * same script as the XADD; a batch appended atomically; an epoch per stream life; one blocking
 * reader per process however many followers; resume after reconnects and restarts with nothing
 * lost or repeated; publishes retried idempotently; typed errors for everything that goes wrong.
 */
import type { TransportFactory } from '../../core/transport.js';
import { OPTION_KEYS, resolveOptions } from './options.js';
import { RedisTransport } from './transport.js';

export type { RedisTransportOptions } from './options.js';
export { RedisTransport } from './transport.js';

export const factory: TransportFactory = {
  options: OPTION_KEYS,
  schemes: ['redis:', 'rediss:'],
  async create(config) {
    const transport = new RedisTransport(resolveOptions(config));
    try {
      await transport.connect();
    } catch (e) {
      await transport.close().catch(() => {});
      throw e;
    }
    return transport;
  },
};
