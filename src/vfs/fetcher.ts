/**
 * Brings byte ranges of an object into the data cache with ranged GETs.
 *
 * The file is cut into aligned blocks; a missing block is fetched once however many readers want
 * it (in-flight map), consecutive missing blocks go out as one GET of up to `maxGetBytes`, and at
 * most `parallel` GETs run at once per share. Callers await only the blocks they need; read-ahead
 * blocks are fetched in the background.
 */
import type { Ino } from '../core/types.js';
import type { FsError } from '../core/errors.js';
import type { DataCache } from '../datacache/types.js';
import type { ObjectStore } from '../objectstore/types.js';
import { Limiter } from './limiter.js';
import { retryTransient } from './retry.js';

export interface RemoteSource {
  ino: Ino;
  key: string;
  etag: string | null;
  /** Size of the remote object; nothing at or past it is fetched. */
  size: number;
}

/** Large GETs in flight at once per share (each in its own pooled buffer). */
const GET_BUF_POOL = 4;
/**
 * Pooled GET buffers kept for reuse: the ones in flight plus those the data cache keeps to serve
 * the reads that follow (FillOptions.onRelease; 64 MiB = 8 x 8 MiB by default).
 */
const GET_BUF_KEEP = 12;
/** GETs at least this long use a pooled buffer. */
const POOLED_GET_MIN = 2 << 20;

export class Fetcher {
  private readonly inflight = new Map<string, Promise<void>>();
  private readonly limiter: Limiter;
  private readonly bigLimiter: Limiter;
  /**
   * Reused GET buffers of `maxGetBytes`: a fresh 8 MiB buffer per GET made V8 run a full
   * mark-compact every few GETs (external memory pressure), a quarter of a cold read's CPU.
   */
  private readonly bufs: Buffer[] = [];

  /**
   * @param allocAligned allocates page-aligned GET buffers (the io addon's alignedBuffer); the
   *   data cache may then write them with O_DIRECT. Without it, Buffer.allocUnsafeSlow.
   */
  constructor(
    private readonly cache: DataCache,
    private readonly store: ObjectStore,
    private readonly onBackendError: (op: string, key: string, err: unknown) => FsError,
    readonly blockSize = 1 << 20,
    private readonly maxGetBytes = 8 << 20,
    parallel = 16,
    private readonly allocAligned?: (size: number) => Buffer,
  ) {
    this.limiter = new Limiter(parallel);
    this.bigLimiter = new Limiter(Math.min(parallel, GET_BUF_POOL));
  }

  /**
   * Ensure [offset, offset+length) is present (clipped to the remote size). The blocks are
   * scheduled before this returns its promise (read-ahead scheduled after it queues behind them).
   */
  async ensure(src: RemoteSource, offset: number, length: number): Promise<void> {
    const end = Math.min(offset + length, src.size);
    await Promise.all(end > offset ? this.schedule(src, offset, end) : []);
  }

  /**
   * Start fetching up to `readahead` bytes after `end` in the background, from `from` on when the
   * window up to there was scheduled by an earlier call (a sequential reader's read-ahead moves by
   * one read at a time: going over the whole window again for each read walked 512 blocks per
   * 1 MiB read of a cold read, a sixth of the daemon's CPU). Returns where the scheduled window
   * ends: the `from` of the next call.
   */
  readahead(src: RemoteSource, end: number, readahead: number, from = 0): number {
    // The window ends on a whole-GET boundary (or at the end of the object) once it is wide
    // enough to keep half of it that way: while the reader waits for data, every read moves
    // end + readahead by one read's length, and scheduling up to there added a GET of that
    // length per read (in a cold read of 512 MiB, 89 of the 151 GETs were 1 MiB ones, which
    // cost the S3 server more CPU than the bytes themselves).
    let raEnd = Math.min(end + readahead, src.size);
    const aligned = Math.floor(raEnd / this.maxGetBytes) * this.maxGetBytes;
    if (raEnd < src.size && aligned >= end + readahead / 2) raEnd = aligned;
    const start = Math.max(end, from);
    if (raEnd > start) for (const p of this.schedule(src, start, raEnd, true)) p.catch(() => undefined);
    return Math.max(raEnd, from);
  }

