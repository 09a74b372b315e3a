/**
 * FUSE adapter: serves a Vfs through the bucketgate_fuse addon (libfuse 2.9 low-level API).
 *
 * Thin by design: decode the request (names are bytes: invalid UTF-8 -> EILSEQ, > 255 bytes ->
 * ENAMETOOLONG), call the Vfs with the caller's credentials, reply. FsError codes map to errno
 * in one place (errnoOf); anything else is EIO, logged once with the request's context.
 *
 * Inode numbers pass through unchanged (FUSE's root is 1, like ROOT_INO). Directory offsets:
 * 0 = start, 1 = after ".", 2 = after "..", cookie + 2 = after the VFS entry with that cookie.
 * Where the binding negotiated READDIRPLUS, readdir replies carry each entry's attributes (the
 * VFS readdir has them anyway), so `ls -l` needs no LOOKUP per name.
 *
 * Caching: attribute/entry timeouts come from the options (0 = no caching). The page cache
 * follows libfuse's "auto_cache" rule, which only exists in libfuse's high-level API and is
 * therefore done here: an open keeps the cached pages only if the file's mtime and size did not
 * change since they were last seen. Extended attributes are answered ENOSYS, which makes the
 * kernel stop asking and return EOPNOTSUPP itself (ls -l's ACL probe and the security.capability
 * check on every write cost nothing).
 *
 * Never access the mount point synchronously from this process: the JS thread answers requests.
 */
import { EventEmitter } from 'node:events';
import {
  NAME_MAX,
  O_CREAT,
  O_EXCL,
  O_RDONLY,
  O_TRUNC,
  R_OK,
  ROOT_INO,
  S_IFDIR,
  S_IFMT,
  S_IFREG,
  stMode,
  typeBits,
  type Attr,
  type Cred,
  type Ino,
} from '../../core/types.js';
import { ERRNO, FsError, isFsError } from '../../core/errors.js';
import { setMountReadAhead } from './readahead.js';
import type { Logger } from '../../log/index.js';
import type { Fh, InvalidateEvent, Vfs } from '../../vfs/types.js';
import {
  escapeFuseOption,
  loadFuseAddon,
  type FuseEvent,
  type FuseInitEvent,
  type FuseRequest,
  type FuseRequestOf,
  type NativeAttr,
  type NativeDirent,
  type NativeEntry,
  type NativeFuseSession,
} from './native.js';

export interface FuseAdapterOptions {
  /** Share name: the mount's source shows as "bucketgate:<fsName>" (df, /proc/mounts). */
  fsName: string;
  /** Let users other than the mounting one in (non-root needs user_allow_other in /etc/fuse.conf). */
  allowOther: boolean;
  /** Seconds the kernel may cache attributes; 0 = ask every time. */
  attrTimeoutSec: number;
  /** Seconds the kernel may cache name lookups; 0 = ask every time. */
  entryTimeoutSec: number;
  /** Seconds the kernel may cache "no such name" answers; default 0 (not cached). */
  negativeTimeoutSec?: number;
  /** Raw libfuse `-o` options, each passed as its own -o (e.g. "max_background=64"). */
  extraOptions?: string[];
  /**
   * Kernel read-ahead of the mount in KiB, set after mounting when the connection allows
   * 1 MiB requests (root only; best effort). Default 1024: sequential reads then arrive as
   * 1 MiB READs instead of 128 KiB ones. 0 leaves the kernel's default.
   */
  readAheadKb?: number;
  /**
   * Allocates the write pool (16 MiB): the daemon passes the io addon's huge-page backed
   * alignedBuffer, so that a fresh mount's first big writes do not take a page fault per 4 KiB
   * (about 10 us each on the benchmark VM, 44 ms for the pool). Default Buffer.allocUnsafeSlow.
   */
  allocBuffer?: (size: number) => Buffer;
}

export interface FuseAdapterParams {
  vfs: Vfs;
  mountpoint: string;
  options: FuseAdapterOptions;
  logger: Logger;
}

