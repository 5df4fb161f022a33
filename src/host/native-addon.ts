import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const loaded = new Map<string, unknown>();

/**
 * `native/<name>/build/Release/<name>.node`, built by scripts/setup.sh, found above this module
 * (src/ or dist/src/); null when it was not built. Looked up once per name.
 */
export function loadAddon<T>(name: string): T | null {
  if (loaded.has(name)) return loaded.get(name) as T | null;
  const relative = join('native', name, 'build', 'Release', `${name}.node`);
  let addon: T | null = null;
  for (let dir = import.meta.dirname; dirname(dir) !== dir; dir = dirname(dir)) {
    const file = join(dir, relative);
    if (existsSync(file)) {
      addon = createRequire(import.meta.url)(file) as T;
      break;
    }
  }
  loaded.set(name, addon);
  return addon;
}
