/**
 * DiskDataCache: the DataCache on a local directory, one sparse cache file per inode.
 *
 * Layout: `<dir>/data/<ino % 256 as 2 lowercase hex digits>/<ino>`. Everything under `<dir>/data/`
 * belongs to this class: files without an index entry are deleted at start-up.
 *
 * Invariants (per entry):
 *  - present, dirty, unsynced are range lists (see ranges.ts) inside [0, size); dirty ⊆ present.
 *  - The physical cache file is never longer than the logical size, so bytes past the physical
 *    end read as zeros; growing (truncate up) extends the file sparsely to the new size, so every
 *    present range is backed by the file (recovery relies on this: a present range past the end
 *    of the file after a crash is lost data).
 *  - The index row (`durable`) only claims what is on stable storage: persist() datasyncs before
 *    saving, markClean() saves only ranges that were datasynced, and before bytes that the row
 *    claims to be clean (= equal to the object) are overwritten or truncated away, the row is
 *    first re-saved without its clean ranges (once per persist cycle, not per write).
 *
 * Lock/ordering rules:
 *  - Every mutation of an entry (fill, write, truncate, persist, drop) runs under the entry's
 *    async mutex (`mutate`), so they are serialised per inode. Reads take no lock.
 *  - Range bookkeeping is updated synchronously right after the physical I/O completes, so a read
 *    that sees a range present always finds its bytes in the file.
 *  - An entry with an operation in flight (`active` > 0), with dirty/modified data, or pinned is
 *    never evicted. Eviction and drop remove the entry from memory synchronously and delete the
 *    file afterwards; opening a file for an inode waits for a pending deletion of that inode.
 *  - File handles live in a small LRU pool with reference counts: a handle in use is never
 *    closed; a retired handle closes on its last release.
 *
 * Hits and misses are counted by missing(): a call whose (size-clipped) range is non-empty counts
 * one hit when nothing is missing and one miss otherwise (callers pass { count: false } for
 * internal checks, so one client read is one sample).
 */