export interface UnmountInfo {
  /** 'unmount' = our unmount(); 'external' = fusermount -u/umount by someone else; 'error'. */
  reason: 'unmount' | 'external' | 'error';
  errno: number;
}

export interface FuseAdapterEvents {
  unmounted: [UnmountInfo];
}

/**
 * Largest FUSE WRITE: 1 MiB where the kernel accepts FUSE_MAX_PAGES (protocol 7.28, Linux 4.20;
 * the binding grants it in the INIT reply), else the kernel sends at most 128 KiB.
 */
export const FUSE_MAX_WRITE = 1024 * 1024;
/** Largest FUSE READ (the max_read mount option). */
export const FUSE_MAX_READ = 1024 * 1024;

/** st_blksize reported for files: applications then write in max_write-sized chunks. */
const BLKSIZE = FUSE_MAX_WRITE;
/** d_ino of ".." when the parent is not known (libfuse uses the same value). */
const UNKNOWN_INO = 0xffffffff;
/** Bytes of a fuse_dirent with a 1-8 byte name: the most entries a readdir buffer can hold. */
const MIN_DIRENT = 32;
/** The same for a READDIRPLUS buffer (struct fuse_direntplus with a 1-8 byte name). */
const MIN_DIRENT_PLUS = 160;
const AUTO_CACHE_MAX = 100_000;
/** Reusable read buffers: the largest READ libfuse 2.9 sends, and how many are kept. */
const READ_BUF_SIZE = FUSE_MAX_READ;
const READ_BUF_POOL = 16;
/**
 * WRITE requests whose data the binding can hold in the write pool at once (16 MiB of address
 * space; slots are reused last-in first-out, so a single writer touches one or two); more in
 * flight fall back to a buffer per request.
 */
const WRITE_SLOTS = 16;
/** VFS readdir calls one kernel readdir request may make to fill its buffer. */
const MAX_READDIR_CALLS = 8;
/** Linux ENOTCONN (not in the core errno table: the VFS never produces it). */
const ENOTCONN = 107;

const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');
const utf8 = new TextDecoder('utf-8', { fatal: true });

interface CacheStamp {
  mtimeNs: bigint;
  size: number;
  valid: boolean;
}

interface DirHandle {
  ino: Ino;
  /** Entries fetched from the VFS that did not fit in the previous reply. */
  ahead?: { offset: bigint; entries: NativeDirent[]; eof: boolean };
}

/** The `-o` options the adapter passes to libfuse, one per element. */
export function buildMountOptions(o: FuseAdapterOptions): string[] {
  const opts = [
    `fsname=${escapeFuseOption(`bucketgate:${o.fsName}`)}`,
    'subtype=bucketgate',
    'big_writes',
    `max_write=${FUSE_MAX_WRITE}`,
    `max_read=${FUSE_MAX_READ}`,
  ];
  if (o.allowOther) opts.push('allow_other');
  // default_permissions stays off: the VFS checks permissions with the caller's credentials.
  return [...opts, ...(o.extraOptions ?? [])];
}

/** Decode one path component from the kernel. */
export function decodeName(op: string, raw: Buffer): string {
  if (raw.length > NAME_MAX) throw new FsError('ENAMETOOLONG', op);
  try {
    return utf8.decode(raw);
  } catch {
    throw new FsError('EILSEQ', op, undefined, { message: `${op}: name is not valid UTF-8` });
  }
}

function entryKey(parent: number, name: string): string {
  return `${parent}/${name}`;
}

export class FuseAdapter extends EventEmitter<FuseAdapterEvents> {
  readonly mountpoint: string;
  private readonly vfs: Vfs;
  private readonly opts: FuseAdapterOptions;
  private readonly log: Logger;
  private session: NativeFuseSession | undefined;
  private mounting: Promise<void> | undefined;
  private conn: FuseInitEvent | undefined;
  private ended: Promise<UnmountInfo> | undefined;
  private resolveEnded: ((info: UnmountInfo) => void) | undefined;
  private initWaiter: { resolve: (ev: FuseInitEvent) => void; reject: (e: Error) => void } | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly openFiles = new Set<Fh>();
  private readonly dirs = new Map<number, DirHandle>();
  private nextDirFh = 1;
  private readonly stamps = new Map<Ino, CacheStamp>();
  private readonly readBufs: Buffer[] = [];
  /** Memory the binding copies WRITE data into (WRITE_SLOTS slots of FUSE_MAX_WRITE bytes). */
  private readonly writePool: Buffer;

