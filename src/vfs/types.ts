import type { Attr, Cred, DirEntry, FileRange, Ino, SetAttrChanges, StatFs } from '../core/types.js';

/** Open file handle id (per VFS instance). */
export type Fh = number;

export interface ReaddirResult {
  entries: DirEntry[];
  /** True when no entry follows the last one returned. */
  eof: boolean;
  /** Changes when cookies of this directory may have become invalid (NFS cookie verifier). */
  verifier: bigint;
}

/** Notification that cached kernel/client state for an inode or a name is stale. */
export type InvalidateEvent = { kind: 'inode'; ino: Ino } | { kind: 'entry'; parent: Ino; name: string };

/**
 * The file system. Every operation takes the caller's credentials and enforces permissions
 * (uid 0 bypasses them, as on a local file system). Errors are FsError with a POSIX code.
 * Names are single path components (no '/'), UTF-8, at most 255 bytes.
 */
export interface Vfs {
  readonly readOnly: boolean;
  /** `.` is the directory itself and `..` its parent (the share root is its own parent). */
  lookup(cred: Cred, parent: Ino, name: string): Promise<Attr>;
  getattr(cred: Cred, ino: Ino): Promise<Attr>;
  setattr(cred: Cred, ino: Ino, changes: SetAttrChanges, fh?: Fh): Promise<Attr>;
  /** Check access(2)-style permission (mask of R_OK|W_OK|X_OK); throws EACCES. */
  access(cred: Cred, ino: Ino, mask: number): Promise<void>;
  /**
   * Directory entries after `cookie` (0 = from the start), at most `limit` of them.
   * "." and ".." are not included: adapters add them.
   */
  readdir(cred: Cred, ino: Ino, cookie: bigint, limit: number): Promise<ReaddirResult>;
  /** Open with Linux open(2) flags (O_TRUNC honoured; O_CREAT is for create()). */
  open(cred: Cred, ino: Ino, flags: number): Promise<Fh>;
  /** Create and open a regular file. O_EXCL → EEXIST if the name exists; otherwise opens it. */
  create(cred: Cred, parent: Ino, name: string, mode: number, flags: number): Promise<{ attr: Attr; fh: Fh }>;
  /**
   * Read up to `length` bytes. `scratch`, when given, is a buffer of at least `length` bytes that
   * the implementation may fill and return a view of (the caller reuses it once it has consumed
   * the result, so an implementation must not keep a reference to it).
   */
  read(fh: Fh, offset: number, length: number, scratch?: Buffer): Promise<Buffer>;
  /**
   * read() for senders that can send a file range without copying it (the NFS READ reply): when
   * the bytes are all in a local cache file, that range is lent (the caller must release() it);
   * otherwise the bytes are read as read() does. Same checks, read-ahead and errors as read().
   */
  readLocal?(fh: Fh, offset: number, length: number, scratch?: Buffer): Promise<Buffer | FileRange>;
  /**
   * Write at offset (or at the end when the handle was opened with O_APPEND). Returns bytes written.
   * `data` may be a view of the adapter's receive buffer, reused once the promise settles: an
   * implementation copies what it keeps.
   */
  write(fh: Fh, offset: number, data: Buffer): Promise<number>;
  /** close(2) of one descriptor of the handle (may be called several times per handle). */
  flush(fh: Fh): Promise<void>;
  fsync(fh: Fh, datasync: boolean): Promise<void>;
  /** Last close of the handle. */
  release(fh: Fh): Promise<void>;
  /** Durability point for an inode without an open handle (NFS COMMIT). */
  commit(cred: Cred, ino: Ino): Promise<void>;
  mkdir(cred: Cred, parent: Ino, name: string, mode: number): Promise<Attr>;
  unlink(cred: Cred, parent: Ino, name: string): Promise<void>;
  rmdir(cred: Cred, parent: Ino, name: string): Promise<void>;
  /** rename(2): replaces a file or an empty directory at the destination. */
  rename(cred: Cred, parent: Ino, name: string, newParent: Ino, newName: string): Promise<void>;
  symlink(cred: Cred, parent: Ino, name: string, target: string): Promise<Attr>;
  readlink(cred: Cred, ino: Ino): Promise<string>;
  /** Hard links are not supported: always EPERM (after checking the arguments exist). */
  link(cred: Cred, ino: Ino, newParent: Ino, newName: string): Promise<Attr>;
  statfs(cred: Cred): Promise<StatFs>;
  /** Subscribe to invalidations (reverse sync changed something). Returns an unsubscribe function. */
  onInvalidate(listener: (ev: InvalidateEvent) => void): () => void;
}
