/**
 * ObjectStore on an S3-compatible endpoint (AWS SDK v3).
 *
 * Integrity modes (`checksum` option, CLI `--checksum`):
 *  - `md5` (and `auto`, which means md5): PutObject and every UploadPart carry `Content-MD5`, so a
 *    server that checks it rejects corrupted bodies; in any case the returned ETag must equal the
 *    local MD5 hex (single part) or the multipart composite `md5(concat(part MD5s))-N`. Servers that
 *    return the whole-object MD5 for multipart uploads (s3rver) are accepted after re-hashing the
 *    source. An ETag that is not an MD5 (SSE-KMS / SSE-C buckets) fails in this mode: use a CRC mode.
 *  - `crc32c` / `crc64nvme`: the checksum is computed locally over the buffered body and sent as a
 *    header (`x-amz-checksum-*` with `ChecksumAlgorithm`) — never as an aws-chunked trailer — so the
 *    server verifies it; multipart uploads use the FULL_OBJECT checksum type and the completion
 *    carries the whole-object checksum (combined from the part CRCs). A checksum returned by the
 *    server is compared with the local one; an ETag that looks like an MD5 is compared as well.
 * A mismatch is an ObjectStoreError of kind 'integrity' (after retries of the part / single PUT).
 *
 * The SDK's own flexible checksums are disabled (`requestChecksumCalculation` and
 * `responseChecksumValidation` = WHEN_REQUIRED): some servers (s3rver) store the aws-chunked
 * framing of streamed trailer checksums as object data. Bodies are always Buffers with a length.
 */
import { createHash, type Hash } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { open, type FileHandle } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type DeleteObjectsCommandOutput,
  type GetObjectCommandOutput,
  type PutObjectCommandInput,
  type S3ClientConfig,
  type UploadPartCommandInput,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { getLogger } from '../log/index.js';
import { LeanGet } from './lean-get.js';
import { LeanHead } from './lean-head.js';
import {
  ObjectStoreError,
  type GetRangeOptions,
  type ListOptions,
  type ListPage,
  type ObjectHead,
  type ObjectInfo,
  type ObjectStore,
  type ObjectStoreErrorKind,
  type PutBody,
  type PutOptions,
  type PutResult,
} from './types.js';

export type ChecksumMode = 'auto' | 'md5' | 'crc32c' | 'crc64nvme';

export interface S3ObjectStoreOptions {
  bucket: string;
  /** e.g. http://127.0.0.1:4568 for an S3-compatible server; AWS when absent. */
  endpoint?: string;
  /** Defaults to the SDK chain; 'us-east-1' when an endpoint is given. */
  region?: string;
  /** Path-style addressing; defaults to true when an endpoint is given. */
  forcePathStyle?: boolean;
  /** HEAD requests without the SDK middleware when path-style with an endpoint (default true). */
  leanHead?: boolean;
  /** Defaults to the SDK default credential chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  checksum: ChecksumMode;
  /** Objects of at least this size are uploaded in parts (default 16 MiB). */
  multipartThreshold?: number;
  /** Part size (default 16 MiB), grown so that an upload has at most 10000 parts. */
  partSize?: number;
  /** Parallel parts per upload / part copies per copy (default 8). */
  concurrency?: number;
  /** Sockets per agent (keep-alive; default 64). */
  maxSockets?: number;
  /** Connection timeout and socket idle timeout in ms (default: none). */
  requestTimeoutMs?: number;
  /** SDK attempts per request (default 3). */
  maxAttempts?: number;
  /** Copies larger than this use UploadPartCopy (default 5 GiB, the CopyObject limit). */
  multipartCopyThreshold?: number;
  /** Part size of a multipart copy (default 512 MiB, grown to at most 10000 parts). */
  copyPartSize?: number;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const MAX_PARTS = 10_000;
const MAX_PART_SIZE = 5 * GiB;
/** Largest GET the lean path reads into a buffer of its own (no caller scratch). */
const LEAN_GET_ALLOC_MAX = 64 * MiB;
const MAX_OBJECT_SIZE = 5 * 1024 * GiB;
/** Attempts of one part (or one single-part PUT): the first and 3 retries. */
const PART_ATTEMPTS = 4;
const DELETE_BATCH = 1000;
const MD5_ETAG = /^[0-9a-f]{32}$/;
const COMPOSITE_ETAG = /^[0-9a-f]{32}-[0-9]+$/;

const log = getLogger({ component: 'objectstore' });

// ---------------------------------------------------------------------------------------------
// CRC-32C and CRC-64/NVME (reflected, init and xorout all ones), with combine for full-object
// checksums of multipart uploads.

function makeTable32(poly: number): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}

const CRC32C_TABLE = makeTable32(0x82f63b78);