  constructor(params: FuseAdapterParams) {
    super();
    this.vfs = params.vfs;
    this.mountpoint = params.mountpoint;
    this.opts = params.options;
    this.log = params.logger;
    this.writePool = (this.opts.allocBuffer ?? Buffer.allocUnsafeSlow)(WRITE_SLOTS * FUSE_MAX_WRITE);
  }

  get mounted(): boolean {
    return this.session?.state === 'running';
  }

  /** Negotiated FUSE connection parameters (after mount()). */
  get connection(): FuseInitEvent | undefined {
    return this.conn;
  }

  /** Requests handed to JS and not answered yet. */
  get pendingRequests(): number {
    return this.session?.pendingCount ?? 0;
  }

  /** Mount and wait until the kernel's INIT has been answered. Errors carry code/errno. */
  mount(): Promise<void> {
    if (this.session) return Promise.reject(new Error(`${this.mountpoint}: already mounted`));
    this.mounting = this.doMount();
    return this.mounting;
  }

  private async doMount(): Promise<void> {
    const addon = loadFuseAddon();
    const session = new addon.FuseSession();
    session.setWritePool(this.writePool, FUSE_MAX_WRITE);
    this.session = session;
    this.ended = new Promise<UnmountInfo>((resolve) => {
      this.resolveEnded = resolve;
    });
    const init = new Promise<FuseInitEvent>((resolve, reject) => {
      this.initWaiter = { resolve, reject };
    });
    const options = buildMountOptions(this.opts);
    try {
      await session.mount(
        this.mountpoint,
        options,
        (r) => this.onRequest(r),
        (ev) => this.onEvent(ev),
      );
    } catch (e) {
      this.session = undefined;
      this.ended = undefined;
      this.initWaiter = undefined;
      throw e;
    }
    this.conn = await init;
    this.unsubscribe = this.vfs.onInvalidate((ev) => this.invalidate(ev));
    const readAheadKb = await this.tuneReadAhead(this.conn);
    this.log.info('fuse: mounted', {
      mountpoint: this.mountpoint,
      options: options.join(','),
      proto: `${this.conn.protoMajor}.${this.conn.protoMinor}`,
      maxWrite: this.conn.maxWrite,
      readdirplus: this.conn.readdirplus,
      ...(readAheadKb !== undefined ? { readAheadKb } : {}),
    });
  }

  /** Raise the mount's read-ahead so sequential reads come as 1 MiB READs; undefined = left alone. */
  private async tuneReadAhead(conn: FuseInitEvent): Promise<number | undefined> {
    const kb = this.opts.readAheadKb ?? FUSE_MAX_READ / 1024;
    if (kb <= 0 || conn.maxPages * 4 < kb) return undefined;
    try {
      await setMountReadAhead(this.mountpoint, 'fuse.bucketgate', kb);
      return kb;
    } catch (e) {
      this.log.info('fuse: kernel read-ahead left at its default (128 KiB)', {
        mountpoint: this.mountpoint,
        err: e,
      });
      return undefined;
    }
  }

  /**
   * Unmount: stop serving, detach the mount point (lazily: processes still inside get ENOTCONN
   * once the last pending request is answered), release the VFS handles the kernel still held.
   */
  async unmount(): Promise<void> {
    if (this.mounting) {
      try {
        await this.mounting;
      } catch {
        return;
      }
    }
    const s = this.session;
    if (!s || !this.ended) return;
    s.unmount();
    await this.ended;
  }

  /** Resolves when the session ends, whoever unmounted it. */
  whenUnmounted(): Promise<UnmountInfo> {
    return this.ended ?? Promise.reject(new Error(`${this.mountpoint}: not mounted`));
  }

