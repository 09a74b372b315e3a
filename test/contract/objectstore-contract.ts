/**
 * Contract suite for ObjectStore implementations: every method, the edge cases the VFS relies on,
 * and the error kinds. Run it from a test file:
 *
 *   objectStoreContract('MemoryObjectStore', async () => ({ store, missingBucket, badCredentials, cleanup }));
 *
 * The fixture's store must use a multipart threshold and part size of CONTRACT_PART_SIZE (5 MiB).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ObjectStoreError,
  type ObjectStore,
  type ObjectStoreErrorKind,
} from '../../src/objectstore/types.js';

export const CONTRACT_PART_SIZE = 5 * 1024 * 1024;

export interface ObjectStoreFixture {
  /** The store under test (multipart threshold and part size = CONTRACT_PART_SIZE). */
  store: ObjectStore;
  /** The same backend, through a bucket that does not exist. */
  missingBucket: ObjectStore;
  /** The same backend and bucket, with wrong credentials. */
  badCredentials: ObjectStore;
  /**
   * The backend returns the MD5 of the whole object as the ETag of a multipart upload (s3rver)
   * instead of the S3 composite `md5(part MD5s)-N`.
   */
  wholeObjectMultipartEtag?: boolean;
  /** Bytes of an object read without the store under test (to check what is really stored). */
  rawGet?: (key: string) => Promise<Buffer | null>;
  cleanup(): Promise<void>;
}

function md5hex(b: Uint8Array): string {
  return createHash('md5').update(b).digest('hex');
}

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

/** Byte equality without vitest's slow element-wise diff of large buffers. */
function expectBytes(actual: Buffer, expected: Uint8Array): void {
  const exp = Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength);
  if (actual.equals(exp)) return;
  let i = 0;
  while (i < actual.length && i < exp.length && actual[i] === exp[i]) i++;
  expect.fail(
    `bytes differ: got ${actual.length} bytes, expected ${exp.length}; first difference at offset ${i}`,
  );
}

async function expectKind(p: Promise<unknown>, kind: ObjectStoreErrorKind): Promise<ObjectStoreError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ObjectStoreError);
    const err = e as ObjectStoreError;
    expect(err.kind, err.message).toBe(kind);
    return err;
  }
  throw new Error(`expected an ObjectStoreError of kind ${kind}, got success`);
}

/** Every page of a listing; prefixes deduplicated across pages. */
async function listAll(
  store: ObjectStore,
  prefix: string,
  opts: { delimiter?: string; maxKeys?: number; startAfter?: string },
): Promise<{ keys: string[]; prefixes: string[]; pages: number; maxObjectsPerPage: number }> {
  const keys: string[] = [];
  const prefixes = new Set<string>();
  let token: string | undefined;
  let pages = 0;
  let maxObjectsPerPage = 0;
  do {
    const page = await store.list(prefix, { ...opts, ...(token !== undefined ? { token } : {}) });
    pages++;
    maxObjectsPerPage = Math.max(maxObjectsPerPage, page.objects.length);
    for (const o of page.objects) keys.push(o.key);
    for (const p of page.prefixes) prefixes.add(p);
    token = page.nextToken;
    if (pages > 100) throw new Error('listing does not terminate');
  } while (token !== undefined);
  return { keys, prefixes: [...prefixes].sort(), pages, maxObjectsPerPage };
}

