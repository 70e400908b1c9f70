/**
 * The layering rule (style point 1): core/ imports only core/ (it runs in browsers for the WebSocket
 * client, so not even node: built-ins); each transport imports core/ and its own folder, never
 * another transport or workers/.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sources(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [],
  );
}

function imports(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const found: string[] = [];
  for (const m of text.matchAll(/\bfrom\s+'([^']+)'|\bimport\s+'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/g)) {
    found.push((m[1] ?? m[2] ?? m[3])!);
  }
  return found;
}

describe('layering', () => {
  it('core imports nothing outside core: no transport, no workers, no packages, no node: built-ins', () => {
    const bad = sources('core').flatMap((f) =>
      imports(f)
        .filter((i) => !i.startsWith('./'))
        .map((i) => `${f} -> ${i}`),
    );
    expect(bad).toEqual([]);
  });

  it('a transport imports core and its own folder only (and its own third-party packages)', () => {
    const bad: string[] = [];
    for (const t of readdirSync(join(root, 'transports'))) {
      for (const f of sources(join('transports', t))) {
        for (const i of imports(f)) {
          if (!i.startsWith('.')) continue;
          const target = relative(root, join(root, f, '..', i));
          if (!target.startsWith('core/') && !target.startsWith(`transports/${t}/`))
            bad.push(`${f} -> ${target}`);
        }
      }
    }
    expect(bad).toEqual([]);
  });
});
