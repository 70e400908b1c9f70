/**
 * Consumer groups on Redis Streams' own: XGROUP CREATE (MKSTREAM), XREADGROUP, XAUTOCLAIM with
 * XPENDING for delivery counts, XACK, and XCLAIM with a huge IDLE for release. Core's `Sink` is
 * built on these; what is not here (filters, dead letters, the consume loop) is core's.
 *
 * Blocking calls (a read with `blockMs`, `wait`) run on a small pool of dedicated connections, so
 * they never hold up the command connection; an abort closes that one connection (the reply, if
 * any was on its way, leaves its entries pending: they are claimed again later, never lost).
 * End markers (scripts.ts R4) are not events: a group that is handed one acks it and skips it.
 */
import { AbortError } from '../../core/errors.js';
import type { GroupEntry, GroupOperations } from '../../core/transport.js';
import type { StartPosition } from '../../core/types.js';
import { type Client, createClient, retrying, type TransportStats, transportError } from './client.js';
import { decodeEvent, parseId, type RawEntry } from './codec.js';
import { BLOCKER_POOL_IDLE } from './constants.js';
import type { ResolvedOptions } from './options.js';
import { newEpoch, type RedisStream } from './stream.js';

/** Dedicated connections for blocking commands, reused when idle. */
class BlockerPool {
  #idle: Client[] = [];
  #all = new Set<Client>();
  #create: () => Client;
  #closed = false;

  constructor(create: () => Client) {
    this.#create = create;
  }

