import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** bucketgate's version, from package.json (this module is dist/core/version.js, two levels below it). */
export function bucketgateVersion(): string {
  if (cached !== undefined) return cached;
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: unknown;
    };
    cached = typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    cached = 'unknown';
  }
  return cached;
}