  /**
   * Fetch the rest of the object in the background for a random reader. Unlike read-ahead, the
   * GET buffers are not lent to the data cache: each goes back to the pool as soon as its data is
   * in the cache file (written with O_DIRECT when the buffer is aligned). A random reader rarely
   * reads a whole 8 MiB range to its end, so buffers lent for it stayed in memory until the memory
   * budget pushed them out: the daemon's peak RSS in the benchmark's random reads was ~230 MiB
   * instead of ~150 MiB, and copying the data into the page cache instead cost 0.3 s of CPU per
   * 512 MiB.
   */
  fetchRest(src: RemoteSource): void {
    if (src.size > 0) for (const p of this.schedule(src, 0, src.size, false)) p.catch(() => undefined);
  }

  private schedule(src: RemoteSource, start: number, end: number, lend = true): Promise<void>[] {
    const B = this.blockSize;
    const first = Math.floor(start / B);
    const last = Math.floor((end - 1) / B);
    const waits: Promise<void>[] = [];
    let run: number[] = [];
    const flush = (): void => {
      if (run.length === 0) return;
      const blocks = run;
      run = [];
      const s = blocks[0]! * B;
      const e = Math.min((blocks[blocks.length - 1]! + 1) * B, src.size);
      // Large GETs run at most GET_BUF_POOL at a time, each in a pooled buffer: a fresh 8 MiB
      // buffer costs its page faults on every byte copied in (a quarter of a cold read's CPU).
      const big = e - s >= POOLED_GET_MIN && e - s <= this.maxGetBytes;
      const p = (big ? this.bigLimiter : this.limiter).run(() => this.fetch(src, s, e, lend));
      for (const b of blocks) {
        const k = `${src.ino}:${b}`;
        const q = p.finally(() => this.inflight.delete(k));
        q.catch(() => undefined);
        this.inflight.set(k, q);
      }
      waits.push(p);
    };
    for (let b = first; b <= last; b++) {
      const k = `${src.ino}:${b}`;
      const existing = this.inflight.get(k);
      if (existing) {
        flush();
        waits.push(existing);
        continue;
      }
      const bs = b * B;
      if (this.cache.missing(src.ino, bs, Math.min(B, src.size - bs), { count: false }).length === 0) {
        flush();
        continue;
      }
      run.push(b);
      if ((run.length + 1) * B > this.maxGetBytes) flush();
    }
    flush();
    return waits;
  }

  private async fetch(src: RemoteSource, start: number, end: number, lend: boolean): Promise<void> {
    // Only large (sequential) GETs take a pooled buffer: a small random-read GET allocating a
    // whole maxGetBytes buffer when the pool is empty would cost more than it saves.
    const len = end - start;
    const scratch =
      len >= POOLED_GET_MIN && len <= this.maxGetBytes
        ? (this.bufs.pop() ??
          (this.allocAligned
            ? this.allocAligned(this.maxGetBytes)
            : Buffer.allocUnsafeSlow(this.maxGetBytes)))
        : undefined;
    let lent = false;
    try {
      let data: Buffer;
      try {
        data = await retryTransient(() =>
          this.store.getRange(src.key, start, end, {
            ...(src.etag ? { ifMatch: src.etag } : {}),
            ...(scratch !== undefined ? { scratch } : {}),
          }),
        );
      } catch (e) {
        throw this.onBackendError('get', src.key, e);
      }
      if (data.length === 0) return;
      const pooled = scratch !== undefined && data.buffer === scratch.buffer;
      const aligned = pooled && this.allocAligned !== undefined && data.byteOffset === scratch.byteOffset;
      if (!pooled || !lend) {
        await this.cache.fill(src.ino, start, data, aligned ? { aligned } : undefined);
        return;
      }
      // The pooled buffer is lent to the data cache, which reads the range from it until it gives
      // it back (the reader that asked for this range comes next).
      lent = true;
      await this.cache.fill(src.ino, start, data, {
        aligned,
        onRelease: () => this.giveBack(scratch),
      });
    } finally {
      if (scratch !== undefined && !lent) this.giveBack(scratch);
    }
  }

  private giveBack(buf: Buffer): void {
    if (this.bufs.length < GET_BUF_KEEP) this.bufs.push(buf);
  }
}
