/** Small async helpers for tests (no timers in assertions about speed: only for liveness). */

/** Yields to the event loop (after pending microtasks and I/O callbacks). */
export function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Waits until `cond()` holds, polling on each event-loop turn; throws after `timeoutMs`. */
export async function eventually(cond: () => boolean, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await tick();
  }
}

/** Collects what a follow loop yields, in the background, with its end state. */
export interface Collector<E> {
  readonly received: E[];
  /** Resolves when the loop ends: `undefined` for done, else the error it threw. */
  readonly ended: Promise<unknown>;
  readonly isEnded: () => boolean;
  /** Resolves when the follower's start position is known (`follower.ready()`), at once for plain iterables. */
  readonly ready: Promise<void>;
}

export function collect<E>(iterable: AsyncIterable<E>): Collector<E> {
  const received: E[] = [];
  let isEnded = false;
  const ended = (async () => {
    try {
      for await (const e of iterable) received.push(e);
      return undefined;
    } catch (e) {
      return e;
    } finally {
      isEnded = true;
    }
  })();
  const ready =
    typeof (iterable as { ready?: () => Promise<void> }).ready === 'function'
      ? (iterable as unknown as { ready: () => Promise<void> }).ready()
      : Promise.resolve();
  return { received, ended, isEnded: () => isEnded, ready };
}

let counter = 0;
/** A stream name unique within this process run. */
export function uniqueName(prefix = 's'): string {
  counter++;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`;
}