import {
  close as fsClose,
  closeSync,
  constants as fsc,
  open as fsOpen,
  fdatasync as fsFdatasync,
  ftruncate as fsFtruncate,
  mkdirSync,
  openSync,
  promises as fsp,
  read as fsRead,
  write as fsWrite,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { FsError, errMessage } from '../core/errors.js';
import type { ByteRange, FileRange, Ino } from '../core/types.js';
import { getLogger, type Logger } from '../log/index.js';
import {
  cloneRanges,
  containsRange,
  intersectRanges,
  missingRanges,
  normalizeRanges,
  overlapsRange,
  rangesEqual,
  subtractRanges,
  totalBytes,
  truncateRanges,
  unionRanges,
  type RangeList,
} from './ranges.js';
import type { CacheEntryState, CacheIndex, CacheUsage, DataCache, FillOptions } from './types.js';

export interface DiskDataCacheOptions {
  /** Cache directory of the share; cache files go to `<dir>/data/`. */
  dir: string;
  /** Capacity in bytes (present bytes across all entries). */
  limitBytes: number;
  index: CacheIndex;
  /** Eviction starts when used bytes exceed this fraction of the limit. Default 0.9. */
  highWatermark?: number;
  /** Eviction stops when used bytes are at or below this fraction of the limit. Default 0.75. */
  lowWatermark?: number;
  logger?: Logger;
  /** Open file handles kept in the LRU pool. Default 256. */
  maxOpenFiles?: number;
  /** Clock for lastAccessMs (tests). Default Date.now. */
  now?: () => number;
  /**
   * Writes of at most this many bytes run on the JavaScript thread, and so do opening and closing
   * a cache file (and creating its directory); 0: all file I/O on libuv's thread pool. Default
   * 64 KiB. A pwrite into the page cache or an open takes microseconds; handing it to the thread
   * pool and back costs two thread wake-ups, which on a virtual machine with idle vCPUs cost
   * 100-300 us each and were most of a small file's write latency. Reads, fsync, truncate and big
   * writes stay on the thread pool.
   */
  inlineIoMax?: number;
  /**
   * Most bytes of fetched data kept in memory after a fill that asked for it (`FillOptions.
   * onRelease`), to serve the reads that follow without going back to the cache file. Default
   * 64 MiB; 0 keeps nothing.
   */
  memoryBytes?: number;
  /**
   * Write fills whose buffers the caller marked aligned (`FillOptions.aligned`) with O_DIRECT when
   * they are kept in memory or not lent at all (default true). Kept data is read from memory, so
   * copying it into the page cache as well only costs CPU and memory. A caller that does not lend
   * aligned data fetched it ahead of a reader that will read little of it soon (the fetcher's
   * whole-file fetch for random reads). On a file system without O_DIRECT (tmpfs before Linux
   * 6.6, some network file systems) the first refusal turns it off.
   */
  directFill?: boolean;
  /**
   * How long a write waits for space when dirty or pinned data fills the cache (uploads drain
   * it), before it fails with ENOSPC. Default 60 s.
   */
  writeWaitMs?: number;
}

interface Entry {
  readonly ino: Ino;
  size: number;
  present: ByteRange[];
  dirty: ByteRange[];
  modified: boolean;
  lastAccessMs: number;
  version: number;
  presentBytes: number;
  dirtyBytes: number;
  /** Present ranges whose bytes may not be on stable storage yet (or are being rewritten). */
  unsynced: ByteRange[];
  /** The row last saved to the index (undefined: no row). */
  durable: CacheEntryState | undefined;
  /** In-memory state differs from the saved row (close() persists such entries). */
  changed: boolean;
  /** The cache file exists. */
  hasFile: boolean;
  /** The directory entry of the cache file is durable (file not created by this process, or synced). */
  dirSynced: boolean;
  /** Tail of the per-entry mutex chain. */
  tail: Promise<void>;
  /** Operations in flight or waiting (reads included). */
  active: number;
  /** Fetched data kept in memory (disjoint, equal to the file's bytes there); see fill(). */
  mem: MemSeg[] | undefined;
}

/** Bytes of [start, end) of the file held in `buf` (from a fill), given back with `release`. */
interface MemSeg {
  start: number;
  end: number;
  buf: Buffer;
  release: () => void;
}

/** O_DIRECT transfers must start and end on this boundary (and their memory start on it). */
const DIRECT_ALIGN = 4096;

const MAX_POS = Number.MAX_SAFE_INTEGER;

function fanout(ino: Ino): string {
  return (ino % 256).toString(16).padStart(2, '0');
}

function isNonNegInt(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function copyState(s: CacheEntryState): CacheEntryState {
  return {
    size: s.size,
    present: cloneRanges(s.present),
    dirty: cloneRanges(s.dirty),
    modified: s.modified,
    lastAccessMs: s.lastAccessMs,
  };
}

function fmtRanges(list: RangeList): string {
  const shown = list.slice(0, 8).map((r) => `[${r.start},${r.end})`);
  return list.length > 8 ? `${shown.join(' ')} …(${list.length} ranges)` : shown.join(' ');
}

/**
 * An open cache file: a plain descriptor (so that it can be opened without the thread pool) with
 * the few asynchronous calls the cache needs, on the callback API (cheaper than FileHandle's).
 */
class CacheFile {
  private closed = false;

  /** `inline`: opened and closed on the JavaScript thread (so opens never outrun closes). */
  constructor(
    readonly fd: number,
    private readonly inline: boolean,
  ) {}

  static async open(file: string, inline: boolean): Promise<CacheFile> {
    const flags = fsc.O_RDWR | fsc.O_CREAT; // libuv adds O_CLOEXEC
    if (inline) return new CacheFile(openSync(file, flags, 0o600), true);
    return new CacheFile(await promised<number>((cb) => fsOpen(file, flags, 0o600, cb)), false);
  }

  datasync(): Promise<void> {
    return promised<void>((cb) => fsFdatasync(this.fd, cb));
  }

  truncate(len: number): Promise<void> {
    return promised<void>((cb) => fsFtruncate(this.fd, len, cb));
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    if (!this.inline) return promised<void>((cb) => fsClose(this.fd, cb));
    try {
      closeSync(this.fd);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }
}

function promised<T>(start: (cb: (err: NodeJS.ErrnoException | null, v?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => start((err, v) => (err ? reject(err) : resolve(v as T))));
}

/** pwrite through the callback API (cheaper per call than FileHandle.write). */
function pwrite(fd: number, buf: Buffer, off: number, len: number, position: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fsWrite(fd, buf, off, len, position, (err, n) => (err ? reject(err) : resolve(n))),
  );
}

async function writeFully(fh: CacheFile, data: Buffer, position: number, inline = false): Promise<void> {
  let done = 0;
  if (inline) {
    while (done < data.length) {
      const n = writeSync(fh.fd, data, done, data.length - done, position + done);
      if (n <= 0) throw new Error(`short write at ${position + done}`);
      done += n;
    }
    return;
  }
  while (done < data.length) {
    const n = await pwrite(fh.fd, data, done, data.length - done, position + done);
    if (n <= 0) throw new Error(`short write at ${position + done}`);
    done += n;
  }
}

/**
 * Write `data` (page-aligned memory) at `position` (a multiple of DIRECT_ALIGN) through a second
 * descriptor opened with O_DIRECT: the whole DIRECT_ALIGN multiples that way, a shorter tail
 * through `fh`. Throws what open or write threw (EINVAL: the file system has no O_DIRECT).
 */
async function writeDirect(file: string, fh: CacheFile, data: Buffer, position: number): Promise<void> {
  const body = data.length - (data.length % DIRECT_ALIGN);
  if (body > 0) {
    const fd = await promised<number>((cb) => fsOpen(file, fsc.O_WRONLY | fsc.O_DIRECT, cb));
    try {
      let done = 0;
      while (done < body) {
        const n = await pwrite(fd, data, done, body - done, position + done);
        if (n <= 0 || n % DIRECT_ALIGN !== 0) throw new Error(`short direct write at ${position + done}`);
        done += n;
      }
    } finally {
      await promised<void>((cb) => fsClose(fd, cb));
    }
  }
  if (body < data.length) await writeFully(fh, data.subarray(body), position + body);
}

/** pread through the callback API: FileHandle.read costs a promise and more per call. */
function pread(fd: number, buf: Buffer, off: number, len: number, position: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fsRead(fd, buf, off, len, position, (err, n) => (err ? reject(err) : resolve(n))),
  );
}

/** Fill `buf` from `position`; bytes past the end of the file read as zero. */
async function readFully(fh: CacheFile, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const n = await pread(fh.fd, buf, done, buf.length - done, position + done);
    if (n === 0) {
      buf.fill(0, done);
      return;
    }
    done += n;
  }
}

interface HandleSlot {
  ready: Promise<CacheFile>;
  refs: number;
  retired: boolean;
  closing: Promise<void> | undefined;
}

interface Lease {
  fh: CacheFile;
  release(): void;
}

/** LRU pool of open cache files with reference counts. */
class HandlePool {
  private readonly slots = new Map<Ino, HandleSlot>();
  private readonly closing = new Set<Promise<void>>();

  constructor(
    private readonly max: number,
    private readonly log: Logger,
  ) {}

  get size(): number {
    return this.slots.size;
  }

  async acquire(ino: Ino, open: () => Promise<CacheFile>): Promise<Lease> {
    let slot = this.slots.get(ino);
    if (slot) {
      this.slots.delete(ino);
      this.slots.set(ino, slot);
    } else {
      const s: HandleSlot = { ready: open(), refs: 0, retired: false, closing: undefined };
      s.ready.catch(() => undefined);
      this.slots.set(ino, s);
      slot = s;
    }
    slot.refs++;
    this.trim();
    const held = slot;
    let fh: CacheFile;
    try {
      fh = await held.ready;
    } catch (e) {
      held.refs--;
      if (this.slots.get(ino) === held) this.slots.delete(ino);
      throw e;
    }
    let released = false;
    return {
      fh,
      release: () => {
        if (released) return;
        released = true;
        held.refs--;
        if (held.refs > 0) return;
        if (held.retired) void this.closeSlot(held);
        else if (this.slots.size > this.max) this.trim();
      },
    };
  }

  /** Forget the handle of `ino`; it closes now, or on its last release. */
  retire(ino: Ino): Promise<void> {
    const slot = this.slots.get(ino);
    if (!slot) return Promise.resolve();
    this.slots.delete(ino);
    slot.retired = true;
    return slot.refs === 0 ? this.closeSlot(slot) : Promise.resolve();
  }

  async closeAll(): Promise<void> {
    for (const ino of [...this.slots.keys()]) void this.retire(ino);
    while (this.closing.size > 0) await Promise.all([...this.closing]);
  }

  private trim(): void {
    if (this.slots.size <= this.max) return;
    const victims: Ino[] = [];
    let excess = this.slots.size - this.max;
    for (const [ino, slot] of this.slots) {
      if (excess === 0) break;
      if (slot.refs === 0) {
        victims.push(ino);
        excess--;
      }
    }
    for (const ino of victims) void this.retire(ino);
  }

  private closeSlot(slot: HandleSlot): Promise<void> {
    if (!slot.closing) {
      const p = slot.ready
        .then(
          (fh) => fh.close(),
          () => undefined,
        )
        .catch((err: unknown) => this.log.warn('closing a cache file failed', { err }))
        .finally(() => this.closing.delete(p));
      slot.closing = p;
      this.closing.add(p);
    }
    return slot.closing;
  }
}

export class DiskDataCache implements DataCache {
  readonly dir: string;
  readonly dataDir: string;
  readonly limitBytes: number;
  private readonly highBytes: number;
  private readonly writeWaitMs: number;
  private readonly lowBytes: number;
  private readonly index: CacheIndex;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly handles: HandlePool;
  /** Entries in LRU order: least recently used first (touch() moves an entry to the end). */
  private readonly entries = new Map<Ino, Entry>();
  private readonly pins = new Map<Ino, number>();
  private readonly deleting = new Map<Ino, Promise<void>>();
  private readonly madeDirs = new Set<string>();
  private readonly inlineIoMax: number;
  private readonly memLimit: number;
  private memBytes = 0;
  /** Every kept fill segment and its entry, oldest first. */
  private readonly kept = new Map<MemSeg, Entry>();
  /** O_DIRECT fills: on until a file system refuses them. */
  private direct: boolean;
  private dataDirSynced = true;
  private usedBytes = 0;
  private dirtyBytes = 0;
  private hits = 0;
  private misses = 0;
  private versionCounter = 0;
  private inflight = 0;
  private idleWaiters: Array<() => void> = [];
  private state: 'new' | 'opening' | 'open' | 'closing' | 'closed' = 'new';

  constructor(opts: DiskDataCacheOptions) {
    const high = opts.highWatermark ?? 0.9;
    const low = opts.lowWatermark ?? 0.75;
    if (!(opts.limitBytes >= 0))
      throw new RangeError(`datacache: limitBytes must be >= 0 (got ${opts.limitBytes})`);
    if (!(low > 0 && low <= high && high <= 1)) {
      throw new RangeError(`datacache: need 0 < lowWatermark <= highWatermark <= 1 (got ${low}, ${high})`);
    }
    this.dir = opts.dir;
    this.dataDir = path.join(opts.dir, 'data');
    this.inlineIoMax = Math.max(0, Math.floor(opts.inlineIoMax ?? 64 * 1024));
    this.memLimit = Math.max(0, opts.memoryBytes ?? 64 << 20);
    this.direct = opts.directFill ?? true;
    this.limitBytes = opts.limitBytes;
    this.highBytes = opts.limitBytes * high;
    this.writeWaitMs = opts.writeWaitMs ?? 60_000;
    this.lowBytes = opts.limitBytes * low;
    this.index = opts.index;
    this.log = opts.logger ?? getLogger({ component: 'datacache' });
    this.now = opts.now ?? Date.now;
    this.handles = new HandlePool(opts.maxOpenFiles ?? 256, this.log);
  }

  /** Construct and init(). */
  static async open(opts: DiskDataCacheOptions): Promise<DiskDataCache> {
    const c = new DiskDataCache(opts);
    await c.init();
    return c;
  }

  /** Number of cache files currently held open (diagnostics, tests). */
  get openFiles(): number {
    return this.handles.size;
  }

  // ---- start-up and recovery -----------------------------------------------------------------

  /**
   * Create `<dir>/data/`, load the index (repairing entries whose cache file lost data), delete
   * orphan files and evict down to the low watermark if over the high one.
   */
  async init(): Promise<void> {
    if (this.state !== 'new') throw new Error('datacache: init() called twice');
    this.state = 'opening';
    await fsp.mkdir(this.dataDir, { recursive: true });
    const files = await this.scanFiles();
    const loaded = [...this.index.loadAll()].sort((a, b) => a[1].lastAccessMs - b[1].lastAccessMs);
    for (const [ino, st] of loaded) {
      const exists = files.delete(ino);
      await this.recover(ino, st, exists);
    }
    for (const ino of files.keys()) {
      this.log.info('removing orphan cache file', { ino });
      await fsp.rm(this.filePath(ino), { force: true });
    }
    this.state = 'open';
    this.log.debug('cache loaded', {
      entries: this.entries.size,
      usedBytes: this.usedBytes,
      dirtyBytes: this.dirtyBytes,
    });
    await this.evictIfNeeded();
  }

  /** Well-placed cache files by inode; anything else under data/ that is a file is deleted. */
  private async scanFiles(): Promise<Map<Ino, true>> {
    const found = new Map<Ino, true>();
    for (const d of await fsp.readdir(this.dataDir, { withFileTypes: true })) {
      const p = path.join(this.dataDir, d.name);
      if (d.isDirectory() && /^[0-9a-f]{2}$/.test(d.name)) {
        this.madeDirs.add(p);
        for (const f of await fsp.readdir(p, { withFileTypes: true })) {
          const fp = path.join(p, f.name);
          const ino = /^(0|[1-9][0-9]*)$/.test(f.name) ? Number(f.name) : NaN;
          if (f.isFile() && Number.isSafeInteger(ino) && fanout(ino) === d.name) {
            found.set(ino, true);
          } else if (f.isFile()) {
            this.log.info('removing stray file in cache directory', { file: fp });
            await fsp.rm(fp, { force: true });
          } else {
            this.log.warn('unexpected entry in cache directory left alone', { file: fp });
          }
        }
      } else if (d.isFile()) {
        this.log.info('removing stray file in cache directory', { file: p });
        await fsp.rm(p, { force: true });
      } else {
        this.log.warn('unexpected entry in cache directory left alone', { file: p });
      }
    }
    return found;
  }

  private async recover(ino: Ino, st: CacheEntryState, exists: boolean): Promise<void> {
    const file = this.filePath(ino);
    if (!isNonNegInt(ino) || !isNonNegInt(st.size)) {
      this.log.error('invalid cache index row dropped', { ino, size: st.size });
      this.index.remove(ino);
      await fsp.rm(file, { force: true });
      return;
    }
    const size = st.size;
    const present0 = truncateRanges(normalizeRanges(st.present), size);
    const dirty0 = intersectRanges(truncateRanges(normalizeRanges(st.dirty), size), present0);
    let physLen = 0;
    if (exists) {
      physLen = (await fsp.stat(file)).size;
      if (physLen > size) {
        // Writes after the last persist extended the file: restore "file never longer than size".
        await fsp.truncate(file, size);
        physLen = size;
      }
    }
    const present = truncateRanges(present0, physLen);
    const dirty = intersectRanges(dirty0, present);
    const lostDirty = subtractRanges(dirty0, dirty);
    const lostClean = subtractRanges(subtractRanges(present0, present), lostDirty);
    if (lostDirty.length > 0) {
      this.log.error('cache file lost dirty (not uploaded) data; keeping what the file still backs', {
        ino,
        file,
        fileBytes: physLen,
        lostDirtyBytes: totalBytes(lostDirty),
        lostDirty: fmtRanges(lostDirty),
      });
    }
    if (lostClean.length > 0) {
      this.log.warn('cache file shorter than its index entry; dropping unbacked clean ranges', {
        ino,
        fileBytes: physLen,
        lostCleanBytes: totalBytes(lostClean),
      });
    }
    const state: CacheEntryState = {
      size,
      present,
      dirty,
      modified: st.modified,
      lastAccessMs: st.lastAccessMs,
    };
    if (!rangesEqual(present, st.present) || !rangesEqual(dirty, st.dirty)) this.index.save(ino, state);
    const e: Entry = {
      ino,
      size,
      present,
      dirty,
      modified: st.modified,
      lastAccessMs: st.lastAccessMs,
      version: ++this.versionCounter,
      presentBytes: 0,
      dirtyBytes: 0,
      unsynced: [],
      durable: copyState(state),
      changed: false,
      hasFile: exists,
      dirSynced: true,
      tail: Promise.resolve(),
      active: 0,
      mem: undefined,
    };
    this.setRanges(e, present, dirty);
    this.entries.set(ino, e);
  }

  // ---- DataCache -----------------------------------------------------------------------------

  /**
   * Start tracking `ino` with logical size `size` (nothing present, nothing persisted yet). If an
   * entry exists this only marks it recently used: the size is NOT changed (use truncate(), or
   * drop() + ensure() when the remote object changed).
   */
  ensure(ino: Ino, size: number): void {
    this.assertOpen('ensure');
    if (!isNonNegInt(ino)) throw this.err('EINVAL', 'ensure', ino, `invalid inode number ${ino}`);
    if (!isNonNegInt(size)) throw this.err('EINVAL', 'ensure', ino, `invalid size ${size}`);
    const existing = this.entries.get(ino);
    if (existing) {
      this.touch(existing);
      return;
    }
    this.entries.set(ino, {
      ino,
      size,
      present: [],
      dirty: [],
      modified: false,
      lastAccessMs: this.now(),
      version: ++this.versionCounter,
      presentBytes: 0,
      dirtyBytes: 0,
      unsynced: [],
      durable: undefined,
      changed: false,
      hasFile: false,
      dirSynced: true,
      tail: Promise.resolve(),
      active: 0,
      mem: undefined,
    });
  }

  has(ino: Ino): boolean {
    return this.entries.has(ino);
  }

  size(ino: Ino): number | undefined {
    return this.entries.get(ino)?.size;
  }

  /**
   * Counts one hit (result empty) or one miss (result non-empty) when the clipped range is
   * non-empty, unless `opts.count` is false.
   */
  missing(ino: Ino, offset: number, length: number, opts?: { count?: boolean }): ByteRange[] {
    const e = this.need(ino, 'missing');
    const want = this.clip(e, offset, length, 'missing');
    if (want.end <= want.start) return [];
    const m = missingRanges(want, e.present);
    if (opts?.count !== false) {
      if (m.length > 0) this.misses++;
      else this.hits++;
    }
    return m;
  }

  /**
   * Write fetched bytes as clean data over the parts of [offset, offset+data.length) that are,
   * at the time of the write, below the size and not present (so never over dirty or newer bytes).
   * A fill for an inode that is not tracked (e.g. dropped meanwhile) is ignored.
   *
   * With `opts.onRelease`, the cache may keep `data` (not a copy) and serve reads of that range
   * from it until it calls onRelease — exactly once, possibly before fill() returns: when the
   * range has been read to its end, when it is written or truncated, when the entry goes, at
   * close(), or at once when it does not keep it (only a range that was missing as a whole is
   * kept; over the memory budget, the data kept longest is given back first). Kept data that the caller marked `aligned` is written with
   * O_DIRECT (see DiskDataCacheOptions.directFill).
   */
  async fill(ino: Ino, offset: number, data: Buffer, opts?: FillOptions): Promise<void> {
    const release = opts?.onRelease;
    let kept = false;
    try {
      this.assertOpen('fill');
      if (!isNonNegInt(offset) || offset + data.length > MAX_POS)
        throw this.err('EINVAL', 'fill', ino, `invalid offset ${offset}`);
      const e = this.entries.get(ino);
      if (!e || data.length === 0) return;
      let grew = false;
      // Make room first (clean, unpinned data only): reads never wait, but they should not push
      // the cache past its limit when something can be evicted.
      if (this.usedBytes + data.length > this.limitBytes) this.evictFor(data.length);
      await this.mutate(e, 'fill', 'ignore', async () => {
        const want: ByteRange = { start: offset, end: Math.min(offset + data.length, e.size) };
        const segs = missingRanges(want, e.present);
        if (segs.length === 0) return;
        // Only a range that is missing as a whole, below the size, is written in one piece (kept,
        // or with O_DIRECT): otherwise just the missing segments are written, so that dirty bytes
        // and the end of the file stay as they are.
        const whole =
          want.end === offset + data.length &&
          segs.length === 1 &&
          segs[0]!.start === offset &&
          segs[0]!.end === want.end;
        const keep = release !== undefined && whole && data.length <= this.memLimit;
        const direct =
          whole &&
          (keep || release === undefined) &&
          this.direct &&
          opts?.aligned === true &&
          offset % DIRECT_ALIGN === 0;
        await this.withFile(e, 'fill', async (fh) => {
          if (direct) {
            try {
              await writeDirect(this.filePath(ino), fh, data, offset);
              return;
            } catch (err) {
              if ((err as { code?: unknown } | null)?.code !== 'EINVAL') throw err;
              this.direct = false;
              const msg =
                'datacache: the cache file system refuses O_DIRECT; fills go through the page cache';
              this.log.info(msg, { dir: this.dataDir });
            }
          }
          for (const s of segs)
            await writeFully(fh, data.subarray(s.start - offset, s.end - offset), s.start);
        });
        this.setRanges(e, unionRanges(e.present, segs), e.dirty);
        e.unsynced = unionRanges(e.unsynced, segs);
        e.changed = true;
        this.touch(e);
        grew = true;
        if (keep && release !== undefined && this.entries.get(ino) === e) {
          // Over the budget, the data kept longest goes first (a reader that stopped halfway).
          for (const [m, owner] of this.kept) {
            if (this.memBytes + data.length <= this.memLimit) break;
            this.dropMem(owner, m);
          }
          const m: MemSeg = { start: offset, end: want.end, buf: data, release };
          (e.mem ??= []).push(m);
          this.kept.set(m, e);
          this.memBytes += data.length;
          kept = true;
        }
      });
      if (grew) await this.evictIfNeeded();
    } finally {
      if (!kept) release?.();
    }
  }

  /** Copy [r.start, r.end) into `buf` from kept fill data when all of it is there (true). */
  private readMem(e: Entry, r: ByteRange, buf: Buffer): boolean {
    const mem = e.mem;
    if (mem === undefined) return false;
    let pos = r.start;
    const used: MemSeg[] = [];
    while (pos < r.end) {
      const m = mem.find((x) => x.start <= pos && pos < x.end);
      if (m === undefined) return false;
      used.push(m);
      pos = m.end;
    }
    for (const m of used) {
      const from = Math.max(r.start, m.start);
      const to = Math.min(r.end, m.end);
      m.buf.copy(buf, from - r.start, from - m.start, to - m.start);
      // Read to its end (sequential readers): the buffer goes back to its owner.
      if (to === m.end) this.dropMem(e, m);
    }
    return true;
  }

  /** Give back kept fill data: `only` that segment, those overlapping `overlap`, or all. */
  private dropMem(e: Entry, only?: MemSeg, overlap?: ByteRange): void {
    const mem = e.mem;
    if (mem === undefined) return;
    const gone = mem.filter(
      (m) =>
        (only === undefined || m === only) &&
        (overlap === undefined || (m.start < overlap.end && overlap.start < m.end)),
    );
    if (gone.length === 0) return;
    e.mem = gone.length === mem.length ? undefined : mem.filter((m) => !gone.includes(m));
    for (const m of gone) {
      this.kept.delete(m);
      this.memBytes -= m.buf.length;
      try {
        m.release();
      } catch (err) {
        this.log.error('datacache: releasing a fill buffer failed', { ino: e.ino, err });
      }
    }
  }

  async read(ino: Ino, offset: number, length: number, scratch?: Buffer): Promise<Buffer> {
    const e = this.need(ino, 'read');
    const want = this.clip(e, offset, length, 'read');
    if (want.end <= want.start) return Buffer.alloc(0);
    if (!containsRange(e.present, want)) {
      const gaps = missingRanges(want, e.present);
      throw this.err('EIO', 'read', ino, `inode ${ino}: bytes not in cache: ${fmtRanges(gaps)}`);
    }
    this.touch(e);
    const n = want.end - want.start;
    const buf = scratch !== undefined && scratch.length >= n ? scratch.subarray(0, n) : Buffer.allocUnsafe(n);
    if (this.readMem(e, want, buf)) return buf;
    this.begin(e);
    try {
      await this.withFile(e, 'read', (fh) => readFully(fh, buf, want.start));
      // Kept data this read went past (it was only partly in memory) is not needed any more.
      if (e.mem !== undefined)
        for (const m of [...e.mem]) if (m.start < want.end && m.end <= want.end) this.dropMem(e, m);
      return buf;
    } finally {
      this.end(e);
    }
  }

  async borrow(ino: Ino, offset: number, length: number): Promise<FileRange | undefined> {
    const e = this.need(ino, 'read');
    const want = this.clip(e, offset, length, 'read');
    if (want.end <= want.start || !e.hasFile || !containsRange(e.present, want)) return undefined;
    // Kept fill data is read from memory (the file may not have it in the page cache).
    if (e.mem?.some((m) => m.start < want.end && want.start < m.end)) return undefined;
    for (let d = this.deleting.get(e.ino); d !== undefined; d = this.deleting.get(e.ino)) await d;
    if (this.entries.get(e.ino) !== e) return undefined;
    this.touch(e);
    this.begin(e);
    let lease: Lease;
    try {
      lease = await this.handles.acquire(e.ino, () => this.openFile(e.ino));
    } catch (err) {
      this.end(e);
      throw this.ioError('read', e.ino, err);
    }
    // A truncation may have run while the file was being opened.
    const end = Math.min(want.end, e.size);
    if (end <= want.start || !containsRange(e.present, { start: want.start, end })) {
      lease.release();
      this.end(e);
      return undefined;
    }
    let lent = true;
    return {
      fd: lease.fh.fd,
      offset: want.start,
      length: end - want.start,
      release: () => {
        if (!lent) return;
        lent = false;
        lease.release();
        this.end(e);
      },
    };
  }

  async write(ino: Ino, offset: number, data: Buffer): Promise<void> {
    const e = this.need(ino, 'write');
    if (!isNonNegInt(offset) || offset + data.length > MAX_POS)
      throw this.err('EINVAL', 'write', ino, `invalid offset ${offset}`);
    if (data.length === 0) return;
    // Only a write that would exceed the limit yields here: otherwise operations on the inode
    // register in call order (no extra await).
    if (this.usedBytes + data.length > this.limitBytes) await this.reserveSpace(e, offset, data.length);
    await this.mutate(e, 'write', 'throw', async () => {
      const end = offset + data.length;
      const written: ByteRange = { start: offset, end };
      // A write past the size also makes the gap [size, offset) present: it reads as zeros
      // because the file is never longer than the size.
      const added: ByteRange = { start: Math.min(offset, e.size), end };
      this.beforeOverwrite(e, written);
      e.unsynced = unionRanges(e.unsynced, [written]);
      try {
        const inline = data.length <= this.inlineIoMax;
        await this.withFile(e, 'write', (fh) => writeFully(fh, data, offset, inline));
      } catch (err) {
        await this.afterFailedWrite(e, written);
        throw err;
      }
      this.setRanges(e, unionRanges(e.present, [added]), unionRanges(e.dirty, [added]));
      e.unsynced = unionRanges(e.unsynced, [added]);
      e.size = Math.max(e.size, end);
      e.modified = true;
      e.version = ++this.versionCounter;
      e.changed = true;
      this.touch(e);
    });
    await this.evictIfNeeded();
  }

  /** A failed pwrite may have changed part of [start, end): none of it can be trusted as clean. */
  private async afterFailedWrite(e: Entry, r: ByteRange): Promise<void> {
    const clean = subtractRanges(intersectRanges(e.present, [r]), e.dirty);
    this.setRanges(e, subtractRanges(e.present, clean), e.dirty);
    e.unsynced = truncateRanges(e.unsynced, e.size);
    e.version = ++this.versionCounter;
    e.changed = true;
    if (r.end > e.size && e.hasFile) {
      try {
        await this.withFile(e, 'write', (fh) => fh.truncate(e.size));
      } catch (err) {
        this.log.error('could not restore cache file length after a failed write', { ino: e.ino, err });
      }
    }
  }

  async truncate(ino: Ino, size: number): Promise<void> {
    const e = this.need(ino, 'truncate');
    if (!isNonNegInt(size)) throw this.err('EINVAL', 'truncate', ino, `invalid size ${size}`);
    let grew = false;
    await this.mutate(e, 'truncate', 'throw', async () => {
      const old = e.size;
      if (size < old) {
        const cut: ByteRange = { start: size, end: MAX_POS };
        this.beforeOverwrite(e, cut);
        e.unsynced = unionRanges(e.unsynced, [{ start: size, end: old }]);
        if (e.hasFile) await this.withFile(e, 'truncate', (fh) => fh.truncate(size));
        this.setRanges(e, truncateRanges(e.present, size), truncateRanges(e.dirty, size));
        e.unsynced = truncateRanges(e.unsynced, size);
        e.size = size;
        e.modified = true;
      } else if (size > old) {
        // Extend the file sparsely so the new zeros are backed by it (see the invariants above).
        await this.withFile(e, 'truncate', (fh) => fh.truncate(size));
        const added = [{ start: old, end: size }];
        this.setRanges(e, unionRanges(e.present, added), unionRanges(e.dirty, added));
        e.unsynced = unionRanges(e.unsynced, added);
        e.size = size;
        e.modified = true;
        grew = true;
      }
      e.version = ++this.versionCounter;
      e.changed = true;
      this.touch(e);
    });
    if (grew) await this.evictIfNeeded();
  }

  isDirty(ino: Ino): boolean {
    const e = this.entries.get(ino);
    return e !== undefined && (e.dirty.length > 0 || e.modified);
  }

  /** 0 for an inode that is not tracked; versions are unique within the process (never reused). */
  version(ino: Ino): number {
    return this.entries.get(ino)?.version ?? 0;
  }

  /**
   * Clears dirty ranges and `modified` if the version is unchanged, and saves the row (with only
   * the present ranges known to be on stable storage; call persist() to make the rest durable).
   */
  markClean(ino: Ino, version: number): boolean {
    const e = this.entries.get(ino);
    if (!e || e.version !== version) return false;
    this.setRanges(e, e.present, []);
    e.modified = false;
    this.saveRow(e, {
      size: e.size,
      present: subtractRanges(e.present, e.unsynced),
      dirty: [],
      modified: false,
      lastAccessMs: e.lastAccessMs,
    });
    e.changed = e.unsynced.length > 0;
    this.evictIfNeeded().catch((err: unknown) => this.log.error('eviction failed', { err }));
    this.wakeSpaceWaiters();
    return true;
  }

  /** datasync the cache file, then save the entry's full state to the index. No-op if untracked. */
  async persist(ino: Ino, opts: { sync?: boolean } = {}): Promise<void> {
    this.assertOpen('persist');
    const e = this.entries.get(ino);
    if (!e) return;
    if (opts.sync === false) {
      // Close in cache mode: the range state is saved (it survives a crash of the daemon, whose
      // written pages stay in the kernel's page cache) without waiting for the disk.
      await this.mutate(e, 'persist', 'ignore', () => {
        this.saveRow(e, this.stateOf(e));
        return Promise.resolve();
      });
      return;
    }
    await this.mutate(e, 'persist', 'ignore', () => this.persistLocked(e));
  }

  private async persistLocked(e: Entry): Promise<void> {
    if (e.hasFile) {
      await this.withFile(e, 'persist', (fh) => fh.datasync());
      if (!e.dirSynced) {
        await this.syncDirs(path.dirname(this.filePath(e.ino)));
        e.dirSynced = true;
      }
    }
    e.unsynced = [];
    this.saveRow(e, this.stateOf(e));
    e.changed = false;
  }

  filePath(ino: Ino): string {
    return path.join(this.dataDir, fanout(ino), String(ino));
  }

  /** Waits for in-flight mutations of the inode, then forgets it and deletes its file and row. */
  async drop(ino: Ino): Promise<void> {
    this.assertOpen('drop');
    const e = this.entries.get(ino);
    if (e) {
      await this.mutate(e, 'drop', 'ignore', () => {
        this.forget(e, true);
        return Promise.resolve();
      });
    } else {
      this.index.remove(ino);
      this.scheduleDelete(ino);
    }
    await this.deleting.get(ino);
    this.wakeSpaceWaiters();
  }

  /** Pins are counted per inode and independent of the entry (pinning an untracked inode is fine). */
  pin(ino: Ino): void {
    this.pins.set(ino, (this.pins.get(ino) ?? 0) + 1);
  }

  unpin(ino: Ino): void {
    const n = this.pins.get(ino) ?? 0;
    if (n > 1) {
      this.pins.set(ino, n - 1);
      return;
    }
    this.pins.delete(ino);
    if (n === 0) {
      this.log.warn('unpin without pin', { ino });
      return;
    }
    if (this.state === 'open')
      this.evictIfNeeded().catch((err: unknown) => this.log.error('eviction failed', { err }));
    this.wakeSpaceWaiters();
  }

  space(): { dirtyBytes: number; limitBytes: number } {
    return { dirtyBytes: this.dirtyBytes, limitBytes: this.limitBytes };
  }

  usage(): CacheUsage {
    let dirtyFiles = 0;
    for (const e of this.entries.values()) if (e.dirty.length > 0 || e.modified) dirtyFiles++;
    return {
      usedBytes: this.usedBytes,
      limitBytes: this.limitBytes,
      dirtyBytes: this.dirtyBytes,
      dirtyFiles,
      entries: this.entries.size,
      hits: this.hits,
      misses: this.misses,
    };
  }

  dirtyInodes(): Ino[] {
    const out: Ino[] = [];
    for (const e of this.entries.values()) if (e.dirty.length > 0 || e.modified) out.push(e.ino);
    return out;
  }

  /**
   * Waits for operations in flight, persists entries whose state changed since their last save
   * (so a clean restart keeps the cache warm and dirty ranges known), then closes all files.
   * Call it before closing the index's database.
   */
  async close(): Promise<void> {
    if (this.state === 'closed' || this.state === 'closing') return;
    const wasOpen = this.state === 'open';
    this.state = 'closing';
    await this.idle();
    if (wasOpen) {
      for (const e of [...this.entries.values()]) {
        if (!e.changed) continue;
        try {
          await this.mutate(e, 'persist', 'ignore', () => this.persistLocked(e));
        } catch (err) {
          this.log.error('persisting a cache entry at close failed', { ino: e.ino, err });
        }
      }
    }
    for (const e of this.entries.values()) this.dropMem(e);
    await Promise.all([...this.deleting.values()]);
    await this.handles.closeAll();
    this.state = 'closed';
  }

  // ---- internals -----------------------------------------------------------------------------

  private err(code: 'EIO' | 'EINVAL', op: string, ino: Ino, message: string): FsError {
    return new FsError(code, `datacache.${op}`, undefined, {
      message: `datacache.${op}: ${message} (ino ${ino})`,
    });
  }

  private assertOpen(op: string): void {
    if (this.state !== 'open') {
      throw new FsError('EIO', `datacache.${op}`, undefined, {
        message: `datacache.${op}: cache is ${this.state}`,
      });
    }
  }

  private need(ino: Ino, op: string): Entry {
    this.assertOpen(op);
    const e = this.entries.get(ino);
    if (!e) throw this.err('EIO', op, ino, `inode ${ino} is not tracked (ensure() first)`);
    return e;
  }

  private clip(e: Entry, offset: number, length: number, op: string): ByteRange {
    if (!isNonNegInt(offset) || !isNonNegInt(length)) {
      throw this.err('EINVAL', op, e.ino, `invalid offset/length ${offset}/${length}`);
    }
    return { start: offset, end: Math.min(offset + length, e.size) };
  }

  private stateOf(e: Entry): CacheEntryState {
    return {
      size: e.size,
      present: cloneRanges(e.present),
      dirty: cloneRanges(e.dirty),
      modified: e.modified,
      lastAccessMs: e.lastAccessMs,
    };
  }

  private saveRow(e: Entry, st: CacheEntryState): void {
    this.index.save(e.ino, st);
    e.durable = copyState(st);
  }

  /**
   * Before bytes in `r` are overwritten or cut off: if the saved row claims some of them are
   * clean (equal to the object), re-save it without any clean ranges, so a crash before the next
   * persist cannot serve the new bytes as object content. Dirty claims stay (newer local data
   * over dirty data is still the newest local data).
   */
  private beforeOverwrite(e: Entry, r: ByteRange): void {
    this.dropMem(e, undefined, r);
    const d = e.durable;
    if (!d) return;
    const clean = subtractRanges(d.present, d.dirty);
    if (!overlapsRange(clean, r)) return;
    this.saveRow(e, { ...d, present: cloneRanges(d.dirty), dirty: cloneRanges(d.dirty) });
  }

  private setRanges(e: Entry, present: ByteRange[], dirty: ByteRange[]): void {
    const pb = totalBytes(present);
    const db = totalBytes(dirty);
    this.usedBytes += pb - e.presentBytes;
    this.dirtyBytes += db - e.dirtyBytes;
    e.present = present;
    e.dirty = dirty;
    e.presentBytes = pb;
    e.dirtyBytes = db;
  }

  private touch(e: Entry): void {
    e.lastAccessMs = this.now();
    if (this.entries.get(e.ino) === e) {
      this.entries.delete(e.ino);
      this.entries.set(e.ino, e);
    }
  }

  private begin(e: Entry): void {
    e.active++;
    this.inflight++;
  }

  private end(e: Entry): void {
    e.active--;
    this.inflight--;
    if (this.inflight === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private idle(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Run `fn` under the entry's mutex; if the entry was dropped meanwhile, ignore or throw. */
  private async mutate(
    e: Entry,
    op: string,
    onDropped: 'ignore' | 'throw',
    fn: () => Promise<void>,
  ): Promise<void> {
    this.begin(e);
    const prev = e.tail;
    let release!: () => void;
    e.tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    try {
      await prev;
      if (this.entries.get(e.ino) !== e) {
        if (onDropped === 'throw')
          throw this.err('EIO', op, e.ino, `inode ${e.ino} was dropped from the cache`);
        return;
      }
      await fn();
    } finally {
      release();
      this.end(e);
    }
  }

  private async withFile<T>(e: Entry, op: string, fn: (fh: CacheFile) => Promise<T>): Promise<T> {
    for (let d = this.deleting.get(e.ino); d !== undefined; d = this.deleting.get(e.ino)) await d;
    if (this.entries.get(e.ino) !== e)
      throw this.err('EIO', op, e.ino, `inode ${e.ino} was dropped from the cache`);
    const created = !e.hasFile;
    let lease: Lease;
    try {
      lease = await this.handles.acquire(e.ino, () => this.openFile(e.ino));
    } catch (err) {
      throw this.ioError(op, e.ino, err);
    }
    if (created) {
      e.hasFile = true;
      e.dirSynced = false;
    }
    try {
      return await fn(lease.fh);
    } catch (err) {
      throw this.ioError(op, e.ino, err);
    } finally {
      lease.release();
    }
  }

  /** I/O errors of cache files as FsError: ENOSPC/EDQUOT keep their code, the rest is EIO. */
  private ioError(op: string, ino: Ino, err: unknown): FsError {
    if (err instanceof FsError) return err;
    const code = (err as { code?: unknown } | null)?.code;
    const mapped = code === 'ENOSPC' || code === 'EDQUOT' ? code : 'EIO';
    return new FsError(mapped, `datacache.${op}`, undefined, {
      cause: err,
      message: `datacache.${op}: cache file of inode ${ino}: ${errMessage(err)}`,
    });
  }

  private async openFile(ino: Ino): Promise<CacheFile> {
    const sub = path.join(this.dataDir, fanout(ino));
    const inline = this.inlineIoMax > 0;
    if (!this.madeDirs.has(sub)) {
      if (inline) mkdirSync(sub, { recursive: true });
      else await fsp.mkdir(sub, { recursive: true });
      this.madeDirs.add(sub);
      this.dataDirSynced = false;
    }
    return CacheFile.open(path.join(sub, String(ino)), inline);
  }

  private async syncDirs(sub: string): Promise<void> {
    const syncDir = async (d: string): Promise<void> => {
      const h = await fsp.open(d, 'r');
      try {
        await h.sync();
      } finally {
        await h.close();
      }
    };
    if (!this.dataDirSynced) {
      this.dataDirSynced = true;
      await syncDir(this.dataDir);
    }
    await syncDir(sub);
  }

  /** Remove the entry from memory and the index (synchronously) and delete its file (async). */
  private forget(e: Entry, removeRow: boolean): void {
    this.dropMem(e);
    if (removeRow || e.durable) this.index.remove(e.ino);
    this.entries.delete(e.ino);
    this.setRanges(e, [], []);
    e.unsynced = [];
    e.durable = undefined;
    this.scheduleDelete(e.ino);
  }

  private scheduleDelete(ino: Ino): void {
    const prev = this.deleting.get(ino) ?? Promise.resolve();
    const p: Promise<void> = prev
      .then(async () => {
        await this.handles.retire(ino);
        await fsp.rm(this.filePath(ino), { force: true });
      })
      .catch((err: unknown) => this.log.error('deleting a cache file failed', { ino, err }))
      .finally(() => {
        if (this.deleting.get(ino) === p) this.deleting.delete(ino);
      });
    this.deleting.set(ino, p);
  }

  private evictable(e: Entry): boolean {
    return (
      e.presentBytes > 0 && e.dirty.length === 0 && !e.modified && e.active === 0 && !this.pins.has(e.ino)
    );
  }

  /** If over the high watermark, evict clean unpinned idle entries in LRU order down to the low one. */
  /**
   * Capacity is enforced when data is written: a write that would take the cache past its limit
   * first evicts clean data, then waits while uploads turn dirty data clean (markClean/drop wake
   * it), and fails with ENOSPC after writeWaitMs. Never corruption, never an unbounded cache.
   */
  private async reserveSpace(
    e: { present: ByteRange[]; size: number },
    offset: number,
    length: number,
  ): Promise<void> {
    const growth = (): number => {
      const added: ByteRange = { start: Math.min(offset, e.size), end: offset + length };
      return totalBytes(missingRanges(added, e.present));
    };
    if (this.usedBytes + growth() <= this.limitBytes) return;
    if (growth() > this.limitBytes) {
      throw new FsError('ENOSPC', 'write', undefined, {
        message: `write of ${length} bytes is larger than the whole cache`,
      });
    }
    const deadline = Date.now() + this.writeWaitMs;
    let warned = false;
    while (this.usedBytes + growth() > this.limitBytes) {
      this.evictFor(growth());
      if (this.usedBytes + growth() <= this.limitBytes) break;
      if (Date.now() >= deadline) {
        this.log.error('cache full of data not yet uploaded; write failed with ENOSPC', {
          usedBytes: this.usedBytes,
          dirtyBytes: this.dirtyBytes,
          limitBytes: this.limitBytes,
          waitedMs: this.writeWaitMs,
        });
        throw new FsError('ENOSPC', 'write', undefined, {
          message: 'the cache is full of data not yet uploaded (is the object store reachable?)',
        });
      }
      if (!warned) {
        warned = true;
        this.log.warn('cache full: writer waits for uploads to free space', {
          usedBytes: this.usedBytes,
          dirtyBytes: this.dirtyBytes,
          limitBytes: this.limitBytes,
        });
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, Math.min(200, Math.max(1, deadline - Date.now())));
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        this.spaceWaiters.push(done);
      });
    }
  }

  private readonly spaceWaiters: Array<() => void> = [];

  /** Wake writers waiting for space (something became clean or was dropped). */
  private wakeSpaceWaiters(): void {
    for (const w of this.spaceWaiters.splice(0)) w();
  }

  /** Evict clean, unpinned entries (LRU) until `need` more bytes fit under the limit. */
  private evictFor(need: number): void {
    for (const e of this.entries.values()) {
      if (this.usedBytes + need <= Math.min(this.limitBytes, this.lowBytes + need)) break;
      if (!this.evictable(e)) continue;
      this.forget(e, false);
    }
  }

  private async evictIfNeeded(): Promise<void> {
    if (this.state !== 'open' || this.usedBytes <= this.highBytes) return;
    const evicted: Ino[] = [];
    for (const e of this.entries.values()) {
      if (this.usedBytes <= this.lowBytes) break;
      if (!this.evictable(e)) continue;
      this.forget(e, false);
      evicted.push(e.ino);
    }
    if (evicted.length > 0) {
      this.log.debug('evicted cache entries', { count: evicted.length, usedBytes: this.usedBytes });
    }
    if (this.usedBytes > this.highBytes) {
      this.log.debug('cache above high watermark; the rest is dirty, pinned or in use', {
        usedBytes: this.usedBytes,
        dirtyBytes: this.dirtyBytes,
        limitBytes: this.limitBytes,
      });
    }
    await Promise.all(evicted.map((ino) => this.deleting.get(ino)));
  }
}
