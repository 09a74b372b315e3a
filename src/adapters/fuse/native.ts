/**
 * Typed loader of the bucketgate_fuse addon (native/fuse_ll.cc): a binding of libfuse 2.9's
 * low-level API. Requests arrive as plain objects through `onRequest`; each must be answered
 * exactly once with one of the `reply*` methods (a second answer throws). Names and symlink
 * targets are raw bytes (Buffers): the kernel does not promise UTF-8.
 *
 * Never touch the mount point synchronously from the process that serves it (fs.*Sync,
 * execFileSync, ...): the JS thread would wait for a request that only it can answer.
 */
import { addonCandidates, requireAddon } from '../addon.js';

/** Caller of a request (fuse_req_ctx + fuse_req_getgroups). */
export interface RequestContext {
  readonly uid: number;
  readonly gid: number;
  /** Thread id of the caller; 0 for requests the kernel sends on its own (release, ...). */
  readonly pid: number;
  readonly umask: number;
  /**
   * Supplementary groups, read from /proc for operations that check permissions when the
   * caller is not root; empty otherwise (and when the caller has already exited).
   */
  readonly groups: readonly number[];
}

interface Base {
  /** Request id: pass it to exactly one reply. */
  readonly id: number;
  readonly ctx: RequestContext;
}

/** setattr changes as the kernel sent them ('now' = FUSE_SET_ATTR_*_NOW). */
export interface NativeSetAttrChanges {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atimeNs?: bigint | 'now';
  mtimeNs?: bigint | 'now';
}

type NameArgs = { parent: number; name: Buffer };

/** Fields of each request, by operation (besides `op`, `id` and `ctx`). */
export interface FuseRequestFields {
  lookup: NameArgs;
  unlink: NameArgs;
  rmdir: NameArgs;
  mknod: NameArgs & { mode: number; rdev: number };
  mkdir: NameArgs & { mode: number };
  /** flags: the real open(2) flags (O_EXCL, O_TRUNC, O_APPEND, ...). */
  create: NameArgs & { mode: number; flags: number };
  symlink: NameArgs & { target: Buffer };
  rename: NameArgs & { newParent: number; newName: Buffer };
  link: { ino: number; newParent: number; newName: Buffer };
  getattr: { ino: number; fh?: number };
  readlink: { ino: number };
  statfs: { ino: number };
  setattr: { ino: number; fh?: number; changes: NativeSetAttrChanges };
  open: { ino: number; flags: number };
  opendir: { ino: number; flags: number };
  read: { ino: number; fh: number; offset: number; size: number };
  /**
   * data: a JS-owned copy; or, with a write pool (setWritePool), `slot` and `size`: the data is
   * bytes [slot*slotSize, slot*slotSize+size) of the pool, until releaseWriteSlot(slot).
   */
  write: {
    ino: number;
    fh: number;
    offset: number;
    data?: Buffer;
    slot?: number;
    size?: number;
    writepage: boolean;
  };
  flush: { ino: number; fh: number };
  release: { ino: number; fh: number; flags: number };
  releasedir: { ino: number; fh: number; flags: number };
  fsync: { ino: number; fh: number; datasync: boolean };
  fsyncdir: { ino: number; fh: number; datasync: boolean };
  /**
   * offset: 0 at the start, else a nextOffset this file system gave out. size: reply bytes.
   * plus: a READDIRPLUS (the connection granted it: FuseInitEvent.readdirplus); the reply's
   * entries then take 152 bytes + the name (8-byte aligned) and may carry their attributes.
   */
  readdir: { ino: number; fh: number; offset: bigint; size: number; plus: boolean };
  setxattr: { ino: number; name: Buffer; value: Buffer; flags: number };
  getxattr: { ino: number; name: Buffer; size: number };
  listxattr: { ino: number; size: number };
  removexattr: { ino: number; name: Buffer };
  access: { ino: number; mask: number };
}

export type FuseOp = keyof FuseRequestFields;
export type FuseRequestOf<O extends FuseOp> = Base & { op: O } & FuseRequestFields[O];
/** One kernel request (a union discriminated by `op`). */
export type FuseRequest = { [O in FuseOp]: FuseRequestOf<O> }[FuseOp];

/** struct stat as the kernel gets it. `mode` includes the type bits (S_IFREG, ...). */
export interface NativeAttr {
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  /** 512-byte blocks; default ceil(size / 512). */
  blocks?: number;
  /** Preferred I/O size (st_blksize); default 4096. */
  blksize?: number;
}

export interface NativeEntry {
  /** 0 with entryTimeout > 0 = negative entry (the kernel caches "no such name"). */
  ino: number;
  generation: number;
  attr?: NativeAttr;
  /** Seconds; 0 = do not cache. */
  attrTimeout: number;
  entryTimeout: number;
}

export interface NativeOpenReply {
  fh: number;
  directIo?: boolean;
  /** Keep the kernel's page cache of this file (otherwise it is dropped on open). */
  keepCache?: boolean;
  nonseekable?: boolean;
}

export interface NativeDirent {
  name: Buffer;
  ino: number;
  /** Type bits suffice (S_IFDIR, S_IFREG, S_IFLNK). */
  mode: number;
  /** Offset of the entry AFTER this one (what the kernel passes back to continue). */
  nextOffset: bigint;
  /**
   * READDIRPLUS only: the entry's attributes and timeouts, as for replyEntry (the kernel counts
   * it as a lookup). Without it the kernel gets the name only and looks it up when needed.
   */
  entry?: NativeEntry;
}

export interface NativeStatfs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  namemax: number;
}

