/**
 * Finding and loading the project's native addons (binding.gyp builds them into build/Release with
 * `npm ci` / `npx node-gyp rebuild`): the FUSE binding and the sendfile helper.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where `<name>.node` may be: `$override` first (tests), then build/Release, build/Debug. */
export function addonCandidates(name: string, override: string | undefined): string[] {
  // This file is src/adapters/ or dist/adapters/: the repository is two levels up.
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return [
    override,
    join(root, 'build', 'Release', `${name}.node`),
    join(root, 'build', 'Debug', `${name}.node`),
  ].filter((p): p is string => typeof p === 'string' && p.length > 0);
}

/** The first existing candidate, loaded (require throws when the file is not a loadable addon). */
export function requireAddon(candidates: readonly string[]): { path: string; mod: unknown } | undefined {
  const path = candidates.find((p) => existsSync(p));
  if (path === undefined) return undefined;
  return { path, mod: createRequire(import.meta.url)(path) as unknown };
}
