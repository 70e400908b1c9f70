/**
 * Stress-test plumbing: how long to run (bounded by default, long with WEFT_STRESS=1), a seeded
 * random generator, and starting a TypeScript worker thread (toolchain.md section 3: tsx preload).
 */
import { Worker } from 'node:worker_threads';

/** 1 by default; WEFT_STRESS=1 multiplies the work (WEFT_STRESS_SCALE sets the factor, default 50). */
export const STRESS_SCALE = process.env.WEFT_STRESS === '1' ? Number(process.env.WEFT_STRESS_SCALE ?? 50) : 1;

/** The seed of this run: WEFT_STRESS_SEED replays one; printed by every stress test. */
export const STRESS_SEED = Number(process.env.WEFT_STRESS_SEED ?? Date.now() % 2 ** 31);

/** mulberry32: small, fast, good enough to drive test choices; the same seed gives the same run. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Starts `./fixtures/<name>` next to this file as a worker thread (the .ts source under vitest). */
export function startWorker(name: string, workerData: unknown): Worker {
  const fromSource = import.meta.url.endsWith('.ts');
  const url = new URL(`./fixtures/${name}${fromSource ? '.ts' : '.js'}`, import.meta.url);
  const execArgv = fromSource
    ? ['--import', new URL('../../tools/tsx-worker-register.mjs', import.meta.url).href]
    : undefined;
  return new Worker(url, { workerData, execArgv });
}

/** The body pattern of record `seq`: any torn, stale or misplaced byte shows. */
export function patternByte(seq: number, j: number): number {
  return (seq * 131 + j * 7 + (j >>> 8)) & 0xff;
}

/** The checksum a generator event carries (FNV-1a of its identity and padding length). */
export function checksum(tag: string, i: number, padLength: number): number {
  let h = 2166136261;
  for (const c of `${tag}:${i}:${padLength}`) h = Math.imul(h ^ c.charCodeAt(0), 16777619);
  return h >>> 0;
}

/** The padding of generator event `i`. */
export function padOf(i: number, length: number): string {
  return String.fromCharCode(97 + (i % 26)).repeat(length);
}
