import type { ByteRange, FileRange, Ino } from '../core/types.js';

/** Persisted state of one cache entry (what is local, what is not yet uploaded). */
export interface CacheEntryState {
  /** Logical file size as the cache knows it. */
  size: number;
  /** Byte ranges whose current content is in the cache file (sorted, non-overlapping, merged). */
  present: ByteRange[];
  /** Byte ranges written locally and not yet uploaded (subset of present). */
  dirty: ByteRange[];
  /** True when the size or content differs from the object in the bucket (e.g. after truncate). */
  modified: boolean;
  /** Last access, ms since epoch (LRU order survives restarts). */
  lastAccessMs: number;
}

/**
 * Durable index of cache entries. Implemented by the metadata store (same SQLite database, so a
 * journal entry and the ranges it depends on commit in one transaction). All methods are
 * synchronous.
 */
export interface CacheIndex {
  loadAll(): Map<Ino, CacheEntryState>;
  save(ino: Ino, state: CacheEntryState): void;
  remove(ino: Ino): void;
}

export interface CacheUsage {
  /** Bytes of present data across all entries. */
  usedBytes: number;
  limitBytes: number;
  /** Bytes in dirty ranges. */
  dirtyBytes: number;
  dirtyFiles: number;
  entries: number;
  hits: number;
  misses: number;
}

/**
 * Local disk cache of file contents, one sparse cache file per inode. Offsets are file offsets.
 * Concurrency: callers may issue overlapping operations on one inode; the cache serialises what
 * must be (range bookkeeping) and never serves bytes that are not present.
 */
export interface FillOptions {
  /**
   * The caller lends `data` to the cache: it may keep it (no copy) and read from it instead of
   * the cache file, and calls this exactly once when it no longer needs it (possibly before
   * fill() returns; also when the fill fails). The caller must not change `data` until then.
   */
  onRelease?: () => void;
  /**
   * `data` starts on a page boundary: it may then be written with O_DIRECT, bypassing the page
   * cache (when the cache keeps it to serve reads, or when it is not lent: see directFill).
   */
  aligned?: boolean;
}

export interface DataCache {
  /** Start tracking an inode whose object has `size` bytes (no-op if an entry exists). */
  ensure(ino: Ino, size: number): void;
  has(ino: Ino): boolean;
  /** Current logical size of a tracked inode. */
  size(ino: Ino): number | undefined;
  /**
   * Parts of [offset, offset+length) (clipped to the size) that are not present. Unless
   * `opts.count` is false, a call with a non-empty clipped range counts one cache hit (nothing
   * missing) or one miss in usage(); internal checks (fetcher blocks, uploads) should pass false.
   */
  missing(ino: Ino, offset: number, length: number, opts?: { count?: boolean }): ByteRange[];
  /**
   * Store fetched bytes as clean data; bytes that are dirty or beyond the size are skipped. With
   * `opts.onRelease` the cache may keep `data` itself to serve reads of the range from memory; it
   * calls onRelease exactly once when it no longer uses it (see FillOptions).
   */
  fill(ino: Ino, offset: number, data: Buffer, opts?: FillOptions): Promise<void>;
  /** Read [offset, offset+length) clipped to the size; throws if any of it is not present. */
  read(ino: Ino, offset: number, length: number, scratch?: Buffer): Promise<Buffer>;
  /**
   * Lend [offset, offset+length) clipped to the size, when all of it is present in the cache
   * file, for a zero-copy send; undefined otherwise (read() it then). While lent, the entry is
   * not evicted. The caller must release() it.
   */
  borrow?(ino: Ino, offset: number, length: number): Promise<FileRange | undefined>;
  /** Write bytes (marks present + dirty, extends the size; a gap past the old size reads as zeros). */
  write(ino: Ino, offset: number, data: Buffer): Promise<void>;
  /** Set the size (shrinking drops data; growing adds zeros that are present + dirty). */
  truncate(ino: Ino, size: number): Promise<void>;
  /** Whether the entry holds changes not yet uploaded. */
  isDirty(ino: Ino): boolean;
  /** Monotonic change counter of the entry; bumps on every write/truncate. */
  version(ino: Ino): number;
  /** After an upload of `version`: clear dirty state if nothing changed since. Returns whether it did. */
  markClean(ino: Ino, version: number): boolean;
  /**
   * Make content and range state durable (fdatasync + index save). With `sync: false` only the
   * range state is saved (survives a crash of the daemon, not of the machine).
   */
  persist(ino: Ino, opts?: { sync?: boolean }): Promise<void>;
  /** Path of the cache file (uploads read it). The file is sparse; only present ranges are meaningful. */
  filePath(ino: Ino): string;
  /** Forget an entry and delete its file (even if dirty: the caller decides). */
  drop(ino: Ino): Promise<void>;
  /** Open files are never evicted. Counted: each pin needs one unpin. */
  pin(ino: Ino): void;
  unpin(ino: Ino): void;
  usage(): CacheUsage;
  /** Dirty bytes and the limit, without walking the entries (cheap enough for every upload pump). */
  space(): { dirtyBytes: number; limitBytes: number };
  /** Inodes with dirty data (for recovery and status). */
  dirtyInodes(): Ino[];
  close(): Promise<void>;
}
