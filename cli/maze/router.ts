/**
 * The dispatcher: applies events, in sequence order, to the follow graph and queues each on the
 * writers of the clients it is addressed to. The graph changes whether or not the users involved
 * are connected; an event for a user with no connected client is dropped. Cost: O(1) per event
 * plus O(1) per line delivered (a status update walks only its connected followers). Memory: the
 * graph (one entry per live follow), the same edges again for connected followers, and the
 * connected clients; no event is kept after `flush()`.
 */
import type { ClientWriter } from './client-writer.js';
import { EventKind, type MazeEvent } from './parser.js';

/** Who follows whom. Following twice is one edge; unfollowing a non-edge is a no-op. */
export class FollowGraph {
  /** follower -> the users they follow. Empty sets are removed. */
  readonly #following = new Map<number, Set<number>>();
  #edges = 0;

  /** Number of follow edges. */
  get edges(): number {
    return this.#edges;
  }

  /** Adds the edge; returns false when it was already there. */
  follow(follower: number, followed: number): boolean {
    let set = this.#following.get(follower);
    if (set === undefined) this.#following.set(follower, (set = new Set()));
    const before = set.size;
    set.add(followed);
    if (set.size === before) return false;
    this.#edges++;
    return true;
  }

  /** Removes the edge; returns false when it was not there. */
  unfollow(follower: number, followed: number): boolean {
    const set = this.#following.get(follower);
    if (set === undefined || !set.delete(followed)) return false;
    this.#edges--;
    if (set.size === 0) this.#following.delete(follower);
    return true;
  }

  /** The users `follower` follows (a live view: do not mutate), or undefined when none. */
  followedBy(follower: number): ReadonlySet<number> | undefined {
    return this.#following.get(follower);
  }
}

export interface RouterOptions {
  /** Called after a flush for each client over its buffer bound; the caller disconnects it. */
  onSlowClient: (client: ClientWriter) => void;
}

/**
 * Routes events to connected clients. `route()` only queues; `flush()` writes what a turn queued,
 * one write per client. Several clients may share a user id: each gets every line for that id.
 */
export class Router {
  readonly graph = new FollowGraph();
  readonly #onSlowClient: (client: ClientWriter) => void;
  /** user id -> its connected clients (usually one). */
  readonly #byUser = new Map<number, ClientWriter[]>();
  readonly #all = new Set<ClientWriter>();
  /**
   * followed user -> the clients of its connected followers: the audience of a status update.
   * Kept in step with the graph (on follow/unfollow) and with connections (on add/remove).
   */
  readonly #audience = new Map<number, ClientWriter[]>();
  /** Clients with lines queued this turn, each once. */
  #dirty: ClientWriter[] = [];
  #routed = 0;
  #deliveries = 0;

  constructor(options: RouterOptions) {
    this.#onSlowClient = options.onSlowClient;
  }

  /** Connected (identified) clients. */
  get clients(): number {
    return this.#all.size;
  }

  /** Events routed so far. */
  get routed(): number {
    return this.#routed;
  }

  /** Lines queued for clients so far (one per client per event delivered). */
  get deliveries(): number {
    return this.#deliveries;
  }

  /** Connects a client: from now on it gets the events for its user id. O(users it follows). */
  add(client: ClientWriter): void {
    if (this.#all.has(client)) return;
    this.#all.add(client);
    const list = this.#byUser.get(client.userId);
    if (list === undefined) this.#byUser.set(client.userId, [client]);
    else list.push(client);
    const followed = this.graph.followedBy(client.userId);
    if (followed !== undefined) for (const user of followed) this.#join(user, client);
  }

  /** Removes a client; lines queued for it this turn are dropped. Idempotent. O(users it follows). */
  remove(client: ClientWriter): void {
    if (!this.#all.delete(client)) return;
    client.discard();
    const list = this.#byUser.get(client.userId)!;
    if (list.length === 1) this.#byUser.delete(client.userId);
    else list.splice(list.indexOf(client), 1);
    const followed = this.graph.followedBy(client.userId);
    if (followed !== undefined) for (const user of followed) this.#leave(user, client);
    const dirty = this.#dirty.indexOf(client);
    if (dirty !== -1) this.#dirty.splice(dirty, 1);
  }

  /** Applies one event (the next in sequence order) and queues it for its recipients. */
  route(event: MazeEvent): void {
    this.#routed++;
    switch (event.kind) {
      case EventKind.Follow: {
        if (this.graph.follow(event.from, event.to)) {
          const clients = this.#byUser.get(event.from);
          if (clients !== undefined) for (const client of clients) this.#join(event.to, client);
        }
        this.#toAll(this.#byUser.get(event.to), event);
        return;
      }
      case EventKind.Unfollow: {
        if (this.graph.unfollow(event.from, event.to)) {
          const clients = this.#byUser.get(event.from);
          if (clients !== undefined) for (const client of clients) this.#leave(event.to, client);
        }
        return;
      }
      case EventKind.Broadcast:
        for (const client of this.#all) this.#queue(client, event);
        return;
      case EventKind.Private:
        this.#toAll(this.#byUser.get(event.to), event);
        return;
      case EventKind.Status:
        this.#toAll(this.#audience.get(event.from), event);
        return;
    }
  }

  /**
   * Writes everything queued this turn, one write per client, and reports the clients over their
   * bound to `onSlowClient` (after every client has been written).
   */
  flush(): void {
    const dirty = this.#dirty;
    if (dirty.length === 0) return;
    this.#dirty = [];
    let slow: ClientWriter[] | undefined;
    for (let i = 0; i < dirty.length; i++) {
      const client = dirty[i]!;
      if (!client.flush()) (slow ??= []).push(client);
    }
    if (slow !== undefined) for (const client of slow) this.#onSlowClient(client);
  }

  #join(followed: number, client: ClientWriter): void {
    const audience = this.#audience.get(followed);
    if (audience === undefined) this.#audience.set(followed, [client]);
    else audience.push(client);
  }

  #leave(followed: number, client: ClientWriter): void {
    const audience = this.#audience.get(followed)!;
    if (audience.length === 1) {
      this.#audience.delete(followed);
      return;
    }
    // Order within an audience does not matter: swap with the last and pop.
    const at = audience.indexOf(client);
    audience[at] = audience[audience.length - 1]!;
    audience.pop();
  }

  #toAll(clients: readonly ClientWriter[] | undefined, event: MazeEvent): void {
    if (clients === undefined) return;
    for (let i = 0; i < clients.length; i++) this.#queue(clients[i]!, event);
  }

  #queue(client: ClientWriter, event: MazeEvent): void {
    this.#deliveries++;
    if (client.enqueue(event)) this.#dirty.push(client);
  }
}