  // ---- events ---------------------------------------------------------------------------

  private onEvent(ev: FuseEvent): void {
    if (ev.type === 'init') {
      this.initWaiter?.resolve(ev);
      this.initWaiter = undefined;
      return;
    }
    void this.finish({ reason: ev.reason, errno: ev.errno });
  }

  private async finish(info: UnmountInfo): Promise<void> {
    this.initWaiter?.reject(new Error(`${this.mountpoint}: session ended before FUSE init`));
    this.initWaiter = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.dirs.clear();
    this.stamps.clear();
    // The kernel will not send release for files still open: close them in the VFS.
    const handles = [...this.openFiles];
    this.openFiles.clear();
    for (const fh of handles) {
      try {
        await this.vfs.release(fh);
      } catch (e) {
        this.log.warn('fuse: releasing a handle at unmount failed', { fh, err: e });
      }
    }
    const level = info.reason === 'error' ? 'error' : 'info';
    this.log[level]('fuse: unmounted', {
      mountpoint: this.mountpoint,
      reason: info.reason,
      errno: info.errno,
    });
    this.session = undefined;
    this.mounting = undefined;
    this.resolveEnded?.(info);
    this.emit('unmounted', info);
  }

  /**
   * Names that a FUSE request in flight is changing (rename source and target): the kernel holds
   * their directories locked until we answer, and updates its own dentries when we do.
   */
  private readonly changing = new Map<string, number>();

  private invalidate(ev: InvalidateEvent): void {
    const s = this.session;
    if (!s) return;
    // The VFS asks to forget a name that this very request is renaming (it cannot tell FUSE's
    // requests from NFS's). The kernel needs no notice; and the notice would block in the kernel
    // on the directory lock the request holds until we answer. A kill -9 in that moment left
    // an unkillable daemon (a thread in D state holding /dev/fuse open, so the mount could not
    // abort, so the request was never answered): seen in the kill -9 test.
    if (ev.kind === 'entry' && this.changing.has(entryKey(ev.parent, ev.name))) return;
    if (ev.kind === 'inode') {
      const st = this.stamps.get(ev.ino);
      if (st) st.valid = false;
      void s.notifyInvalInode(ev.ino, 0, 0).then((err) => this.notifyResult('inode', err));
    } else {
      void s
        .notifyInvalEntry(ev.parent, Buffer.from(ev.name, 'utf8'))
        .then((err) => this.notifyResult('entry', err));
    }
  }

  private notifyResult(kind: string, err: number): void {
    // ENOENT: the kernel had nothing cached. ENOTCONN: not mounted any more.
    if (err !== 0 && err !== ERRNO.ENOENT && err !== ENOTCONN) {
      this.log.warn('fuse: cache invalidation failed', { kind, errno: err });
    }
  }

  // ---- dispatch -------------------------------------------------------------------------

  private onRequest(r: FuseRequest): void {
    let p: Promise<void>;
    try {
      p = this.handle(r);
    } catch (e) {
      p = Promise.reject(e);
    }
    p.catch((e: unknown) => this.fail(r, e));
  }

  private fail(r: FuseRequest, e: unknown): void {
    const errno = this.errnoOf(r, e);
    const s = this.session;
    if (!s) return;
    try {
      s.replyErr(r.id, errno);
    } catch (e2) {
      // Already answered (the error came after the reply): nothing more to tell the kernel.
      this.log.error('fuse: could not answer a request', { op: r.op, id: r.id, err: e2, cause: e });
    }
  }

  /** The one translation of errors to errno. */
  private errnoOf(r: FuseRequest, e: unknown): number {
    if (isFsError(e)) return e.errno;
    this.log.error('fuse: operation failed', { ...describe(r), err: e });
    return ERRNO.EIO;
  }

