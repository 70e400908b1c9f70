/**
 * Sessions: what the gateway remembers about a client between its connections, so that a publish
 * retried after a reconnect is applied at most once and its caller still learns the outcome.
 *
 * Guarantee: for a key the session still remembers, a retry gets the first attempt's outcome
 * (waiting for it when it is still running); for a key at or below the session's `floor` that it
 * no longer remembers, the answer is "forgotten", never a second append. Memory is bounded:
 * `window` outcomes per session, `maxSessions` sessions, detached ones dropped after `ttlMs`.
 */
import type { WireError } from './protocol.js';

export type PublishOutcome = { readonly seq: number } | { readonly error: WireError };

/** Group reads remembered per session (their answers hold events: a few suffice for retries). */
const GROUP_WINDOW = 64;

export class Session {
  readonly id: string;
  /** The connection currently attached, if any. */
  owner: object | undefined;
  /** When the last connection detached (ms); 0 while attached. */
  detachedAt = 0;
  #outcomes = new Map<number, PublishOutcome | Promise<PublishOutcome>>();
  /** Every key <= floor that is not in the map was forgotten (evicted). */
  #floor = 0;
  readonly #window: number;

  constructor(id: string, window: number) {
    this.id = id;
    this.#window = window;
  }

  /** Number of outcomes held (for tests and stats). */
  get size(): number {
    return this.#outcomes.size;
  }

  /**
   * The outcome of an earlier publish with this key: the outcome, a promise of it (still running),
   * 'forgotten' (evicted: it may or may not have been applied), or `undefined` (never seen).
   */
  lookup(key: number): PublishOutcome | Promise<PublishOutcome> | 'forgotten' | undefined {
    const found = this.#outcomes.get(key);
    if (found !== undefined) return found;
    return key <= this.#floor ? 'forgotten' : undefined;
  }

  #groupReads = new Map<number, Promise<unknown>>();

  /**
   * The answer of an earlier group `read`/`claim` with this key (a retry after a reconnect gets the
   * same entries instead of new ones, so nothing handed out is stranded until its ack timeout), or
   * `undefined`. Remembers the last 64.
   */
  groupRead(key: number, run: () => Promise<unknown>): Promise<unknown> {
    const found = this.#groupReads.get(key);
    if (found !== undefined) return found;
    const p = run();
    this.#groupReads.set(key, p);
    if (this.#groupReads.size > GROUP_WINDOW)
      this.#groupReads.delete(this.#groupReads.keys().next().value as number);
    return p;
  }

  /** Records a publish that has just started; its outcome replaces the promise when it settles. */
  remember(key: number, outcome: Promise<PublishOutcome>): void {
    const map = this.#outcomes;
    map.set(key, outcome);
    void outcome.then((o) => {
      if (map.get(key) === outcome) map.set(key, o);
    });
    if (map.size > this.#window) {
      // Keys arrive in increasing order from a well-behaved client: the first inserted is the oldest.
      const oldest = map.keys().next().value as number;
      map.delete(oldest);
      if (oldest > this.#floor) this.#floor = oldest;
    }
  }
}

export interface SessionStoreOptions {
  /** Outcomes remembered per session. */
  window: number;
  /** How long a session without a connection is kept, in ms. */
  ttlMs: number;
  /** Sessions kept at most (the oldest detached ones go first). */
  maxSessions: number;
  now?: () => number;
}

export class SessionStore {
  #sessions = new Map<string, Session>();
  readonly #options: SessionStoreOptions;
  readonly #now: () => number;

  constructor(options: SessionStoreOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#sessions.size;
  }

  /**
   * Attaches `owner` to the session `requested` when the store still has it (`resumed: true`),
   * else to a new session. `previous` is the connection the session was taken from, if any.
   */
  attach(
    owner: object,
    requested: string | undefined,
  ): { session: Session; resumed: boolean; previous: object | undefined } {
    this.sweep();
    let session = requested === undefined ? undefined : this.#sessions.get(requested);
    const resumed = session !== undefined;
    if (session === undefined) {
      session = new Session(newSessionId(), this.#options.window);
    } else {
      this.#sessions.delete(session.id); // re-inserted below: the map stays in order of last use
    }
    const previous = session.owner;
    session.owner = owner;
    session.detachedAt = 0;
    this.#sessions.set(session.id, session);
    return { session, resumed, previous };
  }

  /** The connection `owner` left: the session waits `ttlMs` for a resume. */
  detach(session: Session, owner: object): void {
    if (session.owner !== owner) return; // already taken over by a newer connection
    session.owner = undefined;
    session.detachedAt = this.#now();
  }

  /** Drops detached sessions past their TTL, then the oldest detached ones beyond `maxSessions`. */
  sweep(): void {
    const now = this.#now();
    const { ttlMs, maxSessions } = this.#options;
    let excess = this.#sessions.size - maxSessions;
    for (const s of this.#sessions.values()) {
      if (s.owner !== undefined) continue;
      if (now - s.detachedAt >= ttlMs || excess > 0) {
        this.#sessions.delete(s.id);
        excess--;
      }
    }
  }

  clear(): void {
    this.#sessions.clear();
  }
}

function newSessionId(): string {
  const c = globalThis.crypto;
  if (c?.randomUUID !== undefined) return c.randomUUID();
  // Fallback without WebCrypto (not expected on Node >= 20): still 128 random bits.
  return Array.from({ length: 4 }, () => Math.floor(Math.random() * 2 ** 32).toString(16)).join('-');
}
