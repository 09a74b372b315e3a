/**
 * S3ObjectStore against a real s3rver over HTTP: the contract suite in every checksum mode, the
 * aws-chunked corruption regression, and integrity / retry / error paths through a tiny HTTP proxy
 * that can corrupt request bodies, fail requests or inject response headers.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  crc32c,
  crc32cCombine,
  crc64nvme,
  crc64nvmeCombine,
  S3ObjectStore,
  toObjectStoreError,
  type ChecksumMode,
  type S3ObjectStoreOptions,
} from '../../src/objectstore/s3.js';
import { ObjectStoreError } from '../../src/objectstore/types.js';
import { CONTRACT_PART_SIZE, objectStoreContract } from '../contract/objectstore-contract.js';
import { startS3rver, type S3rverHandle } from '../helpers/s3rver.js';

function md5hex(b: Uint8Array): string {
  return createHash('md5').update(b).digest('hex');
}

/** A plain SDK client with default settings, to read what s3rver really stored. */
function plainClient(s3: S3rverHandle): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
}

async function rawGet(client: S3Client, bucket: string, key: string): Promise<Buffer | null> {
  try {
    const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const bytes = (await res.Body?.transformToByteArray()) ?? new Uint8Array();
    return Buffer.from(bytes);
  } catch (e) {
    if (e instanceof Error && (e.name === 'NoSuchKey' || e.name === 'NotFound')) return null;
    throw e;
  }
}

const servers: S3rverHandle[] = [];
async function server(): Promise<S3rverHandle> {
  const s = await startS3rver();
  servers.push(s);
  return s;
}

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

function storeFor(
  s3: S3rverHandle,
  checksum: ChecksumMode,
  extra: Partial<S3ObjectStoreOptions> = {},
): S3ObjectStore {
  return new S3ObjectStore({
    bucket: s3.bucket,
    endpoint: s3.endpoint,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    checksum,
    multipartThreshold: CONTRACT_PART_SIZE,
    partSize: CONTRACT_PART_SIZE,
    ...extra,
  });
}

for (const mode of ['md5', 'auto', 'crc32c', 'crc64nvme'] as const) {
  objectStoreContract(`S3ObjectStore on s3rver, checksum ${mode}`, async () => {
    const s3 = await server();
    const store = storeFor(s3, mode);
    const missingBucket = storeFor(s3, mode, { bucket: 'no-such-bucket' });
    // s3rver checks the access key id but not the V4 signature: a wrong secret alone is accepted.
    const badCredentials = storeFor(s3, mode, {
      credentials: { accessKeyId: 'WRONGKEY', secretAccessKey: 'wrong-secret' },
    });
    const raw = plainClient(s3);
    return {
      store,
      missingBucket,
      badCredentials,
      wholeObjectMultipartEtag: true,
      rawGet: (key) => rawGet(raw, s3.bucket, key),
      cleanup: async () => {
        for (const s of [store, missingBucket, badCredentials]) s.destroy();
        raw.destroy();
        await s3.stop();
      },
    };
  });
}

// ------------------------------------------------------------------------------------------------

interface ProxyRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

interface ProxyAction {
  /** Replace the request body sent upstream. */
  body?: Buffer;
  /** Answer this status instead of forwarding. */
  respond?: { status: number; code: string };
  /** Extra response headers. */
  responseHeaders?: Record<string, string>;
}

