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

  // Each case: two local files; the bucket holds our own bytes for `mine` and another writer's
  // for `theirs` (preserved as a sibling).
  it.each([
    {
      // A PUT landed and the daemon died before recording it: exactly the local bytes; or bytes
      // of the same size that are not ours.
      why: 'already holds our bytes (an upload whose result was lost in a crash)',
      local: 'same bytes',
      mine: 'same bytes',
      theirs: 'SAME BYTES',
    },
    {
      // s3rver keeps what arrived of a PUT whose client died: our first bytes; or a shorter
      // object that is not a prefix of ours.
      why: 'holds the beginning of our bytes (a PUT cut off by a crash)',
      local: 'the whole local file',
      mine: 'the whole',
      theirs: 'the other',
    },
  ])('no conflict when the bucket $why', async ({ local, mine, theirs }) => {
    const store = new MemoryObjectStore({ conditionalWrites: conditional });
    const t = await createTestVfs({ store, uploadDelayMs: 3_600_000 });
    open.push(t);
    await write(t, 'mine.txt', local);
    await write(t, 'theirs.txt', local);
    store.seed('mine.txt', mine);
    store.seed('theirs.txt', theirs);
    await t.vfs.flushAll(5000);
    expect(store.keys().sort()).toEqual([
      'mine.txt',
      'theirs.txt',
      expect.stringMatching(/^theirs\.txt\.conflict-/),
    ]);
    expect(store.read('mine.txt')?.toString()).toBe(local);
    expect(store.read('theirs.txt')?.toString()).toBe(local);
    const sibling = store.keys().find((k) => k.startsWith('theirs.txt.conflict-'));
    expect(store.read(sibling!)?.toString()).toBe(theirs);
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

describe('namespace changes and uploads re-queued behind them', () => {
  it('a file changed during its upload and then deleted does not come back in the bucket', async () => {
    const store = new MemoryObjectStore({ conditionalWrites: false });
    const t = await createTestVfs({ store, uploadDelayMs: 0 });
    open.push(t);
    const gates: Array<() => void> = [];
    let puts = 0;
    store.beforeOp = async (op, key) => {
      if (op !== 'put' || key !== 'x') return;
      puts++;
      await new Promise<void>((r) => gates.push(r)); // every PUT of x waits for the test
    };
    await write(t, 'x', 'v1');
    const until = async (cond: () => boolean): Promise<void> => {
      for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
      expect(cond()).toBe(true);
    };
    await until(() => gates.length === 1); // upload 1 is in its PUT
    // Changed during the upload: upload 1 ends unclean and re-queues the file, due at once.
    const a = await t.vfs.lookup(R, ROOT_INO, 'x');
    const fh = await t.vfs.open(R, a.ino, O_WRONLY | O_TRUNC);
    await t.vfs.write(fh, 0, Buffer.from('v2'));
    await t.vfs.release(fh);
    const unlinked = t.vfs.unlink(R, ROOT_INO, 'x'); // waits for upload 1
    await new Promise((r) => setTimeout(r, 50));
    gates.shift()!(); // upload 1's PUT lands
    await unlinked; // then the DELETE
    // A second upload must not have started in between (its PUT would land after the DELETE).
    await new Promise((r) => setTimeout(r, 100));
    for (const g of gates.splice(0)) g();
    await t.vfs.flushAll(5000);
    expect(puts).toBe(1);
    expect(store.keys()).toEqual([]);
  });
});

describe('metadata-only uploads', () => {
  it('a server-side copy that keeps failing falls back to uploading the cached data', async () => {
    const store = new MemoryObjectStore();
    const t = await createTestVfs({ store });
    open.push(t);
    await write(t, 'm', 'content of m');
    await t.vfs.flushAll(5000);
    const a = await t.vfs.lookup(R, ROOT_INO, 'm');
    store.failNext('copy', 'transient', { times: 100 });
    await t.vfs.setattr(R, a.ino, { mode: 0o600 });
    const putsBefore = store.callCount('put');
    await t.vfs.flushAll(10_000);
    expect(store.read('m')?.toString()).toBe('content of m');
    expect(store.callCount('put') - putsBefore).toBe(1);
    expect((await t.vfs.getattr(R, a.ino)).mode & 0o777).toBe(0o600);
    const head = await store.head('m');
    expect(head?.metadata).toBeDefined();
    expect(Object.values(head?.metadata ?? {}).join(' ')).toMatch(/600/);
  });
});
