import { afterEach, describe, expect, it } from 'vitest';
import { readSync } from 'node:fs';
import { FsError } from '../../src/core/errors.js';
import type { Cred } from '../../src/core/types.js';
import {
  O_CREAT,
  O_EXCL,
  O_RDONLY,
  O_RDWR,
  O_TRUNC,
  O_WRONLY,
  ROOT_CRED,
  ROOT_INO,
  W_OK,
} from '../../src/core/types.js';
import { decodePosixMeta } from '../../src/objectstore/posix-meta.js';
import type { GetRangeOptions } from '../../src/objectstore/types.js';
import type { CoreVfs } from '../../src/vfs/core.js';
import { Fetcher } from '../../src/vfs/fetcher.js';
import { MemoryObjectStore } from '../helpers/memory-objectstore.js';
import { createTestVfs, type TestVfs } from '../helpers/vfs-fixture.js';

const R = ROOT_CRED;
const ALICE: Cred = { uid: 1000, gid: 1000, groups: [] };
const BOB: Cred = { uid: 1001, gid: 1001, groups: [] };
const open: TestVfs[] = [];

async function mk(
  opts: Parameters<typeof createTestVfs>[0] = {},
): Promise<TestVfs & { mem: MemoryObjectStore }> {
  const store =
    (opts.store as MemoryObjectStore | undefined) ?? new MemoryObjectStore({ multipartThreshold: 1 << 30 });
  // A world-writable root (0777) unless a test says otherwise, so unprivileged callers can create.
  const defaults = opts.defaults ?? { uid: 0, gid: 0, fileMode: 0o644, dirMode: 0o777 };
  const t = await createTestVfs({ ...opts, store, defaults });
  open.push(t);
  return Object.assign(t, { mem: store });
}

afterEach(async () => {
  for (const t of open.splice(0)) await t.close({ remove: true }).catch(() => undefined);
});

async function writeFile(
  vfs: CoreVfs,
  parent: number,
  name: string,
  data: string | Buffer,
  cred: Cred = R,
): Promise<number> {
  const { attr, fh } = await vfs.create(cred, parent, name, 0o644, O_CREAT | O_WRONLY | O_TRUNC);
  await vfs.write(fh, 0, Buffer.from(data));
  await vfs.flush(fh);
  await vfs.release(fh);
  return attr.ino;
}

async function readAll(vfs: CoreVfs, ino: number, cred: Cred = R): Promise<Buffer> {
  const fh = await vfs.open(cred, ino, O_RDONLY);
  const a = await vfs.getattr(cred, ino);
  const b = await vfs.read(fh, 0, a.size + 10);
  await vfs.release(fh);
  return b;
}

/** A VFS over a store holding `name`: `mib` MiB, each 4 KiB page starting with its offset. */
type Seeded = { store: MemoryObjectStore; data: Buffer; t: TestVfs & { mem: MemoryObjectStore } };

/** A gateway over a store holding one object `name` with `data`. */
async function seeded(name: string, data: Buffer): Promise<Seeded> {
  const store = new MemoryObjectStore();
  store.seed(name, data);
  return { store, data, t: await mk({ store }) };
}

/** A gateway over a directory `d` of `n` one-byte objects f0000, f0001, ... (d looked up). */
async function dirOfFiles(n: number): Promise<{ store: MemoryObjectStore; t: TestVfs; d: { ino: number } }> {
  const store = new MemoryObjectStore();
  for (let i = 0; i < n; i++) store.seed(`d/f${String(i).padStart(4, '0')}`, Buffer.from('x'));
  store.seed('d/', Buffer.alloc(0));
  const t = await mk({ store });
  return { store, t, d: await t.vfs.lookup(R, ROOT_INO, 'd') };
}

/** `mib` MiB, each 4 KiB block numbered. */
async function bigObject(name: string, mib: number): Promise<Seeded> {
  const data = Buffer.alloc(mib * 1024 * 1024);
  for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
  return seeded(name, data);
}

/** `bytes` bytes, byte i = i * mul (mod 256): a misplaced range never compares equal. */
function patterned(bytes: number, mul: number): Buffer {
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < data.length; i++) data[i] = (i * mul) & 255;
  return data;
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (e instanceof FsError) return e.code;
    throw e;
  }
}