  private handle(r: FuseRequest): Promise<void> {
    switch (r.op) {
      case 'lookup':
        return this.lookup(r);
      case 'getattr':
        return this.getattr(r);
      case 'setattr':
        return this.setattr(r);
      case 'access':
        return this.ok(r, this.vfs.access(cred(r), r.ino, r.mask));
      case 'readlink':
        return this.readlink(r);
      case 'mknod':
        return this.mknod(r);
      case 'mkdir':
        return this.mkdir(r);
      case 'symlink':
        return this.symlink(r);
      case 'link':
        return this.link(r);
      case 'unlink':
        return this.ok(r, this.vfs.unlink(cred(r), r.parent, decodeName('unlink', r.name)));
      case 'rmdir':
        return this.ok(r, this.vfs.rmdir(cred(r), r.parent, decodeName('rmdir', r.name)));
      case 'rename':
        return this.rename(r);
      case 'open':
        return this.open(r);
      case 'create':
        return this.create(r);
      case 'read':
        return this.read(r);
      case 'write':
        return this.write(r);
      case 'flush':
        return this.ok(r, this.vfs.flush(r.fh));
      case 'fsync':
        return this.ok(r, this.vfs.fsync(r.fh, r.datasync));
      case 'release':
        return this.release(r);
      case 'opendir':
        return this.opendir(r);
      case 'readdir':
        return this.readdir(r);
      case 'releasedir':
        this.dirs.delete(r.fh);
        return this.ok(r, Promise.resolve());
      case 'fsyncdir':
        return this.ok(r, Promise.resolve());
      case 'statfs':
        return this.statfs(r);
      case 'getxattr':
      case 'listxattr':
      case 'setxattr':
      case 'removexattr':
        // ENOSYS: the kernel remembers it and answers EOPNOTSUPP itself from now on.
        this.s().replyErr(r.id, ERRNO.ENOSYS);
        return Promise.resolve();
    }
  }

  private s(): NativeFuseSession {
    if (!this.session) throw new FsError('EIO', 'fuse', undefined, { message: 'fuse: no session' });
    return this.session;
  }

  private async ok(r: FuseRequest, p: Promise<void>): Promise<void> {
    await p;
    this.s().replyErr(r.id, 0);
  }

  // ---- replies helpers ------------------------------------------------------------------

  private nativeAttr(a: Attr): NativeAttr {
    if (a.type === 'file') this.noteStamp(a);
    return {
      ino: a.ino,
      mode: stMode(a),
      nlink: a.nlink,
      uid: a.uid,
      gid: a.gid,
      size: a.size,
      blksize: BLKSIZE,
      atimeNs: a.atimeNs,
      mtimeNs: a.mtimeNs,
      ctimeNs: a.ctimeNs,
    };
  }

  private entry(a: Attr): NativeEntry {
    return {
      ino: a.ino,
      generation: a.generation,
      attr: this.nativeAttr(a),
      attrTimeout: this.opts.attrTimeoutSec,
      entryTimeout: this.opts.entryTimeoutSec,
    };
  }

  /** auto_cache bookkeeping: a changed mtime or size invalidates the page cache at next open. */
  private noteStamp(a: Attr): void {
    const st = this.stamps.get(a.ino);
    if (st) {
      if (st.mtimeNs !== a.mtimeNs || st.size !== a.size) {
        st.valid = false;
        st.mtimeNs = a.mtimeNs;
        st.size = a.size;
      }
      return;
    }
    if (this.stamps.size >= AUTO_CACHE_MAX) {
      const oldest = this.stamps.keys().next();
      if (!oldest.done) this.stamps.delete(oldest.value);
    }
    this.stamps.set(a.ino, { mtimeNs: a.mtimeNs, size: a.size, valid: false });
  }

  /** At open: may the kernel keep the pages it has cached? (Then they count as fresh.) */
  private keepCache(a: Attr): boolean {
    this.noteStamp(a);
    const st = this.stamps.get(a.ino);
    if (!st) return false;
    const keep = st.valid;
    st.valid = true;
    return keep;
  }

  // ---- operations -----------------------------------------------------------------------

