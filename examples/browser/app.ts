/**
 * The browser side of examples/browser: follows 'clock' from the gateway that served this page and
 * lists the ticks; the form publishes to 'chat'. Bundled by serve.ts with esbuild (browser platform).
 */
import { createFabric, type WeftEvent } from '../../transports/websocket/browser.js';

// The DOM, as far as this page uses it (the project compiles without the DOM lib).
interface El {
  textContent: string | null;
  value: string;
  appendChild(child: El): void;
  addEventListener(type: string, fn: (ev: { preventDefault(): void }) => void): void;
}
declare const document: { getElementById(id: string): El; createElement(tag: string): El };
declare const location: { host: string; protocol: string };

const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/weft`;
const fabric = await createFabric({
  transport: 'websocket',
  url,
  token: 'browser',
  onStateChange: (state: string) => {
    document.getElementById('state').textContent = state;
  },
});

const list = document.getElementById('ticks');
const show = (e: WeftEvent) => {
  const li = document.createElement('li');
  li.textContent = `#${e.seq} ${e.stream}: ${JSON.stringify(e.data)}`;
  list.appendChild(li);
};

document.getElementById('send').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = document.getElementById('text');
  void fabric.stream('chat').publish({ text: input.value });
  input.value = '';
});

await Promise.all([
  (async () => {
    for await (const e of fabric.stream('clock').follow({ last: 5 })) show(e);
  })(),
  (async () => {
    for await (const e of fabric.stream('chat').follow({ from: 'start' })) show(e);
  })(),
]);
