/**
 * The remote side of the namespace: paths ↔ keys, directory listings merged into the metadata
 * store, and lazy loading of POSIX metadata (HEAD) for objects seen in a listing.
 *
 * Ordering: every operation on a directory awaits ensureListed(dir) before it reads or changes
 * the directory's entries, so a listing never races a local create/unlink in that directory
 * (the merge itself runs synchronously in one SQLite transaction).
 */
import type { Ino } from '../core/types.js';
import { FsError } from '../core/errors.js';
import { ROOT_INO, nowNs } from '../core/types.js';
import type { Logger } from '../log/index.js';
import type { MetaStore, NodeRow } from '../metastore/types.js';
import type { ObjectStore } from '../objectstore/types.js';
import { ObjectStoreError } from '../objectstore/types.js';
import { decodePosixMeta } from '../objectstore/posix-meta.js';
import { Limiter } from './limiter.js';
import { retryTransient } from './retry.js';
import type { InvalidateEvent } from './types.js';

export interface ShareDefaults {
  uid: number;
  gid: number;
  fileMode: number;
  dirMode: number;
}

const NAME_BYTES_MAX = 255;
/** Private keys of the conditional-write probe (never shown). */
export const PROBE_PREFIX = '.bucketgate-probe-';

export interface DiffSummary {
  added: number;
  changed: number;
  removed: number;
  conflicts: number;
  /** Entries seen in the listing. */
  objects: number;
}

interface Listed {
  name: string;
  key: string;
  size: number;
  etag: string;
  lastModified: Date;
}

interface Conflict {
  name: string;
  key: string;
  size: number;
  etag: string;
}

interface MergeCtx {
  ino: Ino;
  dirPrefix: string;
  sum: DiffSummary;
  firstListing: boolean;
  /** Subdirectory names seen so far (a file of the same name on a later page is skipped). */
  dirsSeen: Set<string>;
  conflicts: Conflict[];
  drops: Ino[];
  inval: InvalidateEvent[];
  /** Files added by the page being applied whose metadata is to be loaded right away. */
  prefetch: NodeRow[];
  /** How many more added files may be prefetched (0: none). */
  prefetchLeft: number;
}

/** Files of a first listing whose metadata a readdir loads while the rest is still being listed. */
const LISTING_PREFETCH = 2000;

/** What the tree needs from the rest of the VFS. */
export interface TreeHooks {
  /** Listings older than this are refreshed on access; 0 = never expire. */
  ttlMs: number;
  isOpen(ino: Ino): boolean;
  isUploading(ino: Ino): boolean;
  dropCache(ino: Ino): Promise<void>;
  invalidate(ev: InvalidateEvent): void;
}

export class RemoteTree {
  private readonly listings = new Map<Ino, Promise<DiffSummary>>();
  private readonly heads = new Map<Ino, Promise<void>>();
  private readonly headLimiter = new Limiter(32);

  constructor(
    private readonly meta: MetaStore,
    private readonly store: ObjectStore,
    /** Share prefix: '' or ends with '/'. */
    readonly prefix: string,
    private readonly defaults: ShareDefaults,
    private readonly log: Logger,
    private readonly onBackendError: (op: string, key: string, err: unknown) => FsError,
    private readonly hooks: TreeHooks,
  ) {}

  /** Path segments of a linked node (root → []); undefined if it is no longer linked. */
  segments(ino: Ino): string[] | undefined {
    const out: string[] = [];
    let cur = ino;
    for (let depth = 0; cur !== ROOT_INO; depth++) {
      const p = this.meta.parentOf(cur);
      if (!p || depth > 4096) return undefined;
      out.push(p.name);
      cur = p.parent;
    }
    return out.reverse();
  }

  keyOfSegments(seg: readonly string[], dir: boolean): string {
    const rel = seg.join('/');
    if (seg.length === 0) return this.prefix; // root: the prefix marker ('' for a whole bucket)
    return this.prefix + rel + (dir ? '/' : '');
  }

  /** Object key of a node (directories: their marker key ending in '/'). */
  keyOf(ino: Ino, type: NodeRow['type']): string | undefined {
    const seg = this.segments(ino);
    return seg ? this.keyOfSegments(seg, type === 'dir') : undefined;
  }

