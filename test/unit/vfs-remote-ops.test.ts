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
  return (await t.vfs.readdir(R, ino, 0n, 1000)).entries.map((e) => e.name).sort();
}

describe('crash recovery of namespace operations', () => {
  it('a directory rename cut after some copies finishes: new tree complete, old tree gone', async () => {
    const store = new MemoryObjectStore();
    for (const k of ['a/', 'a/1', 'a/2', 'a/sub/3']) store.seed(k, k.endsWith('/') ? '' : `data ${k}`);
    const t = await createTestVfs({ store });
    expect(await names(t)).toEqual(['a']);
    // What a crash in the middle leaves: the journal entry, and one object already copied.
    await store.copy('a/1', 'b/1', { size: 8 });
    t.meta.addRemoteOp(JSON.stringify({ kind: 'renamedir', from: 'a/', to: 'b/', replacedMarker: false, fromPath: ['a'], toPath: ['b'] }));
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
    t.meta.addRemoteOp(JSON.stringify({ kind: 'rename', from: 'old', to: 'new', size: 7, deletes: ['old'], fromPath: ['old'], toPath: ['new'] }));
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
});
