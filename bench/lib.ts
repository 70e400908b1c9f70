/**
 * Shared benchmark plumbing: every suite returns a `SuiteReport` (rows of measured figures with
 * their baseline ratio), prints it as a table and writes it as JSON under bench/results/.
 * Benchmarks are comparisons: every row names its baseline from the same run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';

export interface BenchRow {
  /** What was measured, e.g. 'publish, 1000 followers parked'. */
  name: string;
  /** The figure, e.g. events per second. */
  value: number;
  unit: string;
  /** The row this one is compared with (its `name`), if any. */
  baseline?: string;
  /** value / baseline value, oriented so that > 1 means Weft is better. */
  ratio?: number;
  /** The target ratio from the issue, if any, and whether it was met. */
  target?: number;
  met?: boolean;
  extra?: Record<string, number | string>;
}

export interface SuiteReport {
  suite: string;
  rows: BenchRow[];
  machine: MachineInfo;
  startedAt: string;
  durationMs: number;
  quick: boolean;
}

export interface MachineInfo {
  node: string;
  cpu: string;
  cores: number;
  memGiB: number;
  platform: string;
}

export function machine(): MachineInfo {
  const c = cpus();
  return {
    node: process.version,
    cpu: c[0]?.model ?? 'unknown',
    cores: c.length,
    memGiB: Math.round(totalmem() / 2 ** 30),
    platform: `${process.platform}-${process.arch}`,
  };
}

/** Adds `ratio` (and `met` when a target is given) to a row from its baseline row. */
export function compare(
  rows: BenchRow[],
  name: string,
  baseline: string,
  opts: { target?: number; lowerIsBetter?: boolean } = {},
): void {
  const row = rows.find((r) => r.name === name);
  const base = rows.find((r) => r.name === baseline);
  if (!row || !base) throw new Error(`compare: missing row ${!row ? name : baseline}`);
  row.baseline = baseline;
  row.ratio = opts.lowerIsBetter ? base.value / row.value : row.value / base.value;
  if (opts.target !== undefined) {
    row.target = opts.target;
    row.met = row.ratio >= opts.target;
  }
}

export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (Math.abs(n) >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(3);
}

export function printReport(report: SuiteReport): void {
  const lines = report.rows.map((r) => ({
    name: r.name,
    value: `${formatNumber(r.value)} ${r.unit}`,
    vs: r.baseline ?? '',
    ratio: r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}x`,
    target: r.target === undefined ? '' : `>= ${r.target}x ${r.met ? 'met' : 'MISSED'}`,
  }));
  console.log(
    `\n## ${report.suite} (${report.machine.cpu}, ${report.machine.cores} cores, Node ${report.machine.node})`,
  );
  console.table(lines);
}

export function writeReport(report: SuiteReport): string {
  const dir = fileURLToPath(
    new URL('../bench/results/', import.meta.url).href.replace('/dist/bench/results/', '/bench/results/'),
  );
  mkdirSync(dir, { recursive: true });
  const file = `${dir}${report.suite}.json`;
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  return file;
}

/** Runs a suite's `run` function the standard way: `--quick` from argv, prints, writes JSON. */
export async function main(
  suite: string,
  run: (opts: { quick: boolean }) => Promise<BenchRow[]>,
): Promise<SuiteReport> {
  const quick = process.argv.includes('--quick') || process.env.WEFT_BENCH_QUICK === '1';
  const started = Date.now();
  const rows = await run({ quick });
  const report: SuiteReport = {
    suite,
    rows,
    machine: machine(),
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    quick,
  };
  printReport(report);
  const file = writeReport(report);
  console.log(`wrote ${file}`);
  return report;
}

/** True when this module is the script node was started with (so a suite can run standalone). */
export function isMain(importMetaUrl: string): boolean {
  return process.argv[1] !== undefined && fileURLToPath(importMetaUrl) === process.argv[1];
}
