/**
 * The browser client in a real headless Chromium (playwright-core): the client bundle is built with
 * esbuild for the browser (the build fails on any Node built-in), a page served next to the gateway
 * follows a stream and shows the events, and the test checks what the page received.
 *
 * Chromium: /usr/bin/chromium (Debian package) or CHROMIUM_PATH. Missing: skipped with the reason
 * printed, except under CI=true, where that is a failure.
 */
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFabric, type Fabric } from '../../index.js';
import { serveWebSocket, type WebSocketGateway } from '../../transports/websocket/index.js';
import { uniqueName } from '../helpers/async.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  if (process.env.CI === 'true')
    throw new Error(`CI=true and Chromium is missing at ${CHROMIUM}: apt-get install -y chromium`);
  console.warn(
    `browser test skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)`,
  );
}

/** Builds the page script for browsers; fails on anything Node-only. */
export async function bundleForBrowser(entry: string): Promise<{ code: string; inputs: string[] }> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  return { code: result.outputFiles[0]!.text, inputs: Object.keys(result.metafile.inputs) };
}

describe.skipIf(!haveChromium)('browser client (headless Chromium)', () => {
  let http: Server;
  let gateway: WebSocketGateway;
  let backing: Fabric;
  let browser: Browser;
  let origin: string;
  let bundle: { code: string; inputs: string[] };

  beforeAll(async () => {
    bundle = await bundleForBrowser(fileURLToPath(new URL('./page.ts', import.meta.url)));
    const html =
      '<!doctype html><meta charset="utf-8"><title>weft browser test</title>' +
      '<ul id="events"></ul><script type="module" src="/page.js"></script>';
    http = createServer((req, res) => {
      if (req.url?.startsWith('/page.js')) {
        res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle.code);
      } else if (req.url === '/favicon.ico') {
        res.writeHead(204).end();
      } else {
        res.writeHead(200, { 'content-type': 'text/html' }).end(html);
      }
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    backing = await createFabric({ transport: 'memory' });
    // The gateway shares the page's HTTP server (same origin), on its own path.
    gateway = await serveWebSocket({ fabric: backing, server: http, path: '/weft' });
    origin = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await gateway?.close();
    await backing?.close();
    await new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve()));
  });

  it('the client bundle has no Node built-ins and no ws', () => {
    expect(bundle.inputs.filter((i) => i.startsWith('node:') || /node_modules\/ws\//.test(i))).toEqual([]);
    expect(bundle.inputs.some((i) => i.includes('transports/websocket/client.ts'))).toBe(true);
    expect(bundle.code).not.toMatch(/require\(["']node:/);
  });

  it('a page follows a stream served by the gateway and shows every event once, in order', async () => {
    const name = uniqueName('browser');
    const stream = backing.stream<{ n: number; text: string }>(name);
    await stream.publishBatch([1, 2, 3].map((n) => ({ data: { n, text: `history ${n}` } })));
    const page = await browser.newPage();
    const consoleErrors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    const ws = `ws://127.0.0.1:${(http.address() as AddressInfo).port}/weft`;
    await page.goto(`${origin}/?ws=${encodeURIComponent(ws)}&stream=${encodeURIComponent(name)}`);
    await page.waitForFunction(
      () => {
        const s = (globalThis as unknown as { weftPage?: { ready: boolean; error?: string } }).weftPage;
        return s?.ready === true || s?.error !== undefined;
      },
      undefined,
      { timeout: 10_000 },
    );
    for (let n = 4; n <= 50; n++)
      await stream.publish({ n, text: `live ${n}` }, { topic: n % 2 ? 'odd' : 'even' });
    await stream.close();
    await page.waitForFunction(
      () => (globalThis as unknown as { weftPage: { ended: boolean; error?: string } }).weftPage.ended,
      undefined,
      { timeout: 10_000 },
    );
    const state = await page.evaluate(() => (globalThis as unknown as { weftPage: unknown }).weftPage);
    const s = state as {
      events: { seq: number; data: { n: number }; topic?: string }[];
      error?: string;
      published: number;
    };
    expect(s.error).toBeUndefined();
    expect(s.events.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(s.events.map((e) => e.data.n)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(s.events[4]!.topic).toBe('odd');
    expect(await page.locator('#events li').count()).toBe(50);
    expect(await page.locator('#events li').nth(49).textContent()).toBe('50: {"n":50,"text":"live 50"}');
    // The page's own publish reached the gateway's fabric.
    expect(s.published).toBe(1);
    const fromBrowser = await backing.stream(`${name}-from-browser`).read();
    expect(fromBrowser.map((e) => (e.data as { hello: string }).hello)).toEqual(['from the browser']);
    expect(consoleErrors).toEqual([]);
    await page.close();
  });
});
