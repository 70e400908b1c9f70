/** The `weft` command line, run as a child process (real argv, real exit codes). */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createFabric } from '../../index.js';

const cli = fileURLToPath(new URL('../../cli/index.ts', import.meta.url));
const root = fileURLToPath(new URL('../../', import.meta.url));

function weft(
  args: string[],
  env: Record<string, string> = {},
  input?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', cli, ...args],
      { env: { ...process.env, ...env }, cwd: root },
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

describe('weft CLI', () => {
  it('demo verifies exactly-once delivery and says so', async () => {
    const r = await weft(['demo', '--events', '5000', '--followers', '2', '--remote', '1', '--quiet']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("weft demo on 'sab'"); // the demo's embedded default: worker-thread publishers
    expect(r.stdout).toContain('worker threads');
    expect(r.stdout).toContain('remote (WebSocket): 1 x');
    expect(r.stdout).toContain('followers verified: 3/3');
    expect(r.stdout).toContain('lost: 0, duplicated: 0');
    expect(r.stdout).toContain('result: OK');
  });

  it('bad flags and bad config print one clear line and exit 2', async () => {
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['demo', '--evnts', '5'], {}, /evnts/],
      [['demo', '--events', 'many'], {}, /--events must be a whole number/],
      [['nope'], {}, /unknown command 'nope'/],
      [['demo', '--events', '10'], { WEFT_URL: 'carrier-pigeon://x' }, /unknown scheme 'carrier-pigeon:'/],
      [['demo', '--transport', 'telegraph'], {}, /unknown transport "telegraph"/],
      [['follow'], {}, /follow needs a stream name/],
    ];
    for (const [args, env, message] of cases) {
      const r = await weft(args, env);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
  });

  it('a config file selects the transport, and a broken one is reported', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-cfg-'));
    const good = join(dir, 'good.json');
    const bad = join(dir, 'bad.json');
    writeFileSync(good, JSON.stringify({ transport: 'memory' }));
    writeFileSync(bad, '{ transport: memory');
    expect((await weft(['demo', '--events', '100', '--config', good, '--quiet'])).code).toBe(0);
    const r = await weft(['demo', '--config', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not valid JSON/);
  });

  it('publish reads newline-delimited JSON from stdin and prints the sequences', async () => {
    const r = await weft(['publish', 'orders', '-'], {}, '{"id":1}\n{"id":2}\n\n{"id":3}\n');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['1', '2', '3']);
    const bad = await weft(['publish', 'orders', '{nope'], {});
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not valid JSON/);
  });

  it('serve runs a WebSocket gateway with Prometheus text on /metrics, and stops on SIGINT', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', cli, 'serve', '--port', '0'], { cwd: root });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (b: Buffer) => {
          out += b.toString();
          const line = out.split('\n').find((l) => l.includes('"listening"'));
          if (line) resolve((JSON.parse(line) as { url: string }).url);
        });
        child.once('exit', (code) => reject(new Error(`serve exited with ${code}`)));
      });
      const remote = await createFabric({ transport: 'websocket', url });
      expect(await remote.stream('cli.orders').publish({ id: 1 })).toBe(1);
      const metrics = await fetch(`${url.replace('ws:', 'http:')}/metrics`);
      expect(metrics.status).toBe(200);
      const text = await metrics.text();
      expect(text).toContain('weft_stream_last_seq{transport="memory",stream="cli.orders"} 1');
      expect(text).toContain('weft_gateway_connections');
      await remote.close();
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      child.kill('SIGINT');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('help lists the commands', async () => {
    const r = await weft(['help']);
    expect(r.code).toBe(0);
    for (const c of ['demo', 'publish', 'follow', 'serve', 'bench', 'maze']) expect(r.stdout).toContain(c);
  });
});
