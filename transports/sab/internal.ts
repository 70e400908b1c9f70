/**
 * The `sab` transport's worker-side internals, for `workers/` only (nats' internal_mod pattern):
 * not part of the public API, and free to change with the protocol version.
 */
export { BroadcastReader, type ReadResult } from './broadcast-reader.js';
export { BatchDecoder, emptyHeader, type RecordHeader, readHeader, topicAt } from './codec.js';
export { Control } from './control.js';
export { GapNotice, isGapNotice } from './gap.js';
export type { SlowReaderPolicy } from './options.js';
export { RequestError, ShardProducer, WRITE_CLOSED, WRITE_NO_ROOM } from './producer.js';
export * as layout from './ring-layout.js';
export { type SabWorkerData, WORKER_DATA_KEY } from './worker-data.js';
