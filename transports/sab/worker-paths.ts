/**
 * Where a worker module lives and how to start it: a file URL href (piscina wants a string), and
 * for TypeScript sources the tsx preload (toolchain.md section 3: on Node 20, tsx registers its
 * hooks on the main thread only, so a `.ts` worker needs `--import tools/tsx-worker-register.mjs`).
 */
import { existsSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { InvalidArgumentError, show } from '../../core/errors.js';

/** A worker module as an absolute `file:` href. @throws InvalidArgumentError for anything else. */
export function workerHref(what: string, filename: unknown): string {
  if (filename instanceof URL) {
    if (filename.protocol !== 'file:') {
      throw new InvalidArgumentError(`${what} must be a file: URL, got ${show(filename.href)}`);
    }
    return filename.href;
  }
  if (typeof filename === 'string') {
    if (filename.startsWith('file:')) return new URL(filename).href;
    // A relative name would resolve against the cwd (a crash from another directory).
    if (isAbsolute(filename)) return pathToFileURL(filename).href;
  }
  throw new InvalidArgumentError(
    `${what} must be an absolute path or a file: URL (e.g. new URL('./producer.js', import.meta.url)), got ${show(filename)}`,
  );
}

/** True for a TypeScript source module. */
export function isTypeScript(href: string): boolean {
  return /\.(c|m)?tsx?$/.test(new URL(href).pathname);
}

let preload: string | null | undefined;

/** The tsx preload's href, from the source tree or from dist/ (null when neither has it). */
export function tsxPreload(): string | null {
  if (preload !== undefined) return preload;
  preload = null;
  for (const rel of ['../../tools/tsx-worker-register.mjs', '../../../tools/tsx-worker-register.mjs']) {
    const url = new URL(rel, import.meta.url);
    if (existsSync(fileURLToPath(url))) {
      preload = url.href;
      break;
    }
  }
  return preload;
}

/**
 * The execArgv for a worker module: the caller's own when given; the tsx preload for a `.ts`
 * module; otherwise undefined (Node then gives the worker the process's own, filtered).
 * @throws InvalidArgumentError for a `.ts` module when the preload cannot be found.
 */
export function workerExecArgv(href: string, explicit: readonly string[] | undefined): string[] | undefined {
  if (explicit !== undefined) return [...explicit];
  if (!isTypeScript(href)) return undefined;
  const p = tsxPreload();
  if (p === null) {
    throw new InvalidArgumentError(
      `worker module ${href} is TypeScript, but tools/tsx-worker-register.mjs was not found: build it to JavaScript, or pass execArgv`,
    );
  }
  return ['--import', p];
}
