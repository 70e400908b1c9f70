/**
 * The `sab` transport: streams on the main thread fed by sharded publishers in worker threads
 * through SharedArrayBuffer rings (one single-producer ring per shard, Atomics for the control
 * words, msgpackr records, no postMessage per event), merged back into one dense order per stream.
 *
 * Select it with `createFabric({ transport: 'sab', ...SabOptions })` or the URL `sab:`; start
 * workers with `fabric.publishers({ filename, shards })`; inside a worker use `workerFabric()`
 * from `weft/workers`. The protocol is in ring-layout.ts and docs/ring-buffer.md.
 */
import { ConfigError, show } from '../../core/errors.js';
import type { TransportFactory } from '../../core/transport.js';
import { resolveOptions, SAB_OPTION_KEYS } from './options.js';
import { SabTransport } from './transport.js';

export { GapNotice, type GapReason, isGapNotice } from './gap.js';
export type { SabOptions, SlowReaderPolicy } from './options.js';
export { DEFAULTS as SAB_DEFAULTS, sabSupports } from './options.js';
export type { SabPublisherPool, SabPublisherPoolOptions } from './pool.js';
export { SabTransport } from './transport.js';

export const factory: TransportFactory = {
  options: [...SAB_OPTION_KEYS, 'onError'],
  schemes: ['sab:'],
  create(config) {
    const onError = config.onError;
    if (onError !== undefined && typeof onError !== 'function') {
      throw new ConfigError(`options.onError must be a function, got ${show(onError)}`);
    }
    return new SabTransport(resolveOptions(config), onError as ((e: Error) => void) | undefined);
  },
};
