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

/**
 * An SVG bar chart of every row that has a baseline: its ratio on a log scale, with the target
 * marked. Generated from the report (README embeds bench/results/latest.svg).
 */
export function svgChart(reports: SuiteReport[]): string {
  const rows = reports.flatMap((r) =>
    r.rows.filter((row) => row.ratio !== undefined).map((row) => ({ suite: r.suite, ...row })),
  );
  const W = 900;
  const rowH = 22;
  const left = 430;
  const H = 40 + rows.length * rowH + 30;
  const maxLog = Math.log10(Math.max(1000, ...rows.map((r) => r.ratio ?? 1)));
  const minLog = Math.log10(Math.min(0.01, ...rows.map((r) => r.ratio ?? 1)));
  const x = (ratio: number) => left + ((Math.log10(ratio) - minLog) / (maxLog - minLog)) * (W - left - 60);
  const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">Weft vs baseline, same run (ratio, log scale; &gt; 1 = Weft better)</text>`,
    `<line x1="${x(1)}" y1="30" x2="${x(1)}" y2="${H - 25}" stroke="#888" stroke-dasharray="4 3"/>`,
    `<text x="${x(1) + 3}" y="${H - 12}" fill="#555">1x</text>`,
  ];
  rows.forEach((r, i) => {
    const y = 40 + i * rowH;
    const ratio = r.ratio ?? 1;
    const color = r.target === undefined ? '#4a7bd0' : r.met ? '#3a9a4a' : '#d0563a';
    const x0 = Math.min(x(1), x(ratio));
    out.push(
      `<text x="${left - 8}" y="${y + 14}" text-anchor="end">${esc(`${r.suite}: ${r.name}`.slice(0, 68))}</text>`,
      `<rect x="${x0}" y="${y + 3}" width="${Math.max(1, Math.abs(x(ratio) - x(1)))}" height="${rowH - 7}" fill="${color}"/>`,
      `<text x="${Math.max(x(ratio), x(1)) + 4}" y="${y + 14}">${ratio >= 10 ? ratio.toFixed(0) : ratio.toFixed(2)}x</text>`,
    );
    if (r.target !== undefined) {
      out.push(
        `<line x1="${x(r.target)}" y1="${y + 1}" x2="${x(r.target)}" y2="${y + rowH - 2}" stroke="black" stroke-width="2"/>`,
      );
    }
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Writes bench/results/latest.{json,md,svg} for a set of reports. */
export function writeLatest(reports: SuiteReport[], quick: boolean, durationMs: number): void {
  const dir = new URL('../bench/results/', import.meta.url).href.replace(
    '/dist/bench/results/',
    '/bench/results/',
  );
  writeFileSync(
    new URL('latest.json', dir),
    `${JSON.stringify({ machine: machine(), quick, durationMs, reports }, null, 2)}\n`,
  );
  writeFileSync(new URL('latest.md', dir), markdown(reports));
  writeFileSync(new URL('latest.svg', dir), svgChart(reports));
  console.log(
    `\nall suites took ${(durationMs / 1000).toFixed(1)} s; wrote bench/results/latest.{json,md,svg}`,
  );
}

async function cli(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const names = args.filter((a) => !a.startsWith('--'));
  const started = Date.now();
  const reports = await runSuites(names.length > 0 ? names : SUITES, quick);
  writeLatest(reports, quick, Date.now() - started);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await cli();
