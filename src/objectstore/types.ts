import type { Readable } from 'node:stream';

/** One object as a listing shows it. */
export interface ObjectInfo {
  key: string;
  size: number;
  /** ETag without surrounding quotes. */
  etag: string;
  lastModified: Date;
}

/** HEAD result: listing fields plus user metadata (lower-case names without `x-amz-meta-`). */
export interface ObjectHead extends ObjectInfo {
  metadata: Record<string, string>;
  contentType: string | undefined;
}

export interface ListPage {
  objects: ObjectInfo[];
  /** Common prefixes (with trailing delimiter) when a delimiter was given. */
  prefixes: string[];
  /** Continuation token for the next page, undefined on the last page. */
  nextToken: string | undefined;
}

export interface ListOptions {
  delimiter?: string;
  token?: string;
  maxKeys?: number;
  startAfter?: string;
}

export interface PutOptions {
  /** User metadata (names without `x-amz-meta-`). */
  metadata: Record<string, string>;
  contentType?: string;
  signal?: AbortSignal;
  /**
   * Conditional write: succeed only if the object's current ETag is this one (If-Match), or only
   * if no object exists (`ifNoneMatch: true`, If-None-Match: *). A mismatch fails with kind
   * 'precondition'. Servers without support ignore these headers (see the share's probe).
   */
  ifMatch?: string;
  ifNoneMatch?: boolean;
}

export interface PutResult {
  etag: string;
}

/** Body of an upload: a buffer, or a file region read on demand (multipart reads it part by part). */
export type PutBody = Buffer | { path: string; size: number };

/** Why an object-store call failed; the VFS maps these to errno values. */
export type ObjectStoreErrorKind =
  | 'not-found' // 404 / NoSuchKey
  | 'no-bucket' // NoSuchBucket
  | 'denied' // 403, bad credentials
  | 'precondition' // 412 / 409 conditional failures
  | 'invalid' // 400: the request itself is wrong (bad key, entity too large)
  | 'integrity' // the stored bytes do not match what was sent
  | 'transient' // 5xx, 429/503 throttling, timeouts, connection errors: retry
  | 'aborted';

export class ObjectStoreError extends Error {
  readonly kind: ObjectStoreErrorKind;
  readonly key: string;
  readonly op: string;
  readonly status: number | undefined;

  constructor(
    kind: ObjectStoreErrorKind,
    op: string,
    key: string,
    message: string,
    options?: { status?: number; cause?: unknown },
  ) {
    super(`${op} ${key}: ${message}`, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'ObjectStoreError';
    this.kind = kind;
    this.op = op;
    this.key = key;
    this.status = options?.status;
  }

  get retryable(): boolean {
    return this.kind === 'transient';
  }
}

/**
 * The bucket, as the VFS sees it. Keys are full object keys (share prefix included); the
 * implementation knows nothing of paths. Every method throws ObjectStoreError on failure.
 */
export interface GetRangeOptions {
  ifMatch?: string;
  signal?: AbortSignal;
  scratch?: Buffer;
}

export interface ObjectStore {
  /** Metadata of one object, or null if it does not exist. */
  head(key: string, signal?: AbortSignal): Promise<ObjectHead | null>;
  /**
   * Bytes [start, end) of an object as a buffer. With `ifMatch`, fails with kind 'precondition'
   * when the object's ETag differs. Reading past the end returns the bytes that exist.
   * `scratch`: a buffer the store may fill and return a view of (the caller reuses it).
   */
  getRange(key: string, start: number, end: number, opts?: GetRangeOptions): Promise<Buffer>;
  /** The whole object as a stream (for large sequential consumers). */
  getStream(key: string, opts?: { start?: number; end?: number; signal?: AbortSignal }): Promise<Readable>;
  /**
   * Upload an object (multipart with parallel parts above the store's threshold). Integrity is
   * verified (Content-MD5 / checksums and the returned ETag); a mismatch throws kind 'integrity'.
   */
  put(key: string, body: PutBody, opts: PutOptions): Promise<PutResult>;
  /**
   * The ETags an object holding exactly these bytes has when this store uploaded it (the MD5,
   * or the multipart composite with this store's part size, plus the whole-object MD5 that some
   * servers return for multipart uploads). Lets a writer recognise its own earlier upload whose
   * acknowledgement was lost in a crash.
   */
  etagsOf(body: PutBody): Promise<string[]>;
  /** Server-side copy (multipart copy above 5 GiB). With `metadata`, replaces the metadata. */
  copy(
    srcKey: string,
    dstKey: string,
    opts: { size: number; metadata?: Record<string, string>; contentType?: string; signal?: AbortSignal },
  ): Promise<PutResult>;
  /** Delete objects (batched); missing keys are not an error. */
  delete(keys: readonly string[]): Promise<void>;
  /** One page of ListObjectsV2 under `prefix`. */
  list(prefix: string, opts?: ListOptions): Promise<ListPage>;
}
