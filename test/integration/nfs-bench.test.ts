/**
 * Opt-in benchmark (NFS_BENCH=1): time `nfs-cat` of a cached 256 MiB file exported from the real VFS
 * (and from the in-memory fake VFS, to separate protocol cost from VFS cost).
 *   NFS_BENCH=1 npx vitest run test/integration/nfs-bench.test.ts
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { O_CREAT, O_EXCL, O_RDWR, ROOT_CRED } from '../../src/core/types.js';
import type { Vfs } from '../../src/vfs/types.js';
import { createTestVfs } from '../helpers/vfs-fixture.js';
import { FakeVfs } from '../helpers/nfs-fake-vfs.js';
import { startNfs, testExport } from '../helpers/nfs-fixture.js';

const SIZE = Number(process.env.NFS_BENCH_MIB ?? 256) * 1024 * 1024;

/** `nfs-cat URL > /dev/null`, timed (the shell does the redirection: no pipe into this process). */
function catToNull(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn('sh', ['-c', 'exec nfs-cat "$1" > /dev/null', 'sh', url]);
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`nfs-cat exited with ${code}`));
      else resolve(Number(process.hrtime.bigint() - t0) / 1e6);
    });
  });
}

function catHashed(url: string): Promise<{ ms: number; sha: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn('nfs-cat', [url]);
    const h = createHash('sha256');
    let bytes = 0;
    child.stdout.on('data', (d: Buffer) => {
      h.update(d);
      bytes += d.length;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code !== 0) reject(new Error(`nfs-cat exited with ${code}`));
      else resolve({ ms, sha: h.digest('hex'), bytes });
    });
  });
}

async function fill(vfs: Vfs, data: Buffer): Promise<void> {
  const { fh } = await vfs.create(ROOT_CRED, 1, 'big.bin', 0o644, O_RDWR | O_CREAT | O_EXCL);
  for (let off = 0; off < data.length; off += 8 * 1024 * 1024)
    await vfs.write(fh, off, data.subarray(off, off + 8 * 1024 * 1024));
  await vfs.fsync(fh, false);
  await vfs.release(fh);
}

describe.skipIf(process.env.NFS_BENCH !== '1')('nfs-cat throughput', () => {
  it(`reads a cached ${SIZE / 1024 / 1024} MiB file`, async () => {
    const data = randomBytes(SIZE);
    const sha = createHash('sha256').update(data).digest('hex');
    const real = await createTestVfs();
    const fake = new FakeVfs();
    await fill(real.vfs, data);
    await fill(fake, data);
    const srv = await startNfs([testExport('real', real.vfs, {}, 1), testExport('fake', fake, {}, 2)]);
    try {
      for (const name of ['real', 'fake']) {
        const r = await catHashed(srv.url(`/${name}/big.bin`));
        expect(r.bytes).toBe(SIZE);
        expect(r.sha).toBe(sha);
        const times: number[] = [];
        for (let i = 0; i < 3; i++) times.push(await catToNull(srv.url(`/${name}/big.bin`)));
        console.log(
          `nfs-cat ${SIZE / 1024 / 1024} MiB from the ${name} VFS: ${times.map((t) => `${t.toFixed(0)} ms`).join(', ')}`,
        );
      }
    } finally {
      await srv.stop();
      await real.close({ remove: true });
    }
  }, 300_000);
});