  private async lookup(r: FuseRequestOf<'lookup'>): Promise<void> {
    const name = decodeName('lookup', r.name);
    let a: Attr;
    try {
      a = await this.vfs.lookup(cred(r), r.parent, name);
    } catch (e) {
      const neg = this.opts.negativeTimeoutSec ?? 0;
      if (neg > 0 && isFsError(e) && e.code === 'ENOENT') {
        this.s().replyEntry(r.id, { ino: 0, generation: 0, attrTimeout: 0, entryTimeout: neg });
        return;
      }
      throw e;
    }
    this.s().replyEntry(r.id, this.entry(a));
  }

  private async getattr(r: FuseRequestOf<'getattr'>): Promise<void> {
    const a = await this.vfs.getattr(cred(r), r.ino);
    this.s().replyAttr(r.id, this.nativeAttr(a), this.opts.attrTimeoutSec);
  }

  private async setattr(r: FuseRequestOf<'setattr'>): Promise<void> {
    const a = await this.vfs.setattr(cred(r), r.ino, r.changes, r.fh);
    this.s().replyAttr(r.id, this.nativeAttr(a), this.opts.attrTimeoutSec);
  }

  private async readlink(r: FuseRequestOf<'readlink'>): Promise<void> {
    const target = await this.vfs.readlink(cred(r), r.ino);
    this.s().replyReadlink(r.id, target);
  }

  private async mknod(r: FuseRequestOf<'mknod'>): Promise<void> {
    const name = decodeName('mknod', r.name);
    const type = r.mode & S_IFMT;
    // Regular files only (mknod(2) of S_IFREG, e.g. by some archivers); no devices, FIFOs or sockets.
    if (type !== S_IFREG && type !== 0) throw new FsError('EPERM', 'mknod', name);
    const c = cred(r);
    const { attr, fh } = await this.vfs.create(
      c,
      r.parent,
      name,
      r.mode & 0o7777,
      O_CREAT | O_EXCL | O_RDONLY,
    );
    await this.vfs.release(fh);
    this.s().replyEntry(r.id, this.entry(attr));
  }

  private async mkdir(r: FuseRequestOf<'mkdir'>): Promise<void> {
    const name = decodeName('mkdir', r.name);
    const a = await this.vfs.mkdir(cred(r), r.parent, name, r.mode & 0o7777);
    this.s().replyEntry(r.id, this.entry(a));
  }

  private async symlink(r: FuseRequestOf<'symlink'>): Promise<void> {
    const name = decodeName('symlink', r.name);
    let target: string;
    try {
      target = utf8.decode(r.target);
    } catch {
      throw new FsError('EILSEQ', 'symlink', name, { message: 'symlink: target is not valid UTF-8' });
    }
    const a = await this.vfs.symlink(cred(r), r.parent, name, target);
    this.s().replyEntry(r.id, this.entry(a));
  }

  private async link(r: FuseRequestOf<'link'>): Promise<void> {
    const newName = decodeName('link', r.newName);
    const a = await this.vfs.link(cred(r), r.ino, r.newParent, newName);
    this.s().replyEntry(r.id, this.entry(a));
  }

  private async rename(r: FuseRequestOf<'rename'>): Promise<void> {
    const name = decodeName('rename', r.name);
    const newName = decodeName('rename', r.newName);
    const keys = [entryKey(r.parent, name), entryKey(r.newParent, newName)];
    for (const k of keys) this.changing.set(k, (this.changing.get(k) ?? 0) + 1);
    try {
      await this.vfs.rename(cred(r), r.parent, name, r.newParent, newName);
    } finally {
      for (const k of keys) {
        const n = (this.changing.get(k) ?? 1) - 1;
        if (n > 0) this.changing.set(k, n);
        else this.changing.delete(k);
      }
    }
    this.s().replyErr(r.id, 0);
  }

