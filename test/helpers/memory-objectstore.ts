/**
 * In-memory ObjectStore for fast VFS unit tests: S3 semantics where they matter (MD5 ETags,
 * composite multipart ETags, UTF-8 byte-ordered paged listing with delimiter/common prefixes,
 * ranges past the end, If-Match), plus fault injection (`failNext`), call counters and a hook
 * that runs before every operation (to add latency or block an operation).
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import {
  ObjectStoreError,
  type ListOptions,
  type ListPage,
  type ObjectHead,
  type ObjectInfo,
  type ObjectStore,
  type ObjectStoreErrorKind,
  type PutBody,
  type PutOptions,
  type PutResult,
} from '../../src/objectstore/types.js';

export type MemoryOp = 'head' | 'getRange' | 'getStream' | 'put' | 'copy' | 'delete' | 'list';

export interface MemoryObject {
  data: Buffer;
  etag: string;
  lastModified: Date;
  metadata: Record<string, string>;
  contentType: string | undefined;
}

export interface MemoryObjectStoreOptions {
  /** Uploads of at least this size get a composite multipart ETag (default 16 MiB). */
  multipartThreshold?: number;
  /** Part size for the composite ETag (default 16 MiB, grown to at most 10000 parts). */
  partSize?: number;
  /** Every operation fails with 'no-bucket' (a share on a bucket that does not exist). */
  bucketMissing?: boolean;
  /** Every operation fails with 'denied' (wrong credentials). */
  denied?: boolean;
  /** Honour conditional writes (default true); false behaves like s3rver, which ignores them. */
  conditionalWrites?: boolean;
}

interface Fault {
  op: MemoryOp | '*';
  key: string | undefined;
  error: ObjectStoreError | ObjectStoreErrorKind;
  remaining: number;
}

const MiB = 1024 * 1024;

function md5hex(b: Uint8Array): string {
  return createHash('md5').update(b).digest('hex');
}