/** CRC-32C of `data`, continuing from a previous CRC value (0 to start). */
export function crc32c(data: Uint8Array, previous = 0): number {
  const t = CRC32C_TABLE;
  let c = (previous ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) c = (t[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const CRC64_POLY_HI = 0x9a6c9329;
const CRC64_POLY_LO = 0xac4bc9b5;
const CRC64_HI = new Uint32Array(256);
const CRC64_LO = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let lo = n;
  let hi = 0;
  for (let k = 0; k < 8; k++) {
    const carry = lo & 1;
    lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
    hi = hi >>> 1;
    if (carry) {
      lo = (lo ^ CRC64_POLY_LO) >>> 0;
      hi = (hi ^ CRC64_POLY_HI) >>> 0;
    }
  }
  CRC64_HI[n] = hi;
  CRC64_LO[n] = lo;
}

/** CRC-64/NVME of `data`, continuing from a previous CRC value (0n to start). */
export function crc64nvme(data: Uint8Array, previous = 0n): bigint {
  let hi = (Number((previous >> 32n) & 0xffffffffn) ^ 0xffffffff) >>> 0;
  let lo = (Number(previous & 0xffffffffn) ^ 0xffffffff) >>> 0;
  const th = CRC64_HI;
  const tl = CRC64_LO;
  for (let i = 0; i < data.length; i++) {
    const idx = (lo ^ (data[i] as number)) & 0xff;
    lo = (((lo >>> 8) | (hi << 24)) ^ (tl[idx] as number)) >>> 0;
    hi = ((hi >>> 8) ^ (th[idx] as number)) >>> 0;
  }
  return (BigInt((hi ^ 0xffffffff) >>> 0) << 32n) | BigInt((lo ^ 0xffffffff) >>> 0);
}

interface CrcSpec {
  width: bigint;
  poly: bigint;
  table: bigint[];
}

function crcSpec(width: bigint, poly: bigint): CrcSpec {
  const spec: CrcSpec = { width, poly, table: [] };
  let p = 1n << (width - 2n); // x^1
  for (let k = 0; k < 64; k++) {
    spec.table.push(p); // x^(2^k) mod poly
    p = multmodp(spec, p, p);
  }
  return spec;
}

/** a(x) * b(x) mod poly, reflected bit order (zlib's multmodp). */
function multmodp(spec: CrcSpec, a: bigint, b: bigint): bigint {
  let m = 1n << (spec.width - 1n);
  let p = 0n;
  let bb = b;
  while (m !== 0n) {
    if ((a & m) !== 0n) {
      p ^= bb;
      if ((a & (m - 1n)) === 0n) break;
    }
    m >>= 1n;
    bb = (bb & 1n) !== 0n ? (bb >> 1n) ^ spec.poly : bb >> 1n;
  }
  return p;
}

const CRC32C_SPEC = crcSpec(32n, 0x82f63b78n);
const CRC64_SPEC = crcSpec(64n, 0x9a6c9329ac4bc9b5n);

/** CRC of A‖B from crc(A), crc(B) and len(B) (zlib's crc32_combine, any width). */
function crcCombine(spec: CrcSpec, crc1: bigint, crc2: bigint, len2: number): bigint {
  let n = BigInt(len2);
  let k = 3; // bytes → bits: x^(8·len2)
  let p = 1n << (spec.width - 1n); // x^0
  while (n !== 0n) {
    if ((n & 1n) !== 0n) p = multmodp(spec, spec.table[k] as bigint, p);
    n >>= 1n;
    k++;
  }
  return multmodp(spec, p, crc1) ^ crc2;
}

export function crc32cCombine(crc1: number, crc2: number, len2: number): number {
  return Number(crcCombine(CRC32C_SPEC, BigInt(crc1), BigInt(crc2), len2));
}

export function crc64nvmeCombine(crc1: bigint, crc2: bigint, len2: number): bigint {
  return crcCombine(CRC64_SPEC, crc1, crc2, len2);
}

/** A CRC value as S3 transmits it: big-endian bytes, base64. */
function crcToBase64(value: bigint, bytes: number): string {
  const b = Buffer.alloc(bytes);
  if (bytes === 4) b.writeUInt32BE(Number(value));
  else b.writeBigUInt64BE(value);
  return b.toString('base64');
}

type CrcAlgorithm = 'crc32c' | 'crc64nvme';

/** Checksum of one buffer in the given CRC algorithm. */
function crcOf(alg: CrcAlgorithm, data: Uint8Array): bigint {
  return alg === 'crc32c' ? BigInt(crc32c(data)) : crc64nvme(data);
}

function crcBytes(alg: CrcAlgorithm): number {
  return alg === 'crc32c' ? 4 : 8;
}

function crcCombineAlg(alg: CrcAlgorithm, crc1: bigint, crc2: bigint, len2: number): bigint {
  return alg === 'crc32c'
    ? BigInt(crc32cCombine(Number(crc1), Number(crc2), len2))
    : crc64nvmeCombine(crc1, crc2, len2);
}

// ---------------------------------------------------------------------------------------------
// Errors

function prop(o: unknown, k: string): unknown {
  return typeof o === 'object' && o !== null ? (o as Record<string, unknown>)[k] : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPROTO',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);
const TRANSIENT_NAMES = new Set([
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'TooManyRequests',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeTooSkewed',
]);
const DENIED_NAMES = new Set([
  'AccessDenied',
  'Forbidden',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'TokenRefreshRequired',
  'AllAccessDisabled',
  'AccountProblem',
]);

/** Map any error from the SDK (or the network) to an ObjectStoreError. */
export function toObjectStoreError(
  e: unknown,
  op: string,
  key: string,
  signal?: AbortSignal,
): ObjectStoreError {
  if (e instanceof ObjectStoreError) return e;
  const meta = prop(e, '$metadata');
  const statusRaw = prop(meta, 'httpStatusCode');
  const status = typeof statusRaw === 'number' ? statusRaw : undefined;
  const name = str(prop(e, 'name'));
  const code =
    str(prop(e, 'Code')) ??
    (name !== undefined && name !== 'Error' && name !== 'UnknownError' ? name : undefined);
  const errno = str(prop(e, 'code'));
  const message = e instanceof Error ? e.message : String(e);
  const describe = `${status !== undefined ? `HTTP ${status}` : 'no HTTP status'}${code !== undefined ? ` ${code}` : ''}${
    errno !== undefined && errno !== code ? ` (${errno})` : ''
  }: ${message}`;
  const make = (kind: ObjectStoreErrorKind): ObjectStoreError =>
    new ObjectStoreError(kind, op, key, describe, { ...(status !== undefined ? { status } : {}), cause: e });

  if (name === 'AbortError' || signal?.aborted === true) return make('aborted');
  if (code === 'NoSuchBucket') return make('no-bucket');
  if (code === 'NoSuchKey' || code === 'NotFound' || code === 'NoSuchUpload' || status === 404)
    return make('not-found');
  if (code !== undefined && DENIED_NAMES.has(code) && code !== 'RequestTimeTooSkewed') return make('denied');
  if (status === 403) return make(code === 'RequestTimeTooSkewed' ? 'transient' : 'denied');
  if (
    status === 412 ||
    status === 409 ||
    code === 'PreconditionFailed' ||
    code === 'ConditionalRequestConflict'
  ) {
    return make('precondition');
  }
  if (code === 'NotImplemented' || status === 501) return make('invalid');
  if (code !== undefined && TRANSIENT_NAMES.has(code)) return make('transient');
  if (status !== undefined) {
    if (status === 429 || status >= 500) return make('transient');
    if (status >= 400) return make('invalid');
  }
  if (name === 'TimeoutError' || (errno !== undefined && NETWORK_CODES.has(errno))) return make('transient');
  if (/socket hang up|ECONNRESET|ECONNREFUSED|EPIPE|network|timed? ?out/i.test(message))
    return make('transient');
  return make('invalid');
}

// ---------------------------------------------------------------------------------------------
// Helpers

function unquote(etag: string | undefined): string {
  return (etag ?? '').replace(/"/g, '');
}

/**
 * Feed `data` to `hashes` 1 MiB at a time, letting the event loop run in between: hashing a
 * 16 MiB part at once blocks it for ~30 ms, and with 8 parts read together the sockets of the
 * other parts went unfed for a quarter second (multipart uploads ran ~25 % slower than the SDK's).
 */
async function hashSliced(hashes: Hash[], data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length; off += MiB) {
    const slice = data.subarray(off, Math.min(off + MiB, data.length));
    for (const h of hashes) h.update(slice);
    if (off + MiB < data.length) await yieldToLoop();
  }
}

function md5(data: Uint8Array): Buffer {
  return createHash('md5').update(data).digest();
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(new ObjectStoreError('aborted', 'sleep', '', 'aborted'));
      return;
    }
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(new ObjectStoreError('aborted', 'sleep', '', 'aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function backoffMs(attempt: number): number {
  const base = Math.min(2000, 100 * 2 ** (attempt - 1));
  return base / 2 + Math.random() * (base / 2);
}

/** Run `fn(0..count-1)` with at most `limit` in flight; stops scheduling after the first failure. */
async function runPool(limit: number, count: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  let firstError: unknown;
  const worker = async (): Promise<void> => {
    while (!failed && next < count) {
      const i = next++;
      try {
        await fn(i);
      } catch (e) {
        if (!failed) {
          failed = true;
          firstError = e;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, count)) }, () => worker()));
  if (failed) throw firstError;
}

/** A body that can be read by region: a Buffer, or a file read with pread. */
/**
 * MD5 of parts that arrive out of order: each is hashed once all before it have been. A part's
 * buffer stays referenced until then, so an uploader waits for hashed(i) before it reads its next
 * part (otherwise, with the hash behind, part buffers piled up: 330 MiB of RSS for 512 MiB).
 */
export class OrderedMd5 {
  private readonly hash = createHash('md5');
  private abandoned = false;
  private readonly waiting = new Map<number, Buffer>();
  private next = 0;
  private fedUpTo = 0;
  private readonly fedWaiters = new Map<number, () => void>();
  private chain: Promise<void> = Promise.resolve();

  add(i: number, data: Buffer): void {
    this.waiting.set(i, data);
    for (let d = this.waiting.get(this.next); d !== undefined; d = this.waiting.get(this.next)) {
      const part = d;
      const k = this.next;
      this.chain = this.chain.then(async () => {
        await hashSliced([this.hash], part);
        this.fedUpTo = k + 1;
        this.fedWaiters.get(k)?.();
        this.fedWaiters.delete(k);
      });
      this.waiting.delete(this.next++);
    }
  }

  /** Resolves once part i is in the hash (its buffer is no longer needed here). */
  hashed(i: number): Promise<void> {
    if (i < this.fedUpTo || this.abandoned) return Promise.resolve();
    return new Promise((resolve) => this.fedWaiters.set(i, resolve));
  }

  /**
   * The upload failed (a part could not be read or sent): release everyone waiting in hashed(),
   * whose turn may never come now that an earlier part will not be added. The digest is void.
   */
  abandon(): void {
    this.abandoned = true;
    for (const resolve of this.fedWaiters.values()) resolve();
    this.fedWaiters.clear();
  }

  /** The hex digest once parts 0..n-1 were all added, else undefined. */
  async digest(n: number): Promise<string | undefined> {
    await this.chain;
    return this.next === n && !this.abandoned ? this.hash.digest('hex') : undefined;
  }
}

interface BodySource {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
  /**
   * Like read, into `buf` (at least `length` bytes) when the body is a file; a Buffer body
   * returns its own bytes and leaves `buf` alone.
   */
  readInto(buf: Buffer, offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

async function openBody(body: PutBody, key: string): Promise<BodySource> {
  if (Buffer.isBuffer(body)) {
    return {
      size: body.length,
      read: (o, l) => Promise.resolve(body.subarray(o, o + l)),
      readInto: (_b, o, l) => Promise.resolve(body.subarray(o, o + l)),
      close: () => Promise.resolve(),
    };
  }
  const sourceError = (what: string, e: unknown): ObjectStoreError =>
    new ObjectStoreError(
      'invalid',
      'put',
      key,
      `cannot ${what} source file ${body.path}: ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    );
  let fh: FileHandle;
  try {
    fh = await open(body.path, 'r');
  } catch (e) {
    throw sourceError('open', e);
  }
  const handle = fh;
  const readInto = async (into: Buffer, offset: number, length: number): Promise<Buffer> => {
    const buf = into.subarray(0, length);
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        ({ bytesRead: n } = await handle.read(buf, done, length - done, offset + done));
      } catch (e) {
        throw sourceError('read', e);
      }
      if (n === 0) {
        throw new ObjectStoreError(
          'invalid',
          'put',
          key,
          `source file ${body.path} is shorter than ${body.size} bytes (changed during upload?)`,
        );
      }
      done += n;
    }
    return buf;
  };
  return {
    size: body.size,
    read: (offset, length) => readInto(Buffer.allocUnsafe(length), offset, length),
    readInto,
    close: () => handle.close(),
  };
}

const META_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const META_VALUE = /^[\x20-\x7e]*$/;

function checkMetadata(op: string, key: string, metadata: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata)) {
    const name = k.toLowerCase();
    if (!META_NAME.test(name))
      throw new ObjectStoreError('invalid', op, key, `invalid metadata name ${JSON.stringify(k)}`);
    if (typeof v !== 'string' || !META_VALUE.test(v)) {
      throw new ObjectStoreError('invalid', op, key, `metadata ${JSON.stringify(k)} must be printable ASCII`);
    }
    out[name] = v;
  }
  return out;
}

/** `x-amz-copy-source`: bucket/key, URL-encoded ('/' and header-safe sub-delimiters kept). */
function copySource(bucket: string, key: string): string {
  const enc = encodeURIComponent(key).replace(/%(2F|3A|40|3D|2C|3B|24|26)/g, (m) => decodeURIComponent(m));
  return `${bucket}/${enc}`;
}

function integrity(op: string, key: string, message: string): ObjectStoreError {
  return new ObjectStoreError('integrity', op, key, message);
}

interface UploadedPart {
  etag: string;
  md5: Buffer;
  size: number;
  crc: bigint | undefined;
}

// ---------------------------------------------------------------------------------------------

export class S3ObjectStore implements ObjectStore {
  /** The underlying client (tests add middleware to it). */
  readonly client: S3Client;
  readonly bucket: string;
  private readonly checksum: 'md5' | CrcAlgorithm;
  private readonly multipartThreshold: number;
  private readonly partSize: number;
  /**
   * Does this server answer a completed multipart upload with the whole object's MD5 (s3rver)
   * instead of the composite ETag (S3)? Unknown until the first one completes. While it may, the
   * whole-object MD5 is computed as the parts are read, so verifying the ETag needs no second
   * pass over the data (512 MiB: ~1 s of CPU and disk after the upload, before it counts as done).
   */
  private wholeMd5Etag: boolean | undefined;
  private readonly concurrency: number;
  private readonly multipartCopyThreshold: number;
  private readonly copyPartSize: number;
  private deleteObjectsUnsupported = false;
  /** HEAD without the SDK's middleware (path-style endpoints only), see lean-head.ts. */
  private readonly lean: LeanHead | undefined;
  /** Ranged GETs read straight into the caller's buffer (plain-HTTP path-style), see lean-get.ts. */
  private readonly leanGet: LeanGet | undefined;
  /** GETs answered by the lean path (tests and diagnostics). */
  leanGets = 0;

  constructor(opts: S3ObjectStoreOptions) {
    this.bucket = opts.bucket;
    this.checksum = opts.checksum === 'auto' ? 'md5' : opts.checksum;
    this.multipartThreshold = Math.max(1, opts.multipartThreshold ?? 16 * MiB);
    this.partSize = Math.max(1, opts.partSize ?? 16 * MiB);
    this.concurrency = Math.max(1, opts.concurrency ?? 8);
    this.multipartCopyThreshold = opts.multipartCopyThreshold ?? 5 * GiB;
    this.copyPartSize = Math.max(1, opts.copyPartSize ?? 512 * MiB);
    const maxSockets = Math.max(1, opts.maxSockets ?? 64);
    const timeout = opts.requestTimeoutMs;
    const agentOpts = { keepAlive: true, maxSockets };
    const httpAgent = new http.Agent(agentOpts);
    const httpsAgent = new https.Agent(agentOpts);
    const config: S3ClientConfig = {
      requestHandler: new NodeHttpHandler({
        httpAgent,
        httpsAgent,
        ...(timeout !== undefined ? { connectionTimeout: timeout, socketTimeout: timeout } : {}),
      }),
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      followRegionRedirects: true,
      maxAttempts: opts.maxAttempts ?? 3,
    };
    if (opts.endpoint !== undefined) config.endpoint = opts.endpoint;
    const region = opts.region ?? (opts.endpoint !== undefined ? 'us-east-1' : undefined);
    if (region !== undefined) config.region = region;
    config.forcePathStyle = opts.forcePathStyle ?? opts.endpoint !== undefined;
    if (opts.credentials !== undefined) {
      const c = opts.credentials;
      config.credentials = {
        accessKeyId: c.accessKeyId,
        secretAccessKey: c.secretAccessKey,
        ...(c.sessionToken !== undefined ? { sessionToken: c.sessionToken } : {}),
      };
    }
    this.client = new S3Client(config);
    if (opts.endpoint !== undefined && config.forcePathStyle && opts.leanHead !== false) {
      const url = new URL(opts.endpoint);
      if (LeanGet.supports(url)) this.leanGet = new LeanGet(url, timeout);
      this.lean = new LeanHead({
        endpoint: opts.endpoint,
        bucket: this.bucket,
        region: region ?? 'us-east-1',
        credentials: this.client.config.credentials,
        httpAgent,
        httpsAgent,
        ...(timeout !== undefined ? { timeoutMs: timeout } : {}),
        ...(this.leanGet !== undefined ? { raw: this.leanGet } : {}),
      });
    }
  }

  /** Close the client's sockets. */
  destroy(): void {
    this.client.destroy();
    this.leanGet?.destroy();
  }

  /** Run one SDK call, mapping its errors. */
  private async call<T>(
    op: string,
    key: string,
    signal: AbortSignal | undefined,
    fn: () => Promise<T>,
  ): Promise<T> {
    if (signal?.aborted === true)
      throw new ObjectStoreError('aborted', op, key, 'aborted before the request');
    try {
      return await fn();
    } catch (e) {
      throw toObjectStoreError(e, op, key, signal);
    }
  }

  private opts(signal: AbortSignal | undefined): { abortSignal?: AbortSignal } {
    return signal !== undefined ? { abortSignal: signal } : {};
  }

  async head(key: string, signal?: AbortSignal): Promise<ObjectHead | null> {
    if (this.lean !== undefined) {
      let r: ObjectHead | null | undefined;
      try {
        r = await this.lean.head(key, signal);
      } catch (e) {
        throw toObjectStoreError(e, 'head', key, signal);
      }
      if (r !== undefined) return r;
    }
    try {
      const res = await this.call('head', key, signal, () =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), this.opts(signal)),
      );
      const metadata: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.Metadata ?? {})) metadata[k.toLowerCase()] = v;
      return {
        key,
        size: res.ContentLength ?? 0,
        etag: unquote(res.ETag),
        lastModified: res.LastModified ?? new Date(0),
        metadata,
        contentType: res.ContentType,
      };
    } catch (e) {
      if (e instanceof ObjectStoreError && e.kind === 'not-found') return null;
      throw e;
    }
  }

  async getRange(key: string, start: number, end: number, opts?: GetRangeOptions): Promise<Buffer> {
    const signal = opts?.signal;
    const ifMatch = opts?.ifMatch;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
      throw new ObjectStoreError('invalid', 'getRange', key, `invalid range [${start}, ${end})`);
    }
    if (end === start) {
      // Nothing to read, but a missing object or a changed ETag must still fail.
      const h = await this.head(key, signal);
      if (h === null) throw new ObjectStoreError('not-found', 'getRange', key, 'no such object');
      if (ifMatch !== undefined && h.etag !== unquote(ifMatch)) {
        throw new ObjectStoreError('precondition', 'getRange', key, `ETag is ${h.etag}, expected ${ifMatch}`);
      }
      return Buffer.alloc(0);
    }
    const scratch = opts?.scratch;
    if (this.leanGet !== undefined && (scratch !== undefined || end - start <= LEAN_GET_ALLOC_MAX)) {
      // Into the caller's buffer when it is large enough, else into one of exactly this size.
      const dest =
        scratch !== undefined && scratch.length >= end - start ? scratch : Buffer.allocUnsafe(end - start);
      const got = await this.leanGetRange(this.leanGet, key, start, end, dest, opts);
      if (got !== undefined) return got;
    }
    let res: GetObjectCommandOutput;
    try {
      res = await this.call('getRange', key, signal, () =>
        this.client.send(
          new GetObjectCommand({
            Bucket: this.bucket,
            Key: key,
            Range: `bytes=${start}-${end - 1}`,
            ...(ifMatch !== undefined ? { IfMatch: `"${unquote(ifMatch)}"` } : {}),
          }),
          this.opts(signal),
        ),
      );
    } catch (e) {
      if (!(e instanceof ObjectStoreError)) throw e;
      // 416: the range starts at or past the end of the object: no bytes there.
      if (e.status === 416 || /InvalidRange/.test(e.message)) return this.getRange(key, start, start, opts);
      return this.recoverEmptyRange(e, key, start, opts);
    }
    const mismatch = etagMismatch(key, unquote(res.ETag), ifMatch);
    if (mismatch !== undefined) {
      destroyBody(res.Body);
      throw mismatch;
    }
    const body = res.Body;
    if (body === undefined) return Buffer.alloc(0);
    const total = rangeTotal(res.ContentRange);
    if (total !== undefined && start >= total) {
      // Nothing there (s3rver answers "206 bytes 0-0/0" for a zero-byte object, then no body).
      destroyBody(body);
      return Buffer.alloc(0);
    }
    let bytes: Uint8Array;
    try {
      bytes = await this.call('getRange', key, signal, () =>
        body instanceof Readable
          ? readBody(body, res.ContentLength, opts?.scratch)
          : body.transformToByteArray(),
      );
    } catch (e) {
      return this.recoverEmptyRange(e, key, start, opts);
    }
    return rangeBody(key, start, end, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), res.ContentRange);
  }

  /**
   * getRange through LeanGet into `dest`: the bytes (a view of dest), or undefined when the SDK
   * should send the request (any answer but a plain 200/206 that fits, or a failed connection).
   */
  private async leanGetRange(
    lg: LeanGet,
    key: string,
    start: number,
    end: number,
    dest: Buffer,
    opts: GetRangeOptions | undefined,
  ): Promise<Buffer | undefined> {
    const signal = opts?.signal;
    const ifMatch = opts?.ifMatch;
    if (signal?.aborted === true) throw new ObjectStoreError('aborted', 'getRange', key, 'aborted before the request');
    const req = await this.lean?.signGet(key, {
      range: `bytes=${start}-${end - 1}`,
      ...(ifMatch !== undefined ? { 'if-match': `"${unquote(ifMatch)}"` } : {}),
    });
    if (req === undefined) return undefined;
    let r;
    try {
      r = await lg.get(req, dest, signal);
    } catch (e) {
      throw toObjectStoreError(e, 'getRange', key, signal);
    }
    if (r === undefined) return undefined;
    this.leanGets++;
    const mismatch = etagMismatch(key, r.etag, ifMatch);
    if (mismatch !== undefined) throw mismatch;
    // A 206 without Content-Range: let the SDK path make sense of it.
    if (r.status === 206 && r.contentRange === undefined) return undefined;
    return rangeBody(key, start, end, dest.subarray(0, r.length), r.status === 206 ? r.contentRange : undefined);
  }

  /**
   * s3rver answers a range on a zero-byte object with "206, Content-Length: 1" and no body (the
   * connection is cut). After a connection-level failure, an object too short for the range
   * yields no bytes; anything else rethrows the failure.
   */
  private async recoverEmptyRange(
    e: unknown,
    key: string,
    start: number,
    opts: { ifMatch?: string; signal?: AbortSignal } | undefined,
  ): Promise<Buffer> {
    const err = toObjectStoreError(e, 'getRange', key, opts?.signal);
    if (err.kind !== 'transient' || err.status !== undefined) throw err;
    const h = await this.head(key, opts?.signal);
    if (h === null)
      throw new ObjectStoreError('not-found', 'getRange', key, 'no such object', { cause: err });
    if (h.size > start) throw err;
    return this.getRange(key, start, start, opts);
  }

  async getStream(
    key: string,
    opts?: { start?: number; end?: number; signal?: AbortSignal },
  ): Promise<Readable> {
    const signal = opts?.signal;
    const start = opts?.start ?? 0;
    const end = opts?.end;
    if (end !== undefined && end <= start) return Readable.from([]);
    const range =
      start > 0 || end !== undefined ? `bytes=${start}-${end !== undefined ? end - 1 : ''}` : undefined;
    let res: GetObjectCommandOutput;
    try {
      res = await this.call('getStream', key, signal, () =>
        this.client.send(
          new GetObjectCommand({
            Bucket: this.bucket,
            Key: key,
            ...(range !== undefined ? { Range: range } : {}),
          }),
          this.opts(signal),
        ),
      );
    } catch (e) {
      if (e instanceof ObjectStoreError && (e.status === 416 || /InvalidRange/.test(e.message)))
        return Readable.from([]);
      throw e;
    }
    const body: unknown = res.Body;
    const total = rangeTotal(res.ContentRange);
    if (total !== undefined && start >= total) {
      destroyBody(body);
      return Readable.from([]);
    }
    if (body instanceof Readable) return body;
    if (body === undefined) return Readable.from([]);
    const web = prop(body, 'transformToWebStream');
    if (typeof web === 'function') {
      const stream: unknown = (web as () => unknown).call(body);
      return Readable.fromWeb(stream as Parameters<typeof Readable.fromWeb>[0]);
    }
    throw new ObjectStoreError('invalid', 'getStream', key, 'unexpected response body type');
  }

  // ------------------------------------------------------------------ put

  async put(key: string, body: PutBody, opts: PutOptions): Promise<PutResult> {
    const metadata = checkMetadata('put', key, opts.metadata);
    const size = Buffer.isBuffer(body) ? body.length : body.size;
    if (!Number.isSafeInteger(size) || size < 0)
      throw new ObjectStoreError('invalid', 'put', key, `invalid size ${size}`);
    if (size > MAX_OBJECT_SIZE)
      throw new ObjectStoreError('invalid', 'put', key, `object of ${size} bytes exceeds the 5 TiB limit`);
    if (size === 0 || size < this.multipartThreshold) return this.putSingle(key, body, size, metadata, opts);
    return this.putMultipart(key, body, size, metadata, opts);
  }

  async etagsOf(body: PutBody): Promise<string[]> {
    const src = await openBody(body, 'etagsOf');
    try {
      const size = src.size;
      const whole = createHash('md5');
      if (size === 0 || size < this.multipartThreshold) {
        for (let off = 0; off < size; off += 16 * MiB)
          whole.update(await src.read(off, Math.min(16 * MiB, size - off)));
        return [whole.digest('hex')];
      }
      const partSize = this.partSizeFor(size, this.partSize);
      const digests: Buffer[] = [];
      for (let off = 0; off < size; off += partSize) {
        const data = await src.read(off, Math.min(partSize, size - off));
        whole.update(data);
        digests.push(md5(data));
      }
      return [`${md5(Buffer.concat(digests)).toString('hex')}-${digests.length}`, whole.digest('hex')];
    } finally {
      await src.close();
    }
  }

  private async putSingle(
    key: string,
    body: PutBody,
    size: number,
    metadata: Record<string, string>,
    opts: PutOptions,
  ): Promise<PutResult> {
    const signal = opts.signal;
    let data: Buffer;
    if (Buffer.isBuffer(body)) {
      data = body;
    } else {
      const src = await openBody(body, key);
      try {
        data = size === 0 ? Buffer.alloc(0) : await src.read(0, size);
      } finally {
        await src.close();
      }
    }
    const localMd5 = md5(data);
    const crc = this.checksum === 'md5' ? undefined : crcOf(this.checksum, data);
    const input: PutObjectCommandInput = {
      Bucket: this.bucket,
      Key: key,
      Body: data,
      ContentLength: data.length,
      Metadata: metadata,
      ...(opts.contentType !== undefined ? { ContentType: opts.contentType } : {}),
      ...this.checksumFields(localMd5, crc),
      ...conditionalFields(opts),
    };
    const leanHeaders =
      this.lean !== undefined && crc === undefined ? leanPutHeaders(input, localMd5) : undefined;
    return this.withRetries('put', key, signal, async () => {
      if (leanHeaders !== undefined && this.lean !== undefined) {
        if (signal?.aborted === true)
          throw new ObjectStoreError('aborted', 'put', key, 'aborted before the request');
        let etag: string | undefined;
        try {
          etag = await this.lean.put(key, data, leanHeaders, signal);
        } catch (e) {
          throw toObjectStoreError(e, 'put', key, signal);
        }
        if (etag !== undefined) {
          this.verifyPart('put', key, etag, localMd5, undefined, undefined);
          return { etag };
        }
      }
      const res = await this.call('put', key, signal, () =>
        this.client.send(new PutObjectCommand(input), this.opts(signal)),
      );
      const etag = unquote(res.ETag);
      this.verifyPart('put', key, etag, localMd5, crc, returnedChecksum(this.checksum, res));
      return { etag };
    });
  }

  /** Content-MD5 or a precomputed CRC header for one buffered body. */
  private checksumFields(
    localMd5: Buffer,
    crc: bigint | undefined,
  ): Pick<
    UploadPartCommandInput,
    'ContentMD5' | 'ChecksumAlgorithm' | 'ChecksumCRC32C' | 'ChecksumCRC64NVME'
  > {
    if (this.checksum === 'md5' || crc === undefined) return { ContentMD5: localMd5.toString('base64') };
    const value = crcToBase64(crc, crcBytes(this.checksum));
    return this.checksum === 'crc32c'
      ? { ChecksumAlgorithm: 'CRC32C', ChecksumCRC32C: value }
      : { ChecksumAlgorithm: 'CRC64NVME', ChecksumCRC64NVME: value };
  }

  /** Check the ETag (and returned CRC) of one single-part PUT or one part. */
  private verifyPart(
    op: string,
    key: string,
    etag: string,
    localMd5: Buffer,
    crc: bigint | undefined,
    returned: string | undefined,
  ): void {
    const hex = localMd5.toString('hex');
    if (this.checksum === 'md5') {
      if (etag !== hex) {
        throw integrity(
          op,
          key,
          MD5_ETAG.test(etag)
            ? `ETag ${etag} differs from the local MD5 ${hex}`
            : `ETag ${JSON.stringify(etag)} is not an MD5 (encrypted bucket? use a CRC checksum mode)`,
        );
      }
      return;
    }
    if (crc !== undefined && returned !== undefined) {
      const local = crcToBase64(crc, crcBytes(this.checksum));
      if (returned !== local)
        throw integrity(op, key, `server ${this.checksum} ${returned} differs from the local ${local}`);
    }
    if (MD5_ETAG.test(etag) && etag !== hex)
      throw integrity(op, key, `ETag ${etag} differs from the local MD5 ${hex}`);
  }

  private async withRetries<T>(
    op: string,
    key: string,
    signal: AbortSignal | undefined,
    fn: () => Promise<T>,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        const err = toObjectStoreError(e, op, key, signal);
        if (attempt >= PART_ATTEMPTS || (err.kind !== 'transient' && err.kind !== 'integrity')) throw err;
        log.warn('object store request failed, retrying', { op, key, attempt, error: err });
        await sleep(backoffMs(attempt), signal).catch(() => {
          throw new ObjectStoreError('aborted', op, key, 'aborted while waiting to retry', { cause: err });
        });
      }
    }
  }

  private partSizeFor(size: number, base: number): number {
    let partSize = base;
    if (Math.ceil(size / partSize) > MAX_PARTS) partSize = Math.ceil(size / MAX_PARTS / MiB) * MiB;
    return Math.min(partSize, MAX_PART_SIZE);
  }

  private async putMultipart(
    key: string,
    body: PutBody,
    size: number,
    metadata: Record<string, string>,
    opts: PutOptions,
  ): Promise<PutResult> {
    const signal = opts.signal;
    const alg = this.checksum === 'md5' ? undefined : this.checksum;
    const partSize = this.partSizeFor(size, this.partSize);
    const nParts = Math.ceil(size / partSize);
    const src = await openBody(body, key);
    let uploadId: string | undefined;
    try {
      const created = await this.call('put', key, signal, () =>
        this.client.send(
          new CreateMultipartUploadCommand({
            Bucket: this.bucket,
            Key: key,
            Metadata: metadata,
            ...(opts.contentType !== undefined ? { ContentType: opts.contentType } : {}),
            ...(alg !== undefined
              ? { ChecksumAlgorithm: alg === 'crc32c' ? 'CRC32C' : 'CRC64NVME', ChecksumType: 'FULL_OBJECT' }
              : {}),
          }),
          this.opts(signal),
        ),
      );
      const id = created.UploadId;
      if (id === undefined || id === '')
        throw new ObjectStoreError('invalid', 'put', key, 'CreateMultipartUpload returned no UploadId');
      uploadId = id;

      const parts: UploadedPart[] = new Array<UploadedPart>(nParts);
      const whole = this.wholeMd5Etag !== false ? new OrderedMd5() : undefined;
      // One part buffer per worker, reused: fresh 16 MiB buffers per part left the freeing to the
      // GC, and RSS rose by up to 200 MiB over what was in flight.
      const free: Buffer[] = [];
      await runPool(this.concurrency, nParts, async (i) => {
        const offset = i * partSize;
        const len = Math.min(partSize, size - offset);
        const slot = free.pop() ?? Buffer.allocUnsafeSlow(partSize);
        try {
          if (signal?.aborted === true) throw new ObjectStoreError('aborted', 'put', key, 'aborted');
          const data = await src.readInto(slot, offset, len);
          parts[i] = await this.uploadPart(key, id, i, data, whole, alg, signal);
        } catch (e) {
          whole?.abandon(); // a later part may be waiting for this one in hashed()
          throw e;
        } finally {
          free.push(slot);
        }
      });

      let fullCrc: bigint | undefined;
      if (alg !== undefined) {
        for (const p of parts)
          fullCrc =
            fullCrc === undefined ? (p.crc as bigint) : crcCombineAlg(alg, fullCrc, p.crc as bigint, p.size);
      }
      const completedParts: CompletedPart[] = parts.map((p, i) => ({
        PartNumber: i + 1,
        ETag: `"${p.etag}"`,
        ...(alg === 'crc32c' && p.crc !== undefined ? { ChecksumCRC32C: crcToBase64(p.crc, 4) } : {}),
        ...(alg === 'crc64nvme' && p.crc !== undefined ? { ChecksumCRC64NVME: crcToBase64(p.crc, 8) } : {}),
      }));
      const done = await this.call('put', key, signal, () =>
        this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: id,
            MultipartUpload: { Parts: completedParts },
            ...conditionalFields(opts),
            ...(alg !== undefined && fullCrc !== undefined
              ? {
                  ChecksumType: 'FULL_OBJECT' as const,
                  MpuObjectSize: size,
                  ...(alg === 'crc32c'
                    ? { ChecksumCRC32C: crcToBase64(fullCrc, 4) }
                    : { ChecksumCRC64NVME: crcToBase64(fullCrc, 8) }),
                }
              : {}),
          }),
          this.opts(signal),
        ),
      );
      uploadId = undefined; // completed: nothing to abort any more
      const etag = unquote(done.ETag);
      await this.verifyMultipart(
        key,
        etag,
        parts,
        src,
        alg,
        fullCrc,
        returnedChecksum(this.checksum, done),
        await whole?.digest(nParts),
      );
      return { etag };
    } catch (e) {
      const err = toObjectStoreError(e, 'put', key, signal);
      if (uploadId !== undefined) await this.abortUpload(key, uploadId);
      throw err;
    } finally {
      await src.close();
    }
  }

  /** Upload part `i` (retried; verified against its MD5/CRC); adds it to the whole-object MD5. */
  private async uploadPart(
    key: string,
    id: string,
    i: number,
    data: Buffer,
    whole: OrderedMd5 | undefined,
    alg: CrcAlgorithm | undefined,
    signal: AbortSignal | undefined,
  ): Promise<UploadedPart> {
    whole?.add(i, data);
    const partHash = createHash('md5');
    await hashSliced([partHash], data);
    const partMd5 = partHash.digest();
    const crc = alg !== undefined ? crcOf(alg, data) : undefined;
    const input: UploadPartCommandInput = {
      Bucket: this.bucket,
      Key: key,
      UploadId: id,
      PartNumber: i + 1,
      Body: data,
      ContentLength: data.length,
      ...this.checksumFields(partMd5, crc),
    };
    const part = await this.withRetries('put', key, signal, async () => {
      const res = await this.call('put', key, signal, () =>
        this.client.send(new UploadPartCommand(input), this.opts(signal)),
      );
      const etag = unquote(res.ETag);
      this.verifyPart(
        'put',
        `${key} (part ${i + 1})`,
        etag,
        partMd5,
        crc,
        returnedChecksum(this.checksum, res),
      );
      return { etag, md5: partMd5, size: data.length, crc };
    });
    // The caller reuses `data` for its next part: the whole-object hash must be done with it.
    await whole?.hashed(i);
    return part;
  }

  private async verifyMultipart(
    key: string,
    etag: string,
    parts: UploadedPart[],
    src: BodySource,
    alg: CrcAlgorithm | undefined,
    fullCrc: bigint | undefined,
    returned: string | undefined,
    wholeMd5: string | undefined,
  ): Promise<void> {
    if (alg !== undefined && fullCrc !== undefined && returned !== undefined) {
      const dash = returned.indexOf('-');
      let local: string;
      if (dash === -1) {
        local = crcToBase64(fullCrc, crcBytes(alg));
      } else {
        // COMPOSITE: checksum of the concatenated binary part checksums, "-N".
        const bin = Buffer.concat(
          parts.map((p) => Buffer.from(crcToBase64(p.crc as bigint, crcBytes(alg)), 'base64')),
        );
        local = `${crcToBase64(crcOf(alg, bin), crcBytes(alg))}-${parts.length}`;
      }
      if (returned !== local)
        throw integrity('put', key, `server ${alg} ${returned} differs from the local ${local}`);
    }
    const composite = `${md5(Buffer.concat(parts.map((p) => p.md5))).toString('hex')}-${parts.length}`;
    this.wholeMd5Etag = MD5_ETAG.test(etag);
    if (etag === composite) return;
    if (COMPOSITE_ETAG.test(etag))
      throw integrity('put', key, `multipart ETag ${etag} differs from the local ${composite}`);
    if (MD5_ETAG.test(etag)) {
      // Some servers (s3rver) return the MD5 of the whole object: computed while the parts were
      // read, or (not known yet at that time) by hashing the source again.
      let hex = wholeMd5;
      if (hex === undefined) {
        const h = createHash('md5');
        for (let off = 0; off < src.size; off += 16 * MiB)
          h.update(await src.read(off, Math.min(16 * MiB, src.size - off)));
        hex = h.digest('hex');
      }
      if (etag !== hex)
        throw integrity(
          'put',
          key,
          `ETag ${etag} differs from the local whole-object MD5 ${hex} (and composite ${composite})`,
        );
      return;
    }
    if (alg === undefined)
      throw integrity(
        'put',
        key,
        `ETag ${JSON.stringify(etag)} is not an MD5 (encrypted bucket? use a CRC checksum mode)`,
      );
  }

  private async abortUpload(key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }),
      );
    } catch (e) {
      log.warn('could not abort multipart upload (a bucket lifecycle rule should clean it up)', {
        key,
        uploadId,
        error: toObjectStoreError(e, 'abortMultipartUpload', key),
      });
    }
  }

  // ------------------------------------------------------------------ copy

  /**
   * Server-side copy. With `metadata` the destination gets exactly that metadata and `contentType`
   * (MetadataDirective REPLACE: pass the content type too, or it becomes the server default);
   * without it, metadata and content type are copied. Above `multipartCopyThreshold` (5 GiB) the
   * copy is an UploadPartCopy multipart upload pinned to the source ETag.
   */
  async copy(
    srcKey: string,
    dstKey: string,
    opts: { size: number; metadata?: Record<string, string>; contentType?: string; signal?: AbortSignal },
  ): Promise<PutResult> {
    const signal = opts.signal;
    const metadata = opts.metadata !== undefined ? checkMetadata('copy', dstKey, opts.metadata) : undefined;
    if (opts.size > this.multipartCopyThreshold)
      return this.copyMultipart(srcKey, dstKey, opts.size, metadata, opts.contentType, signal);
    const res = await this.call('copy', srcKey, signal, () =>
      this.client.send(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: dstKey,
          CopySource: copySource(this.bucket, srcKey),
          ...(metadata !== undefined
            ? {
                MetadataDirective: 'REPLACE' as const,
                Metadata: metadata,
                ...(opts.contentType !== undefined ? { ContentType: opts.contentType } : {}),
              }
            : { MetadataDirective: 'COPY' as const }),
        }),
        this.opts(signal),
      ),
    );
    const etag = unquote(res.CopyObjectResult?.ETag);
    if (etag === '') throw integrity('copy', dstKey, 'CopyObject returned no ETag');
    return { etag };
  }

  private async copyMultipart(
    srcKey: string,
    dstKey: string,
    size: number,
    metadata: Record<string, string> | undefined,
    contentType: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<PutResult> {
    // Multipart copies do not carry metadata: take it from the source unless replaced, and pin the
    // source version by its ETag.
    const src = await this.head(srcKey, signal);
    if (src === null) throw new ObjectStoreError('not-found', 'copy', srcKey, 'no such object');
    if (src.size !== size)
      throw new ObjectStoreError(
        'precondition',
        'copy',
        srcKey,
        `source is ${src.size} bytes, expected ${size}`,
      );
    const meta = metadata ?? src.metadata;
    const ctype = metadata !== undefined ? contentType : src.contentType;
    const partSize = this.partSizeFor(size, this.copyPartSize);
    const nParts = Math.ceil(size / partSize);
    const created = await this.call('copy', dstKey, signal, () =>
      this.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: dstKey,
          Metadata: meta,
          ...(ctype !== undefined ? { ContentType: ctype } : {}),
        }),
        this.opts(signal),
      ),
    );
    const id = created.UploadId;
    if (id === undefined || id === '')
      throw new ObjectStoreError('invalid', 'copy', dstKey, 'CreateMultipartUpload returned no UploadId');
    let completed = false;
    try {
      const etags: string[] = new Array<string>(nParts);
      await runPool(this.concurrency, nParts, async (i) => {
        const first = i * partSize;
        const last = Math.min(size, first + partSize) - 1;
        etags[i] = await this.withRetries('copy', dstKey, signal, async () => {
          const res = await this.call('copy', dstKey, signal, () =>
            this.client.send(
              new UploadPartCopyCommand({
                Bucket: this.bucket,
                Key: dstKey,
                UploadId: id,
                PartNumber: i + 1,
                CopySource: copySource(this.bucket, srcKey),
                CopySourceRange: `bytes=${first}-${last}`,
                CopySourceIfMatch: `"${src.etag}"`,
              }),
              this.opts(signal),
            ),
          );
          const etag = unquote(res.CopyPartResult?.ETag);
          if (etag === '')
            throw integrity('copy', dstKey, `UploadPartCopy of part ${i + 1} returned no ETag`);
          return etag;
        });
      });
      const done = await this.call('copy', dstKey, signal, () =>
        this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key: dstKey,
            UploadId: id,
            MultipartUpload: { Parts: etags.map((e, i) => ({ PartNumber: i + 1, ETag: `"${e}"` })) },
          }),
          this.opts(signal),
        ),
      );
      completed = true;
      const check = await this.head(dstKey, signal);
      if (check === null || check.size !== size) {
        throw integrity(
          'copy',
          dstKey,
          `copy has ${check === null ? 'vanished' : `${check.size} bytes`}, expected ${size}`,
        );
      }
      return { etag: unquote(done.ETag) };
    } catch (e) {
      if (!completed) await this.abortUpload(dstKey, id);
      throw toObjectStoreError(e, 'copy', dstKey, signal);
    }
  }

  // ------------------------------------------------------------------ delete

  async delete(keys: readonly string[]): Promise<void> {
    const unique = [...new Set(keys)];
    for (let i = 0; i < unique.length; i += DELETE_BATCH) {
      const batch = unique.slice(i, i + DELETE_BATCH);
      if (!this.deleteObjectsUnsupported) {
        let res: DeleteObjectsCommandOutput | undefined;
        try {
          res = await this.call('delete', batch[0] ?? '', undefined, () =>
            this.client.send(
              new DeleteObjectsCommand({
                Bucket: this.bucket,
                Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
              }),
            ),
          );
        } catch (e) {
          // A 4xx / NotImplemented for the DeleteObjects request itself (e.g. a server that wants
          // Content-MD5 or has no multi-delete): fall back to one DeleteObject per key from now on.
          if (!(e instanceof ObjectStoreError && e.kind === 'invalid')) throw e;
          log.warn('DeleteObjects rejected by the server; deleting objects one by one from now on', {
            error: e,
          });
          this.deleteObjectsUnsupported = true;
        }
        if (res !== undefined) {
          throwDeleteErrors(res, batch.length);
          continue;
        }
      }
      await runPool(this.concurrency, batch.length, async (j) => {
        const key = batch[j] as string;
        try {
          await this.call('delete', key, undefined, () =>
            this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })),
          );
        } catch (e) {
          if (e instanceof ObjectStoreError && e.kind === 'not-found') return;
          throw e;
        }
      });
    }
  }

  // ------------------------------------------------------------------ list

  async list(prefix: string, opts?: ListOptions): Promise<ListPage> {
    const token = opts?.token;
    const maxKeys = opts?.maxKeys !== undefined ? Math.max(1, Math.min(1000, opts.maxKeys)) : undefined;
    // Tokens are opaque to callers: 'c' + a server continuation token, or 's' + a StartAfter key
    // (for servers that report truncation without a continuation token).
    const continuation = token !== undefined && token.startsWith('c') ? token.slice(1) : undefined;
    const startAfter = token !== undefined && token.startsWith('s') ? token.slice(1) : opts?.startAfter;
    const res = await this.call('list', prefix, undefined, () =>
      this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: prefix,
          EncodingType: 'url',
          ...(opts?.delimiter !== undefined && opts.delimiter !== '' ? { Delimiter: opts.delimiter } : {}),
          ...(continuation !== undefined ? { ContinuationToken: continuation } : {}),
          ...(startAfter !== undefined && startAfter !== '' ? { StartAfter: startAfter } : {}),
          ...(maxKeys !== undefined ? { MaxKeys: maxKeys } : {}),
        }),
      ),
    );
    // Keys come URL-encoded only when the server honoured encoding-type=url (s3rver does not).
    const decode = res.EncodingType === 'url' ? urlDecode : (s: string): string => s;
    const objects: ObjectInfo[] = [];
    for (const o of res.Contents ?? []) {
      if (o.Key === undefined) continue;
      objects.push({
        key: decode(o.Key),
        size: o.Size ?? 0,
        etag: unquote(o.ETag),
        lastModified: o.LastModified ?? new Date(0),
      });
    }
    const prefixes: string[] = [];
    for (const p of res.CommonPrefixes ?? []) if (p.Prefix !== undefined) prefixes.push(decode(p.Prefix));
    let nextToken: string | undefined;
    if (res.IsTruncated === true) {
      if (res.NextContinuationToken !== undefined && res.NextContinuationToken !== '')
        nextToken = `c${res.NextContinuationToken}`;
      else {
        const last = [...objects.map((o) => o.key), ...prefixes].sort().pop();
        if (last !== undefined) nextToken = `s${last}`;
      }
    }
    return { objects, prefixes, nextToken };
  }
}

function returnedChecksum(
  mode: 'md5' | CrcAlgorithm,
  res: { ChecksumCRC32C?: string | undefined; ChecksumCRC64NVME?: string | undefined },
): string | undefined {
  if (mode === 'crc32c') return res.ChecksumCRC32C;
  if (mode === 'crc64nvme') return res.ChecksumCRC64NVME;
  return undefined;
}

/** Per-key errors of a DeleteObjects response (a missing key is not an error) → throw the first. */
function throwDeleteErrors(res: DeleteObjectsCommandOutput, batchSize: number): void {
  const errors = (res.Errors ?? []).filter((er) => er.Code !== 'NoSuchKey');
  const first = errors[0];
  if (first === undefined) return;
  const code = first.Code ?? 'UnknownError';
  const key = first.Key ?? '';
  const mapped = toObjectStoreError(
    Object.assign(new Error(first.Message ?? code), { name: code, Code: code }),
    'delete',
    key,
  );
  // Per-key errors carry no HTTP status: unknown codes (e.g. InternalError) are retryable.
  const kind: ObjectStoreErrorKind =
    mapped.kind === 'invalid' && !/^(InvalidArgument|InvalidRequest|KeyTooLong)$/.test(code)
      ? 'transient'
      : mapped.kind;
  throw new ObjectStoreError(
    kind,
    'delete',
    key,
    `${errors.length} of ${batchSize} keys could not be deleted; first: ${code}: ${first.Message ?? ''}`,
  );
}

/** Total size from a Content-Range header (`bytes a-b/total`), when known. */
function rangeTotal(contentRange: string | undefined): number | undefined {
  const m = contentRange !== undefined ? /\/(\d+)\s*$/.exec(contentRange) : null;
  return m?.[1] !== undefined ? Number(m[1]) : undefined;
}

function urlDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

/**
 * Read a response body. With a known length the chunks are copied once into one buffer of that
 * size (the SDK's `transformToByteArray` collects them and concatenates: two copies and twice
 * the memory, a large part of a cold read's CPU). A body longer than announced is an error; a
 * shorter one is returned as is (the caller checks the length against the range).
 */
async function readBody(body: Readable, length: number | undefined, scratch?: Buffer): Promise<Uint8Array> {
  if (length === undefined || !Number.isSafeInteger(length) || length < 0) {
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }
  const out =
    scratch !== undefined && scratch.length >= length
      ? scratch.subarray(0, length)
      : Buffer.allocUnsafe(length);
  let n = 0;
  for await (const c of body) {
    const chunk = c as Buffer;
    if (n + chunk.length > length) {
      body.destroy();
      throw new Error(`response body longer than its Content-Length ${length}`);
    }
    chunk.copy(out, n);
    n += chunk.length;
  }
  return n === length ? out : out.subarray(0, n);
}

function destroyBody(body: unknown): void {
  if (body instanceof Readable) body.destroy();
}

/**
 * A GET's ETag differs from the one asked for with If-Match. Servers that ignore If-Match (s3rver)
 * answer anyway, so the returned ETag is checked here (an unknown or empty one passes).
 */
function etagMismatch(key: string, etag: string | undefined, ifMatch: string | undefined): ObjectStoreError | undefined {
  if (ifMatch === undefined || etag === undefined || etag === '' || etag === unquote(ifMatch)) return undefined;
  return new ObjectStoreError('precondition', 'getRange', key, `ETag is ${etag}, expected ${unquote(ifMatch)}`, {
    status: 412,
  });
}

/**
 * The bytes of [start, end) from a GET's body: a 206's Content-Range must name exactly them; without
 * one the server ignored the Range header and sent the whole object.
 */
function rangeBody(key: string, start: number, end: number, buf: Buffer, contentRange: string | undefined): Buffer {
  const cr = contentRange !== undefined ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange) : null;
  if (cr === null) return buf.subarray(Math.min(start, buf.length), Math.min(end, buf.length));
  if (Number(cr[1]) !== start || buf.length !== Number(cr[2]) - start + 1) {
    throw new ObjectStoreError(
      'transient',
      'getRange',
      key,
      `short or misplaced range: asked ${start}-${end - 1}, got ${contentRange} with ${buf.length} bytes`,
    );
  }
  return buf;
}

/** The headers the SDK sends for a PutObject with Content-MD5, for the lean path. */
function leanPutHeaders(input: PutObjectCommandInput, localMd5: Buffer): Record<string, string> {
  const h: Record<string, string> = { 'content-md5': localMd5.toString('base64') };
  for (const [k, v] of Object.entries(input.Metadata ?? {})) h[`x-amz-meta-${k.toLowerCase()}`] = v;
  if (input.ContentType !== undefined) h['content-type'] = input.ContentType;
  if (input.IfMatch !== undefined) h['if-match'] = input.IfMatch;
  if (input.IfNoneMatch !== undefined) h['if-none-match'] = input.IfNoneMatch;
  return h;
}

/** If-Match / If-None-Match headers of a conditional write. */
function conditionalFields(opts: PutOptions): { IfMatch?: string; IfNoneMatch?: string } {
  if (opts.ifMatch !== undefined) return { IfMatch: `"${opts.ifMatch}"` };
  if (opts.ifNoneMatch === true) return { IfNoneMatch: '*' };
  return {};
}