describe('CoreVfs over the in-memory object store', () => {
  it('writes a file that reaches the bucket with both metadata families (cache mode)', async () => {
    const t = await mk();
    const ino = await writeFile(t.vfs, ROOT_INO, 'hello.txt', 'hello world', ALICE);
    await t.vfs.setattr(R, ino, { mtimeNs: 1_700_000_000_123_456_789n });
    await t.vfs.flushAll(5000);
    expect(t.mem.read('hello.txt')?.toString()).toBe('hello world');
    const head = await t.store.head('hello.txt');
    expect(head?.metadata['file-owner']).toBe('1000');
    expect(head?.metadata['uid']).toBe('1000');
    expect(head?.metadata['file-permissions']).toBe('0100644');
    expect(head?.metadata['mode']).toBe(String(0o100644));
    expect(head?.metadata['file-mtime']).toBe('1700000000123456789ns');
    expect(head?.metadata['mtime']).toBe('1700000000.123456789');
    expect((await readAll(t.vfs, ino)).toString()).toBe('hello world');
  });

  it('flush makes every queued upload due at once, failing ones included, and says what is left', async () => {
    const t = await mk({ uploadDelayMs: 600_000 });
    // A failing upload waits out its backoff; a flush retries it at once.
    await writeFile(t.vfs, ROOT_INO, 'first', 'retried', ALICE);
    t.mem.failNext('put', 'transient', { key: 'first' });
    await t.vfs.flushAll(50).catch(() => undefined);
    expect(t.meta.getUpload(t.meta.lookup(ROOT_INO, 'first')?.ino ?? 0)?.attempts).toBe(1);
    for (let i = 0; i < 200; i++) await writeFile(t.vfs, ROOT_INO, `f${i}`, `content ${i}`, ALICE);
    expect(t.meta.uploadCount()).toBe(201);
    // The journal side of it: not-yet-due entries first, failing ones only when asked.
    const now = Date.now();
    expect(t.meta.hurryUploads(now, false)).toBe(200);
    expect(t.meta.hurryUploads(now, false)).toBe(0);
    expect(t.meta.hurryUploads(now, true)).toBe(1);
    expect(t.meta.allUploads().every((u) => u.dueMs <= now)).toBe(true);
    await t.vfs.flushAll(5000);
    expect(t.meta.uploadCount()).toBe(0);
    expect(t.mem.read('first')?.toString()).toBe('retried');
    for (let i = 0; i < 200; i++) expect(t.mem.read(`f${i}`)?.toString()).toBe(`content ${i}`);
    // One that keeps failing: the flush gives up after its timeout and names the count.
    await writeFile(t.vfs, ROOT_INO, 'stuck', 'x', ALICE);
    t.mem.failNext('put', 'transient', { key: 'stuck', times: 1000 });
    await expect(t.vfs.flushAll(300)).rejects.toThrow(/1 files still queued/);
    t.mem.clearFaults();
  });

  it('write-through: flush returns only when the object is in the bucket', async () => {
    const t = await mk({ mode: 'write-through' });
    const { fh } = await t.vfs.create(R, ROOT_INO, 'wt.bin', 0o600, O_CREAT | O_RDWR);
    await t.vfs.write(fh, 0, Buffer.from('abc'));
    expect(t.mem.read('wt.bin')).toBeUndefined();
    await t.vfs.flush(fh);
    expect(t.mem.read('wt.bin')?.toString()).toBe('abc');
    await t.vfs.release(fh);
    expect(t.meta.allUploads()).toHaveLength(0);
  });

  it('write-through: a backend failure surfaces as EIO from close and the data stays for a retry', async () => {
    const t = await mk({ mode: 'write-through' });
    const { fh } = await t.vfs.create(R, ROOT_INO, 'f', 0o644, O_CREAT | O_RDWR);
    await t.vfs.write(fh, 0, Buffer.from('data'));
    t.mem.failNext('put', 'transient', { times: 1 });
    expect(await code(t.vfs.flush(fh))).toBe('EIO');
    expect(t.meta.allUploads()).toHaveLength(1);
    await t.vfs.flush(fh);
    expect(t.mem.read('f')?.toString()).toBe('data');
    await t.vfs.release(fh);
  });

  it('mkdir writes a marker, rmdir refuses non-empty directories and deletes the marker', async () => {
    const t = await mk();
    const d = await t.vfs.mkdir(ALICE, ROOT_INO, 'dir', 0o750);
    const h = await t.store.head('dir/');
    expect(h?.contentType).toBe('application/x-directory');
    expect(h?.metadata['file-permissions']).toBe('040750');
    await writeFile(t.vfs, d.ino, 'x', 'x');
    expect(await code(t.vfs.rmdir(R, ROOT_INO, 'dir'))).toBe('ENOTEMPTY');
    await t.vfs.unlink(R, d.ino, 'x');
    await t.vfs.rmdir(R, ROOT_INO, 'dir');
    expect(await t.store.head('dir/')).toBeNull();
    expect(await code(t.vfs.lookup(R, ROOT_INO, 'dir'))).toBe('ENOENT');
  });

  it('directory attributes: journaled in cache mode (the uploader writes the marker), at once in write-through', async () => {
    const t = await mk({ uploadDelayMs: 600_000 });
    const d = await t.vfs.mkdir(R, ROOT_INO, 'd', 0o755);
    const before = t.meta.uploadCount();
    await t.vfs.setattr(R, d.ino, { mode: 0o700, uid: 42, gid: 43, mtimeNs: 1_600_000_000_000_000_001n });
    expect(await t.vfs.getattr(R, d.ino)).toMatchObject({ mode: 0o700, uid: 42, gid: 43 });
    // Not in the bucket yet: the marker still has mkdir's attributes, the change is journaled.
    expect((await t.store.head('d/'))?.metadata['file-permissions']).toBe('040755');
    expect(t.meta.getNode(d.ino)?.state).toBe('meta');
    expect(t.meta.uploadCount()).toBe(before + 1);
    await t.vfs.flushAll(5000);
    const h = await t.store.head('d/');
    expect(h).not.toBeNull();
    const ctx = (isDirMarker: boolean, lastModified: Date) => ({
      defaults: { uid: 0, gid: 0, fileMode: 0o644, dirMode: 0o755 },
      lastModified,
      isDirMarker,
    });
    expect(decodePosixMeta(h!.metadata, ctx(true, h!.lastModified))).toMatchObject({
      mode: 0o700,
      uid: 42,
      gid: 43,
      mtimeNs: 1_600_000_000_000_000_001n,
    });
    expect(t.meta.getNode(d.ino)?.state).toBe('clean');
    // A directory renamed before its upload: the marker is written under the new name.
    await t.vfs.setattr(R, d.ino, { mode: 0o711 });
    await t.vfs.rename(R, ROOT_INO, 'd', ROOT_INO, 'e');
    await t.vfs.flushAll(5000);
    expect(t.mem.keys()).toEqual(['e/']);
    const he = await t.store.head('e/');
    expect(decodePosixMeta(he!.metadata, ctx(true, he!.lastModified)).mode).toBe(0o711);
    // Another client deletes the directory while a change of ours is pending: ours is kept.
    const e = await t.vfs.lookup(R, ROOT_INO, 'e');
    await t.vfs.setattr(R, e.ino, { mode: 0o750 });
    await t.store.delete(['e/']);
    await t.vfs.refresh('/', true);
    expect((await t.vfs.lookup(R, ROOT_INO, 'e')).mode).toBe(0o750);
    await t.vfs.flushAll(5000);
    expect((await t.store.head('e/'))?.metadata['file-permissions']).toBe('040750');

    const w = await mk({ mode: 'write-through' });
    const wd = await w.vfs.mkdir(R, ROOT_INO, 'd', 0o755);
    await w.vfs.setattr(R, wd.ino, { mode: 0o700 });
    expect((await w.store.head('d/'))?.metadata['file-permissions']).toBe('040700');
    expect(w.meta.getNode(wd.ino)?.state).toBe('clean');
  });

  it("a prefix share's root attributes live in its marker: a second gateway sees them", async () => {
    const store = new MemoryObjectStore();
    const t = await mk({ store, prefix: 'share/' });
    await t.vfs.setattr(R, ROOT_INO, { mode: 0o700, uid: 12, gid: 34, mtimeNs: 981_173_106_000_000_000n });
    await t.vfs.flushAll(5000);
    expect((await store.head('share/'))?.metadata['file-permissions']).toBe('040700');
    const t2 = await mk({ store, prefix: 'share/' });
    expect(await t2.vfs.getattr(R, ROOT_INO)).toMatchObject({
      mode: 0o700,
      uid: 12,
      gid: 34,
      mtimeNs: 981_173_106_000_000_000n,
    });
    // No marker: the configured defaults.
    const t3 = await mk({ store, prefix: 'other/' });
    expect(await t3.vfs.getattr(R, ROOT_INO)).toMatchObject({ mode: 0o777, uid: 0, gid: 0 });
  });

  it('renames files and whole directories in the bucket', async () => {
    const t = await mk({ mode: 'write-through' });
    const a = await t.vfs.mkdir(R, ROOT_INO, 'a', 0o755);
    const b = await t.vfs.mkdir(R, a.ino, 'b', 0o755);
    await writeFile(t.vfs, b.ino, 'f1', 'one');
    await writeFile(t.vfs, a.ino, 'f2', 'two');
    await t.vfs.rename(R, a.ino, 'f2', ROOT_INO, 'top');
    expect(t.mem.read('top')?.toString()).toBe('two');
    expect(t.mem.read('a/f2')).toBeUndefined();
    await t.vfs.rename(R, ROOT_INO, 'a', ROOT_INO, 'z');
    expect(t.mem.keys().sort()).toEqual(['top', 'z/', 'z/b/', 'z/b/f1']);
    const z = await t.vfs.lookup(R, ROOT_INO, 'z');
    const zb = await t.vfs.lookup(R, z.ino, 'b');
    expect((await readAll(t.vfs, (await t.vfs.lookup(R, zb.ino, 'f1')).ino)).toString()).toBe('one');
    // rename over an existing file replaces it; into own subtree is EINVAL
    await writeFile(t.vfs, ROOT_INO, 'other', 'other');
    await t.vfs.rename(R, ROOT_INO, 'other', ROOT_INO, 'top');
    expect(t.mem.read('top')?.toString()).toBe('other');
    expect(await code(t.vfs.rename(R, ROOT_INO, 'z', zb.ino, 'zz'))).toBe('EINVAL');
    expect(await code(t.vfs.rename(R, ROOT_INO, 'top', ROOT_INO, 'z'))).toBe('EISDIR');
  });

  it('renames a dirty file before its upload: only the new key appears', async () => {
    const t = await mk({ uploadDelayMs: 60_000 });
    await writeFile(t.vfs, ROOT_INO, 'draft', 'v1');
    await t.vfs.rename(R, ROOT_INO, 'draft', ROOT_INO, 'final');
    await t.vfs.flushAll(5000);
    expect(t.mem.keys()).toEqual(['final']);
    expect(t.mem.read('final')?.toString()).toBe('v1');
  });

  it('a closed file uploads when its delay is up, not at the next poll of the journal', async () => {
    // The journal poll is an hour here: only the wake-up set at close can start the upload.
    const t = await mk({ uploadDelayMs: 100, uploadPollMs: 3_600_000 });
    await writeFile(t.vfs, ROOT_INO, 'soon', 'x');
    expect(t.mem.keys()).toEqual([]);
    for (let i = 0; i < 200 && t.mem.keys().length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(t.mem.keys()).toEqual(['soon']);
  });

  /** Write small files into `dir` until `ms` have passed (a busy writer); returns their names. */
  async function busyWriter(vfs: CoreVfs, dir: number, ms: number): Promise<string[]> {
    const names: string[] = [];
    const end = Date.now() + ms;
    for (let i = 0; Date.now() < end; i++) {
      await writeFile(vfs, dir, `w${i}`, `busy ${i}`);
      names.push(`w${i}`);
      if (i % 20 === 19) await new Promise((r) => setTimeout(r, 1)); // let timers and uploads run
    }
    return names;
  }
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  it('background uploads wait while files are being written, and start when the writer pauses', async () => {
    // Due after 20 ms; while busy they could wait a minute, so only the pause can start them.
    const t = await mk({ uploadDelayMs: 20, uploadPollMs: 50, uploadBusyDeferMs: 60_000 });
    const w = (await t.vfs.mkdir(R, ROOT_INO, 'w', 0o755)).ino;
    await t.vfs.flushAll(5000);
    const names = await busyWriter(t.vfs, w, 800);
    expect(names.length).toBeGreaterThan(50);
    // Hundreds of files were due for most of a second, none was uploaded meanwhile.
    expect(t.mem.keys().filter((k) => k.startsWith('w/w'))).toEqual([]);
    expect(t.vfs.uploadStats().deferring).toBe(true);
    for (let i = 0; i < 200 && t.mem.keys().length < names.length + 1; i++) await sleep(25);
    expect(t.mem.keys().length).toBe(names.length + 1);
  });

  it('an upload waits at most busyDeferMs past its due time, however long the writer keeps on', async () => {
    const t = await mk({ uploadDelayMs: 0, uploadPollMs: 50, uploadBusyDeferMs: 300 });
    await writeFile(t.vfs, ROOT_INO, 'first', 'x');
    const w = (await t.vfs.mkdir(R, ROOT_INO, 'w', 0o755)).ino;
    let seenAt = 0;
    const start = Date.now();
    const watch = setInterval(() => {
      if (seenAt === 0 && t.mem.read('first') !== undefined) seenAt = Date.now() - start;
    }, 10);
    try {
      await busyWriter(t.vfs, w, 1500);
    } finally {
      clearInterval(watch);
    }
    expect(seenAt).toBeGreaterThan(0);
    expect(seenAt).toBeLessThan(1200);
  });

  it('uploads do not wait for a busy writer once dirty data fills a quarter of the cache', async () => {
    const t = await mk({
      uploadDelayMs: 0,
      uploadPollMs: 50,
      uploadBusyDeferMs: 60_000,
      cacheLimitBytes: 4 << 20,
    });
    const w = (await t.vfs.mkdir(R, ROOT_INO, 'w', 0o755)).ino;
    // Busy first (small files, well below a quarter of the cache): nothing is uploaded.
    for (let i = 0; i < 30; i++) await writeFile(t.vfs, w, `small${i}`, 'x');
    expect(t.vfs.uploadStats().deferring).toBe(true);
    // Then 40 files of 64 KiB: 2.5 MiB, below the limit (the writer never waits for space), but
    // more than a quarter of the cache is dirty after 16 of them.
    const data = Buffer.alloc(64 * 1024, 1);
    for (let i = 0; i < 40; i++) {
      await writeFile(t.vfs, w, `big${i}`, data);
      if (i % 8 === 7) await sleep(5);
    }
    // The writer stays busy (how fast the loop above ran must not matter): big files go up anyway.
    const writer = busyWriter(t.vfs, w, 1500);
    await sleep(1000);
    const uploadedWhileBusy = t.mem.keys().filter((k) => k.startsWith('w/big')).length;
    await writer;
    expect(uploadedWhileBusy).toBeGreaterThan(0);
  });

  it('a flush uploads while the writer is still busy', async () => {
    const t = await mk({ uploadDelayMs: 60_000, uploadPollMs: 50, uploadBusyDeferMs: 60_000 });
    await writeFile(t.vfs, ROOT_INO, 'before', 'x');
    const w = (await t.vfs.mkdir(R, ROOT_INO, 'w', 0o755)).ino;
    const writer = busyWriter(t.vfs, w, 1500);
    await sleep(300);
    // The writer does not stop, so the flush cannot finish; but it must not wait for the writer.
    const flushed = t.vfs.flushAll(700).catch((e: unknown) => e);
    await sleep(500);
    const uploadedWhileBusy = t.mem.keys().length;
    await writer;
    await flushed;
    expect(t.mem.read('before')?.toString()).toBe('x');
    expect(uploadedWhileBusy).toBeGreaterThan(5);
  });

  it('a close journals the file once (FLUSH then RELEASE), a later change and close again', async () => {
    const t = await mk({ uploadDelayMs: 60_000 });
    let enqueued = 0;
    const orig = t.meta.enqueueUpload.bind(t.meta);
    t.meta.enqueueUpload = (ino, due) => {
      enqueued++;
      orig(ino, due);
    };
    const ino = await writeFile(t.vfs, ROOT_INO, 'once', 'v1');
    expect(enqueued).toBe(1);
    const due1 = t.meta.getUpload(ino)!.dueMs;
    await sleep(80);
    const fh = await t.vfs.open(R, ino, O_WRONLY);
    await t.vfs.write(fh, 0, Buffer.from('v2'));
    await t.vfs.flush(fh);
    await t.vfs.release(fh);
    expect(enqueued).toBe(2);
    expect(t.meta.getUpload(ino)!.dueMs).toBeGreaterThan(due1);
    // Closed again without a change, later: the due time moves (delay after the last close).
    const fh2 = await t.vfs.open(R, ino, O_WRONLY);
    await sleep(80);
    await t.vfs.flush(fh2);
    await t.vfs.release(fh2);
    expect(enqueued).toBe(3);
    // What it remembers for this is dropped at the next poll (no growth with deleted files).
    const uploader = (t.vfs as unknown as { uploader: { lastScheduled: Map<number, unknown> } }).uploader;
    expect(uploader.lastScheduled.size).toBe(1);
    await sleep(500);
    expect(uploader.lastScheduled.size).toBe(0);
    await t.vfs.flushAll(5000);
    expect(t.mem.read('once')?.toString()).toBe('v2');
  });

  it('change counts are forgotten once a file is uploaded clean or deleted (no growth)', async () => {
    const t = await mk({ uploadDelayMs: 60_000 });
    const up = (
      t.vfs as unknown as {
        uploader: { changeSeq: Map<number, number>; lastChangePrune: number; pruneChanges(): void };
      }
    ).uploader;
    const a = await writeFile(t.vfs, ROOT_INO, 'kept', 'a');
    const b = await writeFile(t.vfs, ROOT_INO, 'gone', 'b');
    await writeFile(t.vfs, ROOT_INO, 'dirty', 'c');
    expect(up.changeSeq.has(a) && up.changeSeq.has(b)).toBe(true);
    await t.vfs.unlink(R, ROOT_INO, 'gone');
    await t.vfs.flushAll(5000); // uploads 'kept' and 'dirty'
    expect(up.changeSeq.has(a)).toBe(false);
    expect(up.changeSeq.has(b)).toBe(true); // deleted before its upload: left for the prune
    const fh = await t.vfs.open(R, a, O_WRONLY); // changed again, not closed: must stay
    await t.vfs.write(fh, 0, Buffer.from('A'));
    up.lastChangePrune = 0;
    up.pruneChanges();
    expect([...up.changeSeq.keys()]).toEqual([a]);
    await t.vfs.release(fh);
  });

  it('unlink of a file that was never uploaded leaves nothing in the bucket', async () => {
    const t = await mk({ uploadDelayMs: 60_000 });
    await writeFile(t.vfs, ROOT_INO, 'tmp', 'x');
    await t.vfs.unlink(R, ROOT_INO, 'tmp');
    await t.vfs.flushAll(5000);
    expect(t.mem.keys()).toEqual([]);
  });

  it('symlinks are objects whose body is the target', async () => {
    const t = await mk();
    const l = await t.vfs.symlink(ALICE, ROOT_INO, 'link', '../target/x');
    expect(l.type).toBe('symlink');
    expect(t.mem.read('link')?.toString()).toBe('../target/x');
    expect((await t.store.head('link'))?.metadata['file-permissions']).toBe('0120777');
    expect(await t.vfs.readlink(R, l.ino)).toBe('../target/x');
  });

  it('chmod/chown/utimens of an uploaded file use a server-side copy; attributes come back after a restart', async () => {
    const store = new MemoryObjectStore();
    const t = await mk({ store, mode: 'write-through' });
    const ino = await writeFile(t.vfs, ROOT_INO, 'f', 'content');
    const putsBefore = store.callCount('put');
    await t.vfs.setattr(R, ino, { mode: 0o600, uid: 42, gid: 43, mtimeNs: 1_600_000_000_000_000_001n });
    expect(store.callCount('put')).toBe(putsBefore);
    expect(store.callCount('copy')).toBeGreaterThan(0);
    const h = await store.head('f');
    const d = decodePosixMeta(h!.metadata, {
      defaults: { uid: 0, gid: 0, fileMode: 0o644, dirMode: 0o755 },
      lastModified: h!.lastModified,
      isDirMarker: false,
    });
    expect(d).toMatchObject({ mode: 0o600, uid: 42, gid: 43, mtimeNs: 1_600_000_000_000_000_001n });
    // a second gateway on an empty cache sees the same attributes
    const t2 = await mk({ store });
    const a = await t2.vfs.lookup(R, ROOT_INO, 'f');
    expect(a).toMatchObject({ mode: 0o600, uid: 42, gid: 43, size: 7, mtimeNs: 1_600_000_000_000_000_001n });
  });

  it('random writes, appends, sparse files, truncation and overwrites', async () => {
    const t = await mk();
    const { attr, fh } = await t.vfs.create(R, ROOT_INO, 'sparse', 0o644, O_CREAT | O_RDWR);
    await t.vfs.write(fh, 1_000_000, Buffer.from('end'));
    await t.vfs.write(fh, 10, Buffer.from('mid'));
    expect((await t.vfs.getattr(R, attr.ino)).size).toBe(1_000_003);
    const b = await t.vfs.read(fh, 0, 2_000_000);
    expect(b.length).toBe(1_000_003);
    expect(b.subarray(10, 13).toString()).toBe('mid');
    expect(b.subarray(0, 10).every((x) => x === 0)).toBe(true);
    expect(b.subarray(1_000_000).toString()).toBe('end');
    await t.vfs.setattr(R, attr.ino, { size: 12 }, fh);
    await t.vfs.setattr(R, attr.ino, { size: 20 }, fh);
    const c = await t.vfs.read(fh, 0, 100);
    expect(c).toEqual(Buffer.concat([Buffer.alloc(10), Buffer.from('mi'), Buffer.alloc(8)]));
    await t.vfs.flush(fh);
    await t.vfs.release(fh);
    const fh2 = await t.vfs.open(R, attr.ino, O_WRONLY | 0o2000 /* O_APPEND */);
    await t.vfs.write(fh2, 0, Buffer.from('++'));
    await t.vfs.release(fh2);
    await t.vfs.flushAll(5000);
    expect(t.mem.read('sparse')).toEqual(Buffer.concat([c, Buffer.from('++')]));
    // partial overwrite of an uploaded file whose data is no longer cached locally
    await t.cache.drop(attr.ino);
    const fh3 = await t.vfs.open(R, attr.ino, O_RDWR);
    await t.vfs.write(fh3, 0, Buffer.from('AB'));
    await t.vfs.release(fh3);
    await t.vfs.flushAll(5000);
    expect(t.mem.read('sparse')).toEqual(
      Buffer.concat([Buffer.from('AB'), c.subarray(2), Buffer.from('++')]),
    );
  });

  it('reads large remote files in ranges and serves cached ranges without requests', async () => {
    const { store, data, t } = await seeded('big.bin', patterned(5 * 1024 * 1024 + 123, 7));
    const a = await t.vfs.lookup(R, ROOT_INO, 'big.bin');
    const fh = await t.vfs.open(R, a.ino, O_RDONLY);
    const part = await t.vfs.read(fh, 3_000_000, 4096);
    expect(part).toEqual(data.subarray(3_000_000, 3_004_096));
    store.resetCalls();
    expect(await t.vfs.read(fh, 3_000_100, 100)).toEqual(data.subarray(3_000_100, 3_000_200));
    expect(store.callCount('getRange')).toBe(0);
    const chunks: Buffer[] = [];
    for (let off = 0; off < data.length; off += 131072) chunks.push(await t.vfs.read(fh, off, 131072));
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    await t.vfs.release(fh);
  });

  it('readLocal lends cached ranges of the cache file, fetching what is missing first', async () => {
    const { data, t } = await seeded('big.bin', patterned(3 * 1024 * 1024 + 5, 13));
    const a = await t.vfs.lookup(R, ROOT_INO, 'big.bin');
    const fh = await t.vfs.open(R, a.ino, O_RDONLY);
    const pieces: Buffer[] = [];
    for (let off = 0; off < data.length; off += 1024 * 1024) {
      const got = await t.vfs.readLocal(fh, off, 1024 * 1024);
      if (got instanceof Uint8Array) throw new Error(`bytes at ${off} were copied, not lent`);
      const b = Buffer.alloc(got.length);
      expect(readSync(got.fd, b, 0, got.length, got.offset)).toBe(got.length);
      got.release();
      pieces.push(b);
    }
    expect(Buffer.concat(pieces).equals(data)).toBe(true);
    expect(await t.vfs.readLocal(fh, data.length, 10)).toEqual(Buffer.alloc(0));
    await t.vfs.release(fh);
    // Same checks as read(): a handle opened for writing only cannot read.
    const w = await t.vfs.open(R, a.ino, O_WRONLY);
    expect(await code(t.vfs.readLocal(w, 0, 10))).toBe('EBADF');
    await t.vfs.release(w);
  });

  it('large reads keep at most 4 large GETs in flight (pooled buffers), and read right', async () => {
    const { store, data, t } = await bigObject('seq.bin', 96);
    let inflight = 0;
    let most = 0;
    const orig = store.getRange.bind(store);
    store.getRange = async (...args: Parameters<MemoryObjectStore['getRange']>) => {
      const big = args[2] - args[1] >= 2 << 20;
      if (big) most = Math.max(most, ++inflight);
      try {
        await new Promise((r) => setTimeout(r, 5)); // let GETs overlap
        return await orig(...args);
      } finally {
        if (big) inflight--;
      }
    };
    const a = await t.vfs.lookup(R, ROOT_INO, 'seq.bin');
    const fh = await t.vfs.open(R, a.ino, O_RDONLY);
    // One 64 MiB read (8 GETs of 8 MiB at once), then 1 MiB reads with read-ahead.
    const chunks: Buffer[] = [await t.vfs.read(fh, 0, 64 << 20)];
    for (let off = 64 << 20; off < data.length; off += 1 << 20)
      chunks.push(await t.vfs.read(fh, off, 1 << 20));
    await t.vfs.release(fh);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    expect(most).toBeGreaterThan(1); // they do run in parallel
    expect(most).toBeLessThanOrEqual(4);
  });

  it('a sequential read fetches whole 8 MiB GETs once the read-ahead is wide, even while it waits', async () => {
    const { store, data, t } = await bigObject('seq2.bin', 160);
    const sizes: number[] = [];
    const orig = store.getRange.bind(store);
    store.getRange = async (...args: Parameters<MemoryObjectStore['getRange']>) => {
      sizes.push(args[2] - args[1]);
      await new Promise((r) => setTimeout(r, 20)); // slower than the reader: it waits for data
      return orig(...args);
    };
    const a = await t.vfs.lookup(R, ROOT_INO, 'seq2.bin');
    const fh = await t.vfs.open(R, a.ino, O_RDONLY);
    const chunks: Buffer[] = [];
    for (let off = 0; off < data.length; off += 1 << 20) chunks.push(await t.vfs.read(fh, off, 1 << 20));
    await t.vfs.release(fh);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    expect(sizes.reduce((x, y) => x + y, 0)).toBe(data.length); // every byte fetched once
    // Small GETs only while the window ramps up (and none per read afterwards).
    const small = sizes.filter((n) => n < 8 << 20);
    expect(small.length).toBeLessThanOrEqual(8);
    expect(sizes.slice(8).every((n) => n === 8 << 20)).toBe(true);
  });

  it('read-ahead schedules only past the end of the window it scheduled before', async () => {
    const { store, t } = await bigObject('ra.bin', 32);
    const a = await t.vfs.lookup(R, ROOT_INO, 'ra.bin');
    t.cache.ensure(a.ino, 32 << 20);
    const ranges: string[] = [];
    const orig = store.getRange.bind(store);
    store.getRange = async (...args: Parameters<MemoryObjectStore['getRange']>) => {
      ranges.push(`${args[1] >> 20}-${args[2] >> 20}`);
      return orig(...args);
    };
    const f = new Fetcher(t.cache, store, (op, key) => new FsError('EIO', op, key), 128 << 10, 8 << 20, 16);
    const src = { ino: a.ino, key: 'ra.bin', etag: null, size: 32 << 20 };
    // A 16 MiB window after a read ending at 1 MiB ends on the 8 MiB GET boundary at 16 MiB.
    let end = f.readahead(src, 1 << 20, 16 << 20);
    expect(end).toBe(16 << 20);
    // The reader moves on by 1 MiB: the window is where it was, nothing is looked at again.
    end = f.readahead(src, 2 << 20, 16 << 20, end);
    expect(end).toBe(16 << 20);
    // Past the next GET boundary: only the new part is scheduled.
    end = f.readahead(src, 9 << 20, 16 << 20, end);
    expect(end).toBe(24 << 20);
    await sleep(50);
    expect(ranges).toEqual(['1-9', '9-16', '16-24']);
    // Blocks before `from` are taken as scheduled: a window the cache lost is not fetched again
    // by read-ahead (a reader's own reads still fetch what they miss).
    await t.cache.drop(a.ino);
    t.cache.ensure(a.ino, 32 << 20);
    expect(f.readahead(src, 10 << 20, 16 << 20, end)).toBe(24 << 20);
    await sleep(20);
    expect(ranges).toHaveLength(3);
    await f.ensure(src, 10 << 20, 1 << 20);
    expect(ranges).toEqual(['1-9', '9-16', '16-24', '10-11']);
  });

  it('random reads fetch their blocks, then the whole file once they have missed as often as whole-file GETs would take', async () => {
    const { store, data, t } = await bigObject('rand.bin', 32); // 4 GETs of 8 MiB
    const gets: Array<[number, number]> = [];
    const orig = store.getRange.bind(store);
    store.getRange = async (key: string, start: number, end: number, opts?: GetRangeOptions) => {
      gets.push([start, end]);
      // Into the caller's scratch buffer when it gives one, as the S3 store does.
      const got = await orig(key, start, end, opts);
      const scratch = opts?.scratch;
      if (scratch === undefined || scratch.length < got.length) return got;
      got.copy(scratch);
      return scratch.subarray(0, got.length);
    };
    // Whether each large fill lent its GET buffer to the data cache (to be kept in memory).
    const lentFills: boolean[] = [];
    const fill = t.cache.fill.bind(t.cache);
    t.cache.fill = (ino, offset, buf, opts) => {
      if (buf.length > 1 << 20) lentFills.push(opts?.onRelease !== undefined);
      return fill(ino, offset, buf, opts);
    };
    const a = await t.vfs.lookup(R, ROOT_INO, 'rand.bin');
    const fh = await t.vfs.open(R, a.ino, O_RDONLY);
    const at = [3, 29, 11, 17, 7, 23].map((m) => m * 1024 * 1024 + 4096);
    const readAt = async (off: number): Promise<void> => {
      expect((await t.vfs.read(fh, off, 4096)).equals(data.subarray(off, off + 4096))).toBe(true);
    };
    // Three misses: one 128 KiB block each, nothing more.
    for (const off of at.slice(0, 3)) await readAt(off);
    expect(gets).toEqual(at.slice(0, 3).map((off) => [off - 4096, off - 4096 + (128 << 10)]));
    // The fourth miss (max(4, 32 MiB / 8 MiB)) also schedules the rest of the file in large GETs.
    await readAt(at[3]!);
    for (let i = 0; i < 200 && t.cache.missing(a.ino, 0, data.length, { count: false }).length > 0; i++)
      await sleep(10);
    expect(t.cache.missing(a.ino, 0, data.length, { count: false })).toEqual([]);
    const after = gets.slice(4);
    expect(after.length).toBeGreaterThan(0);
    expect(after.every(([s, e]) => e - s <= 8 << 20)).toBe(true);
    expect(gets.reduce((n, [s, e]) => n + e - s, 0)).toBe(data.length); // every byte once
    // The whole-file GETs' buffers go back to the pool at once: a random reader would leave
    // them in memory, since it rarely reads a range to its end.
    expect(lentFills.length).toBeGreaterThan(0);
    expect(lentFills.every((lent) => !lent)).toBe(true);
    for (const off of at.slice(4)) await readAt(off);
    expect(gets.length).toBe(4 + after.length); // later reads hit the cache
    await t.vfs.release(fh);
  });

  it('a few random reads of a small file, or a sequential read, do not fetch the whole file', async () => {
    const { store, data, t } = await bigObject('few.bin', 6); // one 8 MiB GET would bring it all
    const got: number[] = [];
    const orig = store.getRange.bind(store);
    store.getRange = async (...args: Parameters<MemoryObjectStore['getRange']>) => {
      got.push(args[2] - args[1]);
      return orig(...args);
    };
    const a = await t.vfs.lookup(R, ROOT_INO, 'few.bin');
    // Three misses in separate opens (like `file` or a thumbnailer reading a header and a
    // trailer): one block each, below the minimum of four misses.
    for (const off of [0, 5 << 20, 2 << 20]) {
      const fh = await t.vfs.open(R, a.ino, O_RDONLY);
      expect((await t.vfs.read(fh, off, 4096)).equals(data.subarray(off, off + 4096))).toBe(true);
      await t.vfs.release(fh);
    }
    await sleep(50);
    expect(got).toEqual([128 << 10, 128 << 10, 128 << 10]);
    // A short sequential read of another file fetches what its read-ahead asks for, not 64 MiB.
    const big = await bigObject('seqhead.bin', 64);
    let bytes = 0;
    const orig2 = big.store.getRange.bind(big.store);
    big.store.getRange = async (...args: Parameters<MemoryObjectStore['getRange']>) => {
      bytes += args[2] - args[1];
      return orig2(...args);
    };
    const b = await big.t.vfs.lookup(R, ROOT_INO, 'seqhead.bin');
    const fh = await big.t.vfs.open(R, b.ino, O_RDONLY);
    for (let off = 0; off < 512 << 10; off += 128 << 10) await big.t.vfs.read(fh, off, 128 << 10);
    await big.t.vfs.release(fh);
    await sleep(50);
    expect(bytes).toBeLessThan(8 << 20);
  });

  it('enforces permissions with the caller credentials', async () => {
    const t = await mk();
    const d = await t.vfs.mkdir(R, ROOT_INO, 'shared', 0o777);
    const ino = await writeFile(t.vfs, d.ino, 'alice.txt', 'secret', ALICE);
    expect((await t.vfs.getattr(R, ino)).uid).toBe(1000);
    expect(await code(t.vfs.open(BOB, ino, O_WRONLY))).toBe('EACCES');
    expect(await code(t.vfs.open(BOB, ino, O_RDONLY))).toBe('ok');
    expect(await code(t.vfs.setattr(BOB, ino, { mode: 0o777 }))).toBe('EPERM');
    expect(await code(t.vfs.setattr(ALICE, ino, { uid: 0 }))).toBe('EPERM');
    expect(await code(t.vfs.access(BOB, ino, W_OK))).toBe('EACCES');
    await t.vfs.setattr(ALICE, ino, { mode: 0o600 });
    expect(await code(t.vfs.open(BOB, ino, O_RDONLY))).toBe('EACCES');
    const priv = await t.vfs.mkdir(ALICE, ROOT_INO, 'priv', 0o700);
    expect(await code(t.vfs.mkdir(BOB, d.ino, 'bobdir', 0o755))).toBe('ok');
    expect(await code(t.vfs.lookup(BOB, priv.ino, 'x'))).toBe('EACCES');
    expect(await code(t.vfs.create(BOB, priv.ino, 'x', 0o644, O_CREAT | O_WRONLY))).toBe('EACCES');
  });

  it('bad names and unsupported operations fail with the POSIX errno', async () => {
    const t = await mk();
    expect(await code(t.vfs.create(R, ROOT_INO, 'x'.repeat(256), 0o644, O_CREAT))).toBe('ENAMETOOLONG');
    expect(await code(t.vfs.mkdir(R, ROOT_INO, 'é'.repeat(128), 0o755))).toBe('ENAMETOOLONG');
    const ino = await writeFile(t.vfs, ROOT_INO, 'f', 'x');
    expect(await code(t.vfs.create(R, ROOT_INO, 'f', 0o644, O_CREAT | O_EXCL))).toBe('EEXIST');
    expect(await code(t.vfs.mkdir(R, ROOT_INO, 'f', 0o755))).toBe('EEXIST');
    expect(await code(t.vfs.link(R, ino, ROOT_INO, 'hard'))).toBe('EPERM');
    expect(await code(t.vfs.rmdir(R, ROOT_INO, 'f'))).toBe('ENOTDIR');
    expect(await code(t.vfs.unlink(R, ROOT_INO, 'missing'))).toBe('ENOENT');
    expect(await code(t.vfs.setattr(R, ROOT_INO, { mode: 0o700 }))).toBe('EPERM'); // whole-bucket root
  });

  it('a backend failure is EIO and the VFS keeps serving', async () => {
    const t = await mk();
    t.mem.failNext('put', 'transient', { times: 1 });
    expect(await code(t.vfs.mkdir(R, ROOT_INO, 'd', 0o755))).toBe('EIO');
    expect(await code(t.vfs.lookup(R, ROOT_INO, 'd'))).toBe('ENOENT');
    await t.vfs.mkdir(R, ROOT_INO, 'd', 0o755);
    expect((await t.vfs.lookup(R, ROOT_INO, 'd')).type).toBe('dir');
  });

  it('read-only shares refuse every change with EROFS', async () => {
    const store = new MemoryObjectStore();
    store.seed('a.txt', 'a');
    const t = await mk({ store, readOnly: true });
    const a = await t.vfs.lookup(R, ROOT_INO, 'a.txt');
    expect(await code(t.vfs.open(R, a.ino, O_WRONLY))).toBe('EROFS');
    expect(await code(t.vfs.mkdir(R, ROOT_INO, 'd', 0o755))).toBe('EROFS');
    expect(await code(t.vfs.unlink(R, ROOT_INO, 'a.txt'))).toBe('EROFS');
    expect(await code(t.vfs.setattr(R, a.ino, { mode: 0o600 }))).toBe('EROFS');
    expect((await readAll(t.vfs, a.ino)).toString()).toBe('a');
  });

  it('skips objects that cannot be shown as paths, and a file shadowed by a directory', async () => {
    const store = new MemoryObjectStore();
    store.seed('ok.txt', 'ok');
    store.seed('a//b', 'x');
    store.seed('./x', 'x');
    store.seed('../y', 'y');
    store.seed('dup', 'file');
    store.seed('dup/inner', 'inner');
    store.seed(`${'n'.repeat(300)}`, 'long');
    const t = await mk({ store });
    const r = await t.vfs.readdir(R, ROOT_INO, 0n, 100);
    // `a//b` makes `a` a (legitimate) prefix, but its empty-named child is skipped.
    expect(r.entries.map((e) => e.name).sort()).toEqual(['a', 'dup', 'ok.txt']);
    expect((await t.vfs.lookup(R, ROOT_INO, 'dup')).type).toBe('dir');
    const a = await t.vfs.lookup(R, ROOT_INO, 'a');
    expect((await t.vfs.readdir(R, a.ino, 0n, 100)).entries).toEqual([]);
  });

  it('lookup of "." and ".." (NFS clients use them)', async () => {
    const t = await mk();
    const a = await t.vfs.mkdir(R, ROOT_INO, 'a', 0o755);
    const b = await t.vfs.mkdir(R, a.ino, 'b', 0o755);
    expect((await t.vfs.lookup(R, b.ino, '..')).ino).toBe(a.ino);
    expect((await t.vfs.lookup(R, b.ino, '.')).ino).toBe(b.ino);
    expect((await t.vfs.lookup(R, ROOT_INO, '..')).ino).toBe(ROOT_INO);
  });

  it('a first readdir loads the metadata of a listed page while the next page is being listed', async () => {
    const { store, t, d } = await dirOfFiles(1500);
    let headsDuringPage2 = -1;
    const list = store.list.bind(store);
    store.list = async (prefix, opts = {}) => {
      if (opts.token !== undefined) {
        const before = store.callCount('head');
        await sleep(100);
        headsDuringPage2 = store.callCount('head') - before;
      }
      return list(prefix, opts);
    };
    store.resetCalls();
    const r = await t.vfs.readdir(R, d.ino, 0n, 100);
    expect(r.entries).toHaveLength(100);
    expect(headsDuringPage2).toBeGreaterThan(50);
    // A lookup (no readdir) lists without loading everyone's metadata.
    const store2 = new MemoryObjectStore();
    for (let i = 0; i < 300; i++) store2.seed(`e/f${i}`, Buffer.from('x'));
    const t2 = await mk({ store: store2 });
    const e = await t2.vfs.lookup(R, ROOT_INO, 'e');
    store2.resetCalls();
    await t2.vfs.lookup(R, e.ino, 'f7');
    await sleep(50);
    expect(store2.callCount('head')).toBeLessThan(5);
  });

  it('readdir loads metadata for its page first, then for a window past it, not the whole directory', async () => {
    const { store, t, d } = await dirOfFiles(1000);
    // A lookup in it lists the directory without loading the entries' metadata.
    await t.vfs.lookup(R, d.ino, 'f0007');
    await sleep(20);
    const heads: string[] = [];
    const head = store.head.bind(store);
    store.head = async (key, signal) => {
      heads.push(key);
      return head(key, signal);
    };
    const r = await t.vfs.readdir(R, d.ino, 0n, 10);
    expect(r.entries.map((e) => e.name)).toEqual(
      Array.from({ length: 10 }, (_, i) => `f${String(i).padStart(4, '0')}`),
    );
    // f0007 was loaded by its lookup; the page's other nine are the first HEADs sent.
    expect(heads.slice(0, 9).sort()).toEqual(
      r.entries.map((e) => `d/${e.name}`).filter((k) => k !== 'd/f0007'),
    );
    await sleep(50);
    expect(heads.length).toBeGreaterThan(100);
    expect(heads.length).toBeLessThan(300);
    expect(new Set(heads).size).toBe(heads.length);
  });

  it('readdir pages with stable cookies', async () => {
    const t = await mk();
    for (let i = 0; i < 25; i++) await writeFile(t.vfs, ROOT_INO, `f${i}`, String(i));
    const names: string[] = [];
    let cookie = 0n;
    for (;;) {
      const r = await t.vfs.readdir(R, ROOT_INO, cookie, 7);
      names.push(...r.entries.map((e) => e.name));
      if (r.eof) break;
      cookie = r.entries[r.entries.length - 1]!.cookie;
      if (names.length === 7) await t.vfs.unlink(R, ROOT_INO, 'f0'); // deleting a seen entry does not shift
    }
    expect(names).toHaveLength(25);
    expect(new Set(names).size).toBe(25);
  });

  it('a restart resumes journaled uploads (cache mode)', async () => {
    const store = new MemoryObjectStore();
    const t = await createTestVfs({ store, uploadDelayMs: 3_600_000 });
    await writeFile(t.vfs, ROOT_INO, 'pending', 'not yet uploaded');
    expect(t.meta.allUploads()).toHaveLength(1);
    await t.close();
    expect(store.read('pending')).toBeUndefined();
    const t2 = await createTestVfs({ store, dir: t.dir });
    open.push(t2);
    await t2.vfs.flushAll(5000);
    expect(store.read('pending')?.toString()).toBe('not yet uploaded');
  });

  it('reverse sync: added, changed and removed objects; conflicts keep both versions', async () => {
    const store = new MemoryObjectStore();
    store.seed('keep', 'k');
    store.seed('change', 'v1');
    store.seed('gone', 'g');
    const t = await mk({ store, uploadDelayMs: 3_600_000 });
    const root = (await t.vfs.readdir(R, ROOT_INO, 0n, 100)).entries.map((e) => e.name).sort();
    expect(root).toEqual(['change', 'gone', 'keep']);
    const mine = await writeFile(t.vfs, ROOT_INO, 'mine', 'local edit');
    store.seed('new', 'n');
    store.seed('change', 'v2 longer');
    await store.delete(['gone']);
    store.seed('mine', 'someone else');
    const sum = await t.vfs.refresh('/', true);
    expect(sum).toMatchObject({ added: 1, changed: 1, removed: 1, conflicts: 1 });
    const names = (await t.vfs.readdir(R, ROOT_INO, 0n, 100)).entries.map((e) => e.name).sort();
    expect(names.filter((n) => !n.startsWith('mine.conflict-'))).toEqual(['change', 'keep', 'mine', 'new']);
    const conflict = names.find((n) => n.startsWith('mine.conflict-'))!;
    expect(store.read(conflict)?.toString()).toBe('someone else');
    const ch = await t.vfs.lookup(R, ROOT_INO, 'change');
    expect((await readAll(t.vfs, ch.ino)).toString()).toBe('v2 longer');
    expect((await readAll(t.vfs, mine)).toString()).toBe('local edit');
    await t.vfs.flushAll(5000);
    expect(store.read('mine')?.toString()).toBe('local edit');
  });

  it('directory listings older than the TTL are re-listed on access', async () => {
    const store = new MemoryObjectStore();
    const t = await mk({ store, dirTtlMs: 50 });
    expect((await t.vfs.readdir(R, ROOT_INO, 0n, 10)).entries).toHaveLength(0);
    store.seed('late', 'x');
    expect((await t.vfs.readdir(R, ROOT_INO, 0n, 10)).entries).toHaveLength(0);
    await new Promise((r) => setTimeout(r, 80));
    expect((await t.vfs.readdir(R, ROOT_INO, 0n, 10)).entries.map((e) => e.name)).toEqual(['late']);
  });
});
