/**
 * The follower-maze forwarder's parts (efr's event forwarder on Weft's resequencer): the wire
 * parser, the follow graph and router, the per-client writer, the socket-free event pipeline, and
 * the reference model and load tools used by the tests, the benchmark and the example.
 */
export { type ByteSink, ClientWriter, type LineRange } from './client-writer.js';
export {
  connectClient,
  type GeneratedEvents,
  type GenerateOptions,
  generateEvents,
  type MazeTestClient,
  modelRoute,
  prng,
  sendEvents,
  shuffleInBatches,
  writeAll,
} from './load.js';
export { BadLine, EventKind, LineSplitter, MazeEvent, parseEvent, parseUserId, showLine } from './parser.js';
export { EventPipeline, type EventPipelineOptions, LOG_LIMIT, type PipelineStats } from './pipeline.js';
export { FollowGraph, Router, type RouterOptions } from './router.js';