  /** Runs `fn` on a connection of its own. An abort resolves `undefined` at once and drops that connection. */
  async run<T>(fn: (c: Client) => Promise<T>, signal?: AbortSignal): Promise<T | undefined> {
    if (signal?.aborted) return undefined;
    const c = this.#idle.pop() ?? this.#add();
    let aborted = false;
    let onAbort: (() => void) | undefined;
    const stop = new Promise<undefined>((resolve) => {
      onAbort = () => {
        aborted = true;
        resolve(undefined);
        c.disconnect();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const work = fn(c);
      work.catch(() => {}); // an aborted call rejects later, when its connection closes
      return await Promise.race([work, stop]);
    } finally {
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
      if (aborted || this.#closed || this.#idle.length >= BLOCKER_POOL_IDLE) {
        this.#all.delete(c);
        c.disconnect();
      } else {
        this.#idle.push(c);
      }
    }
  }

  get size(): number {
    return this.#all.size;
  }

  #add(): Client {
    const c = this.#create();
    c.connect().catch(() => {});
    this.#all.add(c);
    return c;
  }

  close(): void {
    this.#closed = true;
    for (const c of this.#all) c.disconnect();
    this.#all.clear();
    this.#idle = [];
  }
}

interface AckQueue {
  seqs: number[];
  waiters: { resolve(): void; reject(e: unknown): void }[];
  sending: boolean;
}

export class RedisGroups implements GroupOperations {
  #client: Client;
  #options: ResolvedOptions;
  #stream: (name: string) => RedisStream;
  #pool: BlockerPool;
  /** XAUTOCLAIM cursors per group and stream: a claim scan goes on where the last one stopped. */
  #cursors = new Map<string, string>();
  /** Acks waiting for the one in flight, per group and stream. */
  #acks = new Map<string, AckQueue>();
  #blockers = 0;

  #stats: TransportStats;

  constructor(
    client: Client,
    options: ResolvedOptions,
    stream: (name: string) => RedisStream,
    stats: TransportStats,
  ) {
    this.#client = client;
    this.#options = options;
    this.#stream = stream;
    this.#stats = stats;
    this.#pool = new BlockerPool(() => createClient(options, `weft:blocker:${++this.#blockers}`, stats));
  }

  /** Dedicated connections open for blocking group calls. */
  get blockers(): number {
    return this.#pool.size;
  }

  async ensure(group: string, stream: string, from: StartPosition): Promise<void> {
    const s = this.#stream(stream);
    const ttl = s.retention.ttlMs === undefined ? 0 : Math.ceil(s.retention.ttlMs);
    try {
      const argv = [newEpoch(), ttl, group, String(from)];
      await this.#retrying(() => this.#client.weftGroupEnsure(s.keys.meta, s.keys.log, argv));
    } catch (e) {
      throw transportError(e, `group '${group}' on '${stream}'`);
    }
  }

  async read(
    group: string,
    consumer: string,
    stream: string,
    count: number,
    blockMs: number,
    signal?: AbortSignal,
  ): Promise<GroupEntry[]> {
    if (signal?.aborted) return [];
    const s = this.#stream(stream);
    const args: (string | number)[] = ['GROUP', group, consumer, 'COUNT', Math.max(1, count)];
    if (blockMs > 0) args.push('BLOCK', Math.ceil(blockMs));
    args.push('STREAMS', s.keys.log, '>');
    let res: unknown;
    try {
      res = await this.#retrying(() =>
        blockMs > 0
          ? this.#pool.run((c) => c.callBuffer('XREADGROUP', args), signal)
          : this.#client.callBuffer('XREADGROUP', args),
      );
    } catch (e) {
      throw transportError(e, `read of group '${group}' on '${stream}'`);
    }
    const entries = (res as [Buffer, RawEntry[]][] | null | undefined)?.[0]?.[1] ?? [];
    return this.#entries(group, s, entries, () => 1);
  }

  async claim(
    group: string,
    consumer: string,
    stream: string,
    minIdleMs: number,
    count: number,
  ): Promise<GroupEntry[]> {
    const s = this.#stream(stream);
    const at = `${group}\n${stream}`;
    let r: [Buffer, unknown[], number[]];
    try {
      const argv = [
        group,
        consumer,
        Math.max(0, Math.floor(minIdleMs)),
        this.#cursors.get(at) ?? '0-0',
        Math.max(1, count),
      ];
      r = await this.#retrying(() => this.#client.weftGroupClaimBuffer(s.keys.log, argv));
    } catch (e) {
      throw transportError(e, `claim for group '${group}' on '${stream}'`);
    }
    const next = r[0].toString();
    if (next === '0-0') this.#cursors.delete(at);
    else this.#cursors.set(at, next);
    const counts = r[2];
    return this.#entries(group, s, r[1] as RawEntry[], (i) => Number(counts[i] ?? 1));
  }

  async #entries(
    group: string,
    s: RedisStream,
    entries: RawEntry[],
    deliveries: (index: number) => number,
  ): Promise<GroupEntry[]> {
    const out: GroupEntry[] = [];
    const markers: string[] = [];
    for (let i = 0; i < entries.length; i++) {
      const [idBuf, fields] = entries[i]!;
      const id = idBuf.toString('latin1');
      const { seq, part } = parseId(id);
      if (part === '0') {
        markers.push(id);
        continue;
      }
      out.push({ event: decodeEvent(s.name, seq, fields, s.keys.log, id), deliveries: deliveries(i) });
    }
    if (markers.length > 0) {
      await this.#retrying(() => this.#client.xack(s.keys.log, group, ...markers)).catch((e: unknown) => {
        throw transportError(e, `group '${group}' on '${s.name}'`);
      });
    }
    return out;
  }

  /**
   * Acks made while one is in flight for the same group and stream go together in the next call
   * (a consume loop that does not await each `ack()` costs one round trip per batch, not per event).
   */
  ack(group: string, stream: string, seqs: readonly number[]): Promise<void> {
    if (seqs.length === 0) return Promise.resolve();
    const key = `${group}\n${stream}`;
    let q = this.#acks.get(key);
    if (q === undefined) {
      q = { seqs: [], waiters: [], sending: false };
      this.#acks.set(key, q);
    }
    const queue = q;
    for (const seq of seqs) queue.seqs.push(seq);
    const done = new Promise<void>((resolve, reject) => queue.waiters.push({ resolve, reject }));
    if (!queue.sending) void this.#sendAcks(key, group, stream, queue);
    return done;
  }

  async #sendAcks(key: string, group: string, stream: string, q: AckQueue): Promise<void> {
    q.sending = true;
    while (q.waiters.length > 0) {
      const seqs = q.seqs;
      const waiters = q.waiters;
      q.seqs = [];
      q.waiters = [];
      try {
        await this.#bySeqs('ack', group, stream, seqs, (s, argv) =>
          this.#client.weftGroupAck(s.keys.meta, s.keys.log, argv),
        );
        for (const w of waiters) w.resolve();
      } catch (e) {
        for (const w of waiters) w.reject(e);
      }
    }
    q.sending = false;
    if (this.#acks.get(key) === q) this.#acks.delete(key);
  }

  async release(group: string, consumer: string, stream: string, seqs: readonly number[]): Promise<void> {
    await this.#bySeqs('release', group, stream, seqs, (s, argv) =>
      this.#client.weftGroupRelease(s.keys.meta, s.keys.log, [argv[0]!, consumer, ...argv.slice(1)]),
    );
  }

  async #bySeqs(
    what: string,
    group: string,
    stream: string,
    seqs: readonly number[],
    call: (s: RedisStream, argv: (string | number)[]) => Promise<number>,
  ): Promise<void> {
    if (seqs.length === 0) return;
    const s = this.#stream(stream);
    try {
      for (let i = 0; i < seqs.length; i += 5_000) {
        const argv = [group, ...seqs.slice(i, i + 5_000)];
        await this.#retrying(() => call(s, argv));
      }
    } catch (e) {
      throw transportError(e, `${what} for group '${group}' on '${stream}'`);
    }
  }

  async wait(
    group: string,
    streams: readonly string[],
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<void> {
    if (signal?.aborted) return;
    const block = Math.max(1, Math.ceil(timeoutMs));
    if (streams.length === 0) {
      await delay(block, signal);
      return;
    }
    const ss = streams.map((name) => this.#stream(name));
    let cursors: string[];
    try {
      cursors = await Promise.all(
        ss.map((s) => this.#retrying(() => this.#client.weftGroupCursor(s.keys.log, [group]))),
      );
    } catch (e) {
      throw transportError(e, `wait of group '${group}'`);
    }
    const xread = (c: Client, keys: string[], ids: string[]) =>
      c.callBuffer('XREAD', ['COUNT', 1, 'BLOCK', block, 'STREAMS', ...keys, ...ids]);
    try {
      if (this.#options.mode === 'standalone' || ss.length === 1) {
        await this.#pool.run(
          (c) =>
            xread(
              c,
              ss.map((s) => s.keys.log),
              cursors,
            ),
          signal,
        );
        return;
      }
      // A cluster: one XREAD cannot span slots; wait on each stream, the first answer wins.
      const ac = new AbortController();
      const onAbort = () => ac.abort();
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        await Promise.race(
          ss.map((s, i) => this.#pool.run((c) => xread(c, [s.keys.log], [cursors[i]!]), ac.signal)),
        );
      } finally {
        signal?.removeEventListener('abort', onAbort);
        ac.abort();
      }
    } catch (e) {
      if (e instanceof AbortError) return;
      throw transportError(e, `wait of group '${group}'`);
    }
  }

  #retrying<T>(fn: () => Promise<T>): Promise<T> {
    return retrying(this.#options.reconnectTimeoutMs, fn, this.#stats);
  }

  close(): void {
    this.#pool.close();
  }
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
