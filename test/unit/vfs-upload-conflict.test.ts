/**
 * A concurrent writer detected at upload time: with conditional writes (the in-memory store
 * answers 412 like S3) and with the HEAD fallback (conditional headers ignored, like s3rver).
 * Their version is kept as a sibling; ours takes the name.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { O_CREAT, O_RDWR, O_TRUNC, O_WRONLY, ROOT_CRED as R, ROOT_INO } from '../../src/core/types.js';
import { MemoryObjectStore } from '../helpers/memory-objectstore.js';
import { createTestVfs, type TestVfs } from '../helpers/vfs-fixture.js';

const open: TestVfs[] = [];
afterEach(async () => {
  for (const t of open.splice(0)) await t.close({ remove: true }).catch(() => undefined);
});

async function write(t: TestVfs, name: string, data: string): Promise<void> {
  const { fh } = await t.vfs.create(R, ROOT_INO, name, 0o644, O_CREAT | O_WRONLY | O_TRUNC);
  await t.vfs.write(fh, 0, Buffer.from(data));
  await t.vfs.release(fh);
}

describe.each([
  ['conditional writes (412)', true],
  ['HEAD check (conditional headers ignored)', false],
])('upload-time conflict detection: %s', (_label, conditional) => {
  it('a new local file whose name someone else created meanwhile', async () => {
    const store = new MemoryObjectStore({ conditionalWrites: conditional });
    const t = await createTestVfs({ store, uploadDelayMs: 3_600_000 });
    open.push(t);
    expect(store.keys()).toEqual([]); // the probe key is gone
    await write(t, 'c.txt', 'ours');
    store.seed('c.txt', 'theirs');
    const putsBefore = store.callCount('put');
    await t.vfs.flushAll(5000);
    expect(store.read('c.txt')?.toString()).toBe('ours');
    const sibling = store.keys().find((k) => k.startsWith('c.txt.conflict-'));
    expect(sibling).toBeDefined();
    expect(store.read(sibling!)?.toString()).toBe('theirs');
    const names = (await t.vfs.readdir(R, ROOT_INO, 0n, 10)).entries.map((e) => e.name).sort();
    expect(names).toEqual(['c.txt', sibling]);
    expect(store.callCount('put') - putsBefore).toBe(conditional ? 2 : 1);
  });

  it('an uploaded file changed remotely before a local change uploads', async () => {
    const store = new MemoryObjectStore({ conditionalWrites: conditional });
    const t = await createTestVfs({ store });
    open.push(t);
    await write(t, 'f', 'v1');
    await t.vfs.flushAll(5000);
    store.seed('f', 'their v2');
    const a = await t.vfs.lookup(R, ROOT_INO, 'f');
    const fh = await t.vfs.open(R, a.ino, O_RDWR | O_TRUNC);
    await t.vfs.write(fh, 0, Buffer.from('our v3'));
    await t.vfs.release(fh);
    await t.vfs.flushAll(5000);
    expect(store.read('f')?.toString()).toBe('our v3');
    const sibling = store.keys().find((k) => k.startsWith('f.conflict-'));
    expect(store.read(sibling!)?.toString()).toBe('their v2');
  });

  it('no conflict for our own successive uploads', async () => {
    const store = new MemoryObjectStore({ conditionalWrites: conditional });
    const t = await createTestVfs({ store });
    open.push(t);
    for (const v of ['1', '22', '333']) {
      await write(t, 'g', v);
      await t.vfs.flushAll(5000);
    }
    expect(store.keys()).toEqual(['g']);
    expect(store.read('g')?.toString()).toBe('333');
  });
});