  private async open(r: FuseRequestOf<'open'>): Promise<void> {
    const c = cred(r);
    const fh = await this.vfs.open(c, r.ino, r.flags);
    this.openFiles.add(fh);
    let keepCache = false;
    try {
      const a = await this.vfs.getattr(c, r.ino);
      keepCache = (r.flags & O_TRUNC) === 0 && this.keepCache(a);
    } catch (e) {
      await this.releaseQuietly(fh);
      throw e;
    }
    if (this.s().replyOpen(r.id, { fh, keepCache }) === -ERRNO.ENOENT) {
      // The open was interrupted: the kernel will never release this handle.
      await this.releaseQuietly(fh);
    }
  }

  private async create(r: FuseRequestOf<'create'>): Promise<void> {
    const name = decodeName('create', r.name);
    const { attr, fh } = await this.vfs.create(cred(r), r.parent, name, r.mode & 0o7777, r.flags);
    this.openFiles.add(fh);
    const entry = this.entry(attr);
    this.keepCache(attr); // a new (or just opened) file: start tracking it
    if (this.s().replyCreate(r.id, entry, { fh, keepCache: false }) === -ERRNO.ENOENT) {
      await this.releaseQuietly(fh);
    }
  }

  private async releaseQuietly(fh: Fh): Promise<void> {
    this.openFiles.delete(fh);
    try {
      await this.vfs.release(fh);
    } catch (e) {
      this.log.warn('fuse: release of an unused handle failed', { fh, err: e });
    }
  }

  private async read(r: FuseRequestOf<'read'>): Promise<void> {
    // The reply is copied to the kernel synchronously (fuse_reply_buf): read buffers are reused
    // instead of allocating 128 KiB per request, which made sequential reads GC-bound.
    const scratch =
      r.size <= READ_BUF_SIZE ? (this.readBufs.pop() ?? Buffer.allocUnsafeSlow(READ_BUF_SIZE)) : undefined;
    try {
      const data = await this.vfs.read(r.fh, r.offset, r.size, scratch);
      this.s().replyBuf(r.id, data);
    } finally {
      if (scratch !== undefined && this.readBufs.length < READ_BUF_POOL) this.readBufs.push(scratch);
    }
  }

  private async write(r: FuseRequestOf<'write'>): Promise<void> {
    const s = this.s();
    const slot = r.slot;
    if (slot === undefined) {
      if (!r.data) throw new FsError('EIO', 'write', undefined, { message: 'write request without data' });
      s.replyWrite(r.id, await this.vfs.write(r.fh, r.offset, r.data));
      return;
    }
    // The data lives in the binding's write pool: the slot goes back once the VFS is done with
    // it (the VFS does not keep write buffers), whatever the outcome.
    const start = slot * FUSE_MAX_WRITE;
    let n: number;
    try {
      n = await this.vfs.write(r.fh, r.offset, this.writePool.subarray(start, start + (r.size ?? 0)));
    } finally {
      s.releaseWriteSlot(slot);
    }
    s.replyWrite(r.id, n);
  }

  private async release(r: FuseRequestOf<'release'>): Promise<void> {
    this.openFiles.delete(r.fh);
    await this.vfs.release(r.fh);
    this.s().replyErr(r.id, 0);
  }

  private async opendir(r: FuseRequestOf<'opendir'>): Promise<void> {
    await this.vfs.access(cred(r), r.ino, R_OK);
    const fh = this.nextDirFh++;
    this.dirs.set(fh, { ino: r.ino });
    this.s().replyOpen(r.id, { fh });
  }

