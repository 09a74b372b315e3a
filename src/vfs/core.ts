/**
 * The file system core: all file semantics of a share live here; FUSE and NFS are thin adapters.
 *
 * Storage is reached only through three interfaces: MetaStore (SQLite: nodes, edges, journal),
 * DataCache (local cache files) and ObjectStore (the bucket).
 *
 * Ordering rules:
 * - an operation on a directory's entries first awaits tree.ensureListed(dir);
 * - namespace changes that touch the bucket do so BEFORE the local change, so a backend failure
 *   leaves the local view unchanged and the caller gets EIO;
 * - before a namespace change touches an inode's object, uploader.hold(ino) + quiesce(ino)
 *   (files) or uploader.exclusive() (directory renames) guarantees no upload of it is in flight
 *   or starts until the change is done;
 * - data writes go to the cache only; uploads happen from the journal (cache mode) or at
 *   flush/fsync (write-through).
 */
import type { Attr, Cred, FileRange, FileType, Ino, SetAttrChanges, StatFs } from '../core/types.js';
import {
  NAME_MAX,
  KEY_MAX,
  O_ACCMODE,
  O_APPEND,
  O_EXCL,
  O_RDONLY,
  O_TRUNC,
  O_WRONLY,
  R_OK,
  ROOT_CRED,
  ROOT_INO,
  W_OK,
  X_OK,
  nowNs,
} from '../core/types.js';
import { FsError, errMessage } from '../core/errors.js';
import type { DataCache } from '../datacache/types.js';
import type { Logger } from '../log/index.js';
import type { MetaStore, NewNode, NodeRow } from '../metastore/types.js';
import type { ObjectStore } from '../objectstore/types.js';
import { ObjectStoreError } from '../objectstore/types.js';
import { DIR_CONTENT_TYPE, encodePosixMeta } from '../objectstore/posix-meta.js';
import { inGroup, permits, stickyAllows } from './access.js';
import { Fetcher, type RemoteSource } from './fetcher.js';
import { RemoteTree, type DiffSummary, type ShareDefaults } from './tree.js';
import type { Fh, InvalidateEvent, ReaddirResult, Vfs } from './types.js';
import { randomBytes } from 'node:crypto';
import { Uploader, type UploadStats } from './uploader.js';
import { PROBE_PREFIX } from './tree.js';
import { RemoteOps } from './remote-ops.js';

export type ShareMode = 'cache' | 'write-through';

export interface CoreVfsOptions {
  /** Share name (logs). */
  name: string;
  /** Key prefix of the share: '' or ending in '/'. */
  prefix: string;
  mode: ShareMode;
  readOnly: boolean;
  defaults: ShareDefaults;
  uploadDelayMs: number;
  uploadConcurrency: number;
  /** How often the uploader looks for due uploads besides the wake-ups it sets itself (200 ms). */
  uploadPollMs?: number;
  /**
   * Cache mode: while the share is being changed at a high rate, background uploads wait up to
   * this long beyond their due time (default 5 s; 0: never). See Uploader.
   */
  uploadBusyDeferMs?: number;
  /** A cached directory listing older than this is re-listed on access; 0 = never. */
  dirTtlMs: number;
  /** Cache limit (statfs). */
  cacheLimitBytes: number;
  meta: MetaStore;
  cache: DataCache;
  store: ObjectStore;
  logger: Logger;
  /**
   * Allocates page-aligned buffers for large GETs (wired by the daemon from the io addon); the
   * data cache may then write fetched data with O_DIRECT and serve the reads from the buffer.
   */
  allocAligned?: (size: number) => Buffer;
}

interface Handle {
  ino: Ino;
  flags: number;
  readable: boolean;
  writable: boolean;
  append: boolean;
  /** Sequential read detection for read-ahead. */
  lastReadEnd: number;
  seqRun: number;
  /** How far read-ahead has been scheduled. */
  raEnd: number;
  /** Where the fetcher's read-ahead window ends (blocks before it are fetched or in flight). */
  raFetched: number;
}

const READAHEAD_MIN = 1 << 20;
const READAHEAD_MAX = 64 << 20;
const DIR_COOKIE_VERIFIER = 1n;
/**
 * Entries past a readdir page whose metadata (HEAD) loading starts with it: enough to keep the
 * tree's 32 HEADs in flight while the reader asks for the next pages.
 */
const READDIR_PREFETCH = 256;
/** Blocks of the data cache the fetcher brings in, and its largest GET. */
const FETCH_BLOCK = 128 << 10;
const FETCH_GET_MAX = 8 << 20;
/**
 * Random reads that miss the cache fetch their 128 KiB blocks, and each such GET costs about as
 * much latency as ~1 MiB of transfer (s3rver: 3.5 ms + 4 ms/MiB). Once random reads of a file
 * have missed as many times as GETs of FETCH_GET_MAX would take to bring the whole file (and at
 * least WHOLE_FETCH_MISSES times, so that reading the head of many files stays cheap), the rest of
 * the file is fetched in the background with large GETs, as a sequential read would. That costs at
 * most as many requests again as the misses already made, and at most the file's bytes: only
 * for files up to WHOLE_FETCH_MAX and an eighth of the cache.
 */
const WHOLE_FETCH_MISSES = 4;
const WHOLE_FETCH_MAX = 2 * 1024 ** 3;
/** Files whose random misses are counted at once (the counts are forgotten past it). */
const RANDOM_MISS_FILES = 4096;

export class CoreVfs implements Vfs {
  readonly readOnly: boolean;
  readonly mode: ShareMode;
  private readonly meta: MetaStore;
  private readonly cache: DataCache;
  private readonly store: ObjectStore;
  private readonly log: Logger;
  readonly tree: RemoteTree;
  private readonly fetcher: Fetcher;
  readonly uploader: Uploader;
  private readonly remoteOps: RemoteOps;
  private readonly handles = new Map<Fh, Handle>();
  private readonly openCount = new Map<Ino, { all: number; writers: number }>();
  /** Random-read misses per file, towards a whole-file fetch (see WHOLE_FETCH_MISSES). */
  private readonly randomMisses = new Map<Ino, number>();
  private readonly listeners = new Set<(ev: InvalidateEvent) => void>();
  private nextFh = 1;
  private closed = false;

