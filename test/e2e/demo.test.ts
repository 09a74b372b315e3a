/** `bucketgate demo` as a user runs it: start, use the mount, SIGINT, clean exit. */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { cli, isMounted, sh, startDaemon, type Daemon } from '../helpers/daemon.js';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

let dir = '';
let d: Daemon | undefined;

afterAll(async () => {
  await d?.stop('SIGKILL');
  if (dir) {
    await sh(`umount -l '${dir}/mnt' 2>/dev/null || true`);
    await rm(dir, { recursive: true, force: true });
  }
});

describe('bucketgate demo', () => {
  it('starts an embedded S3 server, mounts the share, and stops cleanly on SIGINT', async () => {
    dir = await mkdtemp(join(tmpdir(), 'bg-demo-'));
    const mnt = join(dir, 'mnt');
    const port = await freePort();
    d = await startDaemon(
      ['demo', '--dir', dir],
      { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', BUCKETGATE_DEMO_NFS_PORT: String(port) },
      mnt,
      60_000,
    );
    // The banner comes right after the mount.
    for (let i = 0; i < 50 && !d.output().includes('bucketgate demo is running'); i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(d.output()).toContain('bucketgate demo is running');
    expect(d.output()).toContain(`FUSE mount:   ${mnt}`);

    await sh(
      `cd '${mnt}' && echo hello > hello.txt && mkdir -p a/b && cp /etc/os-release a/b/ && ls -l && cat hello.txt a/b/os-release > /dev/null`,
    );
    expect(await readFile(join(mnt, 'hello.txt'), 'utf8')).toBe('hello\n');
    // The same share over NFS: what FUSE wrote is visible, and what NFS writes shows in FUSE.
    expect(d.output()).toContain(`NFS export:   127.0.0.1:${port}:/demo`);
    const q = `?nfsport=${port}&mountport=${port}&version=3`;
    expect(await sh(`nfs-cat 'nfs://127.0.0.1/demo/hello.txt${q}'`)).toBe('hello\n');
    expect(await sh(`nfs-ls 'nfs://127.0.0.1/demo/a/b${q}'`)).toContain('os-release');
    await sh(
      `printf 'via nfs' > '${dir}/up.txt' && nfs-cp '${dir}/up.txt' 'nfs://127.0.0.1/demo/a/from-nfs.txt${q}'`,
    );
    expect(await sh(`cat '${mnt}/a/from-nfs.txt'`)).toBe('via nfs');
    const st = await cli(['status', 'demo', '--admin-dir', join(dir, 'run')]);
    expect(st.code).toBe(0);
    expect(st.stdout).toContain('share        demo');
    const fl = await cli(['flush', mnt, '--admin-dir', join(dir, 'run')]);
    expect(fl.code).toBe(0);
    // s3rver keeps each object as a file below <dir>/s3/demo
    const stored = await sh(
      `find '${dir}/s3/demo' -name '*._S3rver_object' | sed 's|${dir}/s3/demo/||' | sort`,
    );
    expect(stored).toContain('hello.txt._S3rver_object');
    expect(stored).toContain('a/b/os-release._S3rver_object');
    expect(stored).toContain('a/from-nfs.txt._S3rver_object');

    expect(await d.stop('SIGINT')).toBe(0);
    expect(await isMounted(mnt)).toBe(false);
    expect(await readdir(mnt)).toEqual([]);
  });
});
