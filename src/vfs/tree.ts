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

export interface ShareDefaults {
  uid: number;
  gid: number;
  fileMode: number;
  dirMode: number;
}

const NAME_BYTES_MAX = 255;

export class RemoteTree {
  private readonly listings = new Map<Ino, Promise<void>>();
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

  /** Make sure the directory's entries are known (one paged listing, then cached). */
  async ensureListed(dir: NodeRow): Promise<void> {
    const st = this.meta.getDirState(dir.ino);
    if (st?.complete) return;
    let p = this.listings.get(dir.ino);
    if (!p) {
      p = this.list(dir).finally(() => this.listings.delete(dir.ino));
      this.listings.set(dir.ino, p);
    }
    await p;
  }

  private async list(dir: NodeRow): Promise<void> {
    const seg = this.segments(dir.ino);
    if (!seg) throw new FsError('ENOENT', 'readdir', `ino ${dir.ino}`);
    const dirPrefix = seg.length === 0 ? this.prefix : this.prefix + seg.join('/') + '/';
    const files = new Map<string, { key: string; size: number; etag: string; lastModified: Date }>();
    const dirs = new Set<string>();
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.store.list(dirPrefix, { delimiter: '/', ...(token ? { token } : {}) });
      } catch (e) {
        throw this.onBackendError('list', dirPrefix, e);
      }
      for (const o of page.objects) {
        const name = o.key.slice(dirPrefix.length);
        if (name === '') continue; // this directory's own marker
        if (!this.acceptable(name, o.key)) continue;
        files.set(name, o);
      }
      for (const cp of page.prefixes) {
        const name = cp.slice(dirPrefix.length, -1);
        if (!this.acceptable(name, cp)) continue;
        dirs.add(name);
      }
      token = page.nextToken;
    } while (token);

    const now = nowNs();
    this.meta.transaction(() => {
      for (const name of dirs) {
        if (files.has(name)) {
          this.log.warn('object is both a file and a directory; the directory wins, the file is skipped', {
            key: dirPrefix + name,
          });
          files.delete(name);
        }
        if (this.meta.lookup(dir.ino, name)) continue;
        this.meta.createChild(dir.ino, name, {
          type: 'dir',
          mode: this.defaults.dirMode,
          uid: this.defaults.uid,
          gid: this.defaults.gid,
          size: 0,
          atimeNs: now,
          mtimeNs: now,
          ctimeNs: now,
          remoteKey: null,
          etag: null,
          remoteSize: null,
          state: 'clean',
          symlink: null,
          metaLoaded: false,
          hasMarker: false,
        });
      }
      for (const [name, o] of files) {
        if (o.size > 0 && name.endsWith('/')) continue;
        if (this.meta.lookup(dir.ino, name)) continue;
        const mtime = BigInt(o.lastModified.getTime()) * 1_000_000n;
        this.meta.createChild(dir.ino, name, {
          type: 'file',
          mode: this.defaults.fileMode,
          uid: this.defaults.uid,
          gid: this.defaults.gid,
          size: o.size,
          atimeNs: mtime,
          mtimeNs: mtime,
          ctimeNs: mtime,
          remoteKey: o.key,
          etag: o.etag,
          remoteSize: o.size,
          state: 'clean',
          symlink: null,
          metaLoaded: false,
          hasMarker: false,
        });
      }
      this.meta.setDirState(dir.ino, { complete: true, listedAtMs: Date.now() });
    });
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
      if (!n.metaLoaded) this.ensureMeta(n).catch(() => undefined);
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
      head = await this.store.head(key);
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
        : { etag: head.etag, size: fresh.state === 'clean' ? size : fresh.size, remoteSize: head.size, symlink }),
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