  pathOf(ino: Ino): string {
    const seg = this.segments(ino);
    return seg ? '/' + seg.join('/') : `<unlinked ino ${ino}>`;
  }

  /**
   * Make sure the directory's entries are known: one paged listing, then cached. A listing older
   * than the TTL is refreshed (diffed against the local view) on access; concurrent callers share
   * one listing.
   */
  async ensureListed(dir: NodeRow, opts: { prefetch?: boolean } = {}): Promise<void> {
    const st = this.meta.getDirState(dir.ino);
    if (st?.complete && (this.hooks.ttlMs <= 0 || Date.now() - st.listedAtMs < this.hooks.ttlMs)) return;
    try {
      await this.listDir(dir.ino, opts.prefetch === true);
    } catch (e) {
      if (!st?.complete) throw e;
      // The backend is unreachable but the directory is known: serve the cached listing (stale
      // beats failing) and try again in a little while rather than on every access.
      const retryMs = Math.min(this.hooks.ttlMs, 10_000);
      this.meta.setDirState(dir.ino, { complete: true, listedAtMs: Date.now() - this.hooks.ttlMs + retryMs });
      this.log.warn('cannot refresh a directory listing; serving the cached one', {
        path: this.pathOf(dir.ino),
      });
    }
  }

  /** List (or re-list) one directory and apply the differences. Deduplicated per directory. */
  listDir(ino: Ino, prefetch = false): Promise<DiffSummary> {
    let p = this.listings.get(ino);
    if (!p) {
      p = this.list(ino, prefetch).finally(() => this.listings.delete(ino));
      this.listings.set(ino, p);
    }
    return p;
  }

  /**
   * List a directory page by page and apply each page at once, so memory stays bounded however
   * large the directory: names seen are recorded in SQLite (`listing_seen`), and what was not seen
   * is removed at the end. Never loses local data: a name whose remote object changed while the
   * local file has unsynced changes keeps the local version; the remote version is preserved in
   * the bucket as `NAME.conflict-<UTC timestamp>` (and appears next to it).
   *
   * With `prefetch` (a readdir waiting for attributes), the metadata of the files a first listing
   * adds starts loading after each page, while the next page is being listed.
   */
  private async list(ino: Ino, prefetch = false): Promise<DiffSummary> {
    const seg = this.segments(ino);
    if (!seg) throw new FsError('ENOENT', 'readdir', `ino ${ino}`);
    const dirPrefix = seg.length === 0 ? this.prefix : this.prefix + seg.join('/') + '/';
    const sum: DiffSummary = { added: 0, changed: 0, removed: 0, conflicts: 0, objects: 0 };
    const firstListing = !this.meta.getDirState(ino);
    const dirsSeen = new Set<string>();
    const ctx = {
      ino,
      dirPrefix,
      sum,
      firstListing,
      dirsSeen,
      conflicts: [] as Conflict[],
      drops: [] as Ino[],
      inval: [] as InvalidateEvent[],
      prefetch: [] as NodeRow[],
      prefetchLeft: prefetch && firstListing ? LISTING_PREFETCH : 0,
    };
    this.meta.clearSeen(ino);
    let token: string | undefined;
    do {
      let page;
      try {
        page = await retryTransient(() =>
          this.store.list(dirPrefix, { delimiter: '/', ...(token ? { token } : {}) }),
        );
      } catch (e) {
        this.meta.clearSeen(ino);
        throw this.onBackendError('list', dirPrefix, e);
      }
      const files: Listed[] = [];
      const dirs: string[] = [];
      for (const o of page.objects) {
        const name = o.key.slice(dirPrefix.length);
        if (name === '') continue; // this directory's own marker
        if (name.startsWith(PROBE_PREFIX)) continue;
        if (!this.acceptable(name, o.key)) continue;
        files.push({ name, ...o });
      }
      for (const cp of page.prefixes) {
        const name = cp.slice(dirPrefix.length, -1);
        if (!this.acceptable(name, cp)) continue;
        dirs.push(name);
      }
      this.meta.transaction(() => this.applyPage(ctx, files, dirs));
      if (ctx.prefetch.length > 0) this.prefetchMeta(ctx.prefetch.splice(0));
      token = page.nextToken;
    } while (token);

    this.meta.transaction(() => {
      if (!firstListing) {
        // Entries the listing did not show were deleted by someone else.
        for (let cookie = 0n; ;) {
          const page = this.meta.unseenChildren(ino, cookie, 1000);
          for (const c of page) this.applyRemoved(ctx, c.name, c.node);
          if (page.length < 1000) break;
          cookie = page[page.length - 1]!.cookie;
        }
      }
      this.meta.clearSeen(ino);
      this.meta.setDirState(ino, { complete: true, listedAtMs: Date.now() });
    });
    await this.preserveConflicts(ctx);
    for (const i of ctx.drops) await this.hooks.dropCache(i);
    for (const ev of ctx.inval) this.hooks.invalidate(ev);
    return sum;
  }