  private async readdir(r: FuseRequestOf<'readdir'>): Promise<void> {
    const h = this.dirs.get(r.fh) ?? { ino: r.ino };
    const plus = r.plus;
    const sizeOf = plus ? direntPlusSize : direntSize;
    const out: NativeDirent[] = [];
    const off = r.offset;
    // "." and ".." carry no attributes in a READDIRPLUS (node id 0: the kernel only lists them).
    if (off === 0n) out.push({ name: DOT, ino: r.ino, mode: S_IFDIR, nextOffset: 1n });
    if (off <= 1n) {
      out.push({
        name: DOTDOT,
        ino: r.ino === ROOT_INO ? ROOT_INO : UNKNOWN_INO,
        mode: S_IFDIR,
        nextOffset: 2n,
      });
    }
    // Offset where the VFS part starts: 2 = cookie 0 (the beginning).
    const base = off > 2n ? off : 2n;
    const room = r.size - out.reduce((n, e) => n + sizeOf(e.name), 0);
    let entries: NativeDirent[] = [];
    let eof = false;
    let next = base;
    const c = cred(r);
    if (h.ahead && h.ahead.offset === base) {
      entries = h.ahead.entries;
      eof = h.ahead.eof;
      next = entries[entries.length - 1]?.nextOffset ?? base;
      // Attributes kept from an earlier request may be older than the kernel's: send fresh ones.
      if (plus) entries = await Promise.all(entries.map((e) => this.withFreshEntry(c, e)));
    }
    let bytes = entries.reduce((n, e) => n + sizeOf(e.name), 0);
    // Fill the kernel's buffer (a few VFS pages at most): one getdents, one request.
    for (let calls = 0; !eof && bytes < room && calls < MAX_READDIR_CALLS; calls++) {
      const limit = Math.max(16, Math.ceil((room - bytes) / (plus ? MIN_DIRENT_PLUS : MIN_DIRENT)));
      const res = await this.vfs.readdir(c, r.ino, next - 2n, limit);
      for (const e of res.entries) {
        const name = Buffer.from(e.name, 'utf8');
        next = e.cookie + 2n;
        entries.push({
          name,
          ino: e.attr.ino,
          mode: typeBits(e.attr.type),
          nextOffset: next,
          ...(plus ? { entry: this.entry(e.attr) } : {}),
        });
        bytes += sizeOf(name);
      }
      eof = res.eof || res.entries.length === 0;
    }
    const fixed = out.length;
    out.push(...entries);
    const packed = this.s().replyDirents(r.id, out);
    const used = Math.max(0, packed - fixed);
    const last = used > 0 ? entries[used - 1] : undefined;
    // Keep what did not fit (and the end-of-directory mark) for the request that follows.
    h.ahead =
      used < entries.length || eof
        ? { offset: last ? last.nextOffset : base, entries: entries.slice(used), eof }
        : undefined;
    if (this.dirs.has(r.fh)) this.dirs.set(r.fh, h);
  }

  /** A kept READDIRPLUS entry with its attributes read again (none if the name is gone). */
  private async withFreshEntry(c: Cred, e: NativeDirent): Promise<NativeDirent> {
    const plain: NativeDirent = { name: e.name, ino: e.ino, mode: e.mode, nextOffset: e.nextOffset };
    try {
      return { ...plain, entry: this.entry(await this.vfs.getattr(c, e.ino)) };
    } catch {
      return plain;
    }
  }

  private async statfs(r: FuseRequestOf<'statfs'>): Promise<void> {
    const st = await this.vfs.statfs(cred(r));
    this.s().replyStatfs(r.id, st);
  }
}

/** Bytes of one entry in the kernel's readdir buffer (struct fuse_dirent, 8-byte aligned). */
function direntSize(name: Buffer): number {
  return (24 + name.length + 7) & ~7;
}

/** Bytes of one READDIRPLUS entry (struct fuse_direntplus: fuse_entry_out + fuse_dirent). */
function direntPlusSize(name: Buffer): number {
  return (152 + name.length + 7) & ~7;
}

function cred(r: FuseRequest): Cred {
  return { uid: r.ctx.uid, gid: r.ctx.gid, groups: r.ctx.groups };
}

/** Context of a request for log lines (no data, names decoded leniently). */
function describe(r: FuseRequest): Record<string, unknown> {
  const d: Record<string, unknown> = { op: r.op, uid: r.ctx.uid, pid: r.ctx.pid };
  if ('ino' in r) d.ino = r.ino;
  if ('parent' in r) d.parent = r.parent;
  if ('name' in r) d.name = r.name.toString('utf8');
  if ('fh' in r) d.fh = r.fh;
  if ('offset' in r) d.offset = typeof r.offset === 'bigint' ? r.offset.toString() : r.offset;
  return d;
}
