/**
 * Resequencer micro benchmark: items per second through the Resequencer (a ring indexed by
 * `seq & mask`) against a naive sort-on-insert resequencer (efr's stream mode: append, sort,
 * release the contiguous prefix), on identical input: 1..N shuffled within consecutive blocks of
 * the window size, for windows of 16, 128 and 1,024. Also batch mode against efr's batch
 * resequencer (append, sort when full), and stream mode with a gap timeout (a clock read per
 * out-of-order push). Claims checked: >= 10x the naive one at window 1,024, and >= 10M items/s.
 *
 * Run: `npx tsx bench/resequencer.bench.ts` (add `--quick` for a smoke run).
 */
import { Bench, type Task } from 'tinybench';
import { Resequencer } from '../core/resequencer.js';
import { type BenchRow, compare, isMain, main } from './lib.js';

const WINDOWS = [16, 128, 1024] as const;
/** The absolute throughput the stream resequencer must reach, in items per second. */
const TARGET_ITEMS_PER_SEC = 10_000_000;

/** Deterministic PRNG (mulberry32) so every resequencer in a run sees the same input. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** 1..n, Fisher-Yates shuffled within each consecutive block of `block` sequences. */
function shuffledBlocks(n: number, block: number, seed: number): Float64Array {
  const rand = prng(seed);
  const seqs = new Float64Array(n);
  for (let i = 0; i < n; i++) seqs[i] = i + 1;
  for (let start = 0; start < n; start += block) {
    const end = Math.min(n, start + block);
    for (let i = end - 1; i > start; i--) {
      const j = start + Math.floor(rand() * (i - start + 1));
      const t = seqs[i]!;
      seqs[i] = seqs[j]!;
      seqs[j] = t;
    }
  }
  return seqs;
}

interface Entry<T> {
  seq: number;
  item: T;
}

/** efr's stream resequencer: every push appends, sorts the buffer and releases the contiguous prefix. */
class NaiveSortResequencer<T> {
  #buffer: Entry<T>[] = [];
  #next: number;
  constructor(start = 1) {
    this.#next = start;
  }
  push(seq: number, item: T): T[] {
    if (seq < this.#next) return [];
    this.#buffer.push({ seq, item });
    this.#buffer.sort((a, b) => a.seq - b.seq);
    let k = 0;
    while (k < this.#buffer.length && this.#buffer[k]!.seq === this.#next) {
      k++;
      this.#next++;
    }
    return k === 0 ? [] : this.#buffer.splice(0, k).map((e) => e.item);
  }
}

/** efr's batch resequencer: append; when the buffer holds `capacity` entries, sort and release them. */
class NaiveBatchResequencer<T> {
  #buffer: Entry<T>[] = [];
  readonly #capacity: number;
  constructor(capacity: number) {
    this.#capacity = capacity;
  }
  push(seq: number, item: T): T[] {
    this.#buffer.push({ seq, item });
    if (this.#buffer.length < this.#capacity) return [];
    const batch = this.#buffer.sort((a, b) => a.seq - b.seq);
    this.#buffer = [];
    return batch.map((e) => e.item);
  }
  flush(): T[] {
    const batch = this.#buffer.sort((a, b) => a.seq - b.seq);
    this.#buffer = [];
    return batch.map((e) => e.item);
  }
}

interface Pushable {
  push(seq: number, item: number): readonly number[];
}

function itemsPerSecond(task: Task, items: number): number {
  const r = task.result;
  if (r.state !== 'completed') {
    throw new Error(`bench task ${task.name} did not complete: ${r.state}`, {
      cause: r.state === 'errored' ? r.error : undefined,
    });
  }
  return items / (r.period / 1000);
}

export async function run(opts: { quick: boolean }): Promise<BenchRow[]> {
  const n = opts.quick ? 20_000 : 200_000;
  const bench = new Bench({
    time: opts.quick ? 100 : 1000,
    iterations: opts.quick ? 2 : 5,
    warmupTime: opts.quick ? 20 : 200,
    warmupIterations: 2,
  });
  const inputs = new Map<number, Float64Array>();
  for (const w of WINDOWS) inputs.set(w, shuffledBlocks(n, w, 0x5eed + w));

  /** One pass over the whole input through a fresh resequencer; checks that all n came out. */
  const addPass = (
    name: string,
    input: Float64Array,
    create: () => Pushable,
    drain?: (r: Pushable) => number,
  ) => {
    bench.add(name, () => {
      const r = create();
      let released = 0;
      for (let i = 0; i < input.length; i++) released += r.push(input[i]!, i).length;
      if (drain) released += drain(r);
      if (released !== input.length) throw new Error(`${name}: released ${released} of ${input.length}`);
    });
  };

  for (const w of WINDOWS) {
    const input = inputs.get(w)!;
    addPass(`stream w=${w}, Resequencer`, input, () => new Resequencer<number>({ window: w }));
    addPass(`stream w=${w}, naive sort-on-insert`, input, () => new NaiveSortResequencer<number>());
  }
  const input1024 = inputs.get(1024)!;
  addPass(
    'stream w=1024, Resequencer with gapTimeoutMs (Date.now)',
    input1024,
    () => new Resequencer<number>({ window: 1024, gapTimeoutMs: 60_000 }),
  );
  // Batch mode: one batch per shuffled block, so both release exactly the same sorted batches.
  addPass(
    'batch w=1024, Resequencer',
    input1024,
    () => new Resequencer<number>({ window: 1024, mode: 'batch' }),
    (r) => (r as Resequencer<number>).flush().length,
  );
  addPass(
    'batch w=1024, naive collect-and-sort',
    input1024,
    () => new NaiveBatchResequencer<number>(1024),
    (r) => (r as NaiveBatchResequencer<number>).flush().length,
  );

  await bench.run();

  const rows: BenchRow[] = [];
  for (const task of bench.tasks) {
    const r = task.result;
    const value = itemsPerSecond(task, n);
    rows.push({
      name: task.name,
      value,
      unit: 'items/s',
      extra: {
        nsPerItem: Number((1e9 / value).toFixed(2)),
        p50PassMs: r.state === 'completed' ? Number(r.latency.p50.toFixed(3)) : Number.NaN,
        p99PassMs: r.state === 'completed' ? Number(r.latency.p99.toFixed(3)) : Number.NaN,
        itemsPerPass: n,
        samples: task.runs,
        ...(task.name.startsWith('stream') && task.name.endsWith(', Resequencer')
          ? {
              absoluteTarget: `>= ${TARGET_ITEMS_PER_SEC / 1e6}M items/s`,
              absoluteMet: String(value >= TARGET_ITEMS_PER_SEC),
            }
          : {}),
      },
    });
  }
  for (const w of WINDOWS) {
    compare(
      rows,
      `stream w=${w}, Resequencer`,
      `stream w=${w}, naive sort-on-insert`,
      w === 1024 ? { target: 10 } : {},
    );
  }
  compare(
    rows,
    'stream w=1024, Resequencer with gapTimeoutMs (Date.now)',
    'stream w=1024, naive sort-on-insert',
  );
  compare(rows, 'batch w=1024, Resequencer', 'batch w=1024, naive collect-and-sort');
  for (const row of rows) {
    if (row.extra?.absoluteMet !== undefined) {
      console.log(
        `${row.name}: ${(row.value / 1e6).toFixed(1)}M items/s, target >= 10M items/s ${row.extra.absoluteMet === 'true' ? 'met' : 'MISSED'}`,
      );
    }
  }
  return rows;
}

if (isMain(import.meta.url)) await main('resequencer', run);
