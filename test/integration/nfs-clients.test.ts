/**
 * The NFS export with real clients (Debian libnfs-utils and a libnfs program compiled here) over the
 * real VFS (SQLite metadata, disk cache, in-memory object store).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages.js';
import { O_CREAT, O_EXCL, O_RDWR, ROOT_CRED } from '../../src/core/types.js';
import { MountStat, Nfs3Stat, NfsProc } from '../../src/adapters/nfs/constants.js';
import { createTestVfs, type TestVfs } from '../helpers/vfs-fixture.js';
import type { ExportConfig } from '../../src/adapters/nfs/index.js';
import { dirop, fh, startNfs, testExport, type Running } from '../helpers/nfs-fixture.js';
import { buildNfsClient, run, startClient } from '../helpers/nfs-real-clients.js';

let client: string;
let tmp: string;
let t: TestVfs;
let squashVfs: TestVfs;
let roVfs: TestVfs;
let elsewhere: TestVfs;
let srv: Running;

const dirs = { uid: 0, gid: 0, fileMode: 0o644, dirMode: 0o777 };

async function putFile(v: TestVfs, parentIno: number, name: string, data: Buffer): Promise<number> {
  const { attr, fh: h } = await v.vfs.create(ROOT_CRED, parentIno, name, 0o644, O_RDWR | O_CREAT | O_EXCL);
  for (let off = 0; off < data.length; off += 4 * 1024 * 1024)
    await v.vfs.write(h, off, data.subarray(off, off + 4 * 1024 * 1024));
  await v.vfs.release(h);
  return attr.ino;
}

/** An export keyed like the daemon does it: secret and generation from the metadata database. */
function dbExport(name: string, v: TestVfs): ExportConfig {
  const secret = v.meta.getMeta('secret');
  const dbGeneration = v.meta.getMeta('db_generation');
  if (secret === undefined || dbGeneration === undefined) throw new Error('metadata database without secret');
  return { ...testExport(name, v.vfs), secret, dbGeneration };
}

beforeAll(async () => {
  [client, tmp, t, squashVfs, roVfs, elsewhere] = await Promise.all([
    buildNfsClient(),
    mkdtemp(join(tmpdir(), 'bg-nfs-it-')),
    createTestVfs({ defaults: dirs }),
    createTestVfs({ defaults: dirs }),
    createTestVfs({ defaults: dirs }),
    createTestVfs(),
  ]);
  await putFile(roVfs, 1, 'readme.txt', Buffer.from('read only\n'));
  srv = await startNfs(
    [
      testExport('share', t.vfs, { squash: 'none' }, 1),
      testExport('squashed', squashVfs.vfs, { squash: 'root_squash' }, 2),
      testExport('ro', roVfs.vfs, { readOnly: true }, 3),
      testExport('elsewhere', elsewhere.vfs, { clients: ['10.20.0.0/16'], roClients: ['192.168.77.1'] }, 4),
    ],
    { handleIdleMs: 300 },
  ); // cached VFS handles are released (and uploads start) sooner than the default 5 s
});

afterAll(async () => {
  await srv?.stop();
  await Promise.all([t, squashVfs, roVfs, elsewhere].map((v) => v?.close({ remove: true })));
  await rm(tmp, { recursive: true, force: true });
  if (client) await rm(dirname(client), { recursive: true, force: true });
});

describe('libnfs-utils (nfs-ls, nfs-cat, nfs-cp)', () => {
  it('nfs-cp uploads, nfs-ls lists, nfs-cat and nfs-cp read back; the bytes reach the bucket', async () => {
    const local = join(tmp, 'up.bin');
    const data = randomBytes(3 * 1024 * 1024 + 123);
    await writeFile(local, data);
    expect((await run('nfs-cp', [local, srv.url('/share/up.bin')])).code).toBe(0);
    // EXCLUSIVE create: an existing destination fails.
    expect((await run('nfs-cp', [local, srv.url('/share/up.bin')])).code).not.toBe(0);
    const ls = await run('nfs-ls', [srv.url('/share')]);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(/up\.bin/);
    expect(ls.stdout).toContain(String(data.length));
    const back = join(tmp, 'back.bin');
    const fromFile = srv.srv.sentFromFile;
    expect((await run('nfs-cp', [srv.url('/share/up.bin'), back])).code).toBe(0);
    expect((await readFile(back)).equals(data)).toBe(true);
    const cat = await run('nfs-cat', [srv.url('/share/up.bin')]);
    expect(Buffer.from(cat.stdout, 'latin1').equals(data)).toBe(true);
    // The data is in the cache: the READ replies were sent from the cache file (sendfile).
    expect(srv.srv.sentFromFile - fromFile).toBeGreaterThanOrEqual(2 * (data.length - 32 * 1024));
    // Visible through the VFS and, once the idle handle is released and uploaded, in the bucket.
    const a = await t.vfs.lookup(ROOT_CRED, 1, 'up.bin');
    expect(a.size).toBe(data.length);
    await t.vfs.flushAll(10_000);
    const store = t.store as unknown as { read(key: string): Buffer | undefined };
    expect(store.read('up.bin')?.equals(data)).toBe(true);
  });

  it("nfs-ls -R lists subdirectories; nfs-cat mounts a file's parent directory", async () => {
    const d = await t.vfs.mkdir(ROOT_CRED, 1, 'deep', 0o755);
    const d2 = await t.vfs.mkdir(ROOT_CRED, d.ino, 'er', 0o755);
    await putFile(t, d2.ino, 'x.txt', Buffer.from('nested\n'));
    const ls = await run('nfs-ls', ['-R', srv.url('/share/deep')]);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(/x\.txt/);
    const cat = await run('nfs-cat', [srv.url('/share/deep/er/x.txt')]);
    expect(cat.stdout).toBe('nested\n');
  });
});