function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function unquote(s: string): string {
  return s.replace(/"/g, '');
}

export class MemoryObjectStore implements ObjectStore {
  /** The bucket's contents; tests may read or seed it directly. */
  readonly objects = new Map<string, MemoryObject>();
  /** Number of calls per operation. */
  readonly calls = new Map<MemoryOp, number>();
  /** Runs before every operation (after counting, before faults): add latency or block here. */
  beforeOp: ((op: MemoryOp, key: string) => void | Promise<void>) | undefined;

  private readonly multipartThreshold: number;
  private readonly partSize: number;
  private readonly bucketMissing: boolean;
  private readonly denied: boolean;
  private faults: Fault[] = [];
  private sortedKeys: string[] | undefined;

  constructor(opts: MemoryObjectStoreOptions = {}) {
    this.multipartThreshold = opts.multipartThreshold ?? 16 * MiB;
    this.partSize = opts.partSize ?? 16 * MiB;
    this.bucketMissing = opts.bucketMissing ?? false;
    this.denied = opts.denied ?? false;
    this.conditionalWrites = opts.conditionalWrites ?? true;
  }

  /** Honour If-Match / If-None-Match on put (false: ignore them, as s3rver does). */
  readonly conditionalWrites: boolean;

  // ------------------------------------------------------------------ test helpers

  /**
   * Make the next `times` (default 1) calls of `op` ('*' = any op), optionally only for `key`, fail
   * with `error` (an ObjectStoreError, or a kind for a generic one).
   */
  failNext(
    op: MemoryOp | '*',
    error: ObjectStoreError | ObjectStoreErrorKind,
    opts: { times?: number; key?: string } = {},
  ): void {
    this.faults.push({ op, key: opts.key, error, remaining: opts.times ?? 1 });
  }

  clearFaults(): void {
    this.faults = [];
  }

  callCount(op: MemoryOp): number {
    return this.calls.get(op) ?? 0;
  }

  resetCalls(): void {
    this.calls.clear();
  }

  /** Store an object directly (no faults, no counters). */
  seed(
    key: string,
    data: Buffer | string,
    opts: { metadata?: Record<string, string>; contentType?: string; lastModified?: Date } = {},
  ): void {
    const buf = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
    this.setObject(key, {
      data: buf,
      etag: md5hex(buf),
      lastModified: opts.lastModified ?? new Date(),
      metadata: lowerKeys(opts.metadata ?? {}),
      contentType: opts.contentType,
    });
  }

  /** Bytes of a stored object, or undefined. */
  read(key: string): Buffer | undefined {
    return this.objects.get(key)?.data;
  }

  /** All keys in S3 (UTF-8 byte) order. */
  keys(): string[] {
    if (this.sortedKeys === undefined) this.sortedKeys = [...this.objects.keys()].sort(compareUtf8);
    return this.sortedKeys;
  }

  private setObject(key: string, o: MemoryObject): void {
    if (!this.objects.has(key)) this.sortedKeys = undefined;
    this.objects.set(key, o);
  }

  private deleteObject(key: string): void {
    if (this.objects.delete(key)) this.sortedKeys = undefined;
  }

  private async enter(op: MemoryOp, key: string, signal?: AbortSignal): Promise<void> {
    this.calls.set(op, (this.calls.get(op) ?? 0) + 1);
    if (this.beforeOp !== undefined) await this.beforeOp(op, key);
    if (signal?.aborted === true) throw new ObjectStoreError('aborted', op, key, 'aborted');
    const i = this.faults.findIndex(
      (f) => (f.op === '*' || f.op === op) && (f.key === undefined || f.key === key),
    );
    const fault = this.faults[i];
    if (fault !== undefined) {
      fault.remaining--;
      if (fault.remaining <= 0) this.faults.splice(i, 1);
      throw typeof fault.error === 'string'
        ? new ObjectStoreError(fault.error, op, key, `injected ${fault.error} fault`)
        : fault.error;
    }
    if (this.bucketMissing)
      throw new ObjectStoreError(
        'no-bucket',
        op,
        key,
        'HTTP 404 NoSuchBucket: The specified bucket does not exist',
        { status: 404 },
      );
    if (this.denied)
      throw new ObjectStoreError('denied', op, key, 'HTTP 403 InvalidAccessKeyId: bad credentials', {
        status: 403,
      });
  }

  private mustGet(op: string, key: string): MemoryObject {
    const o = this.objects.get(key);
    if (o === undefined)
      throw new ObjectStoreError(
        'not-found',
        op,
        key,
        'HTTP 404 NoSuchKey: The specified key does not exist.',
        { status: 404 },
      );
    return o;
  }

  // ------------------------------------------------------------------ ObjectStore

  async head(key: string, signal?: AbortSignal): Promise<ObjectHead | null> {
    await this.enter('head', key, signal);
    const o = this.objects.get(key);
    if (o === undefined) return null;
    return {
      key,
      size: o.data.length,
      etag: o.etag,
      lastModified: o.lastModified,
      metadata: { ...o.metadata },
      contentType: o.contentType,
    };
  }

  async getRange(
    key: string,
    start: number,
    end: number,
    opts?: { ifMatch?: string; signal?: AbortSignal },
  ): Promise<Buffer> {
    await this.enter('getRange', key, opts?.signal);
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
      throw new ObjectStoreError('invalid', 'getRange', key, `invalid range [${start}, ${end})`);
    }
    const o = this.mustGet('getRange', key);
    if (opts?.ifMatch !== undefined && unquote(opts.ifMatch) !== o.etag) {
      throw new ObjectStoreError(
        'precondition',
        'getRange',
        key,
        `HTTP 412 PreconditionFailed: ETag is ${o.etag}`,
        { status: 412 },
      );
    }
    return Buffer.from(o.data.subarray(Math.min(start, o.data.length), Math.min(end, o.data.length)));
  }

  async getStream(
    key: string,
    opts?: { start?: number; end?: number; signal?: AbortSignal },
  ): Promise<Readable> {
    await this.enter('getStream', key, opts?.signal);
    const o = this.mustGet('getStream', key);
    const start = Math.min(opts?.start ?? 0, o.data.length);
    const end = Math.max(start, Math.min(opts?.end ?? o.data.length, o.data.length));
    const slice = Buffer.from(o.data.subarray(start, end));
    return Readable.from(slice.length > 0 ? [slice] : []);
  }

  /** The ETag put() gives these bytes: MD5, or the multipart composite above the threshold. */
  private etagOfData(data: Buffer): string {
    const size = data.length;
    if (size > 0 && size >= this.multipartThreshold) {
      let partSize = this.partSize;
      if (Math.ceil(size / partSize) > 10_000) partSize = Math.ceil(size / 10_000 / MiB) * MiB;
      const digests: Buffer[] = [];
      for (let off = 0; off < size; off += partSize)
        digests.push(
          createHash('md5')
            .update(data.subarray(off, off + partSize))
            .digest(),
        );
      return `${md5hex(Buffer.concat(digests))}-${digests.length}`;
    }
    return md5hex(data);
  }

  async etagsOf(body: PutBody): Promise<string[]> {
    const data = Buffer.isBuffer(body) ? body : await readRegion(body.path, body.size, 'etagsOf');
    return [this.etagOfData(data)];
  }

  async put(key: string, body: PutBody, opts: PutOptions): Promise<PutResult> {
    await this.enter('put', key, opts.signal);
    if (key === '' || Buffer.byteLength(key) > 1024)
      throw new ObjectStoreError('invalid', 'put', key, 'HTTP 400 KeyTooLongError');
    if (this.conditionalWrites) {
      const cur = this.objects.get(key);
      if ((opts.ifNoneMatch === true && cur) || (opts.ifMatch !== undefined && cur?.etag !== opts.ifMatch)) {
        throw new ObjectStoreError('precondition', 'put', key, 'HTTP 412 PreconditionFailed', {
          status: 412,
        });
      }
    }
    const data = Buffer.isBuffer(body) ? Buffer.from(body) : await readRegion(body.path, body.size, key);
    const etag = this.etagOfData(data);
    this.setObject(key, {
      data,
      etag,
      lastModified: new Date(),
      metadata: lowerKeys(opts.metadata),
      contentType: opts.contentType,
    });
    return { etag };
  }

  async copy(
    srcKey: string,
    dstKey: string,
    opts: { size: number; metadata?: Record<string, string>; contentType?: string; signal?: AbortSignal },
  ): Promise<PutResult> {
    await this.enter('copy', srcKey, opts.signal);
    const src = this.mustGet('copy', srcKey);
    if (srcKey === dstKey && opts.metadata === undefined) {
      throw new ObjectStoreError(
        'invalid',
        'copy',
        srcKey,
        'HTTP 400 InvalidRequest: copy onto itself without changing metadata',
        { status: 400 },
      );
    }
    const replace = opts.metadata !== undefined;
    // Like S3: a copy up to 5 GiB is a single-part object whose ETag is the MD5 of its data.
    const etag = md5hex(src.data);
    this.setObject(dstKey, {
      data: src.data,
      etag,
      lastModified: new Date(),
      metadata: replace ? lowerKeys(opts.metadata ?? {}) : { ...src.metadata },
      contentType: replace ? opts.contentType : src.contentType,
    });
    return { etag };
  }

  async delete(keys: readonly string[]): Promise<void> {
    await this.enter('delete', keys[0] ?? '');
    for (const k of keys) this.deleteObject(k);
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<ListPage> {
    await this.enter('list', prefix);
    const maxKeys = Math.max(1, Math.min(1000, opts.maxKeys ?? 1000));
    const delimiter = opts.delimiter !== undefined && opts.delimiter !== '' ? opts.delimiter : undefined;
    // Token: 'K' + last key returned, or 'P' + last common prefix returned.
    let after = opts.startAfter ?? '';
    let skipPrefix: string | undefined;
    if (opts.token !== undefined) {
      if (!/^[KP]/.test(opts.token))
        throw new ObjectStoreError(
          'invalid',
          'list',
          prefix,
          'HTTP 400 InvalidArgument: bad continuation token',
          { status: 400 },
        );
      after = opts.token.slice(1);
      if (opts.token.startsWith('P')) skipPrefix = after;
    }
    const objects: ObjectInfo[] = [];
    const prefixes: string[] = [];
    let count = 0;
    let lastToken: string | undefined;
    let truncated = false;
    for (const key of this.keys()) {
      if (!key.startsWith(prefix)) continue;
      if (after !== '' && compareUtf8(key, after) <= 0) continue;
      if (skipPrefix !== undefined && key.startsWith(skipPrefix)) continue;
      let cp: string | undefined;
      if (delimiter !== undefined) {
        const idx = key.indexOf(delimiter, prefix.length);
        if (idx !== -1) cp = key.slice(0, idx + delimiter.length);
      }
      if (cp !== undefined && cp === prefixes[prefixes.length - 1]) continue;
      if (count === maxKeys) {
        truncated = true;
        break;
      }
      count++;
      if (cp !== undefined) {
        prefixes.push(cp);
        lastToken = `P${cp}`;
        skipPrefix = cp;
      } else {
        const o = this.objects.get(key) as MemoryObject;
        objects.push({ key, size: o.data.length, etag: o.etag, lastModified: o.lastModified });
        lastToken = `K${key}`;
      }
    }
    return { objects, prefixes, nextToken: truncated ? lastToken : undefined };
  }
}

function lowerKeys(m: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m)) out[k.toLowerCase()] = v;
  return out;
}

async function readRegion(path: string, size: number, key: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const { bytesRead } = await fh.read(buf, done, size - done, done);
      if (bytesRead === 0)
        throw new ObjectStoreError(
          'invalid',
          'put',
          key,
          `source file ${path} is shorter than ${size} bytes`,
        );
      done += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}
