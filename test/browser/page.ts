/**
 * The test page's script (bundled for the browser with esbuild): connects to the gateway given in
 * `?ws=`, follows `?stream=` from the start, shows each event in a list and records it for the test;
 * publishes one event of its own to `?stream=` + '-from-browser'.
 */
import { createFabric, type WeftEvent } from '../../transports/websocket/browser.js';

// The DOM, as far as this page uses it (the project's tsconfig has no DOM lib: core must not need one).
interface Element {
  textContent: string | null;
  appendChild(child: Element): void;
}
declare const location: { search: string };
declare const navigator: { userAgent: string };
declare const document: { getElementById(id: string): Element | null; createElement(tag: string): Element };

interface PageState {
  events: { seq: number; data: unknown; topic: string | undefined }[];
  ready: boolean;
  error: string | undefined;
  ended: boolean;
  published: number | undefined;
}
const state: PageState = { events: [], ready: false, error: undefined, ended: false, published: undefined };
(globalThis as unknown as { weftPage: PageState }).weftPage = state;

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const url = params.get('ws')!;
  const name = params.get('stream')!;
  const fabric = await createFabric({ transport: 'websocket', url, token: params.get('token') ?? undefined });
  const list = document.getElementById('events')!;
  const follower = fabric.stream(name).follow({ from: 'start' });
  await follower.ready();
  state.published = await fabric
    .stream(`${name}-from-browser`)
    .publish({ hello: 'from the browser', ua: navigator.userAgent });
  state.ready = true;
  for await (const e of follower as AsyncIterable<WeftEvent>) {
    state.events.push({ seq: e.seq, data: e.data, topic: e.topic });
    const li = document.createElement('li');
    li.textContent = `${e.seq}: ${JSON.stringify(e.data)}`;
    list.appendChild(li);
  }
  state.ended = true;
  await fabric.close();
}

main().catch((e: unknown) => {
  state.error = String((e as Error)?.stack ?? e);
});