export function objectStoreContract(name: string, factory: () => Promise<ObjectStoreFixture>): void {
  describe(`ObjectStore contract: ${name}`, () => {
    let fx: ObjectStoreFixture;
    let store: ObjectStore;
    let tmp: string;
    const run = `c${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
    const k = (s: string): string => `${run}/${s}`;

    beforeAll(async () => {
      fx = await factory();
      store = fx.store;
      tmp = await mkdtemp(join(tmpdir(), 'bucketgate-contract-'));
    });

    afterAll(async () => {
      await fx?.cleanup();
      if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
    });

    it('head: null for a missing key; size, ETag, metadata and content type for a present one', async () => {
      expect(await store.head(k('head/missing'))).toBeNull();
      const body = Buffer.from('hello, bucket\n');
      const meta = {
        'file-permissions': '0100640',
        'file-owner': '1000',
        mode: '33184',
        mtime: '1700000000.5',
      };
      const before = Date.now();
      const res = await store.put(k('head/present.txt'), body, { metadata: meta, contentType: 'text/plain' });
      expect(res.etag).toBe(md5hex(body));
      const h = await store.head(k('head/present.txt'));
      expect(h).not.toBeNull();
      expect(h?.key).toBe(k('head/present.txt'));
      expect(h?.size).toBe(body.length);
      expect(h?.etag).toBe(md5hex(body));
      expect(h?.metadata).toEqual(meta);
      expect(h?.contentType).toBe('text/plain');
      expect(h?.lastModified).toBeInstanceOf(Date);
      // Second resolution at best (HTTP dates).
      expect(Math.abs((h?.lastModified.getTime() ?? 0) - before)).toBeLessThan(5 * 60_000);
    });

    it('getRange: inside, up to the end, past the end, beyond the end, empty, ifMatch', async () => {
      const body = randomBytes(1000);
      const { etag } = await store.put(k('range/obj'), body, { metadata: {} });
      expectBytes(await store.getRange(k('range/obj'), 0, 10), body.subarray(0, 10));
      expectBytes(await store.getRange(k('range/obj'), 123, 457), body.subarray(123, 457));
      expectBytes(await store.getRange(k('range/obj'), 990, 1000), body.subarray(990, 1000));
      expectBytes(await store.getRange(k('range/obj'), 995, 1010), body.subarray(995));
      expect((await store.getRange(k('range/obj'), 1000, 1010)).length).toBe(0);
      expect((await store.getRange(k('range/obj'), 5000, 6000)).length).toBe(0);
      expect((await store.getRange(k('range/obj'), 10, 10)).length).toBe(0);
      expectBytes(await store.getRange(k('range/obj'), 0, 1000, { ifMatch: etag }), body);
      expectBytes(await store.getRange(k('range/obj'), 0, 4, { ifMatch: `"${etag}"` }), body.subarray(0, 4));
      await expectKind(
        store.getRange(k('range/obj'), 0, 10, { ifMatch: '0123456789abcdef0123456789abcdef' }),
        'precondition',
      );
      await expectKind(store.getRange(k('range/missing'), 0, 10), 'not-found');
    });

    it('getStream: whole object and a sub-range', async () => {
      const body = randomBytes(300_000);
      await store.put(k('stream/obj'), body, { metadata: {} });
      expectBytes(await readAll(await store.getStream(k('stream/obj'))), body);
      expectBytes(
        await readAll(await store.getStream(k('stream/obj'), { start: 1000, end: 2000 })),
        body.subarray(1000, 2000),
      );
      expectBytes(
        await readAll(await store.getStream(k('stream/obj'), { start: 299_000 })),
        body.subarray(299_000),
      );
      await expectKind(store.getStream(k('stream/missing')), 'not-found');
    });

    it('put: small bodies from a Buffer and from a file region, overwrite', async () => {
      const file = join(tmp, 'small.bin');
      const content = randomBytes(70_000);
      await writeFile(file, content);
      const r1 = await store.put(
        k('put/from-file'),
        { path: file, size: 50_000 },
        { metadata: { uid: '7' } },
      );
      expect(r1.etag).toBe(md5hex(content.subarray(0, 50_000)));
      expectBytes(await store.getRange(k('put/from-file'), 0, 100_000), content.subarray(0, 50_000));
      const r2 = await store.put(k('put/from-file'), Buffer.from('v2'), { metadata: {} });
      expect(r2.etag).toBe(md5hex(Buffer.from('v2')));
      const h = await store.head(k('put/from-file'));
      expect(h?.size).toBe(2);
      expect(h?.metadata).toEqual({});
      if (fx.rawGet !== undefined) expect(await fx.rawGet(k('put/from-file'))).toEqual(Buffer.from('v2'));
    });

    it('put: multipart upload of a 12 MiB file (3 parts of 5 MiB), composite ETag, bytes read back', async () => {
      const size = 12 * 1024 * 1024;
      const content = randomBytes(size);
      const file = join(tmp, 'big.bin');
      await writeFile(file, content);
      const res = await store.put(
        k('mp/big.bin'),
        { path: file, size },
        { metadata: { 'file-owner': '42' }, contentType: 'application/x-test' },
      );
      const partMd5s = [0, 1, 2].map((i) =>
        createHash('md5')
          .update(content.subarray(i * CONTRACT_PART_SIZE, Math.min(size, (i + 1) * CONTRACT_PART_SIZE)))
          .digest(),
      );
      const composite = `${md5hex(Buffer.concat(partMd5s))}-3`;
      if (fx.wholeObjectMultipartEtag === true) expect(res.etag).toBe(md5hex(content));
      else expect(res.etag).toBe(composite);
      const h = await store.head(k('mp/big.bin'));
      expect(h?.size).toBe(size);
      expect(h?.etag).toBe(res.etag);
      expect(h?.metadata).toEqual({ 'file-owner': '42' });
      expect(h?.contentType).toBe('application/x-test');
      for (const [a, b] of [
        [0, 100],
        [CONTRACT_PART_SIZE - 50, CONTRACT_PART_SIZE + 50],
        [2 * CONTRACT_PART_SIZE - 1, 2 * CONTRACT_PART_SIZE + 1],
        [size - 10, size + 10],
      ] as const) {
        expectBytes(await store.getRange(k('mp/big.bin'), a, b), content.subarray(a, b));
      }
      const back = await readAll(await store.getStream(k('mp/big.bin')));
      expect(back.length).toBe(size);
      expect(md5hex(back)).toBe(md5hex(content));
      if (fx.rawGet !== undefined)
        expect(md5hex((await fx.rawGet(k('mp/big.bin'))) ?? Buffer.alloc(0))).toBe(md5hex(content));
    });

    it('zero-byte objects (Buffer and file), directory marker style keys', async () => {
      const empty = md5hex(Buffer.alloc(0));
      expect((await store.put(k('zero/a'), Buffer.alloc(0), { metadata: {} })).etag).toBe(empty);
      const file = join(tmp, 'empty.bin');
      await writeFile(file, Buffer.alloc(0));
      expect((await store.put(k('zero/b'), { path: file, size: 0 }, { metadata: {} })).etag).toBe(empty);
      const marker = await store.put(k('zero/dir/'), Buffer.alloc(0), {
        metadata: { mode: '16877' },
        contentType: 'application/x-directory',
      });
      expect(marker.etag).toBe(empty);
      const h = await store.head(k('zero/dir/'));
      expect(h?.size).toBe(0);
      expect(h?.contentType).toBe('application/x-directory');
      expect(h?.metadata).toEqual({ mode: '16877' });
      expect((await store.getRange(k('zero/a'), 0, 10)).length).toBe(0);
      expect((await readAll(await store.getStream(k('zero/b')))).length).toBe(0);
    });

    it('copy: metadata kept (COPY) or replaced (REPLACE), onto itself with new metadata', async () => {
      const body = randomBytes(5000);
      await store.put(k('copy/src'), body, { metadata: { uid: '1', gid: '2' }, contentType: 'text/x-src' });
      const c1 = await store.copy(k('copy/src'), k('copy/kept'), { size: body.length });
      expect(c1.etag).toBe(md5hex(body));
      const h1 = await store.head(k('copy/kept'));
      expect(h1?.metadata).toEqual({ uid: '1', gid: '2' });
      expect(h1?.contentType).toBe('text/x-src');
      expectBytes(await store.getRange(k('copy/kept'), 0, 10_000), body);

      await store.copy(k('copy/src'), k('copy/replaced'), {
        size: body.length,
        metadata: { uid: '9' },
        contentType: 'text/x-new',
      });
      const h2 = await store.head(k('copy/replaced'));
      expect(h2?.metadata).toEqual({ uid: '9' });
      expect(h2?.contentType).toBe('text/x-new');
      expectBytes(await store.getRange(k('copy/replaced'), 0, 10_000), body);

      // chmod of an uploaded file: copy onto itself with REPLACE.
      await store.copy(k('copy/src'), k('copy/src'), {
        size: body.length,
        metadata: { uid: '1', gid: '2', mode: '33261' },
        contentType: 'text/x-src',
      });
      const h3 = await store.head(k('copy/src'));
      expect(h3?.metadata).toEqual({ uid: '1', gid: '2', mode: '33261' });
      expect(h3?.etag).toBe(md5hex(body));
      expectBytes(await store.getRange(k('copy/src'), 0, 10_000), body);

      await expectKind(store.copy(k('copy/missing'), k('copy/x'), { size: 1 }), 'not-found');
    });

    it('delete: a batch with missing keys, an empty batch, repeated keys', async () => {
      const keys = [1, 2, 3, 4, 5].map((i) => k(`del/f${i}`));
      for (const key of keys) await store.put(key, Buffer.from(key), { metadata: {} });
      await store.delete([...keys, k('del/missing1'), k('del/missing2'), keys[0] as string]);
      for (const key of keys) expect(await store.head(key)).toBeNull();
      await store.delete([]);
      await store.delete([k('del/missing3')]);
      const page = await store.list(k('del/'));
      expect(page.objects).toEqual([]);
    });

    it('list: paging with maxKeys, delimiter and common prefixes, startAfter', async () => {
      const base = k('list/');
      const files = ['f01', 'f02', 'f03', 'f04', 'f05', 'f06', 'f07'].map((f) => base + f);
      const nested = ['d1/x', 'd1/y', 'd2/z', 'dm/'].map((f) => base + f);
      for (const key of [...files, ...nested]) await store.put(key, Buffer.from('x'), { metadata: {} });

      const byDir = await listAll(store, base, { delimiter: '/', maxKeys: 3 });
      expect([...byDir.keys].sort()).toEqual(files);
      expect(new Set(byDir.keys).size).toBe(byDir.keys.length);
      expect(byDir.prefixes).toEqual([`${base}d1/`, `${base}d2/`, `${base}dm/`]);
      expect(byDir.pages).toBeGreaterThanOrEqual(3);
      expect(byDir.maxObjectsPerPage).toBeLessThanOrEqual(3);

      const flat = await listAll(store, base, { maxKeys: 4 });
      expect(flat.keys).toEqual([...nested, ...files].sort());
      expect(flat.prefixes).toEqual([]);
      expect(flat.pages).toBe(3);

      const one = await store.list(base, { delimiter: '/' });
      expect(one.objects.map((o) => o.key)).toEqual(files);
      expect(one.prefixes).toEqual([`${base}d1/`, `${base}d2/`, `${base}dm/`]);
      expect(one.nextToken).toBeUndefined();
      const f1 = one.objects[0];
      expect(f1?.size).toBe(1);
      expect(f1?.etag).toBe(md5hex(Buffer.from('x')));
      expect(f1?.lastModified).toBeInstanceOf(Date);

      const inDir = await store.list(`${base}dm/`, { delimiter: '/' });
      expect(inDir.objects.map((o) => o.key)).toEqual([`${base}dm/`]);

      const after = await listAll(store, base, { startAfter: `${base}f03` });
      expect(after.keys).toEqual(files.slice(3));

      const none = await store.list(k('list-nothing/'), { delimiter: '/' });
      expect(none).toEqual({ objects: [], prefixes: [], nextToken: undefined });
    });

    it('unicode keys and metadata round trip', async () => {
      const names = [
        'ünïcödé/日本語 ファイル.txt',
        'emoji/😀 smile.txt',
        'space and (parens) [x].txt',
        'кириллица/файл',
      ];
      for (const n of names) {
        const body = Buffer.from(`content of ${n}`);
        await store.put(k(`uni/${n}`), body, { metadata: { 'file-owner': '5' } });
        const h = await store.head(k(`uni/${n}`));
        expect(h?.size).toBe(body.length);
        expectBytes(await store.getRange(k(`uni/${n}`), 0, 1000), body);
      }
      const listed = await listAll(store, k('uni/'), {});
      expect([...listed.keys].sort()).toEqual(names.map((n) => k(`uni/${n}`)).sort());
      const byDir = await listAll(store, k('uni/'), { delimiter: '/' });
      expect(byDir.prefixes).toEqual([k('uni/emoji/'), k('uni/ünïcödé/'), k('uni/кириллица/')].sort());
      await store.copy(k(`uni/${names[0] as string}`), k('uni/copy 日本.txt'), { size: 1 });
      expect((await store.head(k('uni/copy 日本.txt')))?.size).toBe(
        Buffer.byteLength(`content of ${names[0] as string}`),
      );
      await store.delete([...names.map((n) => k(`uni/${n}`)), k('uni/copy 日本.txt')]);
      expect((await store.list(k('uni/'))).objects).toEqual([]);
    });

    it('error kinds: missing key, missing bucket, wrong credentials', async () => {
      await expectKind(store.getRange(k('err/missing'), 0, 1), 'not-found');
      await expectKind(fx.missingBucket.getRange(k('err/missing'), 0, 1), 'no-bucket');
      await expectKind(fx.missingBucket.list(k('err/')), 'no-bucket');
      await expectKind(fx.missingBucket.put(k('err/x'), Buffer.from('x'), { metadata: {} }), 'no-bucket');
      await expectKind(fx.badCredentials.list(k('err/')), 'denied');
      await expectKind(fx.badCredentials.getRange(k('err/missing'), 0, 1), 'denied');
      await expectKind(fx.badCredentials.put(k('err/x'), Buffer.from('x'), { metadata: {} }), 'denied');
      expect(await store.head(k('err/x'))).toBeNull();
    });
  });
}
