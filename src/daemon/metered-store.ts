/**
 * MeteredObjectStore: an ObjectStore decorator that counts every call by operation and
 * outcome (`ok`, or the ObjectStoreError kind with its HTTP status), its latency, and the bytes
 * downloaded and uploaded. Behaviour is unchanged. A call is one gateway-level request: the
 * SDK's own retries within it are not counted separately.
 */
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import {
  ObjectStoreError,
  type GetRangeOptions,
  type ListOptions,
  type ListPage,
  type ObjectHead,
  type ObjectStore,
  type PutBody,
  type PutOptions,
  type PutResult,
} from '../objectstore/types.js';
import type { DaemonMetrics } from './metrics.js';

type Op = 'head' | 'getRange' | 'getStream' | 'put' | 'copy' | 'delete' | 'list';

export class MeteredObjectStore implements ObjectStore {
  private readonly down: { inc(v: number): void };
  private readonly up: { inc(v: number): void };

  constructor(
    private readonly inner: ObjectStore,
    private readonly metrics: DaemonMetrics,
    private readonly share: string,
  ) {
    this.down = metrics.s3Bytes.labels({ share, direction: 'download' });
    this.up = metrics.s3Bytes.labels({ share, direction: 'upload' });
  }

  private done(op: Op, t0: bigint, outcome: string, status: string): void {
    this.metrics.s3Requests.inc({ share: this.share, op, outcome, status });
    this.metrics.s3Latency.observe({ share: this.share, op }, Number(process.hrtime.bigint() - t0) / 1e9);
  }

  private async run<T>(op: Op, f: () => Promise<T>, outcomeOf?: (r: T) => [string, string]): Promise<T> {
    const t0 = process.hrtime.bigint();
    try {
      const r = await f();
      const [outcome, status] = outcomeOf?.(r) ?? ['ok', '2xx'];
      this.done(op, t0, outcome, status);
      return r;
    } catch (e) {
      if (e instanceof ObjectStoreError)
        this.done(op, t0, e.kind, e.status !== undefined ? String(e.status) : 'none');
      else this.done(op, t0, 'error', 'none');
      throw e;
    }
  }

  head(key: string, signal?: AbortSignal): Promise<ObjectHead | null> {
    return this.run(
      'head',
      () => this.inner.head(key, signal),
      (r) => (r === null ? ['not-found', '404'] : ['ok', '2xx']),
    );
  }

  async getRange(key: string, start: number, end: number, opts?: GetRangeOptions): Promise<Buffer> {
    const b = await this.run('getRange', () => this.inner.getRange(key, start, end, opts));
    this.down.inc(b.length);
    return b;
  }

  etagsOf(body: PutBody): Promise<string[]> {
    return this.inner.etagsOf(body);
  }

  async getStream(
    key: string,
    opts?: { start?: number; end?: number; signal?: AbortSignal },
  ): Promise<Readable> {
    const src = await this.run('getStream', () => this.inner.getStream(key, opts));
    const down = this.down;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        down.inc(chunk.length);
        cb(null, chunk);
      },
    });
    pipeline(src, counter, () => undefined);
    return counter;
  }

  async put(key: string, body: PutBody, opts: PutOptions): Promise<PutResult> {
    const r = await this.run('put', () => this.inner.put(key, body, opts));
    this.up.inc(Buffer.isBuffer(body) ? body.length : body.size);
    return r;
  }

  copy(
    srcKey: string,
    dstKey: string,
    opts: { size: number; metadata?: Record<string, string>; contentType?: string; signal?: AbortSignal },
  ): Promise<PutResult> {
    return this.run('copy', () => this.inner.copy(srcKey, dstKey, opts));
  }

  delete(keys: readonly string[]): Promise<void> {
    return this.run('delete', () => this.inner.delete(keys));
  }

  list(prefix: string, opts?: ListOptions): Promise<ListPage> {
    return this.run('list', () => this.inner.list(prefix, opts));
  }
}
