/** Defaults and fixed values of the Redis transport, in one place (style point 2). */

/** Key prefix when `prefix` is not given. */
export const DEFAULT_PREFIX = 'weft';
/** How long `createFabric` waits for the first connection. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** How long a lost connection may stay lost before calls and followers fail with `TransportError`. */
export const DEFAULT_RECONNECT_TIMEOUT_MS = 10_000;
/** Longest single blocking read (XREAD BLOCK) before the reader loops and re-checks its streams. */
export const DEFAULT_BLOCK_MS = 5_000;
/** Events kept beyond `maxLength` so that followers in other processes that are briefly behind lose nothing. */
export const DEFAULT_TRIM_SLACK = 1_000;
/** Largest encoded event accepted (msgpack bytes of `data`). */
export const DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024;

/** Entries one blocking read takes per stream. */
export const READ_COUNT = 1_000;
/** Events one history read returns at most (core reads on in pages). */
export const HISTORY_PAGE = 1_000;
/** Group commit: events and bytes one append script call takes at most (a single batch is never split). */
export const APPEND_MAX_EVENTS = 2_000;
export const APPEND_MAX_BYTES = 4 * 1024 * 1024;
/** Idle dedicated connections kept for blocking group reads and waits. */
export const BLOCKER_POOL_IDLE = 4;

/** The largest value of an entry ID part: `<seq>-<MAX>` sorts after every entry of that sequence. */
export const ID_PART_MAX = '18446744073709551615';

/** Oldest server that has every command used (XAUTOCLAIM, XTRIM MINID, exclusive XRANGE). */
export const MIN_SERVER_VERSION = [6, 2, 0] as const;