describe('libnfs client compiled against libnfs-dev', () => {
  it('mkdir, creat, write, rename, truncate, stat, fsync/COMMIT, statvfs, rmdir', async () => {
    const r = await run(client, [
      srv.url('/share'),
      'mkdir',
      '/c',
      'creat',
      '/c/f.txt',
      '640',
      'write',
      '/c/f.txt',
      '0',
      'hello, world',
      'rename',
      '/c/f.txt',
      '/c/g.txt',
      'truncate',
      '/c/g.txt',
      '5',
      'stat',
      '/c/g.txt',
      'cat',
      '/c/g.txt',
      'fsyncwrite',
      '/c/big.bin',
      '3000000',
      'stat',
      '/c/big.bin',
      'statvfs',
      'mkdir',
      '/c/empty',
      'rmdir',
      '/c/empty',
    ]);
    expect(r.stdout).not.toMatch(/^ERR/m);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('size=5 mode=640 uid=0 gid=0');
    expect(r.stdout).toContain('hello\n');
    expect(r.stdout).toContain('fsync ok 3000000');
    expect(r.stdout).toContain('size=3000000 ');
    expect(r.stdout).toMatch(/bsize=\d+ blocks=\d+ bfree=\d+ files=\d+ namemax=\d+/);
    const c = await t.vfs.lookup(ROOT_CRED, 1, 'c');
    await expect(t.vfs.lookup(ROOT_CRED, c.ino, 'f.txt')).rejects.toThrow();
    const g = await t.vfs.lookup(ROOT_CRED, c.ino, 'g.txt');
    expect(g.size).toBe(5);
  });

  it('sparse writes read back as zeros', async () => {
    const r = await run(client, [srv.url('/share'), 'sparse', '/sparse.bin', String(10 * 1024 * 1024)]);
    expect(r.stdout).toContain(`sparse size=${10 * 1024 * 1024 + 1} bad=0`);
  });

  it('readdir paging over 3000 entries', async () => {
    const d = await t.vfs.mkdir(ROOT_CRED, 1, 'many', 0o755);
    let bytes = 0;
    for (let i = 0; i < 3000; i++) {
      const name = `file-${String(i).padStart(4, '0')}-${'x'.repeat(i % 40)}`;
      bytes += name.length;
      const { fh: h } = await t.vfs.create(ROOT_CRED, d.ino, name, 0o644, O_RDWR | O_CREAT | O_EXCL);
      await t.vfs.release(h);
    }
    const r = await run(client, [srv.url('/share'), 'count', '/many']);
    expect(r.stdout).toContain(`count=3000 namebytes=${bytes}`);
    const ls = await run('nfs-ls', [srv.url('/share/many')]);
    expect(
      ls.stdout
        .trim()
        .split('\n')
        .filter((l) => / file-\d{4}/.test(l)),
    ).toHaveLength(3000);
  });
});