  constructor(private readonly opts: CoreVfsOptions) {
    this.readOnly = opts.readOnly;
    this.mode = opts.mode;
    this.meta = opts.meta;
    this.cache = opts.cache;
    this.store = opts.store;
    this.log = opts.logger;
    const onErr = (op: string, key: string, e: unknown): FsError => this.backendError(op, key, e);
    this.tree = new RemoteTree(this.meta, this.store, opts.prefix, opts.defaults, this.log, onErr, {
      ttlMs: opts.dirTtlMs,
      isOpen: (ino) => this.openCount.has(ino),
      isUploading: (ino) => this.uploader.isUploading(ino),
      dropCache: (ino) => (this.openCount.has(ino) ? Promise.resolve() : this.cache.drop(ino)),
      invalidate: (ev) => this.emit(ev),
    });
    // 128 KiB blocks: a random 4 KiB read fetches little; sequential runs merge into 8 MiB GETs.
    this.fetcher = new Fetcher(
      this.cache,
      this.store,
      onErr,
      FETCH_BLOCK,
      FETCH_GET_MAX,
      16,
      opts.allocAligned,
    );
    this.remoteOps = new RemoteOps(this.meta, this.store, this.tree, this.cache, this.log);
    this.uploader = new Uploader(
      this.meta,
      this.cache,
      this.store,
      this.tree,
      this.fetcher,
      {
        concurrency: opts.uploadConcurrency,
        delayMs: opts.mode === 'cache' ? opts.uploadDelayMs : 0,
        ...(opts.uploadPollMs !== undefined ? { pollMs: opts.uploadPollMs } : {}),
        // write-through closes upload in the foreground; what the background does there is brief.
        ...(opts.mode !== 'cache'
          ? { busyDeferMs: 0 }
          : opts.uploadBusyDeferMs !== undefined
            ? { busyDeferMs: opts.uploadBusyDeferMs }
            : {}),
      },
      this.log,
      (ino) => (this.openCount.get(ino)?.writers ?? 0) > 0,
    );
  }

  /** Recover from the previous run, then start background work (the upload journal). */
  async start(): Promise<void> {
    if (this.readOnly) return;
    await this.remoteOps.replay();
    await this.recoverTornFiles();
    this.uploader.conditional = await this.probeConditionalWrites();
    this.uploader.onConflict = (ino, name, key, etag, size) =>
      this.addConflictSibling(ino, name, key, etag, size);
    this.uploader.start();
  }

  /**
   * Does the backend honour If-None-Match on PUT? Probed once per share on a private key (two
   * conditional PUTs; the second must fail with 412). s3rver, for one, ignores the header: then
   * uploads check with a HEAD first.
   */
  private async probeConditionalWrites(): Promise<boolean> {
    const key = `${this.opts.prefix}${PROBE_PREFIX}${randomBytes(6).toString('hex')}`;
    try {
      await this.store.put(key, Buffer.from('1'), { metadata: {}, ifNoneMatch: true });
      try {
        await this.store.put(key, Buffer.from('2'), { metadata: {}, ifNoneMatch: true });
        this.log.info(
          'the object store ignores conditional writes: uploads check for concurrent writers with HEAD',
        );
        return false;
      } catch (e) {
        return e instanceof ObjectStoreError && e.kind === 'precondition';
      }
    } catch (e) {
      this.log.warn('conditional-write probe failed; uploads check for concurrent writers with HEAD', {
        error: errMessage(e),
      });
      return false;
    } finally {
      await this.store.delete([key]).catch(() => undefined);
    }
  }

  private addConflictSibling(ino: Ino, name: string, key: string, etag: string, size: number): void {
    const loc = this.meta.parentOf(ino);
    if (!loc || this.meta.lookup(loc.parent, name)) return;
    const t = nowNs();
    this.meta.createChild(loc.parent, name, {
      ...this.fresh('file', this.opts.defaults.fileMode, this.opts.defaults.uid, this.opts.defaults.gid, t),
      size,
      remoteKey: key,
      etag,
      remoteSize: size,
      state: 'clean',
      metaLoaded: false,
    });
    this.emit({ kind: 'entry', parent: loc.parent, name });
  }

  /**
   * A file that was being written when the daemon died (kill -9, power loss) may have bytes whose
   * cache ranges were never made durable: they were not acknowledged (no close/fsync returned
   * after them). Like a local file system after a crash, keep what is known and cut the
   * unsynced tail, so the file can be uploaded; acknowledged data is always covered by the
   * ranges saved at close/fsync.
   */
  private async recoverTornFiles(): Promise<void> {
    for (const n of this.meta.unsyncedNodes()) {
      if (n.type !== 'file' || n.state !== 'dirty') continue;
      const hadEntry = this.cache.has(n.ino);
      this.cache.ensure(n.ino, n.size);
      const size = Math.min(n.size, this.cache.size(n.ino) ?? n.size);
      const fetchable = n.remoteKey !== null ? Math.min(n.remoteSize ?? 0, size) : 0;
      const gaps = this.cache.missing(n.ino, fetchable, size - fetchable, { count: false });
      const valid = gaps.length > 0 ? gaps[0]!.start : size;
      if (valid === n.size && hadEntry) continue;
      if (valid !== n.size) {
        this.log.warn('file was being written when the daemon stopped: its unsynced tail is cut', {
          path: this.tree.pathOf(n.ino),
          size: n.size,
          keptBytes: valid,
        });
      }
      await this.cache.truncate(n.ino, valid);
      this.meta.updateNode(n.ino, { size: valid });
    }
  }

