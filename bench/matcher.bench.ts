/**
 * TopicMatcher micro benchmark: match rate (matches/s) of the trie with 10, 1,000 and 100,000
 * subscriptions against a naive linear matcher (loop over every pattern) at 10 and 1,000, all on
 * one stream of probe topics. The claim checked: the trie's rate at 100,000 subscriptions is within
 * 2x of its rate at 10 (ratio >= 0.5), because non-matching subscriptions cost nothing.
 *
 * Run: `npx tsx bench/matcher.bench.ts` (add `--quick` for a smoke run).
 */
import { Bench } from 'tinybench';
import { TopicMatcher } from '../core/topic-matcher.js';
import { type BenchRow, compare, isMain, main } from './lib.js';

const SIZES = [10, 1_000, 100_000] as const;
const NAIVE_SIZES = [10, 1_000] as const;
const PROBES = 4096;
/** match() calls per benchmark iteration, so the timer's resolution does not matter. */
const BATCH = 1024;

/** Deterministic PRNG (mulberry32) so every run, and every matcher in a run, sees the same input. */
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

const DOMAINS = [
  'orders',
  'users',
  'payments',
  'invoices',
  'shipments',
  'carts',
  'inventory',
  'sessions',
  'reviews',
  'refunds',
  ...Array.from({ length: 30 }, (_, i) => `svc-${i}`),
];
const TENANTS = Array.from({ length: 2000 }, (_, i) => `tenant_${i}`);
const ENTITIES = [
  'item',
  'line',
  'address',
  'card',
  'account',
  'profile',
  ...Array.from({ length: 24 }, (_, i) => `e${i}`),
];
const ACTIONS = [
  'created',
  'updated',
  'deleted',
  'shipped',
  'paid',
  'failed',
  ...Array.from({ length: 14 }, (_, i) => `a${i}`),
];

function pick<T>(rand: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rand() * xs.length)]!;
}

/** A random 3- or 4-token topic: domain.tenant.entity[.action]. */
function randomTopic(rand: () => number): string {
  const tokens = [pick(rand, DOMAINS), pick(rand, TENANTS), pick(rand, ENTITIES)];
  if (rand() < 0.5) tokens.push(pick(rand, ACTIONS));
  return tokens.join('.');
}

/**
 * The subscription mix, stratified so every prefix (the first 10, the first 1,000) has the same mix:
 * 85% exact topics; 10% tenant-scoped `*` patterns (`orders.tenant_7.*.created`, the `*` on the
 * entity or action); 5% tenant-scoped `>` patterns (`orders.tenant_7.>`, `orders.tenant_7.item.>`);
 * and one in a thousand a global pattern with `*` on the domain or tenant (`*.tenant_7.item`,
 * `orders.*.item.paid`), as an audit or analytics consumer would hold.
 */
function subscriptions(count: number): string[] {
  const rand = prng(0x5eed);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const kind = i % 20;
    const tokens = randomTopic(rand).split('.');
    if (i % 1000 === 999) tokens[Math.floor(rand() * 2)] = '*';
    else if (kind === 0 || kind === 1) tokens[2 + Math.floor(rand() * (tokens.length - 2))] = '*';
    else if (kind === 2) tokens.splice(2 + Math.floor(rand() * (tokens.length - 2)), tokens.length, '>');
    out.push(tokens.join('.'));
  }
  return out;
}

/** One in eight probes is an exact topic subscribed at every size; the rest are random topics. */
function probes(subs: readonly string[]): string[] {
  const rand = prng(0xf00d);
  const hot = subs.slice(0, 10).filter((p) => !p.includes('*') && !p.includes('>'));
  return Array.from({ length: PROBES }, (_, i) =>
    i % 8 === 0 ? hot[(i / 8) % hot.length]! : randomTopic(rand),
  );
}

/** The baseline: a list of pre-split patterns, every one tested against every topic. */
class NaiveMatcher<V> {
  readonly #pairs: { tokens: string[]; value: V }[] = [];
  add(pattern: string, value: V): void {
    this.#pairs.push({ tokens: pattern.split('.'), value });
  }
  match(topic: string): V[] {
    const t = topic.split('.');
    const out: V[] = [];
    for (const { tokens: p, value } of this.#pairs) {
      let ok = p.length === t.length;
      for (let i = 0; i < p.length; i++) {
        const token = p[i];
        if (token === '>') {
          ok = t.length > i;
          break;
        }
        if (i >= t.length || (token !== '*' && token !== t[i])) {
          ok = false;
          break;
        }
      }
      if (ok && !out.includes(value)) out.push(value);
    }
    return out;
  }
}