/** Negotiated connection parameters (FUSE_INIT). */
export interface FuseInitEvent {
  type: 'init';
  protoMajor: number;
  protoMinor: number;
  /** Largest WRITE the kernel will send (1 MiB with maxPages 256, else 128 KiB). */
  maxWrite: number;
  /** Pages per request granted with FUSE_MAX_PAGES in the INIT reply; 0 = the kernel's 32. */
  maxPages: number;
  /** READDIRPLUS asked for in the INIT reply: readdir requests may come with `plus`. */
  readdirplus: boolean;
  maxReadahead: number;
  maxBackground: number;
  capable: number;
  want: number;
}

/**
 * The session is over: 'unmount' = our unmount(), 'external' = fusermount -u / umount by
 * someone else (or the connection was aborted), 'error' = reading /dev/fuse failed.
 */
export interface FuseUnmountedEvent {
  type: 'unmounted';
  reason: 'unmount' | 'external' | 'error';
  errno: number;
}

export type FuseEvent = FuseInitEvent | FuseUnmountedEvent;

/** Rejection of mount(): an Error with the errno of the cause. */
export interface FuseMountError extends Error {
  code: string;
  errno: number;
  syscall: 'mount';
  path: string;
}

export interface NativeFuseSession {
  /**
   * Mount (checks, mount(2) or fusermount, libfuse session) off the JS thread; requests are then read on it.
   * `options` are single `-o` options (unescaped commas split them). 'nonempty' skips the
   * empty-directory check. Requests may arrive before the promise resolves.
   */
  mount(
    mountpoint: string,
    options: readonly string[],
    onRequest: (req: FuseRequest) => void,
    onEvent: (ev: FuseEvent) => void,
  ): Promise<{ mountpoint: string }>;
  /**
   * Before mount(): copy WRITE data of up to `slotSize` bytes into free slots of `pool` instead of
   * allocating a buffer per request (requests then carry `slot`; see FuseRequest 'write').
   */
  setWritePool(pool: Buffer, slotSize: number): void;
  /** The write that used `slot` is done with its data; throws if the slot is not in use. */
  releaseWriteSlot(slot: number): void;
  /**
   * Stop the session loop (after notifications queued before) and lazily detach the mount
   * point. Completion is the 'unmounted' event. Returns false when not running.
   */
  unmount(): boolean;

  /** Answer with an error; errno 0 answers success for ops without reply data. Returns fuse_reply_*'s result. */
  replyErr(id: number, errno: number): number;
  /** lookup, mknod, mkdir, symlink, link. */
  replyEntry(id: number, entry: NativeEntry): number;
  /** create. A result of -2 (-ENOENT) means the open was interrupted: release `open.fh` yourself. */
  replyCreate(id: number, entry: NativeEntry, open: NativeOpenReply): number;
  /** getattr, setattr. */
  replyAttr(id: number, attr: NativeAttr, attrTimeout: number): number;
  replyReadlink(id: number, target: string | Buffer): number;
  /** open, opendir. A result of -2 (-ENOENT): interrupted, release the handle yourself. */
  replyOpen(id: number, open: NativeOpenReply): number;
  replyWrite(id: number, count: number): number;
  /** read, readdir (pre-packed), getxattr, listxattr. Data beyond the requested size is cut. */
  replyBuf(id: number, data: Uint8Array): number;
  /**
   * readdir: packs as many entries as fit in the requested size; returns how many it packed.
   * For a READDIRPLUS, entries with `entry` give the kernel their attributes.
   */
  replyDirents(id: number, entries: readonly NativeDirent[]): number;
  replyStatfs(id: number, st: NativeStatfs): number;
  /** getxattr/listxattr with size 0: the size of the value. */
  replyXattrSize(id: number, size: number): number;

  /**
   * Drop the kernel's cached attributes and data of an inode (off/len: byte range; len 0 = to
   * the end; off -1 = attributes only). Runs on a worker thread; resolves to an errno (0 = ok,
   * ENOENT = the kernel had nothing cached, ENOTCONN = not mounted).
   */
  notifyInvalInode(ino: number, off?: number, len?: number): Promise<number>;
  /** Drop the kernel's cached name `name` in directory `parent`. Resolves to an errno. */
  notifyInvalEntry(parent: number, name: Buffer): Promise<number>;

  /** Requests handed to JS and not answered yet. */
  readonly pendingCount: number;
  readonly state: 'idle' | 'mounting' | 'running' | 'ended' | 'unmounted';
}

export interface FuseAddon {
  FuseSession: new () => NativeFuseSession;
  /** libfuse's version (29 for 2.9). */
  libfuseVersion: number;
}

function isAddon(x: unknown): x is FuseAddon {
  if (typeof x !== 'object' || x === null) return false;
  const o = x as Record<string, unknown>;
  return typeof o.FuseSession === 'function' && typeof o.libfuseVersion === 'number';
}

let cached: FuseAddon | undefined;

/** Load build/Release/bucketgate_fuse.node (built by `npm ci` / `npx node-gyp rebuild`). */
export function loadFuseAddon(): FuseAddon {
  if (cached) return cached;
  const candidates = addonCandidates('bucketgate_fuse', process.env.BUCKETGATE_FUSE_ADDON);
  const found = requireAddon(candidates);
  if (found === undefined) {
    throw new Error(
      `bucketgate_fuse addon not found (looked in ${candidates.join(', ')}); build it with "npx node-gyp rebuild" (needs libfuse-dev, pkg-config, python3, make, g++)`,
    );
  }
  if (!isAddon(found.mod)) throw new Error(`${found.path} is not the bucketgate_fuse addon`);
  cached = found.mod;
  return found.mod;
}

/** Escape a value for one libfuse `-o` option (commas and backslashes). */
export function escapeFuseOption(value: string): string {
  return value.replace(/[\\,]/g, (c) => `\\${c}`);
}