  /** Stop: no new uploads; in-flight ones finish. Journal entries stay for the next start. */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.remoteOps.stop();
    await this.uploader.stop();
  }

  uploadStats(): UploadStats {
    return this.uploader.stats();
  }

  /** Wait until every journaled change is in the bucket. */
  async flushAll(timeoutMs: number): Promise<void> {
    await this.uploader.drain(timeoutMs);
  }

  /**
   * Reverse sync now: re-list `path` (a directory, or a file's directory) and, with `recursive`,
   * every directory below it that this gateway has listed before. Unlisted directories stay lazy
   * (they are listed on first access anyway).
   */
  async refresh(
    path: string,
    recursive: boolean,
    progress?: (p: { directories: number; objects: number }) => void,
  ): Promise<DiffSummary & { directories: number }> {
    let ino: Ino = ROOT_INO;
    for (const seg of path.split('/').filter((s) => s !== '')) {
      const n = await this.lookup(ROOT_CRED, ino, seg).catch((e: unknown) => {
        throw e instanceof FsError && e.code === 'ENOENT'
          ? new FsError('ENOENT', 'refresh', path, {
              message: `${path}: no such file or directory in the share`,
            })
          : e;
      });
      ino = n.ino;
    }
    let start = this.node(ino, 'refresh');
    if (start.type !== 'dir') start = this.node(this.meta.parentOf(ino)?.parent ?? ROOT_INO, 'refresh');
    const total = { added: 0, changed: 0, removed: 0, conflicts: 0, objects: 0, directories: 0 };
    const queue: Ino[] = [start.ino];
    while (queue.length > 0) {
      const dir = queue.shift()!;
      if (!this.meta.getNode(dir)) continue;
      const s = await this.tree.listDir(dir);
      total.added += s.added;
      total.changed += s.changed;
      total.removed += s.removed;
      total.conflicts += s.conflicts;
      total.objects += s.objects;
      total.directories++;
      progress?.({ directories: total.directories, objects: total.objects });
      if (!recursive) continue;
      for (let cookie = 0n; ;) {
        const page = this.meta.children(dir, cookie, 1000);
        for (const c of page)
          if (c.node.type === 'dir' && this.meta.getDirState(c.node.ino)?.complete) queue.push(c.node.ino);
        if (page.length < 1000) break;
        cookie = page[page.length - 1]!.cookie;
      }
    }
    return total;
  }

  // ---------------------------------------------------------------- errors

  /** One log line naming the key and the S3 error; the caller gets EIO (or a precise errno). */
  private backendError(op: string, key: string, e: unknown): FsError {
    if (e instanceof FsError) return e;
    const code = e instanceof ObjectStoreError && e.kind === 'not-found' ? 'ENOENT' : 'EIO';
    if (code === 'EIO') this.log.error('object store request failed', { op, key, error: errMessage(e) });
    return new FsError(code, op, key, { cause: e, message: `${op} ${key}: ${errMessage(e)}` });
  }

  // ---------------------------------------------------------------- helpers

  private node(ino: Ino, op: string): NodeRow {
    const n = this.meta.getNode(ino);
    if (!n) throw new FsError('ENOENT', op, `ino ${ino}`);
    return n;
  }

  private async loaded(ino: Ino, op: string): Promise<NodeRow> {
    return this.tree.ensureMeta(this.node(ino, op));
  }

  private async dir(cred: Cred, ino: Ino, op: string, mask: number): Promise<NodeRow> {
    const d = await this.loaded(ino, op);
    if (d.type !== 'dir') throw new FsError('ENOTDIR', op, this.tree.pathOf(ino));
    if (!permits(cred, d, mask)) throw new FsError('EACCES', op, this.tree.pathOf(ino));
    return d;
  }

  private checkName(name: string, op: string): void {
    if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
      throw new FsError('EINVAL', op, name);
    }
    if (Buffer.byteLength(name, 'utf8') > NAME_MAX) throw new FsError('ENAMETOOLONG', op, name);
  }

  private checkKeyLength(parent: Ino, name: string, op: string, dir: boolean): string {
    const seg = this.tree.segments(parent);
    if (!seg) throw new FsError('ENOENT', op, name);
    const key = this.tree.keyOfSegments([...seg, name], dir);
    if (Buffer.byteLength(key, 'utf8') > KEY_MAX) throw new FsError('ENAMETOOLONG', op, name);
    return key;
  }

  private writable(op: string): void {
    if (this.readOnly) throw new FsError('EROFS', op);
  }

  toAttr(n: NodeRow): Attr {
    return {
      ino: n.ino,
      generation: n.generation,
      type: n.type,
      mode: n.mode & 0o7777,
      uid: n.uid,
      gid: n.gid,
      size: n.type === 'dir' ? 4096 : n.size,
      nlink: 1,
      atimeNs: n.atimeNs,
      mtimeNs: n.mtimeNs,
      ctimeNs: n.ctimeNs,
    };
  }

  private emit(ev: InvalidateEvent): void {
    for (const l of this.listeners) {
      try {
        l(ev);
      } catch (e) {
        this.log.warn('invalidation listener failed', { error: errMessage(e) });
      }
    }
  }

  onInvalidate(listener: (ev: InvalidateEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ---------------------------------------------------------------- lookup / attributes

  async lookup(cred: Cred, parent: Ino, name: string): Promise<Attr> {
    if (name === '.' || name === '..') {
      // NFS clients look up ".." (e.g. after a server restart); the share root is its own parent.
      await this.dir(cred, parent, 'lookup', X_OK);
      const up = name === '..' ? (this.meta.parentOf(parent)?.parent ?? ROOT_INO) : parent;
      return this.toAttr(await this.loaded(up, 'lookup'));
    }
    this.checkName(name, 'lookup');
    const d = await this.dir(cred, parent, 'lookup', X_OK);
    await this.tree.ensureListed(d);
    const n = this.meta.lookup(parent, name);
    if (!n) throw new FsError('ENOENT', 'lookup', name);
    return this.toAttr(await this.tree.ensureMeta(n));
  }

  async getattr(_cred: Cred, ino: Ino): Promise<Attr> {
    return this.toAttr(await this.loaded(ino, 'getattr'));
  }

  async access(cred: Cred, ino: Ino, mask: number): Promise<void> {
    const n = await this.loaded(ino, 'access');
    if ((mask & W_OK) !== 0 && this.readOnly) throw new FsError('EROFS', 'access', this.tree.pathOf(ino));
    if (!permits(cred, n, mask)) throw new FsError('EACCES', 'access', this.tree.pathOf(ino));
  }

  async setattr(cred: Cred, ino: Ino, ch: SetAttrChanges, fh?: Fh): Promise<Attr> {
    this.writable('setattr');
    const n = await this.loaded(ino, 'setattr');
    const path = this.tree.pathOf(ino);
    const isOwner = cred.uid === 0 || cred.uid === n.uid;
    const upd: Partial<NewNode> = {};
    const t = nowNs();
    let metaChanged = false;

    if (ch.mode !== undefined) {
      if (!isOwner) throw new FsError('EPERM', 'chmod', path);
      if (ino === ROOT_INO && this.opts.prefix === '') throw new FsError('EPERM', 'chmod', '/');
      let mode = ch.mode & 0o7777;
      // Like Linux: a non-root caller outside the file's group loses the setgid bit.
      if (cred.uid !== 0 && !inGroup(cred, ch.gid ?? n.gid)) mode &= ~0o2000;
      upd.mode = mode;
      metaChanged = true;
    }
    if (ch.uid !== undefined || ch.gid !== undefined) {
      if (ino === ROOT_INO && this.opts.prefix === '') throw new FsError('EPERM', 'chown', '/');
      const uidChange = ch.uid !== undefined && ch.uid !== n.uid;
      const gidChange = ch.gid !== undefined && ch.gid !== n.gid;
      if (cred.uid !== 0) {
        if (uidChange) throw new FsError('EPERM', 'chown', path);
        if (gidChange && (cred.uid !== n.uid || !inGroup(cred, ch.gid!)))
          throw new FsError('EPERM', 'chown', path);
      }
      if (ch.uid !== undefined) upd.uid = ch.uid;
      if (ch.gid !== undefined) upd.gid = ch.gid;
      // chown by non-root clears setuid/setgid on files, as Linux does.
      if ((uidChange || gidChange) && n.type === 'file' && cred.uid !== 0)
        upd.mode = (upd.mode ?? n.mode) & ~0o6000;
      metaChanged = true;
    }
    const handle = fh !== undefined ? this.handles.get(fh) : undefined;
    if (ch.size !== undefined) {
      if (n.type === 'dir') throw new FsError('EISDIR', 'truncate', path);
      if (n.type !== 'file') throw new FsError('EINVAL', 'truncate', path);
      if (!(handle?.writable ?? false) && !permits(cred, n, W_OK))
        throw new FsError('EACCES', 'truncate', path);
      if (ch.size < 0 || !Number.isSafeInteger(ch.size)) throw new FsError('EINVAL', 'truncate', path);
      if (ch.size > 5 * 1024 ** 4) throw new FsError('EFBIG', 'truncate', path);
      await this.truncateData(n, ch.size);
      upd.size = ch.size;
      upd.mtimeNs = t;
      upd.state = 'dirty';
    }
    for (const which of ['atimeNs', 'mtimeNs'] as const) {
      const v = ch[which];
      if (v === undefined) continue;
      if (v === 'now') {
        if (!isOwner && !permits(cred, n, W_OK)) throw new FsError('EACCES', 'utimens', path);
        upd[which] = t;
      } else {
        if (!isOwner) throw new FsError('EPERM', 'utimens', path);
        upd[which] = v;
      }
      metaChanged = true;
    }
    upd.ctimeNs = t;
    // Directories: the marker object carries the attributes (created if the dir was a bare
    // prefix). In cache mode it is journaled like a file's attributes and the uploader writes the
    // marker; in write-through mode it is written now. The whole-bucket root stores none.
    const rootOfBucket = ino === ROOT_INO && this.opts.prefix === '';
    const dirNow = n.type === 'dir' && (this.mode === 'write-through' || rootOfBucket);
    if (metaChanged && n.state === 'clean' && upd.state === undefined) upd.state = dirNow ? 'clean' : 'meta';

    if (n.type === 'dir' && metaChanged && !rootOfBucket && this.mode === 'write-through') {
      const merged = { ...n, ...upd };
      const key = this.tree.keyOf(ino, 'dir');
      if (key === undefined) throw new FsError('ENOENT', 'setattr', path);
      try {
        await this.store.put(key, Buffer.alloc(0), {
          metadata: encodePosixMeta({
            type: 'dir',
            mode: merged.mode,
            uid: merged.uid,
            gid: merged.gid,
            mtimeNs: merged.mtimeNs,
            atimeNs: merged.atimeNs,
          }),
          contentType: DIR_CONTENT_TYPE,
        });
      } catch (e) {
        throw this.backendError('put', key, e);
      }
      upd.hasMarker = true;
      upd.state = 'clean';
    }
    this.meta.updateNode(ino, upd);
    this.uploader.touch(ino);
    if (upd.state === 'meta' || upd.state === 'dirty') await this.afterChange(ino);
    return this.toAttr(this.node(ino, 'setattr'));
  }

  /**
   * A file changed outside an open-for-write handle (setattr) or a handle was closed: make the
   * change reach the bucket according to the mode.
   */
  private async afterChange(ino: Ino): Promise<void> {
    const open = this.openCount.get(ino);
    if ((open?.writers ?? 0) > 0) return; // the writer's close takes care of it
    if (this.mode === 'write-through') await this.uploader.uploadNow(ino);
    else this.uploader.schedule(ino);
  }

  private async truncateData(n: NodeRow, size: number): Promise<void> {
    this.cache.ensure(n.ino, n.remoteSize ?? n.size);
    if ((this.cache.size(n.ino) ?? n.size) !== n.size) {
      // Cache entry and node disagree (should not happen): the node is authoritative.
      this.log.warn('cache size differs from node size', {
        ino: n.ino,
        node: n.size,
        cache: this.cache.size(n.ino),
      });
    }
    await this.cache.truncate(n.ino, size);
  }

  // ---------------------------------------------------------------- directories

  async readdir(cred: Cred, ino: Ino, cookie: bigint, limit: number): Promise<ReaddirResult> {
    const d = await this.dir(cred, ino, 'readdir', R_OK);
    await this.tree.ensureListed(d, { prefetch: true });
    const rows = this.meta.children(ino, cookie, limit + READDIR_PREFETCH);
    const page = rows.slice(0, limit);
    // Metadata of entries seen only in a listing is loaded in parallel (bounded) for this page,
    // and prefetched for the entries that follow (a window, not the rest of the directory: a
    // large directory is read in many small pages, and each would otherwise go over all of it).
    this.tree.prefetchMeta(rows.map((r) => r.node));
    const entries = await Promise.all(
      page.map(async (r) => {
        const n = r.node.metaLoaded ? r.node : await this.tree.ensureMeta(r.node).catch(() => undefined);
        return n ? { name: r.name, attr: this.toAttr(n), cookie: r.cookie } : undefined;
      }),
    );
    return {
      entries: entries.filter((e): e is NonNullable<typeof e> => e !== undefined),
      eof: rows.length <= limit,
      verifier: DIR_COOKIE_VERIFIER,
    };
  }

  async mkdir(cred: Cred, parent: Ino, name: string, mode: number): Promise<Attr> {
    this.checkName(name, 'mkdir');
    this.writable('mkdir');
    const d = await this.dir(cred, parent, 'mkdir', W_OK | X_OK);
    await this.tree.ensureListed(d);
    if (this.meta.lookup(parent, name)) throw new FsError('EEXIST', 'mkdir', name);
    const key = this.checkKeyLength(parent, name, 'mkdir', true);
    const t = nowNs();
    const gid = (d.mode & 0o2000) !== 0 ? d.gid : cred.gid;
    const m = (mode & 0o7777) | ((d.mode & 0o2000) !== 0 ? 0o2000 : 0);
    try {
      await this.store.put(key, Buffer.alloc(0), {
        metadata: encodePosixMeta({ type: 'dir', mode: m, uid: cred.uid, gid, mtimeNs: t, atimeNs: t }),
        contentType: DIR_CONTENT_TYPE,
      });
    } catch (e) {
      throw this.backendError('put', key, e);
    }
    if (this.meta.lookup(parent, name)) throw new FsError('EEXIST', 'mkdir', name);
    const n = this.meta.transaction(() => {
      const created = this.meta.createChild(parent, name, {
        ...this.fresh('dir', m, cred.uid, gid, t),
        remoteKey: key,
        state: 'clean',
        hasMarker: true,
      });
      this.meta.setDirState(created.ino, { complete: true, listedAtMs: Date.now() });
      return created;
    });
    return this.toAttr(n);
  }

  private fresh(type: FileType, mode: number, uid: number, gid: number, t: bigint): NewNode {
    return {
      type,
      mode: mode & 0o7777,
      uid,
      gid,
      size: 0,
      atimeNs: t,
      mtimeNs: t,
      ctimeNs: t,
      remoteKey: null,
      etag: null,
      remoteSize: null,
      state: 'dirty',
      symlink: null,
      metaLoaded: true,
      hasMarker: false,
    };
  }

  /** The entry `parent/name` that the caller wants to remove, with the checks rmdir/unlink share. */
  private async entryToRemove(
    cred: Cred,
    parent: Ino,
    name: string,
    op: 'rmdir' | 'unlink',
  ): Promise<NodeRow> {
    this.checkName(name, op);
    this.writable(op);
    const d = await this.dir(cred, parent, op, W_OK | X_OK);
    await this.tree.ensureListed(d);
    const n0 = this.meta.lookup(parent, name);
    if (!n0) throw new FsError('ENOENT', op, name);
    const n = await this.tree.ensureMeta(n0);
    if (!stickyAllows(cred, d, n)) throw new FsError('EPERM', op, name);
    return n;
  }

  async rmdir(cred: Cred, parent: Ino, name: string): Promise<void> {
    const n = await this.entryToRemove(cred, parent, name, 'rmdir');
    if (n.type !== 'dir') throw new FsError('ENOTDIR', 'rmdir', name);
    await this.tree.ensureListed(n);
    if (this.meta.childCount(n.ino) > 0) throw new FsError('ENOTEMPTY', 'rmdir', this.tree.pathOf(n.ino));
    const key = this.tree.keyOf(n.ino, 'dir');
    if (key === undefined) throw new FsError('ENOENT', 'rmdir', name);
    const unhold = this.uploader.hold(n.ino);
    try {
      await this.uploader.quiesce(n.ino);
      await this.rmdirQuiesced(n, parent, name, key);
    } finally {
      unhold();
    }
  }

  private async rmdirQuiesced(n: NodeRow, parent: Ino, name: string, key: string): Promise<void> {
    const path = this.tree.segments(n.ino) ?? [];
    try {
      await this.remoteOps.run({ kind: 'delete', keys: [key], path }, () => {
        this.meta.removeEdge(parent, name);
        this.meta.deleteNode(n.ino);
      });
    } catch (e) {
      throw this.backendError('delete', key, e);
    }
  }

  // ---------------------------------------------------------------- files

  private addOpen(ino: Ino, writer: boolean): void {
    const c = this.openCount.get(ino) ?? { all: 0, writers: 0 };
    c.all++;
    if (writer) c.writers++;
    this.openCount.set(ino, c);
    this.cache.pin(ino);
  }

  private newHandle(ino: Ino, flags: number): Fh {
    const acc = flags & O_ACCMODE;
    const h: Handle = {
      ino,
      flags,
      readable: acc !== O_WRONLY,
      writable: acc !== O_RDONLY,
      append: (flags & O_APPEND) !== 0,
      lastReadEnd: -1,
      seqRun: 0,
      raEnd: 0,
      raFetched: 0,
    };
    const fh = this.nextFh++;
    this.handles.set(fh, h);
    this.addOpen(ino, h.writable);
    return fh;
  }

  async open(cred: Cred, ino: Ino, flags: number): Promise<Fh> {
    const n = await this.loaded(ino, 'open');
    const acc = flags & O_ACCMODE;
    const wantWrite = acc !== O_RDONLY || (flags & O_TRUNC) !== 0;
    if (n.type === 'dir' && wantWrite) throw new FsError('EISDIR', 'open', this.tree.pathOf(ino));
    if (wantWrite) this.writable('open');
    const mask = (acc !== O_WRONLY ? R_OK : 0) | (wantWrite ? W_OK : 0);
    if (!permits(cred, n, mask)) throw new FsError('EACCES', 'open', this.tree.pathOf(ino));
    if (n.type === 'file' && (flags & O_TRUNC) !== 0 && n.size !== 0) {
      await this.truncateData(n, 0);
      const t = nowNs();
      this.meta.updateNode(ino, { size: 0, mtimeNs: t, ctimeNs: t, state: 'dirty' });
      this.uploader.touch(ino);
    }
    return this.newHandle(ino, flags);
  }

  async create(
    cred: Cred,
    parent: Ino,
    name: string,
    mode: number,
    flags: number,
  ): Promise<{ attr: Attr; fh: Fh }> {
    this.checkName(name, 'create');
    this.writable('create');
    const d = await this.dir(cred, parent, 'create', X_OK);
    await this.tree.ensureListed(d);
    const existing = this.meta.lookup(parent, name);
    if (existing) {
      if ((flags & O_EXCL) !== 0) throw new FsError('EEXIST', 'create', name);
      if (existing.type === 'dir') throw new FsError('EISDIR', 'create', name);
      const fh = await this.open(cred, existing.ino, flags);
      return { attr: await this.getattr(cred, existing.ino), fh };
    }
    if (!permits(cred, d, W_OK)) throw new FsError('EACCES', 'create', name);
    this.checkKeyLength(parent, name, 'create', false);
    const t = nowNs();
    const gid = (d.mode & 0o2000) !== 0 ? d.gid : cred.gid;
    const n = this.meta.transaction(() => {
      const created = this.meta.createChild(parent, name, this.fresh('file', mode, cred.uid, gid, t));
      return created;
    });
    this.cache.ensure(n.ino, 0);
    this.uploader.touch(n.ino);
    const fh = this.newHandle(n.ino, flags);
    return { attr: this.toAttr(n), fh };
  }

  private handle(fh: Fh, op: string): Handle {
    const h = this.handles.get(fh);
    if (!h) throw new FsError('EBADF', op);
    return h;
  }

  async read(fh: Fh, offset: number, length: number, scratch?: Buffer): Promise<Buffer> {
    const r = await this.readable(fh, offset, length);
    if (r === undefined) return Buffer.alloc(0);
    return this.cache.read(r.ino, offset, r.len, scratch);
  }

  async readLocal(fh: Fh, offset: number, length: number, scratch?: Buffer): Promise<Buffer | FileRange> {
    const r = await this.readable(fh, offset, length);
    if (r === undefined) return Buffer.alloc(0);
    const lent = this.cache.borrow ? await this.cache.borrow(r.ino, offset, r.len) : undefined;
    return lent ?? this.cache.read(r.ino, offset, r.len, scratch);
  }

  /**
   * The checks and fetching of read(): when this resolves, [offset, offset+len) of the inode is
   * in the data cache (undefined: nothing to read, at or past the end of the file).
   */
  private async readable(
    fh: Fh,
    offset: number,
    length: number,
  ): Promise<{ ino: Ino; len: number } | undefined> {
    const h = this.handle(fh, 'read');
    if (!h.readable) throw new FsError('EBADF', 'read');
    const n = this.node(h.ino, 'read');
    if (n.type === 'symlink') throw new FsError('EINVAL', 'read');
    if (offset >= n.size || length <= 0) return undefined;
    const len = Math.min(length, n.size - offset);
    // Read-ahead grows while the handle reads sequentially; random reads fetch only their blocks.
    if (offset === h.lastReadEnd) h.seqRun++;
    else {
      h.seqRun = 0;
      h.raFetched = 0;
    }
    h.lastReadEnd = offset + len;
    if (!this.cache.has(n.ino)) this.cache.ensure(n.ino, n.size);
    const ra = h.seqRun > 1 ? Math.min(READAHEAD_MAX, READAHEAD_MIN * 2 ** Math.min(h.seqRun - 2, 6)) : 0;
    const missing = this.cache.missing(n.ino, offset, len).length > 0;
    // Read-ahead is (re)scheduled when the reader gets within half a window of where it ends.
    const wantAhead = ra > 0 && n.remoteKey !== null && offset + len + ra / 2 > h.raEnd;
    if (missing || wantAhead) {
      if (n.remoteKey === null)
        throw new FsError('EIO', 'read', this.tree.pathOf(n.ino), { message: 'cached data lost' });
      h.raEnd = Math.max(h.raEnd, offset + len + ra);
      const src = {
        ino: n.ino,
        key: n.remoteKey,
        etag: n.etag,
        size: Math.min(n.remoteSize ?? n.size, n.size),
      };
      const wait = this.fetcher.ensure(src, offset, len);
      // The window before raFetched was scheduled by this handle's earlier reads: only what lies
      // past it is scheduled now.
      if (ra > 0) h.raFetched = this.fetcher.readahead(src, offset + len, ra, h.raFetched);
      else if (missing) this.randomMiss(src);
      await wait;
    }
    return { ino: n.ino, len };
  }

  /** A random read missed the cache: count it, and fetch the whole file when it is time. */
  private randomMiss(src: RemoteSource): void {
    if (src.size > Math.min(WHOLE_FETCH_MAX, this.cache.space().limitBytes / 8)) return;
    const misses = (this.randomMisses.get(src.ino) ?? 0) + 1;
    if (misses < Math.max(WHOLE_FETCH_MISSES, Math.ceil(src.size / FETCH_GET_MAX))) {
      if (this.randomMisses.size >= RANDOM_MISS_FILES && !this.randomMisses.has(src.ino))
        this.randomMisses.clear();
      this.randomMisses.set(src.ino, misses);
      return;
    }
    this.randomMisses.delete(src.ino);
    this.fetcher.fetchRest(src);
  }

  async write(fh: Fh, offset: number, data: Buffer): Promise<number> {
    const h = this.handle(fh, 'write');
    if (!h.writable) throw new FsError('EBADF', 'write');
    const n = this.node(h.ino, 'write');
    if (!this.cache.has(n.ino)) this.cache.ensure(n.ino, n.remoteSize ?? n.size);
    const off = h.append ? (this.cache.size(n.ino) ?? n.size) : offset;
    if (off + data.length > 5 * 1024 ** 4) throw new FsError('EFBIG', 'write', this.tree.pathOf(n.ino));
    await this.cache.write(n.ino, off, data);
    const t = nowNs();
    this.meta.updateNode(n.ino, {
      size: this.cache.size(n.ino) ?? off + data.length,
      mtimeNs: t,
      ctimeNs: t,
      state: 'dirty',
    });
    this.uploader.touch(n.ino);
    return data.length;
  }

  async flush(fh: Fh): Promise<void> {
    const h = this.handle(fh, 'flush');
    await this.commitInode(h.ino, false);
  }

  async fsync(fh: Fh, _datasync: boolean): Promise<void> {
    const h = this.handle(fh, 'fsync');
    await this.commitInode(h.ino, true);
  }

  async commit(_cred: Cred, ino: Ino): Promise<void> {
    this.node(ino, 'commit');
    await this.commitInode(ino, true);
  }

  /**
   * Durability point. write-through: the object is in the bucket when this returns.
   * cache: the journal entry is committed (survives a crash of the daemon); with `sync`, the
   * cached data is also fsync'ed to the local disk.
   */
  private async commitInode(ino: Ino, sync: boolean): Promise<void> {
    const n = this.meta.getNode(ino);
    if (!n || n.state === 'clean' || this.readOnly) return;
    if (this.mode === 'write-through') {
      await this.uploader.uploadNow(ino);
      return;
    }
    // close: the journal entry and the cache's range state commit without waiting for the disk
    // (they survive a crash of the daemon); fsync/COMMIT also fdatasyncs the data and the WAL.
    if (n.type === 'file' && this.cache.has(ino) && (sync || this.cache.isDirty(ino)))
      await this.cache.persist(ino, { sync });
    this.uploader.schedule(ino);
    if (sync) await this.meta.sync();
  }

  async release(fh: Fh): Promise<void> {
    const h = this.handles.get(fh);
    if (!h) return;
    this.handles.delete(fh);
    const c = this.openCount.get(h.ino);
    if (c) {
      c.all--;
      if (h.writable) c.writers--;
      if (c.all <= 0) this.openCount.delete(h.ino);
    }
    this.cache.unpin(h.ino);
    const n = this.meta.getNode(h.ino);
    if (!n) return;
    if (!this.meta.parentOf(h.ino) && h.ino !== ROOT_INO) {
      // Unlinked while open: the last close frees it.
      if (!this.openCount.has(h.ino)) {
        this.meta.deleteNode(h.ino);
        await this.cache.drop(h.ino);
      }
      return;
    }
    if (h.writable && n.state !== 'clean' && this.mode === 'cache') this.uploader.schedule(h.ino);
  }

  // ---------------------------------------------------------------- namespace

  async unlink(cred: Cred, parent: Ino, name: string): Promise<void> {
    const n = await this.entryToRemove(cred, parent, name, 'unlink');
    if (n.type === 'dir') throw new FsError('EISDIR', 'unlink', name);
    const unhold = this.uploader.hold(n.ino);
    try {
      await this.uploader.quiesce(n.ino);
      await this.unlinkQuiesced(n, parent, name);
    } finally {
      unhold();
    }
  }

  private async unlinkQuiesced(n: NodeRow, parent: Ino, name: string): Promise<void> {
    const cur = this.meta.getNode(n.ino) ?? n;
    const key = this.tree.keyOf(n.ino, n.type);
    const keys = [...new Set([cur.remoteKey, key].filter((k): k is string => typeof k === 'string'))];
    const path = this.tree.segments(n.ino) ?? [];
    let stillOpen = false;
    try {
      await this.remoteOps.run({ kind: 'delete', keys, path }, () => {
        stillOpen = this.openCount.has(n.ino);
        this.meta.removeEdge(parent, name);
        this.meta.removeUpload(n.ino);
        if (!stillOpen) this.meta.deleteNode(n.ino);
        else this.meta.updateNode(n.ino, { remoteKey: null, etag: null, state: 'clean' });
      });
    } catch (e) {
      throw this.backendError('delete', keys.join(','), e);
    }
    if (!stillOpen) await this.cache.drop(n.ino);
  }

  async symlink(cred: Cred, parent: Ino, name: string, target: string): Promise<Attr> {
    this.checkName(name, 'symlink');
    this.writable('symlink');
    if (target.length === 0 || Buffer.byteLength(target) > 4095)
      throw new FsError('ENAMETOOLONG', 'symlink', name);
    const d = await this.dir(cred, parent, 'symlink', W_OK | X_OK);
    await this.tree.ensureListed(d);
    if (this.meta.lookup(parent, name)) throw new FsError('EEXIST', 'symlink', name);
    const key = this.checkKeyLength(parent, name, 'symlink', false);
    const t = nowNs();
    const body = Buffer.from(target, 'utf8');
    let etag: string;
    try {
      etag = (
        await this.store.put(key, body, {
          metadata: encodePosixMeta({
            type: 'symlink',
            mode: 0o777,
            uid: cred.uid,
            gid: cred.gid,
            mtimeNs: t,
            atimeNs: t,
          }),
        })
      ).etag;
    } catch (e) {
      throw this.backendError('put', key, e);
    }
    if (this.meta.lookup(parent, name)) throw new FsError('EEXIST', 'symlink', name);
    const n = this.meta.transaction(() => {
      const created = this.meta.createChild(parent, name, {
        ...this.fresh('symlink', 0o777, cred.uid, cred.gid, t),
        size: body.length,
        symlink: target,
        remoteKey: key,
        etag,
        remoteSize: body.length,
        state: 'clean',
      });
      return created;
    });
    return this.toAttr(n);
  }

  async readlink(_cred: Cred, ino: Ino): Promise<string> {
    const n = await this.loaded(ino, 'readlink');
    if (n.type !== 'symlink') throw new FsError('EINVAL', 'readlink', this.tree.pathOf(ino));
    if (n.symlink !== null) return n.symlink;
    if (n.remoteKey === null) throw new FsError('EIO', 'readlink', this.tree.pathOf(ino));
    let target: string;
    try {
      target = (await this.store.getRange(n.remoteKey, 0, n.remoteSize ?? n.size)).toString('utf8');
    } catch (e) {
      throw this.backendError('get', n.remoteKey, e);
    }
    this.meta.updateNode(ino, { symlink: target });
    return target;
  }

  async link(cred: Cred, ino: Ino, newParent: Ino, newName: string): Promise<Attr> {
    this.checkName(newName, 'link');
    this.node(ino, 'link');
    await this.dir(cred, newParent, 'link', X_OK);
    throw new FsError('EPERM', 'link', newName, { message: 'hard links are not supported' });
  }

  async statfs(_cred: Cred): Promise<StatFs> {
    // A bucket has no fixed capacity: report a large file system, with the cache's state folded in.
    const bsize = 4096;
    const total = 1024 ** 5 / bsize; // 1 PiB
    const u = this.cache.usage();
    const used = Math.ceil(u.dirtyBytes / bsize);
    return {
      bsize,
      frsize: bsize,
      blocks: total,
      bfree: total - used,
      bavail: total - used,
      files: 1e9,
      ffree: 1e9 - this.meta.nodeCount(),
      namemax: NAME_MAX,
    };
  }

  async rename(cred: Cred, parent: Ino, name: string, newParent: Ino, newName: string): Promise<void> {
    this.checkName(name, 'rename');
    this.checkName(newName, 'rename');
    this.writable('rename');
    const sd = await this.dir(cred, parent, 'rename', W_OK | X_OK);
    const dd = await this.dir(cred, newParent, 'rename', W_OK | X_OK);
    await this.tree.ensureListed(sd);
    await this.tree.ensureListed(dd);
    const s0 = this.meta.lookup(parent, name);
    if (!s0) throw new FsError('ENOENT', 'rename', name);
    const src = await this.tree.ensureMeta(s0);
    if (!stickyAllows(cred, sd, src)) throw new FsError('EPERM', 'rename', name);
    const d0 = this.meta.lookup(newParent, newName);
    const dst = d0 ? await this.tree.ensureMeta(d0) : undefined;
    if (dst && dst.ino === src.ino) return;
    if (dst && !stickyAllows(cred, dd, dst)) throw new FsError('EPERM', 'rename', newName);
    if (src.type === 'dir') {
      // Not into itself or below itself.
      for (
        let cur: Ino | undefined = newParent;
        cur !== undefined && cur !== ROOT_INO;
        cur = this.meta.parentOf(cur)?.parent
      ) {
        if (cur === src.ino) throw new FsError('EINVAL', 'rename', name);
      }
      if (dst) {
        if (dst.type !== 'dir') throw new FsError('ENOTDIR', 'rename', newName);
        await this.tree.ensureListed(dst);
        if (this.meta.childCount(dst.ino) > 0) throw new FsError('ENOTEMPTY', 'rename', newName);
      }
    } else if (dst?.type === 'dir') {
      throw new FsError('EISDIR', 'rename', newName);
    }
    const newKey = this.checkKeyLength(newParent, newName, 'rename', src.type === 'dir');

    if (src.type === 'dir') {
      await this.uploader.exclusive(() => this.renameDir(src, dst, parent, name, newParent, newName, newKey));
    } else {
      const unholdSrc = this.uploader.hold(src.ino);
      const unholdDst = dst ? this.uploader.hold(dst.ino) : undefined;
      try {
        await this.uploader.quiesce(src.ino);
        if (dst) await this.uploader.quiesce(dst.ino);
        await this.renameFile(src, dst, parent, name, newParent, newName, newKey);
      } finally {
        unholdSrc();
        unholdDst?.();
      }
    }
    this.emit({ kind: 'entry', parent, name });
  }

  private async renameFile(
    src0: NodeRow,
    dst: NodeRow | undefined,
    parent: Ino,
    name: string,
    newParent: Ino,
    newName: string,
    newKey: string,
  ): Promise<void> {
    const src = this.meta.getNode(src0.ino) ?? src0;
    const oldKey = this.tree.keyOf(src.ino, src.type);
    const fromPath = this.tree.segments(src.ino) ?? [];
    const toPath = [...(this.tree.segments(newParent) ?? []), newName];
    // Server-side copy of the bucket's copy (even for a dirty file, whose unread ranges live only
    // there), then delete the old key; metadata travels with the copy. A file not in the bucket
    // yet only moves locally (it uploads to its new key), and a replaced destination's object
    // must not survive under the new name.
    const deletes = [src.remoteKey, oldKey].filter((k): k is string => typeof k === 'string' && k !== newKey);
    if (src.remoteKey === null && dst?.remoteKey) deletes.push(dst.remoteKey);
    const metadata = encodePosixMeta({
      type: src.type,
      mode: src.mode,
      uid: src.uid,
      gid: src.gid,
      mtimeNs: src.mtimeNs,
      atimeNs: src.atimeNs,
    });
    let dstOpen = false;
    try {
      await this.remoteOps.run(
        {
          kind: 'rename',
          from: src.remoteKey,
          to: newKey,
          size: src.remoteSize ?? src.size,
          metadata,
          deletes,
          fromPath,
          toPath,
        },
        (r) => {
          dstOpen = dst ? this.openCount.has(dst.ino) : false;
          if (dst) {
            this.meta.removeEdge(newParent, newName);
            this.meta.removeUpload(dst.ino);
            if (!dstOpen) this.meta.deleteNode(dst.ino);
            else this.meta.updateNode(dst.ino, { remoteKey: null, etag: null, state: 'clean' });
          }
          this.meta.moveEdge(parent, name, newParent, newName);
          const remote = src.remoteKey !== null ? { remoteKey: newKey, etag: r.etag ?? null } : {};
          const meta = src.state === 'meta' ? { state: 'clean' as const } : {};
          this.meta.updateNode(src.ino, { ...remote, ctimeNs: nowNs(), ...meta });
        },
      );
    } catch (e) {
      throw this.backendError('rename', oldKey ?? name, e);
    }
    this.uploader.touch(src.ino);
    if (dst && !dstOpen) await this.cache.drop(dst.ino);
    // A dirty file uploads to its new key later (cache mode) or now (write-through).
    if (src.state === 'dirty' && !this.openCount.has(src.ino)) await this.afterChange(src.ino);
  }

  private async renameDir(
    src: NodeRow,
    dst: NodeRow | undefined,
    parent: Ino,
    name: string,
    newParent: Ino,
    newName: string,
    newKey: string,
  ): Promise<void> {
    const oldKey = this.tree.keyOf(src.ino, 'dir');
    if (oldKey === undefined) throw new FsError('ENOENT', 'rename', name);
    const fromPath = this.tree.segments(src.ino) ?? [];
    const toPath = [...(this.tree.segments(newParent) ?? []), newName];
    // Every object below the old prefix moves, whether this gateway has listed it or not.
    try {
      await this.remoteOps.run(
        { kind: 'renamedir', from: oldKey, to: newKey, replacedMarker: dst !== undefined, fromPath, toPath },
        (r) => {
          if (dst) {
            this.meta.removeEdge(newParent, newName);
            this.meta.deleteNode(dst.ino);
          }
          this.meta.moveEdge(parent, name, newParent, newName);
          this.meta.updateNode(src.ino, { ctimeNs: nowNs() });
          // Remote keys below move to the new prefix; dirty files below upload to their new keys.
          this.remoteOps.rekey(src.ino, oldKey, newKey, r.copies ?? new Map());
        },
      );
    } catch (e) {
      throw this.backendError('rename', oldKey, e);
    }
  }
}