interface Matcher {
  match(topic: string): unknown[];
}

export async function run(opts: { quick: boolean }): Promise<BenchRow[]> {
  const all = subscriptions(Math.max(...SIZES));
  const stream = probes(all);
  const bench = new Bench({
    time: opts.quick ? 150 : 1000,
    warmupTime: opts.quick ? 50 : 250,
    iterations: opts.quick ? 8 : 64,
  });
  // The machine may be shared: run every task `rounds` times, interleaved, and keep each one's best.
  const rounds = opts.quick ? 1 : 3;
  const shape = new Map<string, { valuesPerProbe: number; matchedProbes: number }>();
  const answers = new Map<number, number[][]>();

  const addMatchTask = (name: string, n: number, m: Matcher) => {
    const results = stream.map((t) => (m.match(t) as number[]).sort((x, y) => x - y));
    const previous = answers.get(n);
    if (previous === undefined) answers.set(n, results);
    else if (JSON.stringify(previous) !== JSON.stringify(results))
      throw new Error(`${name} disagrees with the trie`);
    shape.set(name, {
      valuesPerProbe: results.reduce((sum, r) => sum + r.length, 0) / stream.length,
      matchedProbes: results.filter((r) => r.length > 0).length / stream.length,
    });
    let at = 0;
    let sink = 0;
    bench.add(name, () => {
      for (let i = 0; i < BATCH; i++) {
        sink += m.match(stream[at]!).length;
        at = (at + 1) & (PROBES - 1);
      }
      return sink;
    });
  };

  for (const n of SIZES) {
    const m = new TopicMatcher<number>();
    for (let i = 0; i < n; i++) m.add(all[i]!, i);
    addMatchTask(`trie, ${n} subscriptions`, n, m);
  }
  for (const n of NAIVE_SIZES) {
    const m = new NaiveMatcher<number>();
    for (let i = 0; i < n; i++) m.add(all[i]!, i);
    addMatchTask(`naive linear, ${n} subscriptions`, n, m);
  }

  // Churn: subscribe and unsubscribe a fresh wildcard pattern in a 100,000 trie (prunes each time).
  const big = new TopicMatcher<number>();
  for (let i = 0; i < all.length; i++) big.add(all[i]!, i);
  const churnName = 'add+remove of a wildcard pattern, 100000 subscriptions';
  let churnAt = 0;
  bench.add(churnName, () => {
    for (let i = 0; i < BATCH; i++) {
      const pattern = `${all[churnAt]!.split('.')[0]}.*.churn.${churnAt}`;
      big.add(pattern, -1);
      big.remove(pattern, -1);
      churnAt = (churnAt + 1) % all.length;
    }
  });

  const best = new Map<string, { rate: number; p50: number; p99: number; samples: number }>();
  for (let round = 0; round < rounds; round++) {
    await bench.run();
    for (const task of bench.tasks) {
      const r = task.result;
      if (r.state !== 'completed') throw new Error(`bench task ${task.name} did not complete: ${r.state}`);
      const rate = BATCH / (r.period / 1000);
      if (rate > (best.get(task.name)?.rate ?? 0)) {
        best.set(task.name, { rate, p50: r.latency.p50, p99: r.latency.p99, samples: task.runs });
      }
    }
  }

  const rows: BenchRow[] = [];
  for (const task of bench.tasks) {
    const b = best.get(task.name)!;
    const s = shape.get(task.name);
    rows.push({
      name: task.name,
      value: b.rate,
      unit: s === undefined ? 'pairs/s' : 'matches/s',
      extra: {
        nsPerOp: Number((1e9 / b.rate).toFixed(1)),
        ...(s === undefined
          ? {}
          : {
              valuesPerProbe: Number(s.valuesPerProbe.toFixed(3)),
              matchedProbes: Number(s.matchedProbes.toFixed(3)),
            }),
        p50BatchMs: Number(b.p50.toFixed(4)),
        p99BatchMs: Number(b.p99.toFixed(4)),
        batch: BATCH,
        samples: b.samples,
        rounds,
      },
    });
  }
  for (const n of NAIVE_SIZES) compare(rows, `trie, ${n} subscriptions`, `naive linear, ${n} subscriptions`);
  compare(rows, 'trie, 100000 subscriptions', 'trie, 10 subscriptions', { target: 0.5 });
  return rows;
}

if (isMain(import.meta.url)) await main('matcher', run);
