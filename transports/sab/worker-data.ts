/**
 * What the main thread hands a publisher worker (through piscina's `workerData`): the shared
 * blocks and their sizes. The worker side (workers/index.ts) attaches to them.
 */
import type { SlowReaderPolicy } from './options.js';
import { VERSION } from './ring-layout.js';

/** The `workerData` key under which a pool worker finds its `SabWorkerData`. */
export const WORKER_DATA_KEY = '__weftSab';

export interface SabWorkerData {
  readonly version: number;
  readonly control: SharedArrayBuffer;
  /** This worker's shard: its ring and its control lines. */
  readonly shard: SharedArrayBuffer;
  /** The shard's index in the transport (as reported in GapNotice.shard). */
  readonly shardIndex: number;
  /** The shard's number in its pool: 0 .. shards - 1. */
  readonly shardNumber: number;
  readonly shards: number;
  readonly ringBytes: number;
  /** The broadcast ring for worker followers, or null when disabled. */
  readonly broadcast: SharedArrayBuffer | null;
  readonly followRingBytes: number;
  readonly maxFollowers: number;
  readonly slowReader: SlowReaderPolicy;
}

export function makeWorkerData(data: Omit<SabWorkerData, 'version'>): Record<string, SabWorkerData> {
  return { [WORKER_DATA_KEY]: { version: VERSION, ...data } };
}