  /**
   * A name the listing added may have a negative dentry in the kernel (an earlier ENOENT), which
   * must go. The first listing of a directory cannot have answered ENOENT for any name in it, and
   * its added names may already have positive dentries from the lookup that triggered this
   * listing: invalidating those would evict their inodes, and the page cache with them, at the
   * next close (a file read once right after its directory was first listed was then read from
   * the daemon again instead of from the page cache).
   */
  private invalAdded(ctx: MergeCtx, name: string): void {
    if (!ctx.firstListing) ctx.inval.push({ kind: 'entry', parent: ctx.ino, name });
  }

  private applyPage(ctx: MergeCtx, files: Listed[], dirs: string[]): void {
    const { ino, sum } = ctx;
    const now = nowNs();
    this.meta.markSeen(ino, [...dirs, ...files.map((f) => f.name)]);
    sum.objects += files.length + dirs.length;
    for (const name of dirs) {
      ctx.dirsSeen.add(name);
      const l = this.meta.lookup(ino, name);
      if (l?.type === 'dir') continue;
      if (l) {
        if (l.state !== 'clean' || this.hooks.isOpen(l.ino)) {
          sum.conflicts++;
          this.log.warn(
            'a directory appeared in the bucket where a local file with unsynced changes exists; the local file is kept',
            {
              key: ctx.dirPrefix + name,
            },
          );
          continue;
        }
        // A file and a directory of the same name: the directory wins.
        this.log.warn('object is both a file and a directory; the directory wins, the file is skipped', {
          key: ctx.dirPrefix + name,
        });
        this.forget(l.ino);
        ctx.drops.push(l.ino);
      }
      this.meta.createChild(ino, name, this.remoteNode('dir', 0, null, null, now));
      sum.added++;
      this.invalAdded(ctx, name);
    }
    for (const o of files) {
      const name = o.name;
      if (o.size > 0 && name.endsWith('/')) continue;
      if (ctx.dirsSeen.has(name)) {
        this.log.warn('object is both a file and a directory; the directory wins, the file is skipped', {
          key: o.key,
        });
        continue;
      }
      const l = this.meta.lookup(ino, name);
      const mtime = BigInt(o.lastModified.getTime()) * 1_000_000n;
      if (!l) {
        const added = this.meta.createChild(ino, name, this.remoteNode('file', o.size, o.key, o.etag, mtime));
        if (ctx.prefetchLeft > 0) {
          ctx.prefetchLeft--;
          ctx.prefetch.push(added);
        }
        sum.added++;
        this.invalAdded(ctx, name);
        continue;
      }
      if (l.type === 'dir') {
        this.log.warn('object is both a file and a directory; the directory wins, the file is skipped', {
          key: o.key,
        });
        continue;
      }
      if (l.etag === o.etag && l.remoteKey === o.key) continue;
      if (this.hooks.isUploading(l.ino)) continue; // our own upload in flight: its result decides
      if (l.state === 'clean') {
        if (this.hooks.isOpen(l.ino)) continue; // an open file keeps its data; next refresh applies
        this.meta.updateNode(l.ino, {
          size: o.size,
          remoteSize: o.size,
          remoteKey: o.key,
          etag: o.etag,
          mtimeNs: mtime,
          ctimeNs: mtime,
          metaLoaded: false,
          symlink: null,
        });
        ctx.drops.push(l.ino);
        sum.changed++;
        ctx.inval.push({ kind: 'inode', ino: l.ino });
      } else {
        ctx.conflicts.push({ name, key: o.key, size: o.size, etag: o.etag });
      }
    }
  }

