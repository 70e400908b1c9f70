/**
 * Weft's core: the transport-agnostic public API, safe for browsers (no Node built-ins).
 * The Node entry (`weft`) re-exports this and registers the built-in transports.
 */
export {
  AbortError,
  ClosedError,
  ConfigError,
  ErrorCode,
  FrameError,
  InvalidArgumentError,
  InvalidOperationError,
  LaggedError,
  StreamResetError,
  TimeoutError,
  TransportError,
  TruncatedError,
  WeftError,
} from './errors.js';
export type { ChunkLink, EventLogOptions, LogPosition, Parked, Sequenced } from './event-log.js';
export { CHUNK_EVENTS, Chunk, EventLog, snapshotChain } from './event-log.js';
export type { FabricConfig, TransportEntry } from './fabric.js';
export { createFabricFrom, Fabric, registerTransport, resolveConfig, transportNames } from './fabric.js';
export type { FollowerStart } from './follower.js';
export { Follower } from './follower.js';
export type { FabricMetrics } from './metrics.js';
export { prometheusText } from './metrics.js';
export type {
  GapTimeoutPolicy,
  OverflowPolicy,
  ResequencerGap,
  ResequencerMode,
  ResequencerOptions,
  ResequencerStats,
} from './resequencer.js';
export { GapError, Resequencer, WindowFullError } from './resequencer.js';
export type { ConsumeOptions, DeadLetter, Delivery, SinkOptions, SinkStats } from './sink.js';
export { Sink } from './sink.js';
export type { StreamMetrics } from './stream.js';
export { Stream } from './stream.js';
export {
  isPattern,
  matchesPattern,
  PatternError,
  TopicMatcher,
  validatePattern,
  validateTopic,
} from './topic-matcher.js';
export type {
  GroupEntry,
  GroupOperations,
  PublisherPool,
  PublisherPoolOptions,
  StreamBounds,
  Transport,
  TransportConfig,
  TransportFactory,
  TransportStream,
  TransportSupports,
} from './transport.js';
export type {
  EventInput,
  FollowOptions,
  PublishOptions,
  ReadOptions,
  RetentionOptions,
  StartPosition,
  StreamInfo,
  StreamOptions,
  WeftEvent,
} from './types.js';