describe('export policy with real clients', () => {
  it('root_squash: files root writes are owned by the anonymous ids', async () => {
    const local = join(tmp, 'sq.txt');
    await writeFile(local, 'squashed\n');
    expect((await run('nfs-cp', [local, srv.url('/squashed/sq.txt')])).code).toBe(0);
    const a = await squashVfs.vfs.lookup(ROOT_CRED, 1, 'sq.txt');
    expect({ uid: a.uid, gid: a.gid }).toEqual({ uid: 65534, gid: 65534 });
    const st = await run(client, [srv.url('/squashed', '&uid=0&gid=0'), 'stat', '/sq.txt']);
    expect(st.stdout).toContain('uid=65534 gid=65534');
    // A regular user keeps their ids.
    const mine = await run(client, [
      srv.url('/squashed', '&uid=1000&gid=1000'),
      'creat',
      '/mine.txt',
      '644',
      'stat',
      '/mine.txt',
    ]);
    expect(mine.stdout).toContain('uid=1000 gid=1000');
  });

  it('read-only export: reads work, changes fail with NFS3ERR_ROFS', async () => {
    expect((await run('nfs-cat', [srv.url('/ro/readme.txt')])).stdout).toBe('read only\n');
    const local = join(tmp, 'ro.txt');
    await writeFile(local, 'x');
    expect((await run('nfs-cp', [local, srv.url('/ro/new.txt')])).code).not.toBe(0);
    const r = await run(client, [srv.url('/ro'), 'mkdir', '/d']);
    expect(r.stdout).toMatch(/ERR mkdir: -30 /); // -EROFS from NFS3ERR_ROFS
    const c = await srv.client();
    const root = (await c.mnt('/ro')).fh!;
    const mk = await c.nfs<m.Nfsv3MkdirResponse>(
      NfsProc.MKDIR,
      new m.Nfsv3MkdirRequest(dirop(root, 'd'), (await import('../helpers/nfs-fixture.js')).sattr()),
    );
    expect(mk.status).toBe(Nfs3Stat.ROFS);
  });

  it('a client outside the allow-list is refused at MNT (MNT3ERR_ACCES)', async () => {
    const ls = await run('nfs-ls', [srv.url('/elsewhere')]);
    expect(ls.code).not.toBe(0);
    const c = await srv.client();
    expect((await c.mnt('/elsewhere')).status).toBe(MountStat.ACCES);
  });
});

describe('restart', () => {
  it('a client keeps using its file handle across a daemon restart (same database)', async () => {
    const v = await createTestVfs({ defaults: dirs });
    await putFile(v, 1, 'keep.txt', Buffer.from('persistent-0123456789'));
    let s = await startNfs([dbExport('keep', v)]);
    const port = s.port;
    const holder = startClient(client, [s.url('/keep'), 'hold', '/keep.txt']);
    expect(await holder.waitFor('before=')).toBe('before=persistent-01234');
    const rpc = await s.client();
    const root = (await rpc.mnt('/keep')).fh!;
    const l = await rpc.nfs<m.Nfsv3LookupResponse>(
      NfsProc.LOOKUP,
      new m.Nfsv3LookupRequest(dirop(root, 'keep.txt')),
    );
    const handle = l.resok!.object.data;
    await s.stop();
    await v.close();
    // Same cache directory (SQLite ids) and same port: a restarted daemon.
    const v2 = await createTestVfs({ dir: v.dir, defaults: dirs });
    s = await startNfs([dbExport('keep', v2)], { port });
    try {
      holder.child.stdin.write('\n');
      const done = await holder.done;
      expect(done.stdout).toContain('after=persistent-01234');
      const rpc2 = await s.client();
      const ga = await rpc2.nfs<m.Nfsv3ReadResponse>(
        NfsProc.READ,
        new m.Nfsv3ReadRequest(fh(handle), 0n, 100),
      );
      expect(Buffer.from(ga.resok!.data).toString()).toBe('persistent-0123456789');
    } finally {
      await s.stop();
      await v2.close({ remove: true });
    }
    // A recreated metadata database (new generation and secret) makes old handles stale.
    const v3 = await createTestVfs({ defaults: dirs });
    const s3 = await startNfs([dbExport('keep', v3)]);
    try {
      const rpc3 = await s3.client();
      const ga = await rpc3.nfs<m.Nfsv3GetattrResponse>(
        NfsProc.GETATTR,
        new m.Nfsv3GetattrRequest(fh(handle)),
      );
      expect(ga.status).toBe(Nfs3Stat.STALE);
    } finally {
      await s3.stop();
      await v3.close({ remove: true });
    }
  });
});

describe('portmapper on port 111 with real clients', () => {
  it('nfs-ls and nfs-cat work with bare URLs (skipped when port 111 is taken or not bindable)', async (ctx) => {
    let s: Running;
    try {
      s = await startNfs([testExport('pm', t.vfs)], { portmap: { host: '127.0.0.1', port: 111 } });
    } catch {
      ctx.skip();
      return;
    }
    try {
      await putFile(t, 1, 'pm.txt', Buffer.from('via portmap\n'));
      expect((await run('nfs-ls', ['nfs://127.0.0.1/pm'])).stdout).toMatch(/pm\.txt/);
      expect((await run('nfs-cat', ['nfs://127.0.0.1/pm/pm.txt'])).stdout).toBe('via portmap\n');
    } finally {
      await s.stop();
    }
  });
});