  private applyRemoved(ctx: MergeCtx, name: string, l: NodeRow): void {
    if (l.type === 'dir') {
      if (!this.subtreeClean(l.ino)) return;
      this.forget(l.ino);
    } else {
      if (l.state !== 'clean' || l.remoteKey === null || this.hooks.isUploading(l.ino)) return;
      if (this.hooks.isOpen(l.ino)) {
        // Open files keep working on their cached data until closed.
        this.meta.removeEdge(ctx.ino, name);
        this.meta.updateNode(l.ino, { remoteKey: null, etag: null });
      } else {
        this.forget(l.ino);
        ctx.drops.push(l.ino);
      }
    }
    ctx.sum.removed++;
    ctx.inval.push({ kind: 'entry', parent: ctx.ino, name });
  }

  private async preserveConflicts(ctx: MergeCtx): Promise<void> {
    const now = nowNs();
    for (const c of ctx.conflicts) {
      // Preserve the other writer's version next to ours, in the bucket and in the local view.
      const stamp = new Date()
        .toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d+Z$/, 'Z');
      const cname = `${c.name}.conflict-${stamp}`;
      const ckey = ctx.dirPrefix + cname;
      try {
        const r = await this.store.copy(c.key, ckey, { size: c.size });
        if (!this.meta.lookup(ctx.ino, cname)) {
          this.meta.createChild(ctx.ino, cname, this.remoteNode('file', c.size, ckey, r.etag, now));
        }
        // The local version wins the name: its upload replaces the remote version it now knows.
        const l = this.meta.lookup(ctx.ino, c.name);
        if (l) this.meta.updateNode(l.ino, { etag: c.etag, remoteKey: c.key, remoteSize: c.size });
        ctx.sum.conflicts++;
        this.log.warn(
          'conflict: the object changed in the bucket while the local file had unsynced changes; the remote version was kept as a sibling',
          {
            key: c.key,
            preservedAs: ckey,
          },
        );
        ctx.inval.push({ kind: 'entry', parent: ctx.ino, name: cname });
      } catch (e) {
        this.log.error(
          'conflict copy failed; the remote version is still at its key until the local upload replaces it',
          {
            key: c.key,
            error: e,
          },
        );
      }
    }
  }

  private remoteNode(type: 'file' | 'dir', size: number, key: string | null, etag: string | null, t: bigint) {
    return {
      type,
      mode: type === 'dir' ? this.defaults.dirMode : this.defaults.fileMode,
      uid: this.defaults.uid,
      gid: this.defaults.gid,
      size,
      atimeNs: t,
      mtimeNs: t,
      ctimeNs: t,
      remoteKey: key,
      etag,
      remoteSize: type === 'dir' ? null : size,
      state: 'clean' as const,
      symlink: null,
      metaLoaded: false,
      hasMarker: false,
    };
  }

  /** True when nothing below the directory has unsynced changes or is open. */
  private subtreeClean(dir: Ino): boolean {
    if (this.meta.getNode(dir)?.state !== 'clean' || this.hooks.isUploading(dir)) return false;
    for (const d of this.meta.descendants(dir)) {
      if (d.node.state !== 'clean' || this.hooks.isOpen(d.node.ino) || this.hooks.isUploading(d.node.ino))
        return false;
    }
    return true;
  }

  /** Names that cannot be shown as a path are skipped with one warning each. */
  private acceptable(name: string, key: string): boolean {
    let why: string | undefined;
    if (name === '') why = 'empty path segment';
    else if (name === '.' || name === '..') why = `"${name}" segment`;
    else if (name.includes('/')) why = 'empty path segment';
    else if (name.includes('\0')) why = 'NUL in name';
    else if (Buffer.byteLength(name) > NAME_BYTES_MAX) why = 'name longer than 255 bytes';
    if (why) {
      this.log.warn('skipping object that cannot be shown as a path', { key, reason: why });
      return false;
    }
    return true;
  }

  /** Load POSIX metadata of a node seen only in a listing (HEAD, deduplicated, bounded). */
  async ensureMeta(node: NodeRow): Promise<NodeRow> {
    if (node.metaLoaded) return node;
    let p = this.heads.get(node.ino);
    if (!p) {
      p = this.headLimiter.run(() => this.loadMeta(node.ino)).finally(() => this.heads.delete(node.ino));
      this.heads.set(node.ino, p);
    }
    await p;
    const fresh = this.meta.getNode(node.ino);
    if (!fresh) throw new FsError('ENOENT', 'getattr', this.pathOf(node.ino));
    return fresh;
  }

  /** Start loading metadata of many nodes in the background (listing prefetch). */
  prefetchMeta(nodes: NodeRow[]): void {
    for (const n of nodes) {
      // A HEAD already queued or in flight needs no second waiter.
      if (!n.metaLoaded && !this.heads.has(n.ino)) this.ensureMeta(n).catch(() => undefined);
    }
  }

  private async loadMeta(ino: Ino): Promise<void> {
    const node = this.meta.getNode(ino);
    if (!node || node.metaLoaded) return;
    const key = node.type === 'dir' ? this.keyOf(ino, 'dir') : node.remoteKey;
    if (key === undefined || key === null) {
      this.meta.updateNode(ino, { metaLoaded: true });
      return;
    }
    let head;
    try {
      head = await retryTransient(() => this.store.head(key));
    } catch (e) {
      throw this.onBackendError('head', key, e);
    }
    if (!head) {
      if (node.type === 'dir') {
        this.meta.updateNode(ino, { metaLoaded: true, hasMarker: false });
        return;
      }
      // Deleted in the bucket since the listing: the name disappears.
      this.log.info('object vanished from the bucket since it was listed', { key });
      this.forget(ino);
      return;
    }
    const decoded = decodePosixMeta(head.metadata, {
      defaults: this.defaults,
      lastModified: head.lastModified,
      isDirMarker: node.type === 'dir',
      contentType: head.contentType,
    });
    const type = node.type === 'dir' ? 'dir' : decoded.type === 'symlink' ? 'symlink' : 'file';
    let symlink: string | null = null;
    let size = head.size;
    if (type === 'symlink') {
      try {
        symlink = (await this.store.getRange(key, 0, head.size, { ifMatch: head.etag })).toString('utf8');
      } catch (e) {
        throw this.onBackendError('get', key, e);
      }
      size = Buffer.byteLength(symlink);
    }
    const fresh = this.meta.getNode(ino);
    if (!fresh || fresh.metaLoaded) return;
    this.meta.updateNode(ino, {
      type,
      mode: decoded.mode & 0o7777,
      uid: decoded.uid,
      gid: decoded.gid,
      mtimeNs: decoded.mtimeNs,
      atimeNs: decoded.atimeNs ?? decoded.mtimeNs,
      ctimeNs: decoded.mtimeNs,
      metaLoaded: true,
      ...(node.type === 'dir'
        ? { hasMarker: true }
        : {
            etag: head.etag,
            size: fresh.state === 'clean' ? size : fresh.size,
            remoteSize: head.size,
            symlink,
          }),
    });
  }

  /** Remove a node that no longer exists remotely (and its subtree, for directories). */
  forget(ino: Ino): void {
    this.meta.transaction(() => {
      const loc = this.meta.parentOf(ino);
      const node = this.meta.getNode(ino);
      if (node?.type === 'dir') {
        for (const d of this.meta.descendants(ino)) {
          const l = this.meta.parentOf(d.node.ino);
          if (l) this.meta.removeEdge(l.parent, l.name);
          this.meta.deleteNode(d.node.ino);
        }
      }
      if (loc) this.meta.removeEdge(loc.parent, loc.name);
      this.meta.deleteNode(ino);
    });
  }

  isNotFound(e: unknown): boolean {
    return e instanceof ObjectStoreError && e.kind === 'not-found';
  }
}
