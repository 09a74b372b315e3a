/** Namespace operations interrupted by a crash are completed at the next start. */
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT_CRED as R, ROOT_INO } from '../../src/core/types.js';
import { MemoryObjectStore } from '../helpers/memory-objectstore.js';
import { createTestVfs, type TestVfs } from '../helpers/vfs-fixture.js';

const open: TestVfs[] = [];
afterEach(async () => {
  for (const t of open.splice(0)) await t.close({ remove: true }).catch(() => undefined);
});

async function names(t: TestVfs, ino = ROOT_INO): Promise<string[]> {
  const out: string[] = [];
  for (let cookie = 0n; ;) {
    const r = await t.vfs.readdir(R, ino, cookie, 1000);
    out.push(...r.entries.map((e) => e.name));
    if (r.eof || r.entries.length === 0) break;
    cookie = r.entries[r.entries.length - 1]!.cookie;
  }
  return out.sort();
}

describe('crash recovery of namespace operations', () => {
  it('a directory rename cut after some copies finishes: new tree complete, old tree gone', async () => {
    const store = new MemoryObjectStore();
    for (const k of ['a/', 'a/1', 'a/2', 'a/sub/3']) store.seed(k, k.endsWith('/') ? '' : `data ${k}`);
    const t = await createTestVfs({ store });
    expect(await names(t)).toEqual(['a']);
    // What a crash in the middle leaves: the journal entry, and one object already copied.
    await store.copy('a/1', 'b/1', { size: 8 });
    t.meta.addRemoteOp(
      JSON.stringify({
        kind: 'renamedir',
        from: 'a/',
        to: 'b/',
        replacedMarker: false,
        fromPath: ['a'],
        toPath: ['b'],
      }),
    );
    await t.close();
    const t2 = await createTestVfs({ store, dir: t.dir });
    open.push(t2);
    expect(store.keys().sort()).toEqual(['b/', 'b/1', 'b/2', 'b/sub/3']);
    expect(t2.meta.remoteOps()).toEqual([]);
    expect(await names(t2)).toEqual(['b']);
    const b = await t2.vfs.lookup(R, ROOT_INO, 'b');
    expect(await names(t2, b.ino)).toEqual(['1', '2', 'sub']);
  });

  it('an unlink cut after the delete in the bucket does not leave a dangling name', async () => {
    const store = new MemoryObjectStore();
    store.seed('x', 'x');
    store.seed('y', 'y');
    const t = await createTestVfs({ store });
    expect(await names(t)).toEqual(['x', 'y']);
    await store.delete(['x']);
    t.meta.addRemoteOp(JSON.stringify({ kind: 'delete', keys: ['x'], path: ['x'] }));
    await t.close();
    const t2 = await createTestVfs({ store, dir: t.dir });
    open.push(t2);
    expect(await names(t2)).toEqual(['y']);
  });

  it('a file rename cut after the copy completes the move', async () => {
    const store = new MemoryObjectStore();
    store.seed('old', 'content');
    const t = await createTestVfs({ store });
    await t.vfs.lookup(R, ROOT_INO, 'old');
    await store.copy('old', 'new', { size: 7 });
    t.meta.addRemoteOp(
      JSON.stringify({
        kind: 'rename',
        from: 'old',
        to: 'new',
        size: 7,
        deletes: ['old'],
        fromPath: ['old'],
        toPath: ['new'],
      }),
    );
    await t.close();
    const t2 = await createTestVfs({ store, dir: t.dir });
    open.push(t2);
    expect(store.keys()).toEqual(['new']);
    expect(await names(t2)).toEqual(['new']);
  });

  it('a failing live rename leaves both the bucket and the local view unchanged', async () => {
    const store = new MemoryObjectStore();
    store.seed('f', 'f');
    const t = await createTestVfs({ store });
    open.push(t);
    await t.vfs.lookup(R, ROOT_INO, 'f');
    store.failNext('copy', 'transient');
    await expect(t.vfs.rename(R, ROOT_INO, 'f', ROOT_INO, 'g')).rejects.toMatchObject({ code: 'EIO' });
    expect(await names(t)).toEqual(['f']);
    expect(store.keys()).toEqual(['f']);
    expect(t.meta.remoteOps()).toEqual([]);
  });

  it('a directory listed over several pages is diffed page by page (adds, changes, removals across pages)', async () => {
    const store = new MemoryObjectStore();
    for (let i = 0; i < 2500; i++) store.seed(`big/f${String(i).padStart(5, '0')}`, `v1-${i}`);
    store.seed('big/f00003/inner', 'a directory shadowing the file f00003');
    const t = await createTestVfs({ store });
    open.push(t);
    const big = await t.vfs.lookup(R, ROOT_INO, 'big');
    expect((await names(t, big.ino)).length).toBe(2500);
    expect((await t.vfs.lookup(R, big.ino, 'f00003')).type).toBe('dir');
    await store.delete(['big/f00010', 'big/f01500', 'big/f02499']);
    store.seed('big/f01200', 'v2 changed');
    store.seed('big/new', 'added');
    const sum = await t.vfs.refresh('/big', false);
    expect(sum).toMatchObject({ added: 1, changed: 1, removed: 3 });
    const after = await names(t, big.ino);
    expect(after.length).toBe(2498);
    expect(after).not.toContain('f01500');
    expect(t.meta.unseenChildren(big.ino, 0n, 5000).length).toBe(2498); // the seen-set is cleared
  });
});
