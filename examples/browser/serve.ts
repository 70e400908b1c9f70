/**
 * Serves examples/browser on one origin: the page, its script (app.ts bundled for the browser with
 * esbuild, no Node built-ins), and a Weft gateway on /weft over a memory fabric that ticks 'clock'.
 *
 *   npx tsx examples/browser/serve.ts [port]      then open http://127.0.0.1:8080/
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { createFabric } from '../../index.js';
import { serveWebSocket } from '../../transports/websocket/index.js';

const port = Number(process.argv[2] ?? 8080);
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const bundle = await build({
  entryPoints: [here('./app.ts')],
  bundle: true,
  platform: 'browser',
  format: 'esm',
  target: 'es2022',
  write: false,
});
const app = bundle.outputFiles[0]!.text;
const html = readFileSync(here('./index.html'), 'utf8');

const http = createServer((req, res) => {
  if (req.url === '/app.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(app);
  else if (req.url === '/' || req.url === '/index.html')
    res.writeHead(200, { 'content-type': 'text/html' }).end(html);
  else res.writeHead(404).end();
});
const fabric = await createFabric({ transport: 'memory' });
const clock = fabric.stream('clock', { maxLength: 100 });
const gateway = await serveWebSocket({ fabric, server: http, path: '/weft' });
http.listen(port, '127.0.0.1', () =>
  console.log(`open http://127.0.0.1:${port}/ (bundle: ${app.length} bytes)`),
);
const timer = setInterval(() => void clock.publish({ now: new Date().toLocaleTimeString() }), 1_000);

process.once('SIGINT', async () => {
  clearInterval(timer);
  await gateway.close();
  http.close();
  await fabric.close();
});