/** HTTP proxy in front of s3rver; `rule` decides per request what to do. */
async function startProxy(
  upstream: string,
  rule: (req: ProxyRequest) => ProxyAction | undefined,
): Promise<{ endpoint: string; seen: ProxyRequest[]; close(): Promise<void> }> {
  const up = new URL(upstream);
  const seen: ProxyRequest[] = [];
  const srv = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const pr: ProxyRequest = {
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      seen.push(pr);
      const action = rule(pr) ?? {};
      if (action.respond !== undefined) {
        const xml = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${action.respond.code}</Code><Message>injected</Message></Error>`;
        res.writeHead(action.respond.status, {
          'content-type': 'application/xml',
          'content-length': Buffer.byteLength(xml),
        });
        res.end(req.method === 'HEAD' ? undefined : xml);
        return;
      }
      const body = action.body ?? pr.body;
      const headers = { ...req.headers, 'content-length': String(body.length) };
      const upReq = http.request(
        { host: up.hostname, port: up.port, method: req.method, path: req.url, headers },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, { ...upRes.headers, ...(action.responseHeaders ?? {}) });
          upRes.pipe(res);
        },
      );
      upReq.on('error', () => res.destroy());
      upReq.end(body);
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        srv.closeAllConnections();
        srv.close(() => resolve());
      }),
  };
}

function flipByte(b: Buffer, at: number): Buffer {
  const c = Buffer.from(b);
  if (c.length > 0) c[at % c.length] = (c[at % c.length] ?? 0) ^ 0xff;
  return c;
}

const isPut = (r: ProxyRequest): boolean => r.method === 'PUT' && !('x-amz-copy-source' in r.headers);
const isPartUpload = (r: ProxyRequest): boolean => isPut(r) && /[?&]partNumber=/.test(r.url);
const partNumber = (r: ProxyRequest): number => Number(/[?&]partNumber=(\d+)/.exec(r.url)?.[1] ?? '0');

describe('S3ObjectStore on s3rver: integrity', () => {
  let s3: S3rverHandle;
  let raw: S3Client;
  let tmp: string;

  beforeAll(async () => {
    s3 = await server();
    raw = plainClient(s3);
    tmp = await mkdtemp(join(tmpdir(), 'bucketgate-s3it-'));
  });
  afterAll(async () => {
    raw?.destroy();
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  });

  it.each(['md5', 'auto', 'crc32c', 'crc64nvme'] as const)(
    'no aws-chunked framing is stored (checksum %s)',
    async (mode) => {
      const store = storeFor(s3, mode);
      const data = randomBytes(100_000);
      const file = join(tmp, `chunked-${mode}.bin`);
      await writeFile(file, data);
      await store.put(`chunked/${mode}/buffer`, data, { metadata: { mode: '33188' } });
      await store.put(`chunked/${mode}/file`, { path: file, size: data.length }, { metadata: {} });
      for (const key of [`chunked/${mode}/buffer`, `chunked/${mode}/file`]) {
        const back = await rawGet(raw, s3.bucket, key);
        expect(back?.length).toBe(100_000);
        expect(back?.equals(data)).toBe(true);
      }
      store.destroy();
    },
  );

  it('a corrupted single-part upload is detected (every attempt corrupted → integrity error)', async () => {
    const proxy = await startProxy(s3.endpoint, (r) =>
      isPut(r) ? { body: flipByte(r.body, 17) } : undefined,
    );
    const store = storeFor(s3, 'md5', { endpoint: proxy.endpoint });
    try {
      const data = randomBytes(50_000);
      const err = await store.put('integrity/single', data, { metadata: {} }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ObjectStoreError);
      expect((err as ObjectStoreError).kind).toBe('integrity');
      expect((err as ObjectStoreError).message).toContain(md5hex(data));
      expect(proxy.seen.filter(isPut).length).toBe(4); // the first attempt and 3 retries
    } finally {
      store.destroy();
      await proxy.close();
    }
  });

  it('a single-part upload corrupted once is retried and stored intact', async () => {
    let corrupted = 0;
    const proxy = await startProxy(s3.endpoint, (r) =>
      isPut(r) && corrupted++ === 0 ? { body: flipByte(r.body, 3) } : undefined,
    );
    const store = storeFor(s3, 'crc32c', { endpoint: proxy.endpoint });
    try {
      const data = randomBytes(40_000);
      const res = await store.put('integrity/single-retry', data, { metadata: {} });
      expect(res.etag).toBe(md5hex(data));
      expect((await rawGet(raw, s3.bucket, 'integrity/single-retry'))?.equals(data)).toBe(true);
      expect(proxy.seen.filter(isPut).length).toBe(2);
    } finally {
      store.destroy();
      await proxy.close();
    }
  });

  it('a part corrupted once is retried; a part always corrupted fails the upload with integrity', async () => {
    const size = 11 * 1024 * 1024;
    const data = randomBytes(size);
    const file = join(tmp, 'mp.bin');
    await writeFile(file, data);

    let once = 0;
    const p1 = await startProxy(s3.endpoint, (r) =>
      isPartUpload(r) && partNumber(r) === 2 && once++ === 0 ? { body: flipByte(r.body, 1000) } : undefined,
    );
    const s1 = storeFor(s3, 'md5', { endpoint: p1.endpoint });
    try {
      const res = await s1.put('integrity/mp-retry', { path: file, size }, { metadata: {} });
      expect(res.etag).toBe(md5hex(data)); // s3rver: whole-object MD5
      expect(p1.seen.filter((r) => isPartUpload(r) && partNumber(r) === 2).length).toBe(2);
      expect(md5hex((await rawGet(raw, s3.bucket, 'integrity/mp-retry')) ?? Buffer.alloc(0))).toBe(
        md5hex(data),
      );
      // The store now knows s3rver answers with the whole-object MD5 and computes it while the
      // parts are read (parts finish out of order): a wrong in-line digest would fail this upload.
      const data2 = randomBytes(size + 12345);
      await writeFile(file, data2);
      const res2 = await s1.put('integrity/mp-inline', { path: file, size: data2.length }, { metadata: {} });
      expect(res2.etag).toBe(md5hex(data2));
      expect((await rawGet(raw, s3.bucket, 'integrity/mp-inline'))?.equals(data2)).toBe(true);
      await writeFile(file, data);
    } finally {
      s1.destroy();
      await p1.close();
    }

    const p2 = await startProxy(s3.endpoint, (r) =>
      isPartUpload(r) && partNumber(r) === 3 ? { body: flipByte(r.body, 5) } : undefined,
    );
    const s2 = storeFor(s3, 'crc64nvme', { endpoint: p2.endpoint });
    try {
      const err = await s2.put('integrity/mp-fail', { path: file, size }, { metadata: {} }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((err as ObjectStoreError).kind).toBe('integrity');
      expect((err as ObjectStoreError).message).toContain('part 3');
      expect(p2.seen.filter((r) => isPartUpload(r) && partNumber(r) === 3).length).toBe(4);
      // Never completed; the abort was attempted (s3rver answers 405 to AbortMultipartUpload).
      expect(p2.seen.some((r) => r.method === 'POST' && /uploadId=/.test(r.url))).toBe(false);
      expect(p2.seen.some((r) => r.method === 'DELETE' && /uploadId=/.test(r.url))).toBe(true);
      expect(await rawGet(raw, s3.bucket, 'integrity/mp-fail')).toBeNull();
    } finally {
      s2.destroy();
      await p2.close();
    }
  });

  it('a checksum returned by the server is compared (crc32c and crc64nvme)', async () => {
    const data = randomBytes(10_000);
    const good32 = Buffer.alloc(4);
    good32.writeUInt32BE(crc32c(data));
    const good64 = Buffer.alloc(8);
    good64.writeBigUInt64BE(crc64nvme(data));
    let inject: Record<string, string> = {};
    const proxy = await startProxy(s3.endpoint, (r) => (isPut(r) ? { responseHeaders: inject } : undefined));
    const s32 = storeFor(s3, 'crc32c', { endpoint: proxy.endpoint });
    const s64 = storeFor(s3, 'crc64nvme', { endpoint: proxy.endpoint });
    try {
      // The request carried the precomputed checksum as a header, not as a trailer.
      await s32.put('integrity/crc-ok', data, { metadata: {} });
      const sent = proxy.seen.filter(isPut).pop();
      expect(sent?.headers['x-amz-checksum-crc32c']).toBe(good32.toString('base64'));
      expect(sent?.headers['content-encoding']).toBeUndefined();
      expect(sent?.headers['x-amz-trailer']).toBeUndefined();

      inject = { 'x-amz-checksum-crc32c': good32.toString('base64') };
      await s32.put('integrity/crc-ok', data, { metadata: {} });
      inject = { 'x-amz-checksum-crc32c': 'AAAAAA==' };
      await expect(s32.put('integrity/crc-bad', data, { metadata: {} })).rejects.toMatchObject({
        kind: 'integrity',
      });
      inject = { 'x-amz-checksum-crc64nvme': good64.toString('base64') };
      await s64.put('integrity/crc64-ok', data, { metadata: {} });
      inject = { 'x-amz-checksum-crc64nvme': 'AAAAAAAAAAA=' };
      await expect(s64.put('integrity/crc64-bad', data, { metadata: {} })).rejects.toMatchObject({
        kind: 'integrity',
      });
    } finally {
      s32.destroy();
      s64.destroy();
      await proxy.close();
    }
  });

  it('md5 mode sends Content-MD5 on PutObject and every UploadPart', async () => {
    const proxy = await startProxy(s3.endpoint, () => undefined);
    const store = storeFor(s3, 'auto', { endpoint: proxy.endpoint });
    try {
      const small = randomBytes(1000);
      await store.put('integrity/md5-headers', small, { metadata: {} });
      const big = randomBytes(CONTRACT_PART_SIZE + 100);
      await store.put('integrity/md5-headers-mp', big, { metadata: {} });
      const puts = proxy.seen.filter(isPut).sort((a, b) => partNumber(a) - partNumber(b));
      expect(puts.length).toBe(3);
      expect(puts[0]?.headers['content-md5']).toBe(createHash('md5').update(small).digest('base64'));
      expect(puts[1]?.headers['content-md5']).toBe(
        createHash('md5').update(big.subarray(0, CONTRACT_PART_SIZE)).digest('base64'),
      );
      expect(puts[2]?.headers['content-md5']).toBe(
        createHash('md5').update(big.subarray(CONTRACT_PART_SIZE)).digest('base64'),
      );
      for (const p of puts) expect(p.headers['x-amz-trailer']).toBeUndefined();
    } finally {
      store.destroy();
      await proxy.close();
    }
  });
});

describe('S3ObjectStore on s3rver: retries, errors, abort', () => {
  let s3: S3rverHandle;

  beforeAll(async () => {
    s3 = await server();
  });

  it('a part failing with 503 SlowDown is retried', async () => {
    let failures = 0;
    const proxy = await startProxy(s3.endpoint, (r) =>
      isPartUpload(r) && partNumber(r) === 1 && failures++ < 2
        ? { respond: { status: 503, code: 'SlowDown' } }
        : undefined,
    );
    const store = storeFor(s3, 'md5', { endpoint: proxy.endpoint, maxAttempts: 1 });
    try {
      const data = randomBytes(CONTRACT_PART_SIZE * 2);
      const res = await store.put('retry/mp', data, { metadata: {} });
      expect(res.etag).toBe(md5hex(data));
      expect(proxy.seen.filter((r) => isPartUpload(r) && partNumber(r) === 1).length).toBe(3);
    } finally {
      store.destroy();
      await proxy.close();
    }
  });

  it('maps HTTP and network errors to kinds, with status and code in the message', async () => {
    const proxy = await startProxy(s3.endpoint, (r) => {
      if (r.url.includes('err500')) return { respond: { status: 500, code: 'InternalError' } };
      if (r.url.includes('err429')) return { respond: { status: 429, code: 'TooManyRequests' } };
      if (r.url.includes('err412')) return { respond: { status: 412, code: 'PreconditionFailed' } };
      if (r.url.includes('err400')) return { respond: { status: 400, code: 'InvalidArgument' } };
      if (r.url.includes('err403')) return { respond: { status: 403, code: 'AccessDenied' } };
      return undefined;
    });
    const store = storeFor(s3, 'md5', { endpoint: proxy.endpoint, maxAttempts: 1 });
    try {
      const e500 = await store.getRange('err500', 0, 1).catch((e: unknown) => e);
      expect(e500).toMatchObject({ kind: 'transient', status: 500 });
      expect((e500 as Error).message).toMatch(/HTTP 500 InternalError/);
      await expect(store.getRange('err429', 0, 1)).rejects.toMatchObject({ kind: 'transient', status: 429 });
      await expect(store.put('err412', Buffer.from('x'), { metadata: {} })).rejects.toMatchObject({
        kind: 'precondition',
        status: 412,
      });
      await expect(store.getRange('err400', 0, 1)).rejects.toMatchObject({ kind: 'invalid', status: 400 });
      const e403 = await store.head('err403').catch((e: unknown) => e);
      expect(e403).toMatchObject({ kind: 'denied', status: 403 });
    } finally {
      store.destroy();
      await proxy.close();
    }

    // Nothing listens on this port any more: ECONNREFUSED.
    const dead = http.createServer();
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    const port = (dead.address() as AddressInfo).port;
    await new Promise<void>((resolve) => dead.close(() => resolve()));
    const offline = storeFor(s3, 'md5', { endpoint: `http://127.0.0.1:${port}`, maxAttempts: 1 });
    try {
      await expect(offline.list('')).rejects.toMatchObject({ kind: 'transient' });
    } finally {
      offline.destroy();
    }
  });

  it('toObjectStoreError classifies SDK-shaped errors', () => {
    const sdk = (name: string, status?: number): unknown =>
      Object.assign(new Error(name), {
        name,
        ...(status !== undefined ? { $metadata: { httpStatusCode: status } } : {}),
      });
    const kind = (e: unknown): string => toObjectStoreError(e, 'op', 'k').kind;
    expect(kind(sdk('NoSuchKey', 404))).toBe('not-found');
    expect(kind(sdk('NotFound', 404))).toBe('not-found');
    expect(kind(sdk('NoSuchBucket', 404))).toBe('no-bucket');
    expect(kind(sdk('SignatureDoesNotMatch', 403))).toBe('denied');
    expect(kind(sdk('InvalidAccessKeyId', 403))).toBe('denied');
    expect(kind(sdk('PreconditionFailed', 412))).toBe('precondition');
    expect(kind(sdk('ConditionalRequestConflict', 409))).toBe('precondition');
    expect(kind(sdk('SlowDown', 503))).toBe('transient');
    expect(kind(sdk('SlowDown'))).toBe('transient');
    expect(kind(sdk('EntityTooLarge', 400))).toBe('invalid');
    expect(kind(sdk('RequestTimeout', 400))).toBe('transient');
    expect(kind(sdk('TimeoutError'))).toBe('transient');
    expect(kind(sdk('AbortError'))).toBe('aborted');
    expect(kind(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(
      'transient',
    );
    expect(kind(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))).toBe('transient');
    expect(kind(new Error('socket hang up'))).toBe('transient');
    const e = toObjectStoreError(sdk('NoSuchKey', 404), 'getRange', 'a/b');
    expect(e.message).toBe('getRange a/b: HTTP 404 NoSuchKey: NoSuchKey');
  });

  it('an aborted signal aborts a single put and a multipart upload', async () => {
    const store = storeFor(s3, 'md5');
    try {
      const ac = new AbortController();
      ac.abort();
      await expect(
        store.put('abort/single', Buffer.from('x'), { metadata: {}, signal: ac.signal }),
      ).rejects.toMatchObject({ kind: 'aborted' });
      await expect(store.head('abort/single', ac.signal)).rejects.toMatchObject({ kind: 'aborted' });

      const ac2 = new AbortController();
      const data = randomBytes(CONTRACT_PART_SIZE * 3);
      const p = store.put('abort/mp', data, { metadata: {}, signal: ac2.signal });
      setTimeout(() => ac2.abort(), 5);
      await expect(p).rejects.toMatchObject({ kind: 'aborted' });
      expect(await store.head('abort/mp')).toBeNull();
    } finally {
      store.destroy();
    }
  });

  it('a non-existent source file fails with invalid; a short file too', async () => {
    const store = storeFor(s3, 'md5');
    const dir = await mkdtemp(join(tmpdir(), 'bucketgate-s3it-'));
    try {
      await expect(
        store.put('file/missing', { path: join(dir, 'nope'), size: 10 }, { metadata: {} }),
      ).rejects.toMatchObject({ kind: 'invalid' });
      await writeFile(join(dir, 'short'), Buffer.alloc(100));
      await expect(
        store.put('file/short', { path: join(dir, 'short'), size: 200 }, { metadata: {} }),
      ).rejects.toMatchObject({ kind: 'invalid' });
      await expect(
        store.put(
          'file/short-mp',
          { path: join(dir, 'short'), size: CONTRACT_PART_SIZE * 2 },
          { metadata: {} },
        ),
      ).rejects.toMatchObject({
        kind: 'invalid',
      });
      // The failed multipart upload left no object behind.
      expect(await store.head('file/short-mp')).toBeNull();
      await expect(
        store.put('file/bad-meta', Buffer.from('x'), { metadata: { 'bad name': 'x' } }),
      ).rejects.toMatchObject({ kind: 'invalid' });
      await expect(
        store.put('file/bad-meta', Buffer.from('x'), { metadata: { ok: 'caf\u00e9' } }),
      ).rejects.toMatchObject({ kind: 'invalid' });
    } finally {
      store.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('multipart copy above the threshold reports s3rver’s missing UploadPartCopy as invalid and aborts', async () => {
    const proxy = await startProxy(s3.endpoint, () => undefined);
    const store = storeFor(s3, 'md5', {
      endpoint: proxy.endpoint,
      multipartCopyThreshold: 1000,
      copyPartSize: 1000,
    });
    try {
      await store.put('mpcopy/src', randomBytes(2500), { metadata: { uid: '3' } });
      await expect(store.copy('mpcopy/src', 'mpcopy/dst', { size: 2500 })).rejects.toMatchObject({
        kind: 'invalid',
      });
      const partCopies = proxy.seen.filter((r) => r.method === 'PUT' && 'x-amz-copy-source' in r.headers);
      expect(partCopies.length).toBeGreaterThan(0);
      expect(partCopies[0]?.headers['x-amz-copy-source-range']).toMatch(/^bytes=\d+-\d+$/);
      expect(partCopies[0]?.headers['x-amz-copy-source-if-match']).toMatch(/^"[0-9a-f]{32}"$/);
      expect(proxy.seen.some((r) => r.method === 'DELETE' && /uploadId=/.test(r.url))).toBe(true);
    } finally {
      store.destroy();
      await proxy.close();
    }
  });

  it('delete falls back to single DeleteObject when DeleteObjects is rejected', async () => {
    const proxy = await startProxy(s3.endpoint, (r) =>
      r.method === 'POST' && /[?&]delete/.test(r.url)
        ? { respond: { status: 501, code: 'NotImplemented' } }
        : undefined,
    );
    const store = storeFor(s3, 'md5', { endpoint: proxy.endpoint });
    try {
      await store.put('fallback/a', Buffer.from('a'), { metadata: {} });
      await store.put('fallback/b', Buffer.from('b'), { metadata: {} });
      await store.delete(['fallback/a', 'fallback/b', 'fallback/missing']);
      expect(await store.head('fallback/a')).toBeNull();
      expect(await store.head('fallback/b')).toBeNull();
      const before = proxy.seen.length;
      await store.delete(['fallback/missing']);
      // The rejection is remembered: no second DeleteObjects attempt.
      expect(proxy.seen.slice(before).every((r) => r.method === 'DELETE')).toBe(true);
    } finally {
      store.destroy();
      await proxy.close();
    }
  });
});

describe('S3ObjectStore on s3rver: HEAD without the SDK middleware (lean path)', () => {
  let s3: S3rverHandle;

  beforeAll(async () => {
    s3 = await server();
  });

  /** Independent SigV4 (AWS docs: "Create a signed AWS API request") of a bodiless request. */
  function expectedAuthorization(r: ProxyRequest, secret: string, region: string): string {
    const hmac = (k: Buffer | string, d: string): Buffer =>
      createHmac('sha256', k).update(d, 'utf8').digest();
    const auth = String(r.headers.authorization);
    const signedHeaders = /SignedHeaders=([^,]+)/.exec(auth)?.[1] ?? '';
    const credential = /Credential=([^,]+)/.exec(auth)?.[1] ?? '';
    const amzDate = String(r.headers['x-amz-date']);
    const day = amzDate.slice(0, 8);
    const [path, query = ''] = r.url.split('?');
    const canonical = [
      r.method,
      path,
      query,
      ...signedHeaders.split(';').map((h) => `${h}:${String(r.headers[h]).trim()}`),
      '',
      signedHeaders,
      String(r.headers['x-amz-content-sha256']),
    ].join('\n');
    const scope = `${day}/${region}/s3/aws4_request`;
    const toSign = [
      'AWS4-HMAC-SHA256',
      amzDate,
      scope,
      createHash('sha256').update(canonical).digest('hex'),
    ].join('\n');
    const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, day), region), 's3'), 'aws4_request');
    const sig = createHmac('sha256', key).update(toSign).digest('hex');
    return `AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=${signedHeaders}, Signature=${sig}`;
  }

  it('sends the same path as the SDK, correctly signed, and answers like the SDK path', async () => {
    const keys = ['plain', 'dir/sub/file.txt', 'sp ace+plus%pct', "q?h#a&b=c!'()*~", 'ünï/cödé 日本'];
    const proxy = await startProxy(s3.endpoint, () => undefined);
    const lean = storeFor(s3, 'md5', { endpoint: proxy.endpoint });
    const sdk = storeFor(s3, 'md5', { endpoint: proxy.endpoint, leanHead: false });
    try {
      for (const key of keys) {
        await sdk.put(key, Buffer.from(`body of ${key}`), {
          metadata: { 'bg-mode': '100644', 'bg-uid': '1234' },
          contentType: 'text/plain',
        });
        proxy.seen.length = 0;
        const a = await lean.head(key);
        const b = await sdk.head(key);
        expect(a).toEqual(b);
        expect(a).toMatchObject({
          key,
          size: Buffer.byteLength(`body of ${key}`),
          contentType: 'text/plain',
        });
        expect(a?.metadata).toMatchObject({ 'bg-mode': '100644', 'bg-uid': '1234' });
        const [leanReq, sdkReq] = proxy.seen;
        expect(proxy.seen.map((r) => r.method)).toEqual(['HEAD', 'HEAD']);
        expect(leanReq!.url).toBe(sdkReq!.url);
        expect(leanReq!.headers['user-agent']).toMatch(/^bucketgate/);
        expect(leanReq!.headers.authorization).toBe(
          expectedAuthorization(leanReq!, s3.secretAccessKey, 'us-east-1'),
        );
        expect(sdkReq!.headers.authorization).toBe(
          expectedAuthorization(sdkReq!, s3.secretAccessKey, 'us-east-1'),
        );
      }
      proxy.seen.length = 0;
      expect(await lean.head('no/such key')).toBeNull();
      expect(proxy.seen.length).toBe(1); // a 404 needs no second opinion
    } finally {
      lean.destroy();
      sdk.destroy();
      await proxy.close();
    }
  });

  it('etagsOf names the ETag of an upload of the same bytes (single part and multipart), not of others', async () => {
    const store = storeFor(s3, 'md5');
    const dir = await mkdtemp(join(tmpdir(), 'bg-etags-'));
    try {
      for (const size of [0, 1000, CONTRACT_PART_SIZE * 2 + 17]) {
        const data = randomBytes(size);
        const path = join(dir, `f${size}`);
        await writeFile(path, data);
        const { etag } = await store.put(`etags/${size}`, { path, size }, { metadata: {} });
        expect(await store.etagsOf({ path, size })).toContain(etag);
        expect(await store.etagsOf(data)).toContain(etag);
        if (size > 0) expect(await store.etagsOf(flipByte(data, 3))).not.toContain(etag);
      }
    } finally {
      store.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('getRange fills a caller scratch buffer when it is large enough, else allocates', async () => {
    const store = storeFor(s3, 'md5');
    try {
      const data = randomBytes(300_000);
      await store.put('scratch/obj', data, { metadata: {} });
      const scratch = Buffer.alloc(256 * 1024);
      const a = await store.getRange('scratch/obj', 1000, 201_000, { scratch });
      expect(a.equals(data.subarray(1000, 201_000))).toBe(true);
      expect(a.buffer).toBe(scratch.buffer); // a view of the scratch buffer: no allocation
      const b = await store.getRange('scratch/obj', 0, 300_000, { scratch });
      expect(b.equals(data)).toBe(true);
      expect(b.buffer).not.toBe(scratch.buffer); // too small: a buffer of its own
    } finally {
      store.destroy();
    }
  });

  it('leaves every other answer to the SDK: errors are mapped and retried as before', async () => {
    let fail503 = 0;
    const proxy = await startProxy(s3.endpoint, (r) => {
      if (r.url.includes('err403')) return { respond: { status: 403, code: 'AccessDenied' } };
      if (r.method === 'HEAD' && r.url.includes('err503') && fail503++ < 1)
        return { respond: { status: 503, code: 'SlowDown' } };
      return undefined;
    });
    const store = storeFor(s3, 'md5', { endpoint: proxy.endpoint, maxAttempts: 2 });
    try {
      await expect(store.head('err403')).rejects.toMatchObject({ kind: 'denied', status: 403 });
      expect(proxy.seen.filter((r) => r.url.includes('err403')).length).toBe(2); // lean, then SDK
      await store.put('err503', Buffer.from('x'), { metadata: {} });
      proxy.seen.length = 0;
      expect(await store.head('err503')).toMatchObject({ size: 1 }); // lean 503, SDK succeeds
      expect(proxy.seen.length).toBe(2);
    } finally {
      store.destroy();
      await proxy.close();
    }
  });

  it("PUT of a small object: signed payload, the SDK's headers, same object as through the SDK", async () => {
    const proxy = await startProxy(s3.endpoint, () => undefined);
    const lean = storeFor(s3, 'md5', { endpoint: proxy.endpoint });
    const sdk = storeFor(s3, 'md5', { endpoint: proxy.endpoint, leanHead: false });
    try {
      for (const key of ['lean-put/plain', 'lean-put/sp ace+plus%pct', 'lean-put/ünï 日本']) {
        const data = randomBytes(5000);
        const meta = { 'bg-mode': '100644', 'bg-uid': '1234' };
        proxy.seen.length = 0;
        const a = await lean.put(key, data, { metadata: meta, contentType: 'application/x-test' });
        await sdk.put(`${key}.sdk`, data, { metadata: meta, contentType: 'application/x-test' });
        const [leanReq, sdkReq] = proxy.seen;
        expect(proxy.seen.map((r) => r.method)).toEqual(['PUT', 'PUT']);
        expect(leanReq!.url).toBe(sdkReq!.url.split('?')[0]!.replace(/\.sdk$/, ''));
        expect(leanReq!.headers['user-agent']).toMatch(/^bucketgate/);
        expect(leanReq!.body.equals(data)).toBe(true);
        expect(leanReq!.headers['x-amz-content-sha256']).toBe(
          createHash('sha256').update(data).digest('hex'),
        );
        for (const h of ['content-md5', 'content-type', 'x-amz-meta-bg-mode', 'x-amz-meta-bg-uid'])
          expect(leanReq!.headers[h]).toBe(sdkReq!.headers[h]);
        expect(leanReq!.headers.authorization).toBe(
          expectedAuthorization(leanReq!, s3.secretAccessKey, 'us-east-1'),
        );
        const [h1, h2] = [await sdk.head(key), await sdk.head(`${key}.sdk`)];
        expect(h1).toEqual({ ...h2, key, lastModified: h1?.lastModified });
        expect(a.etag).toBe(h1?.etag);
        expect((await sdk.getRange(key, 0, data.length)).equals(data)).toBe(true);
      }
    } finally {
      lean.destroy();
      sdk.destroy();
      await proxy.close();
    }
  });

  it('PUT: any answer but 200 goes back through the SDK (conditional 412, 403, 503 then success)', async () => {
    let fail503 = 0;
    const proxy = await startProxy(s3.endpoint, (r) => {
      if (r.method !== 'PUT') return undefined;
      if (r.headers['if-none-match'] === '*') return { respond: { status: 412, code: 'PreconditionFailed' } };
      if (r.url.includes('err403')) return { respond: { status: 403, code: 'AccessDenied' } };
      if (r.url.includes('err503') && fail503++ < 1) return { respond: { status: 503, code: 'SlowDown' } };
      return undefined;
    });
    const store = storeFor(s3, 'md5', { endpoint: proxy.endpoint, maxAttempts: 2 });
    try {
      await expect(
        store.put('cond', Buffer.from('x'), { metadata: {}, ifNoneMatch: true }),
      ).rejects.toMatchObject({ kind: 'precondition' });
      expect(
        proxy.seen.filter((r) => r.url.split('?')[0]!.endsWith('/cond')).map((r) => r.headers['user-agent']),
      ).toEqual([expect.stringMatching(/^bucketgate/), expect.not.stringMatching(/^bucketgate/)]);
      await expect(store.put('err403', Buffer.from('x'), { metadata: {} })).rejects.toMatchObject({
        kind: 'denied',
      });
      proxy.seen.length = 0;
      const { etag } = await store.put('err503', Buffer.from('y'), { metadata: {} });
      expect(etag).toBe(createHash('md5').update('y').digest('hex'));
      expect(proxy.seen.length).toBe(2); // lean 503, SDK succeeds
    } finally {
      store.destroy();
      await proxy.close();
    }
  });

  it('GET into a scratch buffer: signed like the SDK, body read into the buffer, same answers', async () => {
    const proxy = await startProxy(s3.endpoint, () => undefined);
    const lean = storeFor(s3, 'md5', { endpoint: proxy.endpoint });
    const sdk = storeFor(s3, 'md5', { endpoint: proxy.endpoint, leanHead: false });
    try {
      const scratch = Buffer.alloc(1 << 20);
      for (const key of ['lean-get/plain', 'lean-get/sp ace+plus%pct', 'lean-get/ünï 日本']) {
        const data = randomBytes(700_000);
        const { etag } = await sdk.put(key, data, { metadata: {} });
        for (const [a, b] of [
          [0, 700_000],
          [1, 2],
          [65_000, 640_123],
          [699_999, 700_000],
        ] as const) {
          proxy.seen.length = 0;
          const got = await lean.getRange(key, a, b, { scratch, ifMatch: etag });
          expect(got.equals(data.subarray(a, b))).toBe(true);
          expect(got.buffer).toBe(scratch.buffer);
          const [req] = proxy.seen;
          expect(proxy.seen).toHaveLength(1);
          expect(req!.headers['user-agent']).toBe('bucketgate (lean GET)');
          expect(req!.headers.range).toBe(`bytes=${a}-${b - 1}`);
          expect(req!.headers.authorization).toBe(expectedAuthorization(req!, s3.secretAccessKey, 'us-east-1'));
        }
        // s3rver ignores If-Match: the ETag that came back is checked, as on the SDK path.
        await expect(lean.getRange(key, 0, 10, { scratch, ifMatch: 'f'.repeat(32) })).rejects.toMatchObject({
          kind: 'precondition',
        });
        await expect(sdk.getRange(key, 0, 10, { scratch, ifMatch: 'f'.repeat(32) })).rejects.toMatchObject({
          kind: 'precondition',
        });
      }
      expect(lean.leanGets).toBe(15); // 4 ranges and the ETag check, for 3 keys
      expect(sdk.leanGets).toBe(0);
      // Past the end, and a missing object: the SDK path answers (416 / 404), as before.
      await expect(lean.getRange('lean-get/plain', 800_000, 800_010, { scratch })).resolves.toHaveLength(0);
      await expect(lean.getRange('lean-get/none', 0, 10, { scratch })).rejects.toMatchObject({ kind: 'not-found' });
      expect(lean.leanGets).toBe(15);
    } finally {
      lean.destroy();
      sdk.destroy();
      await proxy.close();
    }
  });

  it('GET without a scratch buffer reads into a buffer of its own, through the same path', async () => {
    const store = storeFor(s3, 'md5');
    try {
      const data = randomBytes(100_000);
      await store.put('lean-get/own', data, { metadata: {} });
      const before = store.leanGets;
      for (const [a, b] of [
        [0, 4096],
        [4096, 100_000],
        [99_000, 100_000],
      ] as const) {
        expect((await store.getRange('lean-get/own', a, b)).equals(data.subarray(a, b))).toBe(true);
      }
      // A range that runs past the end gets what is there.
      expect((await store.getRange('lean-get/own', 90_000, 200_000)).equals(data.subarray(90_000))).toBe(true);
      expect(store.leanGets - before).toBe(4);
    } finally {
      store.destroy();
    }
  });

  it('GET: any answer but a plain 200/206 goes back through the SDK (403, 503 then success)', async () => {
    let fail503 = 0;
    const proxy = await startProxy(s3.endpoint, (r) => {
      if (r.method !== 'GET') return undefined;
      if (r.url.includes('get403')) return { respond: { status: 403, code: 'AccessDenied' } };
      if (r.url.includes('get503') && fail503++ < 1) return { respond: { status: 503, code: 'SlowDown' } };
      return undefined;
    });
    const store = storeFor(s3, 'md5', { endpoint: proxy.endpoint, maxAttempts: 2 });
    const scratch = Buffer.alloc(64 * 1024);
    try {
      await store.put('get403', Buffer.from('x'), { metadata: {} });
      await store.put('get503', Buffer.from('abc'), { metadata: {} });
      proxy.seen.length = 0;
      await expect(store.getRange('get403', 0, 1, { scratch })).rejects.toMatchObject({ kind: 'denied' });
      expect(proxy.seen.map((r) => r.headers['user-agent'])).toEqual([
        'bucketgate (lean GET)',
        expect.not.stringMatching(/^bucketgate/),
      ]);
      proxy.seen.length = 0;
      expect((await store.getRange('get503', 0, 3, { scratch })).toString()).toBe('abc');
      expect(proxy.seen.length).toBe(2); // lean 503, SDK succeeds
    } finally {
      store.destroy();
      await proxy.close();
    }
  });

  it('GET: keep-alive sockets are reused; a body in odd pieces, a cut body or chunked encoding', async () => {
    // A minimal server that answers every GET with a 206 of `body`, written as the test says.
    const body = randomBytes(200_000);
    let connections = 0;
    let mode: 'pieces' | 'cut' | 'chunked' = 'pieces';
    const leanSeen: string[] = [];
    const srv = net.createServer((sock) => {
      connections++;
      let buf = '';
      sock.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
          const headText = buf.slice(0, end);
          buf = buf.slice(end + 4);
          const lean = /user-agent: bucketgate \(lean GET\)/i.test(headText);
          if (lean) leanSeen.push(mode);
          const head = (extra: string): string =>
            `HTTP/1.1 206 Partial Content\r\nETag: "abc"\r\nContent-Range: bytes 0-${body.length - 1}/${body.length}\r\n${extra}\r\n`;
          if (lean && mode === 'chunked') {
            sock.write(head('Transfer-Encoding: chunked\r\n'));
            sock.write(`${body.length.toString(16)}\r\n`);
            sock.write(body);
            sock.write('\r\n0\r\n\r\n');
          } else if (lean && mode === 'cut') {
            sock.write(head(`Content-Length: ${body.length}\r\n`));
            sock.end(body.subarray(0, 1000));
          } else {
            // Head and the first bytes together, the rest in uneven pieces.
            sock.write(Buffer.concat([Buffer.from(head(`Content-Length: ${body.length}\r\n`), 'latin1'), body.subarray(0, 7)]));
            for (let off = 7; off < body.length; off += 65_537) sock.write(body.subarray(off, Math.min(body.length, off + 65_537)));
          }
        }
      });
      sock.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const port = (srv.address() as AddressInfo).port;
    const store = storeFor(s3, 'md5', { endpoint: `http://127.0.0.1:${port}`, maxAttempts: 1 });
    const scratch = Buffer.alloc(256 * 1024);
    try {
      for (let i = 0; i < 20; i++) {
        const got = await store.getRange('k', 0, body.length, { scratch });
        expect(got.equals(body)).toBe(true);
      }
      expect(store.leanGets).toBe(20);
      expect(connections).toBe(1);
      // Chunked: not read here; the SDK reads it (a second request).
      mode = 'chunked';
      expect((await store.getRange('k', 0, body.length, { scratch })).equals(body)).toBe(true);
      expect(store.leanGets).toBe(20);
      // A body cut short: the SDK is asked again and gets all of it.
      mode = 'cut';
      expect((await store.getRange('k', 0, body.length, { scratch })).equals(body)).toBe(true);
      expect(store.leanGets).toBe(20);
      expect(leanSeen).toEqual([...Array<string>(20).fill('pieces'), 'chunked', 'cut']);
      // And the lean path works again afterwards, on a new socket.
      mode = 'pieces';
      expect((await store.getRange('k', 0, body.length, { scratch })).equals(body)).toBe(true);
      expect(store.leanGets).toBe(21);
    } finally {
      store.destroy();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
  });

  it('HEAD and PUT on the same raw keep-alive sockets; PUT answers with a body, chunked or closing', async () => {
    // A minimal server: HEAD answers a head with metadata, PUT the MD5 of the body as the ETag,
    // with the answer's framing chosen by the test.
    let connections = 0;
    let mode: 'empty' | 'body' | 'chunked' | 'close' = 'empty';
    const agents: string[] = [];
    const srv = net.createServer((sock) => {
      connections++;
      let buf = Buffer.alloc(0);
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const headText = buf.subarray(0, end).toString('latin1');
          const len = Number(/content-length: (\d+)/i.exec(headText)?.[1] ?? 0);
          if (buf.length < end + 4 + len) return;
          const body = buf.subarray(end + 4, end + 4 + len);
          buf = buf.subarray(end + 4 + len);
          agents.push(/user-agent: ([^\r]*)/i.exec(headText)?.[1] ?? '');
          if (headText.startsWith('HEAD ')) {
            sock.write(
              'HTTP/1.1 200 OK\r\nContent-Length: 12345\r\nETag: "e1"\r\nx-amz-meta-mode: 33188\r\n' +
                'x-amz-meta-mtime: 1700000000.5\r\nLast-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\n' +
                'Content-Type: text/plain\r\n\r\n',
            );
            continue;
          }
          const etag = `ETag: "${createHash('md5').update(body).digest('hex')}"\r\n`;
          if (mode === 'empty') sock.write(`HTTP/1.1 200 OK\r\n${etag}Content-Length: 0\r\n\r\n`);
          else if (mode === 'body') {
            sock.write(`HTTP/1.1 200 OK\r\n${etag}Content-Length: 5\r\n\r\nhe`);
            setTimeout(() => sock.write('llo'), 5);
          } else if (mode === 'chunked') sock.write(`HTTP/1.1 200 OK\r\n${etag}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`);
          else sock.end(`HTTP/1.1 200 OK\r\n${etag}Connection: close\r\n\r\n`);
        }
      });
      sock.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const port = (srv.address() as AddressInfo).port;
    const store = storeFor(s3, 'md5', { endpoint: `http://127.0.0.1:${port}`, maxAttempts: 1 });
    try {
      for (let i = 0; i < 20; i++) {
        const h = await store.head(`k${i}`);
        expect(h).toMatchObject({ size: 12345, etag: 'e1', contentType: 'text/plain' });
        expect(h?.metadata).toEqual({ mode: '33188', mtime: '1700000000.5' });
        expect(h?.lastModified.getTime()).toBe(1_700_000_000_000);
        const data = randomBytes(1000 + i);
        expect((await store.put(`k${i}`, data, { metadata: {} })).etag).toBe(createHash('md5').update(data).digest('hex'));
      }
      expect(connections).toBe(1);
      mode = 'body'; // a small body, in two pieces: read and dropped, the socket is kept
      await store.put('b', Buffer.from('x'), { metadata: {} });
      await store.head('b');
      expect(connections).toBe(1);
      mode = 'chunked'; // its end is not looked for: the answer counts, the socket is closed
      await store.put('c', Buffer.from('x'), { metadata: {} });
      await store.head('c');
      expect(connections).toBe(2);
      mode = 'close';
      await store.put('d', Buffer.from('x'), { metadata: {} });
      await store.head('d');
      expect(connections).toBe(3);
      // Every request went the lean way (none repeated through the SDK).
      expect(agents.length).toBe(46);
      expect(agents.every((a) => /^bucketgate \(lean (HEAD|PUT)\)$/.test(a))).toBe(true);
    } finally {
      store.destroy();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
  });

  it('a server that does not answer fails at the timeout as a transient error', async () => {
    const silent = http.createServer(() => undefined); // accepts, never answers
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    const store = storeFor(s3, 'md5', { endpoint: `http://127.0.0.1:${port}`, requestTimeoutMs: 300 });
    try {
      const t0 = Date.now();
      await expect(store.head('x')).rejects.toMatchObject({ kind: 'transient' });
      expect(Date.now() - t0).toBeLessThan(5000);
      const t1 = Date.now();
      await expect(store.put('x', Buffer.from('x'), { metadata: {} })).rejects.toMatchObject({
        kind: 'transient',
      });
      expect(Date.now() - t1).toBeLessThan(5000);
      const t2 = Date.now();
      await expect(store.getRange('x', 0, 10, { scratch: Buffer.alloc(64) })).rejects.toMatchObject({
        kind: 'transient',
      });
      expect(Date.now() - t2).toBeLessThan(5000);
      // An abort ends a GET that waits for its answer.
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 50);
      await expect(
        store.getRange('x', 0, 10, { scratch: Buffer.alloc(64), signal: ac.signal }),
      ).rejects.toMatchObject({ kind: 'aborted' });
    } finally {
      store.destroy();
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});

describe('checksum helpers', () => {
  it('CRC-32C and CRC-64/NVME check values', () => {
    const check = Buffer.from('123456789');
    expect(crc32c(check)).toBe(0xe3069283);
    expect(crc64nvme(check)).toBe(0xae8b14860a799888n);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
    expect(crc64nvme(Buffer.alloc(0))).toBe(0n);
  });

  it('incremental and combined CRCs equal the CRC of the whole', () => {
    const data = randomBytes(200_000);
    for (const cut of [0, 1, 7, 4096, 99_999, 200_000]) {
      const a = data.subarray(0, cut);
      const b = data.subarray(cut);
      expect(crc32c(b, crc32c(a))).toBe(crc32c(data));
      expect(crc64nvme(b, crc64nvme(a))).toBe(crc64nvme(data));
      expect(crc32cCombine(crc32c(a), crc32c(b), b.length)).toBe(crc32c(data));
      expect(crc64nvmeCombine(crc64nvme(a), crc64nvme(b), b.length)).toBe(crc64nvme(data));
    }
  });
});
