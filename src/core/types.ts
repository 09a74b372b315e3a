/** Shared types of the file system core. No module-specific imports here. */

/** Inode number: persistent id from the metadata database. The share root is always 1. */
export type Ino = number;
export const ROOT_INO: Ino = 1;

export type FileType = 'file' | 'dir' | 'symlink';

/** Caller credentials; every VFS operation receives them. */
export interface Cred {
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups (may be empty when the protocol does not carry them). */
  readonly groups: readonly number[];
}

export const ROOT_CRED: Cred = { uid: 0, gid: 0, groups: [] };

/** POSIX attributes of one node. `mode` holds the permission bits only (07777). */
export interface Attr {
  readonly ino: Ino;
  readonly generation: number;
  readonly type: FileType;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly nlink: number;
  readonly atimeNs: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
}

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;

export function typeBits(t: FileType): number {
  return t === 'dir' ? S_IFDIR : t === 'symlink' ? S_IFLNK : S_IFREG;
}

/** Full st_mode (type bits | permission bits). */
export function stMode(a: Pick<Attr, 'type' | 'mode'>): number {
  return typeBits(a.type) | (a.mode & 0o7777);
}

export interface DirEntry {
  readonly name: string;
  readonly attr: Attr;
  /** Opaque, stable position: pass it back to continue after this entry. Never 0. */
  readonly cookie: bigint;
}

/** Changes requested by setattr; absent fields are left alone. */
export interface SetAttrChanges {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atimeNs?: bigint | 'now';
  mtimeNs?: bigint | 'now';
}

export interface StatFs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  namemax: number;
}

/** Linux open(2) flag values; adapters pass the raw flags through. */
export const O_ACCMODE = 0o3;
export const O_RDONLY = 0o0;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;

/** access(2) mask bits. */
export const R_OK = 4;
export const W_OK = 2;
export const X_OK = 1;

export const NAME_MAX = 255;
export const KEY_MAX = 1024;

/** Wall-clock time in nanoseconds (millisecond wall clock, sub-millisecond digits from hrtime). */
export function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
}

/** Half-open byte range [start, end). */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Bytes of a local file lent to a caller that sends them without copying (sendfile(2)): the
 * file descriptor is valid, and the range holds the file's current bytes, until release() is
 * called. A writer may change the bytes meanwhile (like a read racing a write); a truncation may
 * shorten the file, so a sender must check that it got every byte.
 */
export interface FileRange {
  readonly fd: number;
  readonly offset: number;
  readonly length: number;
  /** Give the range back; idempotent. The descriptor must not be used afterwards. */
  release(): void;
}
