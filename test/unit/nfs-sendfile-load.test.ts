/**
 * Loading the sendfile addon is optional: a file that is not a loadable addon (built for another
 * Node, truncated, ...) leaves NFS on the copying path instead of failing the server.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';

const saved = { ...process.env };
const bad = join(tmpdir(), `bg-not-an-addon-${process.pid}.node`);

afterEach(() => {
  process.env = { ...saved };
  rmSync(bad, { force: true });
  vi.resetModules();
});

async function freshLoader(): Promise<typeof import('../../src/adapters/nfs/sendfile.js')> {
  vi.resetModules();
  return import('../../src/adapters/nfs/sendfile.js');
}

describe('bucketgate_io addon loading', () => {
  it('loads the built addon', async () => {
    const { ioAddon } = await freshLoader();
    expect(typeof ioAddon()?.sendFile).toBe('function');
  });

  it('a file that does not load as an addon gives no addon, not an exception', async () => {
    writeFileSync(bad, 'not an ELF file');
    process.env.BUCKETGATE_IO_ADDON = bad;
    const { ioAddon } = await freshLoader();
    expect(ioAddon()).toBeUndefined();
  });

  it('BUCKETGATE_NO_SENDFILE=1 turns it off', async () => {
    process.env.BUCKETGATE_NO_SENDFILE = '1';
    const { ioAddon } = await freshLoader();
    expect(ioAddon()).toBeUndefined();
  });
});
