/**
 * Key layout. Every key of a stream carries the stream's name as its hash tag, so a stream's keys
 * share one cluster slot and one script can touch them all:
 *
 *   <prefix>:{<stream>}:log    the Redis stream: entry ID `<seq>-<epoch>`, fields t (time), k (topic), d (data)
 *   <prefix>:{<stream>}:meta   a hash: epoch, seq (last assigned), state, error, p:<client> (idempotency)
 *
 * Stream names cannot contain braces (core checks them) and neither can the prefix (options.ts).
 */
export interface StreamKeys {
  readonly meta: string;
  readonly log: string;
}

export function streamKeys(prefix: string, stream: string): StreamKeys {
  const tag = `${prefix}:{${stream}}`;
  return { meta: `${tag}:meta`, log: `${tag}:log` };
}
