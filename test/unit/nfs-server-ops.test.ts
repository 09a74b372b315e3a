/** NFSv3 and MOUNT procedures over a fake VFS, through real TCP and our RPC test client. */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages.js';
import * as mm from '@jsonjoy.com/json-pack/lib/nfs/v3/mount/messages.js';
import { Nfsv3Decoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/Nfsv3Decoder.js';
import {
  Nfsv3CreateHow,
  Nfsv3MknodData,
  Nfsv3SattrGuard,
  Nfsv3Time,
} from '@jsonjoy.com/json-pack/lib/nfs/v3/structs.js';
import {
  Access3,
  CreateMode,
  MountProc,
  MountStat,
  Nfs3Stat,
  NfsProc,
  PROG_NFS,
  StableHow,
} from '../../src/adapters/nfs/constants.js';
import { FakeVfs } from '../helpers/nfs-fake-vfs.js';
import { dirop, fh, sattr, startNfs, testExport, type Running } from '../helpers/nfs-fixture.js';
import type { RpcTestClient } from '../helpers/nfs-rpc-client.js';

let vfs: FakeVfs;
let run: Running;
let c: RpcTestClient;
let root: Uint8Array;

async function lookup(dir: Uint8Array, name: string): Promise<m.Nfsv3LookupResponse> {
  return c.nfs<m.Nfsv3LookupResponse>(NfsProc.LOOKUP, new m.Nfsv3LookupRequest(dirop(dir, name)));
}

async function handleOf(dir: Uint8Array, name: string): Promise<Uint8Array> {
  const r = await lookup(dir, name);
  if (r.status !== 0) throw new Error(`lookup ${name}: ${r.status}`);
  return r.resok!.object.data;
}

async function create(
  dir: Uint8Array,
  name: string,
  how: Nfsv3CreateHow,
  xid?: number,
): Promise<m.Nfsv3CreateResponse> {
  return c.nfs<m.Nfsv3CreateResponse>(
    NfsProc.CREATE,
    new m.Nfsv3CreateRequest(dirop(dir, name), how),
    xid !== undefined ? { xid } : {},
  );
}

const unchecked = (mode = 0o640): Nfsv3CreateHow => new Nfsv3CreateHow(CreateMode.UNCHECKED, sattr({ mode }));

beforeAll(async () => {
  vfs = new FakeVfs();
  run = await startNfs([testExport('share', vfs)], { handleIdleMs: 300 });
  c = await run.client();
  const mnt = await c.mnt('/share');
  expect(mnt.status).toBe(0);
  root = mnt.fh!;
});

afterAll(async () => {
  await run.stop();
});

beforeEach(() => {
  c.defaultCred = { uid: 0, gid: 0 };
});

describe('MOUNT v3', () => {
  it('NULL, MNT of the export and of directories below it, errors', async () => {
    await c.mount(MountProc.NULL);
    vfs.putDir(vfs.putDir(1, 'a').ino, 'b');
    vfs.putFile(1, 'plain', 'x');
    const sub = await c.mnt('/share/a/b/');
    expect(sub.status).toBe(0);
    const attr = await c.nfs<m.Nfsv3GetattrResponse>(NfsProc.GETATTR, new m.Nfsv3GetattrRequest(fh(sub.fh!)));
    expect(Number(attr.resok!.objAttributes.fileid)).toBe(vfs.resolvePath('a/b').ino);
    expect((await c.mnt('/share/plain')).status).toBe(MountStat.NOTDIR);
    expect((await c.mnt('/share/missing')).status).toBe(MountStat.NOENT);
    expect((await c.mnt('/nope')).status).toBe(MountStat.NOENT);
    expect((await c.mnt('/share/../x')).status).toBe(MountStat.INVAL);
    expect((await c.mnt('/' + 'x'.repeat(1100))).status).toBe(MountStat.NAMETOOLONG);
  });

  it('EXPORT, DUMP, UMNT, UMNTALL', async () => {
    const ex = await c.mount<mm.MountExportResponse>(MountProc.EXPORT);
    expect(ex.exports?.dir).toBe('/share');
    expect(ex.exports?.groups?.name).toBe('127.0.0.1/32');
    await c.mnt('/share');
    let dump = await c.mount<mm.MountDumpResponse>(MountProc.DUMP);
    expect(dump.mountlist?.hostname).toBe('127.0.0.1');
    await c.mount(MountProc.UMNT, new mm.MountUmntRequest('/share'));
    await c.mount(MountProc.UMNTALL);
    dump = await c.mount<mm.MountDumpResponse>(MountProc.DUMP);
    expect(dump.mountlist).toBeUndefined();
  });
});

describe('NFSv3 procedures', () => {
  it('GETATTR, LOOKUP (with . and ..), ACCESS, READLINK, PATHCONF, FSINFO, FSSTAT', async () => {
    const d = vfs.putDir(1, 'look');
    vfs.putFile(d.ino, 'f', 'hello', 0o640, 1000, 1000);
    await c.nfs(NfsProc.NULL, undefined);
    const dh = await handleOf(root, 'look');
    const f = await lookup(dh, 'f');
    expect(f.status).toBe(0);
    expect(f.resok!.objAttributes.attributes?.size).toBe(5n);
    expect(f.resok!.objAttributes.attributes?.mode).toBe(0o640);
    expect(f.resok!.dirAttributes.attributesFollow).toBe(true);
    const missing = await lookup(dh, 'nope');
    expect(missing.status).toBe(Nfs3Stat.NOENT);
    expect(missing.resfail!.dirAttributes.attributesFollow).toBe(true);
    expect(Buffer.from(await handleOf(dh, '.')).equals(Buffer.from(dh))).toBe(true);
    expect(Buffer.from(await handleOf(dh, '..')).equals(Buffer.from(root))).toBe(true);
    expect(Buffer.from(await handleOf(root, '..')).equals(Buffer.from(root))).toBe(true);
    expect((await lookup(f.resok!.object.data, 'x')).status).toBe(Nfs3Stat.NOTDIR);
    expect((await lookup(dh, 'n'.repeat(256))).status).toBe(Nfs3Stat.NAMETOOLONG);

    const all =
      Access3.READ | Access3.MODIFY | Access3.EXTEND | Access3.EXECUTE | Access3.LOOKUP | Access3.DELETE;
    const acc = (cred: { uid: number; gid: number }) =>
      c.nfs<m.Nfsv3AccessResponse>(NfsProc.ACCESS, new m.Nfsv3AccessRequest(fh(f.resok!.object.data), all), {
        cred,
      });
    expect((await acc({ uid: 1000, gid: 1000 })).resok!.access).toBe(
      Access3.READ | Access3.MODIFY | Access3.EXTEND,
    );
    expect((await acc({ uid: 2000, gid: 1000 })).resok!.access).toBe(Access3.READ);
    expect((await acc({ uid: 2000, gid: 2000 })).resok!.access).toBe(0);
    const dacc = await c.nfs<m.Nfsv3AccessResponse>(NfsProc.ACCESS, new m.Nfsv3AccessRequest(fh(dh), all), {
      cred: { uid: 5, gid: 5 },
    });
    expect(dacc.resok!.access).toBe(Access3.READ | Access3.LOOKUP);

    const sl = await c.nfs<m.Nfsv3SymlinkResponse>(
      NfsProc.SYMLINK,
      new m.Nfsv3SymlinkRequest(dirop(dh, 'ln'), sattr(), 'f'),
    );
    expect(sl.status).toBe(0);
    const rl = await c.nfs<m.Nfsv3ReadlinkResponse>(
      NfsProc.READLINK,
      new m.Nfsv3ReadlinkRequest(sl.resok!.obj.handle!),
    );
    expect(rl.resok!.data).toBe('f');
    const notLink = await c.nfs<m.Nfsv3ReadlinkResponse>(
      NfsProc.READLINK,
      new m.Nfsv3ReadlinkRequest(fh(dh)),
    );
    expect(notLink.status).toBe(Nfs3Stat.INVAL);

    const pc = await c.nfs<m.Nfsv3PathconfResponse>(NfsProc.PATHCONF, new m.Nfsv3PathconfRequest(fh(root)));
    expect(pc.resok).toMatchObject({
      linkmax: 1,
      namemax: 255,
      noTrunc: true,
      caseInsensitive: false,
      casePreserving: true,
    });
    const fi = await c.nfs<m.Nfsv3FsinfoResponse>(NfsProc.FSINFO, new m.Nfsv3FsinfoRequest(fh(root)));
    expect(fi.resok).toMatchObject({ rtmax: 1048576, wtmax: 1048576, rtpref: 1048576, wtpref: 1048576 });
    expect(fi.resok!.properties & 0x01).toBe(0); // no hard links
    const fs = await c.nfs<m.Nfsv3FsstatResponse>(NfsProc.FSSTAT, new m.Nfsv3FsstatRequest(fh(root)));
    expect(fs.resok!.tbytes).toBe(4096n * 1048576n);
  });

  it('CREATE unchecked/guarded/exclusive (retransmission succeeds), WRITE, READ, COMMIT', async () => {
    const cr = await create(root, 'new.txt', unchecked(0o600));
    expect(cr.status).toBe(0);
    expect(cr.resok!.objAttributes.attributes?.mode).toBe(0o600);
    expect(cr.resok!.dirWcc.before.attributesFollow).toBe(true);
    const h = cr.resok!.obj.handle!.data;
    expect((await create(root, 'new.txt', new Nfsv3CreateHow(CreateMode.GUARDED, sattr()))).status).toBe(
      Nfs3Stat.EXIST,
    );
    // UNCHECKED on an existing file applies size 0 (truncation), as knfsd does.
    vfs.putFile(1, 'full.txt', 'content');
    const trunc = await create(
      root,
      'full.txt',
      new Nfsv3CreateHow(CreateMode.UNCHECKED, sattr({ size: 0n })),
    );
    expect(trunc.resok!.objAttributes.attributes?.size).toBe(0n);

    const verf = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const ex1 = await create(root, 'excl', new Nfsv3CreateHow(CreateMode.EXCLUSIVE, undefined, verf));
    expect(ex1.status).toBe(0);
    // A retransmission (new xid, as after a reconnect past the DRC) with the same verifier succeeds.
    const ex2 = await create(root, 'excl', new Nfsv3CreateHow(CreateMode.EXCLUSIVE, undefined, verf));
    expect(ex2.status).toBe(0);
    expect(Buffer.from(ex2.resok!.obj.handle!.data).equals(Buffer.from(ex1.resok!.obj.handle!.data))).toBe(
      true,
    );
    const other = await create(
      root,
      'excl',
      new Nfsv3CreateHow(CreateMode.EXCLUSIVE, undefined, Uint8Array.from([9, 9, 9, 9, 9, 9, 9, 9])),
    );
    expect(other.status).toBe(Nfs3Stat.EXIST);

    const fsyncs = vfs.counters.fsync;
    const w1 = await c.nfs<m.Nfsv3WriteResponse>(
      NfsProc.WRITE,
      new m.Nfsv3WriteRequest(fh(h), 0n, 5, StableHow.UNSTABLE, Buffer.from('hello')),
    );
    expect(w1.status).toBe(0);
    expect(w1.resok!.committed).toBe(StableHow.UNSTABLE);
    expect(w1.resok!.count).toBe(5);
    expect(w1.resok!.fileWcc.before.attributes?.size).toBe(0n);
    expect(w1.resok!.fileWcc.after.attributes?.size).toBe(5n);
    expect(vfs.counters.fsync).toBe(fsyncs);
    const w2 = await c.nfs<m.Nfsv3WriteResponse>(
      NfsProc.WRITE,
      new m.Nfsv3WriteRequest(fh(h), 10n, 3, StableHow.FILE_SYNC, Buffer.from('end')),
    );
    expect(w2.resok!.committed).toBe(StableHow.FILE_SYNC);
    expect(vfs.counters.fsync).toBe(fsyncs + 1);
    expect(Buffer.from(w2.resok!.verf).equals(Buffer.from(w1.resok!.verf))).toBe(true);
    const cm = await c.nfs<m.Nfsv3CommitResponse>(NfsProc.COMMIT, new m.Nfsv3CommitRequest(fh(h), 0n, 0));
    expect(cm.status).toBe(0);
    expect(Buffer.from(cm.resok!.verf).equals(Buffer.from(w1.resok!.verf))).toBe(true);
    // The cached write handle had UNSTABLE data: COMMIT fsyncs it.
    expect(vfs.counters.fsync).toBe(fsyncs + 2);
    // Nothing written since: a second COMMIT asks the VFS to commit the inode.
    const commits = vfs.counters.commit;
    await c.nfs(NfsProc.COMMIT, new m.Nfsv3CommitRequest(fh(h), 0n, 0));
    expect(vfs.counters.fsync).toBe(fsyncs + 2);
    expect(vfs.counters.commit).toBe(commits + 1);

    const rd = await c.nfs<m.Nfsv3ReadResponse>(NfsProc.READ, new m.Nfsv3ReadRequest(fh(h), 0n, 100));
    expect(Buffer.from(rd.resok!.data).toString('latin1')).toBe('hello\0\0\0\0\0end');
    expect(rd.resok!.eof).toBe(true);
    const mid = await c.nfs<m.Nfsv3ReadResponse>(NfsProc.READ, new m.Nfsv3ReadRequest(fh(h), 1n, 3));
    expect(Buffer.from(mid.resok!.data).toString()).toBe('ell');
    expect(mid.resok!.eof).toBe(false);
    const past = await c.nfs<m.Nfsv3ReadResponse>(NfsProc.READ, new m.Nfsv3ReadRequest(fh(h), 1000n, 3));
    expect(past.resok!.count).toBe(0);
    expect(past.resok!.eof).toBe(true);
    const dirRead = await c.nfs<m.Nfsv3ReadResponse>(NfsProc.READ, new m.Nfsv3ReadRequest(fh(root), 0n, 3));
    expect(dirRead.status).toBe(Nfs3Stat.ISDIR);
  });

  it('releases cached VFS handles after the idle period', async () => {
    const cr = await create(root, 'idle.txt', unchecked());
    await c.nfs(
      NfsProc.WRITE,
      new m.Nfsv3WriteRequest(fh(cr.resok!.obj.handle!.data), 0n, 1, StableHow.UNSTABLE, Buffer.from('x')),
    );
    expect(vfs.handles.size).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 1200));
    expect(vfs.handles.size).toBe(0);
  });

  it('a COMMIT releases the write handles it committed at once (no wait for the idle period)', async () => {
    const before = vfs.handles.size;
    const cr = await create(root, 'committed.txt', unchecked());
    const h = fh(cr.resok!.obj.handle!.data);
    await c.nfs(NfsProc.WRITE, new m.Nfsv3WriteRequest(h, 0n, 1, StableHow.UNSTABLE, Buffer.from('x')));
    expect(vfs.handles.size).toBeGreaterThan(before);
    const released = vfs.counters.release;
    const com = await c.nfs<m.Nfsv3CommitResponse>(NfsProc.COMMIT, new m.Nfsv3CommitRequest(h, 0n, 0));
    expect(com.status).toBe(Nfs3Stat.OK);
    expect(vfs.counters.release).toBeGreaterThan(released);
    expect(vfs.handles.size).toBe(before);
    // A later WRITE opens a new handle and works as before.
    const w = await c.nfs<m.Nfsv3WriteResponse>(
      NfsProc.WRITE,
      new m.Nfsv3WriteRequest(h, 1n, 1, StableHow.UNSTABLE, Buffer.from('y')),
    );
    expect(w.status).toBe(Nfs3Stat.OK);
    const rd = await c.nfs<m.Nfsv3ReadResponse>(NfsProc.READ, new m.Nfsv3ReadRequest(h, 0n, 10));
    expect(Buffer.from(rd.resok!.data).toString()).toBe('xy');
  });

  it('SETATTR: mode, times, size, guard (NOT_SYNC), owner truncating a read-only file', async () => {
    vfs.putFile(1, 'sa.txt', 'abcdef', 0o444, 1000, 1000);
    const h = await handleOf(root, 'sa.txt');
    const cred = { uid: 1000, gid: 1000 };
    const guardless = new Nfsv3SattrGuard(false);
    const r1 = await c.nfs<m.Nfsv3SetattrResponse>(
      NfsProc.SETATTR,
      new m.Nfsv3SetattrRequest(fh(h), sattr({ size: 2n, mtime: new Nfsv3Time(1000, 5) }), guardless),
      { cred },
    );
    expect(r1.status).toBe(0);
    expect(r1.resok!.objWcc.before.attributes?.size).toBe(6n);
    expect(r1.resok!.objWcc.after.attributes?.size).toBe(2n);
    expect(r1.resok!.objWcc.after.attributes?.mtime).toEqual(new Nfsv3Time(1000, 5));
    const stale = new Nfsv3SattrGuard(true, new Nfsv3Time(1, 1));
    const r2 = await c.nfs<m.Nfsv3SetattrResponse>(
      NfsProc.SETATTR,
      new m.Nfsv3SetattrRequest(fh(h), sattr({ mode: 0o600 }), stale),
      { cred },
    );
    expect(r2.status).toBe(Nfs3Stat.NOT_SYNC);
    expect(r2.resfail!.objWcc.before.attributesFollow).toBe(true);
    const ctime = r1.resok!.objWcc.after.attributes!.ctime;
    const r3 = await c.nfs<m.Nfsv3SetattrResponse>(
      NfsProc.SETATTR,
      new m.Nfsv3SetattrRequest(fh(h), sattr({ mode: 0o600 }), new Nfsv3SattrGuard(true, ctime)),
      { cred },
    );
    expect(r3.status).toBe(0);
    expect(r3.resok!.objWcc.after.attributes?.mode).toBe(0o600);
    const notOwner = await c.nfs<m.Nfsv3SetattrResponse>(
      NfsProc.SETATTR,
      new m.Nfsv3SetattrRequest(fh(h), sattr({ mode: 0o777 }), guardless),
      { cred: { uid: 1001, gid: 1001 } },
    );
    expect(notOwner.status).toBe(Nfs3Stat.PERM);
    const badTime = await c.nfs<m.Nfsv3SetattrResponse>(
      NfsProc.SETATTR,
      new m.Nfsv3SetattrRequest(fh(h), sattr({ mtime: new Nfsv3Time(1, 2_000_000_000) }), guardless),
    );
    expect(badTime.status).toBe(Nfs3Stat.INVAL);
  });

  it('MKDIR, RENAME, REMOVE, RMDIR, LINK (PERM), MKNOD (NOTSUPP) with wcc data, also on errors', async () => {
    const mk = await c.nfs<m.Nfsv3MkdirResponse>(
      NfsProc.MKDIR,
      new m.Nfsv3MkdirRequest(dirop(root, 'mk'), sattr({ mode: 0o750 })),
    );
    expect(mk.status).toBe(0);
    expect(mk.resok!.objAttributes.attributes?.mode).toBe(0o750);
    const dh = mk.resok!.obj.handle!.data;
    const again = await c.nfs<m.Nfsv3MkdirResponse>(
      NfsProc.MKDIR,
      new m.Nfsv3MkdirRequest(dirop(root, 'mk'), sattr()),
    );
    expect(again.status).toBe(Nfs3Stat.EXIST);
    expect(again.resfail!.dirWcc.before.attributesFollow).toBe(true);
    expect(again.resfail!.dirWcc.after.attributesFollow).toBe(true);
    await create(dh, 'a', unchecked());
    const rn = await c.nfs<m.Nfsv3RenameResponse>(
      NfsProc.RENAME,
      new m.Nfsv3RenameRequest(dirop(dh, 'a'), dirop(root, 'moved')),
    );
    expect(rn.status).toBe(0);
    expect(rn.resok!.fromDirWcc.before.attributesFollow).toBe(true);
    expect(rn.resok!.toDirWcc.after.attributesFollow).toBe(true);
    const rnMissing = await c.nfs<m.Nfsv3RenameResponse>(
      NfsProc.RENAME,
      new m.Nfsv3RenameRequest(dirop(dh, 'a'), dirop(root, 'x')),
    );
    expect(rnMissing.status).toBe(Nfs3Stat.NOENT);
    const fileH = await handleOf(root, 'moved');
    const ln = await c.nfs<m.Nfsv3LinkResponse>(
      NfsProc.LINK,
      new m.Nfsv3LinkRequest(fh(fileH), dirop(dh, 'hard')),
    );
    expect(ln.status).toBe(Nfs3Stat.PERM);
    expect(ln.resfail!.fileAttributes.attributesFollow).toBe(true);
    const mknod = await c.nfs<m.Nfsv3MknodResponse>(
      NfsProc.MKNOD,
      new m.Nfsv3MknodRequest(
        dirop(dh, 'fifo'),
        new Nfsv3MknodData(7, undefined, undefined, undefined, sattr()),
      ),
    );
    expect(mknod.status).toBe(Nfs3Stat.NOTSUPP);
    await create(dh, 'b', unchecked());
    const rmNotEmpty = await c.nfs<m.Nfsv3RmdirResponse>(
      NfsProc.RMDIR,
      new m.Nfsv3RmdirRequest(dirop(root, 'mk')),
    );
    expect(rmNotEmpty.status).toBe(Nfs3Stat.NOTEMPTY);
    const rmFileAsDir = await c.nfs<m.Nfsv3RmdirResponse>(
      NfsProc.RMDIR,
      new m.Nfsv3RmdirRequest(dirop(dh, 'b')),
    );
    expect(rmFileAsDir.status).toBe(Nfs3Stat.NOTDIR);
    const rm = await c.nfs<m.Nfsv3RemoveResponse>(NfsProc.REMOVE, new m.Nfsv3RemoveRequest(dirop(dh, 'b')));
    expect(rm.status).toBe(0);
    expect(rm.resok!.dirWcc.before.attributesFollow).toBe(true);
    const rmMissing = await c.nfs<m.Nfsv3RemoveResponse>(
      NfsProc.REMOVE,
      new m.Nfsv3RemoveRequest(dirop(dh, 'b')),
    );
    expect(rmMissing.status).toBe(Nfs3Stat.NOENT);
    expect(rmMissing.resfail!.dirWcc.before.attributesFollow).toBe(true);
    const rd = await c.nfs<m.Nfsv3RmdirResponse>(NfsProc.RMDIR, new m.Nfsv3RmdirRequest(dirop(root, 'mk')));
    expect(rd.status).toBe(0);
    // The removed directory's handle is now stale.
    const gone = await c.nfs<m.Nfsv3GetattrResponse>(NfsProc.GETATTR, new m.Nfsv3GetattrRequest(fh(dh)));
    expect(gone.status).toBe(Nfs3Stat.STALE);
  });

  it('READDIR and READDIRPLUS: paging over 3000 entries with stable cookies, verifier, TOOSMALL, BAD_COOKIE', async () => {
    const d = vfs.putDir(1, 'big');
    const want: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const name = `entry-${String(i).padStart(5, '0')}-${'é'.repeat(i % 5)}`;
      vfs.putFile(d.ino, name, '');
      want.push(name);
    }
    const dh = await handleOf(root, 'big');
    const seen: string[] = [];
    let cookie = 0n;
    let verf: Uint8Array = new Uint8Array(8);
    let calls = 0;
    for (;;) {
      const r = await c.nfs<m.Nfsv3ReaddirResponse>(
        NfsProc.READDIR,
        new m.Nfsv3ReaddirRequest(fh(dh), cookie, verf, 4096),
      );
      expect(r.status).toBe(0);
      calls++;
      verf = r.resok!.cookieverf;
      for (let e = r.resok!.reply.entries; e; e = e.nextentry) {
        seen.push(e.name);
        cookie = e.cookie;
      }
      if (r.resok!.reply.eof) break;
    }
    expect(seen).toEqual(want);
    expect(calls).toBeGreaterThan(10);

    const plus: string[] = [];
    cookie = 0n;
    verf = new Uint8Array(8);
    let firstHandle: Uint8Array | undefined;
    for (;;) {
      const r = await c.nfs<m.Nfsv3ReaddirplusResponse>(
        NfsProc.READDIRPLUS,
        new m.Nfsv3ReaddirplusRequest(fh(dh), cookie, verf, 1024, 32768),
      );
      expect(r.status).toBe(0);
      verf = r.resok!.cookieverf;
      for (let e = r.resok!.reply.entries; e; e = e.nextentry) {
        plus.push(e.name);
        cookie = e.cookie;
        firstHandle ??= e.nameHandle.handle?.data;
        expect(e.nameAttributes.attributesFollow).toBe(true);
      }
      if (r.resok!.reply.eof) break;
    }
    expect(plus).toEqual(want);
    const ga = await c.nfs<m.Nfsv3GetattrResponse>(
      NfsProc.GETATTR,
      new m.Nfsv3GetattrRequest(fh(firstHandle!)),
    );
    expect(ga.status).toBe(0);

    const tiny = await c.nfs<m.Nfsv3ReaddirResponse>(
      NfsProc.READDIR,
      new m.Nfsv3ReaddirRequest(fh(dh), 0n, new Uint8Array(8), 100),
    );
    expect(tiny.status).toBe(Nfs3Stat.TOOSMALL);
    const tinyPlus = await c.nfs<m.Nfsv3ReaddirplusResponse>(
      NfsProc.READDIRPLUS,
      new m.Nfsv3ReaddirplusRequest(fh(dh), 0n, new Uint8Array(8), 100, 200),
    );
    expect(tinyPlus.status).toBe(Nfs3Stat.TOOSMALL);
    // The directory's cookies were invalidated: a continuation with the old verifier is refused.
    const old = verf;
    vfs.verifier = 0xabcdn;
    const bad = await c.nfs<m.Nfsv3ReaddirResponse>(
      NfsProc.READDIR,
      new m.Nfsv3ReaddirRequest(fh(dh), cookie, old, 4096),
    );
    expect(bad.status).toBe(Nfs3Stat.BAD_COOKIE);
    vfs.verifier = 0x5eedn;
    const notDir = await c.nfs<m.Nfsv3ReaddirResponse>(
      NfsProc.READDIR,
      new m.Nfsv3ReaddirRequest(fh(firstHandle!), 0n, new Uint8Array(8), 4096),
    );
    expect(notDir.status).toBe(Nfs3Stat.NOTDIR);
  });

  it('refuses to create names that are not valid UTF-8', async () => {
    const r = await c.call(PROG_NFS, 3, NfsProc.CREATE, (w) => {
      w.xdr.writeVarlenOpaque(root);
      w.xdr.writeVarlenOpaque(Uint8Array.from([0x66, 0xff, 0xfe, 0x67]));
      for (let i = 0; i < 7; i++) w.xdr.writeUnsignedInt(0); // UNCHECKED, empty sattr3
    });
    const res = new Nfsv3Decoder().decodeMessage(r.body, NfsProc.CREATE, false) as m.Nfsv3CreateResponse;
    expect(res.status).toBe(Nfs3Stat.INVAL);
    expect(res.resfail!.dirWcc.before.attributesFollow).toBe(true);
    const lk = await c.call(PROG_NFS, 3, NfsProc.LOOKUP, (w) => {
      w.xdr.writeVarlenOpaque(root);
      w.xdr.writeVarlenOpaque(Uint8Array.from([0xc3, 0x28]));
    });
    expect(
      (new Nfsv3Decoder().decodeMessage(lk.body, NfsProc.LOOKUP, false) as m.Nfsv3LookupResponse).status,
    ).toBe(Nfs3Stat.INVAL);
    // Valid multi-byte names are fine.
    expect((await create(root, 'café-名前-😀', unchecked())).status).toBe(0);
    expect((await lookup(root, 'café-名前-😀')).status).toBe(0);
  });

  it('file handles: forged → BADHANDLE, oversized → BADHANDLE, deleted → STALE', async () => {
    vfs.putFile(1, 'h.txt', 'x');
    const h = await handleOf(root, 'h.txt');
    const forged = Uint8Array.from(h);
    forged[20]! ^= 1; // change the inode id without the secret
    const get = (data: Uint8Array) =>
      c.nfs<m.Nfsv3GetattrResponse>(NfsProc.GETATTR, new m.Nfsv3GetattrRequest(fh(data)));
    expect((await get(forged)).status).toBe(Nfs3Stat.BADHANDLE);
    expect((await get(new Uint8Array(100))).status).toBe(Nfs3Stat.BADHANDLE);
    expect((await get(new Uint8Array(0))).status).toBe(Nfs3Stat.BADHANDLE);
    expect((await get(Uint8Array.from(h.subarray(0, 40)))).status).toBe(Nfs3Stat.BADHANDLE);
    await c.nfs(NfsProc.REMOVE, new m.Nfsv3RemoveRequest(dirop(root, 'h.txt')));
    expect((await get(h)).status).toBe(Nfs3Stat.STALE);
  });
});

describe('shutdown', () => {
  it('stop() closes connections and releases cached VFS handles', async () => {
    const v = new FakeVfs();
    const r = await startNfs([testExport('s', v)]);
    const cl = await r.client();
    const rt = (await cl.mnt('/s')).fh!;
    const cr = await cl.nfs<m.Nfsv3CreateResponse>(
      NfsProc.CREATE,
      new m.Nfsv3CreateRequest(dirop(rt, 'f'), unchecked()),
    );
    await cl.nfs(
      NfsProc.WRITE,
      new m.Nfsv3WriteRequest(fh(cr.resok!.obj.handle!.data), 0n, 2, StableHow.UNSTABLE, Buffer.from('hi')),
    );
    await cl.nfs(NfsProc.READ, new m.Nfsv3ReadRequest(fh(cr.resok!.obj.handle!.data), 0n, 2));
    expect(v.handles.size).toBeGreaterThan(0);
    await r.srv.stop();
    expect(v.handles.size).toBe(0);
    await cl.closed;
    expect(cl.isClosed).toBe(true);
  });
});
