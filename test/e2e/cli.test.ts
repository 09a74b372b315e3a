/** The `bucketgate` command itself: version, help and usage errors (no daemon). */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, ROOT } from '../helpers/daemon.js';

describe('bucketgate CLI', () => {
  it('prints its version and Node version, its usage on help, and exits 2 on an unknown command', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['version', '--version', '-V']) {
      const v = await cli([flag]);
      expect(v.code).toBe(0);
      expect(v.stdout).toBe(`bucketgate ${pkg.version} (Node ${process.version})\n`);
    }
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage:\n {2}bucketgate mount s3:\/\/BUCKET/);
    expect(help.stdout).toMatch(/bucketgate version/);
    const bad = await cli(['frobnicate']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^bucketgate: unknown command "frobnicate"\nusage:/);
  });
});
