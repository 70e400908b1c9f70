/**
 * Runs the benchmark suites side by side with their baselines and writes one report:
 * bench/results/<suite>.json per suite, bench/results/latest.json and bench/results/latest.md.
 *
 *   npm run bench                      # every suite, full length
 *   npm run bench -- --quick           # every suite, short (CI smoke)
 *   npm run bench -- core resequencer  # some suites
 */
import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type BenchRow, formatNumber, machine, printReport, type SuiteReport, writeReport } from './lib.js';

export const SUITES = ['core', 'resequencer', 'matcher', 'sink', 'maze', 'sab', 'websocket', 'redis'];

export async function runSuites(names: string[], quick: boolean): Promise<SuiteReport[]> {
  const reports: SuiteReport[] = [];
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  for (const name of names) {
    const url = new URL(`./${name}.bench.${ext}`, import.meta.url);
    if (!existsSync(fileURLToPath(url))) {
      console.log(`(suite '${name}' does not exist yet: skipped)`);
      continue;
    }
    const mod = (await import(url.href)) as { run: (o: { quick: boolean }) => Promise<BenchRow[]> };
    const started = Date.now();
    const rows = await mod.run({ quick });
    const report: SuiteReport = {
      suite: name,
      rows,
      machine: machine(),
      startedAt: new Date(started).toISOString(),
      durationMs: Date.now() - started,
      quick,
    };
    printReport(report);
    writeReport(report);
    reports.push(report);
  }
  return reports;
}

export function markdown(reports: SuiteReport[]): string {
  const m = machine();
  const out = [`Measured on ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, Node ${m.node}.`, ''];
  for (const r of reports) {
    out.push(
      `### ${r.suite}${r.quick ? ' (quick run)' : ''}`,
      '',
      '| measurement | value | baseline | ratio | target |',
      '| --- | --- | --- | --- | --- |',
    );
    for (const row of r.rows) {
      out.push(
        `| ${row.name} | ${formatNumber(row.value)} ${row.unit} | ${row.baseline ?? ''} | ${row.ratio === undefined ? '' : `${row.ratio.toFixed(2)}x`} | ${row.target === undefined ? '' : `>= ${row.target}x ${row.met ? 'met' : '**missed**'}`} |`,
      );
    }
    out.push('');
  }
  return out.join('\n');
}

async function cli(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const names = args.filter((a) => !a.startsWith('--'));
  const started = Date.now();
  const reports = await runSuites(names.length > 0 ? names : SUITES, quick);
  const dir = new URL('../bench/results/', import.meta.url).href.replace(
    '/dist/bench/results/',
    '/bench/results/',
  );
  writeFileSync(
    new URL('latest.json', dir),
    `${JSON.stringify({ machine: machine(), quick, durationMs: Date.now() - started, reports }, null, 2)}\n`,
  );
  writeFileSync(new URL('latest.md', dir), markdown(reports));
  console.log(
    `\nall suites took ${((Date.now() - started) / 1000).toFixed(1)} s; wrote bench/results/latest.{json,md}`,
  );
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await cli();
