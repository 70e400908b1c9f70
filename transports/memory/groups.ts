/**
 * Consumer groups for the memory transport: per (group, stream) a cursor (the next sequence never
 * delivered to the group) and a pending list (delivered, not acked: owner, time, delivery count).
 * Entries the retention cursor trimmed before the group read them are skipped and counted.
 */
import type { EventLog, Parked } from '../../core/event-log.js';
import type { GroupEntry, GroupOperations } from '../../core/transport.js';
import type { StartPosition, WeftEvent } from '../../core/types.js';

interface Pending {
  event: WeftEvent;
  consumer: string;
  /** When it was last handed out; -Infinity once released (claimable at once). */
  deliveredAt: number;
  deliveries: number;
}

interface GroupState {
  cursor: number;
  pending: Map<number, Pending>;
  /** Events trimmed by retention before this group read them. */
  skipped: number;
}

export class MemoryGroups implements GroupOperations {
  #logOf: (stream: string) => EventLog<WeftEvent>;
  #groups = new Map<string, GroupState>();
  /** Waiters woken by releases (a nack makes work for other consumers without any append). */
  #releaseWaiters = new Set<() => void>();

  constructor(logOf: (stream: string) => EventLog<WeftEvent>) {
    this.#logOf = logOf;
  }

  #state(group: string, stream: string): GroupState {
    const s = this.#groups.get(`${group}\u0000${stream}`);
    if (s === undefined) throw new Error(`group '${group}' does not exist on stream '${stream}'`);
    return s;
  }

  /** Pending entries of a group (for tests and metrics). */
  pendingCount(group: string, stream: string): number {
    return this.#groups.get(`${group}\u0000${stream}`)?.pending.size ?? 0;
  }

  async ensure(group: string, stream: string, from: StartPosition): Promise<void> {
    const key = `${group}\u0000${stream}`;
    if (this.#groups.has(key)) return;
    const log = this.#logOf(stream);
    const cursor = from === 'start' ? log.firstSeq : from === 'end' ? log.nextSeq : from;
    this.#groups.set(key, { cursor, pending: new Map(), skipped: 0 });
  }

  async read(group: string, consumer: string, stream: string, count: number): Promise<GroupEntry[]> {
    const g = this.#state(group, stream);
    const log = this.#logOf(stream);
    if (g.cursor < log.firstSeq) {
      g.skipped += log.firstSeq - g.cursor;
      g.cursor = log.firstSeq;
    }
    const events = log.slice(g.cursor, count);
    const now = Date.now();
    const out: GroupEntry[] = new Array(events.length);
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      g.pending.set(event.seq, { event, consumer, deliveredAt: now, deliveries: 1 });
      out[i] = { event, deliveries: 1 };
    }
    g.cursor += events.length;
    return out;
  }

  async claim(
    group: string,
    consumer: string,
    stream: string,
    minIdleMs: number,
    count: number,
  ): Promise<GroupEntry[]> {
    const g = this.#state(group, stream);
    const now = Date.now();
    const out: GroupEntry[] = [];
    for (const p of g.pending.values()) {
      if (out.length >= count) break;
      if (now - p.deliveredAt < minIdleMs) continue;
      p.consumer = consumer;
      p.deliveredAt = now;
      p.deliveries++;
      out.push({ event: p.event, deliveries: p.deliveries });
    }
    return out;
  }

  async ack(group: string, stream: string, seqs: readonly number[]): Promise<void> {
    const g = this.#state(group, stream);
    for (const seq of seqs) g.pending.delete(seq);
  }

  async release(group: string, consumer: string, stream: string, seqs: readonly number[]): Promise<void> {
    const g = this.#state(group, stream);
    for (const seq of seqs) {
      const p = g.pending.get(seq);
      if (p !== undefined && p.consumer === consumer) p.deliveredAt = Number.NEGATIVE_INFINITY;
    }
    const waiters = [...this.#releaseWaiters];
    this.#releaseWaiters.clear();
    for (const w of waiters) w();
  }

  wait(group: string, streams: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      // Already work to do: a stream with entries past the group's cursor.
      for (const s of streams) {
        const g = this.#groups.get(`${group}\u0000${s}`);
        if (g !== undefined && this.#logOf(s).nextSeq > g.cursor) return resolve();
      }
      const parked: { log: EventLog<WeftEvent>; p: Parked }[] = [];
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = (): void => {
        clearTimeout(timer);
        for (const { log, p } of parked) log.unpark(p);
        this.#releaseWaiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      for (const s of streams) {
        const log = this.#logOf(s);
        const p: Parked = { parkIndex: -1, wake: done };
        log.park(p);
        parked.push({ log, p });
      }
      this.#releaseWaiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
      timer = setTimeout(done, timeoutMs);
    });
  }
}
