/**
 * A small in-memory Vfs for the NFS adapter's tests (the real VFS lives in src/vfs/). It enforces
 * POSIX permissions from mode/owner/group like the real one (uid 0 bypasses them, except execute on
 * files without any x bit), keeps stable per-directory cookies, persistent inode generations, and
 * counts the calls the tests care about.
 */
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FsError } from '../../src/core/errors.js';
import {
  O_ACCMODE,
  O_EXCL,
  O_RDONLY,
  O_RDWR,
  O_TRUNC,
  O_WRONLY,
  R_OK,
  W_OK,
  X_OK,
  nowNs,
  type Attr,
  type Cred,
  type FileRange,
  type FileType,
  type Ino,
  type SetAttrChanges,
  type StatFs,
} from '../../src/core/types.js';
import type { Fh, InvalidateEvent, ReaddirResult, Vfs } from '../../src/vfs/types.js';

interface Node {
  ino: Ino;
  generation: number;
  type: FileType;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  data: Buffer;
  size: number;
  target: string;
  parent: Ino;
  /** Directory entries: name → (ino, cookie). */
  children: Map<string, { ino: Ino; cookie: bigint }>;
}

interface Handle {
  ino: Ino;
  flags: number;
  cred: Cred;
}

export interface FakeVfsCounters {
  open: number;
  release: number;
  fsync: number;
  commit: number;
  write: number;
  read: number;
  readdir: number;
}

export class FakeVfs implements Vfs {
  readOnly: boolean;
  readonly nodes = new Map<Ino, Node>();
  readonly handles = new Map<Fh, Handle>();
  readonly counters: FakeVfsCounters = {
    open: 0,
    release: 0,
    fsync: 0,
    commit: 0,
    write: 0,
    read: 0,
    readdir: 0,
  };
  private nextIno = 2;
  private nextGen = 1;
  private nextFh = 1;
  private nextCookie = 1n;
  /** Cookie verifier returned by readdir (tests may change it to force BAD_COOKIE). */
  verifier = 0x5eedn;
  /** Optional delay (ms) on read, to test out-of-order replies. */
  readDelayMs = 0;
  /** Optional delay (ms) before unlink, to test retransmissions of a call still running. */
  unlinkDelayMs = 0;
  /**
   * With a directory, readLocal() lends ranges of files written there (like the data cache's
   * cache files); without one it reads like read().
   */
  rangeDir: string | undefined;
  /** Ranges lent by readLocal and given back. */
  readonly lent = { lent: 0, released: 0 };
  /** Test hook: truncate the backing file right after lending a range (the sender hits EOF). */
  truncateAfterLend = false;

  constructor(opts: { readOnly?: boolean; rootMode?: number; rootUid?: number; rootGid?: number } = {}) {
    this.readOnly = opts.readOnly ?? false;
    const t = nowNs();
    this.nodes.set(1, {
      ino: 1,
      generation: 1,
      type: 'dir',
      mode: opts.rootMode ?? 0o777,
      uid: opts.rootUid ?? 0,
      gid: opts.rootGid ?? 0,
      nlink: 2,
      atimeNs: t,
      mtimeNs: t,
      ctimeNs: t,
      data: Buffer.alloc(0),
      size: 0,
      target: '',
      parent: 1,
      children: new Map(),
    });
  }

  // ----------------------------------------------------------------------------------- helpers
  private node(ino: Ino, op: string): Node {
    const n = this.nodes.get(ino);
    if (n === undefined) throw new FsError('ENOENT', op);
    return n;
  }

  private attr(n: Node): Attr {
    return {
      ino: n.ino,
      generation: n.generation,
      type: n.type,
      mode: n.mode,
      uid: n.uid,
      gid: n.gid,
      size: n.type === 'symlink' ? Buffer.byteLength(n.target) : n.type === 'dir' ? 4096 : n.size,
      nlink: n.nlink,
      atimeNs: n.atimeNs,
      mtimeNs: n.mtimeNs,
      ctimeNs: n.ctimeNs,
    };
  }

  private allowed(cred: Cred, n: Node, mask: number): boolean {
    if (cred.uid === 0) {
      if (mask & X_OK && n.type !== 'dir' && (n.mode & 0o111) === 0) return false;
      return true;
    }
    let bits: number;
    if (cred.uid === n.uid) bits = (n.mode >> 6) & 7;
    else if (cred.gid === n.gid || cred.groups.includes(n.gid)) bits = (n.mode >> 3) & 7;
    else bits = n.mode & 7;
    return (bits & mask) === mask;
  }

  private check(cred: Cred, n: Node, mask: number, op: string): void {
    if (!this.allowed(cred, n, mask)) throw new FsError('EACCES', op);
  }

  private dir(cred: Cred, ino: Ino, mask: number, op: string): Node {
    const d = this.node(ino, op);
    if (d.type !== 'dir') throw new FsError('ENOTDIR', op);
    this.check(cred, d, mask, op);
    return d;
  }

  private rw(op: string): void {
    if (this.readOnly) throw new FsError('EROFS', op);
  }

  private checkName(name: string, op: string): void {
    if (name === '' || name.includes('/')) throw new FsError('EINVAL', op);
    if (Buffer.byteLength(name) > 255) throw new FsError('ENAMETOOLONG', op);
  }

  private touch(n: Node): void {
    const t = nowNs();
    n.mtimeNs = t;
    n.ctimeNs = t;
  }

  private newNode(cred: Cred, type: FileType, mode: number, parent: Ino): Node {
    const t = nowNs();
    const n: Node = {
      ino: this.nextIno++,
      generation: this.nextGen++,
      type,
      mode: mode & 0o7777,
      uid: cred.uid,
      gid: cred.gid,
      nlink: type === 'dir' ? 2 : 1,
      atimeNs: t,
      mtimeNs: t,
      ctimeNs: t,
      data: Buffer.alloc(0),
      size: 0,
      target: '',
      parent,
      children: new Map(),
    };
    this.nodes.set(n.ino, n);
    return n;
  }

  private link_(d: Node, name: string, n: Node): void {
    d.children.set(name, { ino: n.ino, cookie: this.nextCookie++ });
    this.touch(d);
  }

  private resize(n: Node, size: number): void {
    if (size > n.data.length) {
      const grown = Buffer.alloc(Math.max(size, Math.min(n.data.length * 2, size + 64 * 1024 * 1024)));
      n.data.copy(grown, 0, 0, n.size);
      n.data = grown;
    } else if (size < n.size) {
      n.data.fill(0, size, n.size);
    }
    n.size = size;
  }

  /** Test helper: put a file with content (as root). */
  putFile(parent: Ino, name: string, content: Buffer | string, mode = 0o644, uid = 0, gid = 0): Attr {
    const d = this.node(parent, 'put');
    const n = this.newNode({ uid, gid, groups: [] }, 'file', mode, parent);
    const buf = typeof content === 'string' ? Buffer.from(content) : content;
    n.data = buf;
    n.size = buf.length;
    this.link_(d, name, n);
    return this.attr(n);
  }

  /** Test helper: make a directory (as root). */
  putDir(parent: Ino, name: string, mode = 0o755, uid = 0, gid = 0): Attr {
    const d = this.node(parent, 'put');
    const n = this.newNode({ uid, gid, groups: [] }, 'dir', mode, parent);
    this.link_(d, name, n);
    return this.attr(n);
  }

  /** Test helper: file content. */
  content(ino: Ino): Buffer {
    const n = this.node(ino, 'content');
    return Buffer.from(n.data.subarray(0, n.size));
  }

  /** Test helper: resolve a path from the root (as root). */
  resolvePath(path: string): Attr {
    let n = this.node(1, 'resolve');
    for (const part of path.split('/').filter((p) => p !== '')) {
      const e = n.children.get(part);
      if (e === undefined) throw new FsError('ENOENT', 'resolve', path);
      n = this.node(e.ino, 'resolve');
    }
    return this.attr(n);
  }

  // ----------------------------------------------------------------------------------------- Vfs
  async lookup(cred: Cred, parent: Ino, name: string): Promise<Attr> {
    const d = this.dir(cred, parent, X_OK, 'lookup');
    if (name === '..') return this.attr(this.node(d.parent, 'lookup'));
    if (name === '.') return this.attr(d);
    const e = d.children.get(name);
    if (e === undefined) throw new FsError('ENOENT', 'lookup', name);
    return this.attr(this.node(e.ino, 'lookup'));
  }

  async getattr(_cred: Cred, ino: Ino): Promise<Attr> {
    return this.attr(this.node(ino, 'getattr'));
  }

  async setattr(cred: Cred, ino: Ino, c: SetAttrChanges, fh?: Fh): Promise<Attr> {
    this.rw('setattr');
    const n = this.node(ino, 'setattr');
    const owner = cred.uid === 0 || cred.uid === n.uid;
    if (c.mode !== undefined) {
      if (!owner) throw new FsError('EPERM', 'setattr');
      n.mode = c.mode & 0o7777;
    }
    if (c.uid !== undefined && c.uid !== n.uid) {
      if (cred.uid !== 0) throw new FsError('EPERM', 'setattr');
      n.uid = c.uid;
    }
    if (c.gid !== undefined && c.gid !== n.gid) {
      if (cred.uid !== 0 && !(cred.uid === n.uid && (cred.gid === c.gid || cred.groups.includes(c.gid)))) {
        throw new FsError('EPERM', 'setattr');
      }
      n.gid = c.gid;
    }
    if (c.size !== undefined) {
      if (n.type === 'dir') throw new FsError('EISDIR', 'setattr');
      const h = fh !== undefined ? this.handles.get(fh) : undefined;
      if (h === undefined || (h.flags & O_ACCMODE) === O_RDONLY) this.check(cred, n, W_OK, 'setattr');
      this.resize(n, c.size);
      n.mtimeNs = nowNs();
    }
    for (const k of ['atimeNs', 'mtimeNs'] as const) {
      const v = c[k];
      if (v === undefined) continue;
      if (v === 'now') {
        if (!owner) this.check(cred, n, W_OK, 'setattr');
        n[k] = nowNs();
      } else {
        if (!owner) throw new FsError('EPERM', 'setattr');
        n[k] = v;
      }
    }
    n.ctimeNs = nowNs();
    return this.attr(n);
  }

  async access(cred: Cred, ino: Ino, mask: number): Promise<void> {
    const n = this.node(ino, 'access');
    if (mask & W_OK && this.readOnly) throw new FsError('EROFS', 'access');
    this.check(cred, n, mask, 'access');
  }

  async readdir(cred: Cred, ino: Ino, cookie: bigint, limit: number): Promise<ReaddirResult> {
    this.counters.readdir++;
    const d = this.dir(cred, ino, R_OK, 'readdir');
    const all = [...d.children.entries()].sort((a, b) => (a[1].cookie < b[1].cookie ? -1 : 1));
    const after = all.filter(([, e]) => e.cookie > cookie);
    const page = after.slice(0, limit);
    return {
      entries: page.map(([name, e]) => ({
        name,
        cookie: e.cookie,
        attr: this.attr(this.node(e.ino, 'readdir')),
      })),
      eof: page.length === after.length,
      verifier: this.verifier,
    };
  }

  async open(cred: Cred, ino: Ino, flags: number): Promise<Fh> {
    const n = this.node(ino, 'open');
    const acc = flags & O_ACCMODE;
    if (n.type === 'dir' && acc !== O_RDONLY) throw new FsError('EISDIR', 'open');
    if (acc !== O_RDONLY) this.rw('open');
    const mask = acc === O_RDONLY ? R_OK : acc === O_WRONLY ? W_OK : R_OK | W_OK;
    this.check(cred, n, mask, 'open');
    if (flags & O_TRUNC) this.resize(n, 0);
    this.counters.open++;
    const fh = this.nextFh++;
    this.handles.set(fh, { ino, flags, cred });
    return fh;
  }

  async create(
    cred: Cred,
    parent: Ino,
    name: string,
    mode: number,
    flags: number,
  ): Promise<{ attr: Attr; fh: Fh }> {
    this.rw('create');
    this.checkName(name, 'create');
    const d = this.dir(cred, parent, W_OK | X_OK, 'create');
    const e = d.children.get(name);
    if (e !== undefined) {
      if (flags & O_EXCL) throw new FsError('EEXIST', 'create', name);
      const fh = await this.open(cred, e.ino, (flags & ~O_EXCL) | 0);
      return { attr: this.attr(this.node(e.ino, 'create')), fh };
    }
    const n = this.newNode(cred, 'file', mode, parent);
    this.link_(d, name, n);
    this.counters.open++;
    const fh = this.nextFh++;
    this.handles.set(fh, { ino: n.ino, flags: (flags & O_ACCMODE) === O_RDONLY ? O_RDWR : flags, cred });
    return { attr: this.attr(n), fh };
  }

  private handle(fh: Fh, op: string): Handle {
    const h = this.handles.get(fh);
    if (h === undefined) throw new FsError('EBADF', op);
    return h;
  }

  async read(fh: Fh, offset: number, length: number, scratch?: Buffer): Promise<Buffer> {
    this.counters.read++;
    if (this.readDelayMs > 0) await new Promise((r) => setTimeout(r, this.readDelayMs));
    const h = this.handle(fh, 'read');
    const n = this.node(h.ino, 'read');
    if (offset >= n.size) return Buffer.alloc(0);
    const data = n.data.subarray(offset, Math.min(n.size, offset + length));
    // Like the real VFS: the caller's buffer is filled and returned when it is big enough.
    if (scratch === undefined || scratch.length < data.length) return data;
    data.copy(scratch);
    return scratch.subarray(0, data.length);
  }

  async readLocal(fh: Fh, offset: number, length: number, scratch?: Buffer): Promise<Buffer | FileRange> {
    if (this.rangeDir === undefined) return this.read(fh, offset, length, scratch);
    this.counters.read++;
    const h = this.handle(fh, 'read');
    const n = this.node(h.ino, 'read');
    if (offset >= n.size) return Buffer.alloc(0);
    const end = Math.min(n.size, offset + length);
    const fd = openSync(join(this.rangeDir, `ino-${n.ino}-${this.lent.lent}`), 'w+');
    writeSync(fd, n.data, 0, n.size, 0);
    if (this.truncateAfterLend) ftruncateSync(fd, offset);
    this.lent.lent++;
    let open = true;
    return {
      fd,
      offset,
      length: end - offset,
      release: () => {
        if (!open) return;
        open = false;
        this.lent.released++;
        closeSync(fd);
      },
    };
  }

  async write(fh: Fh, offset: number, data: Buffer): Promise<number> {
    this.counters.write++;
    this.rw('write');
    const h = this.handle(fh, 'write');
    if ((h.flags & O_ACCMODE) === O_RDONLY) throw new FsError('EBADF', 'write');
    const n = this.node(h.ino, 'write');
    const end = offset + data.length;
    if (end > n.size) this.resize(n, end);
    data.copy(n.data, offset);
    this.touch(n);
    return data.length;
  }

  async flush(fh: Fh): Promise<void> {
    this.handle(fh, 'flush');
  }

  async fsync(fh: Fh): Promise<void> {
    this.handle(fh, 'fsync');
    this.counters.fsync++;
  }

  async release(fh: Fh): Promise<void> {
    this.handle(fh, 'release');
    this.handles.delete(fh);
    this.counters.release++;
  }

  async commit(_cred: Cred, ino: Ino): Promise<void> {
    this.node(ino, 'commit');
    this.counters.commit++;
  }

  async mkdir(cred: Cred, parent: Ino, name: string, mode: number): Promise<Attr> {
    this.rw('mkdir');
    this.checkName(name, 'mkdir');
    const d = this.dir(cred, parent, W_OK | X_OK, 'mkdir');
    if (d.children.has(name)) throw new FsError('EEXIST', 'mkdir', name);
    const n = this.newNode(cred, 'dir', mode, parent);
    this.link_(d, name, n);
    d.nlink++;
    return this.attr(n);
  }

  private remove(cred: Cred, parent: Ino, name: string, wantDir: boolean): void {
    const op = wantDir ? 'rmdir' : 'unlink';
    this.rw(op);
    const d = this.dir(cred, parent, W_OK | X_OK, op);
    const e = d.children.get(name);
    if (e === undefined) throw new FsError('ENOENT', op, name);
    const n = this.node(e.ino, op);
    if (wantDir && n.type !== 'dir') throw new FsError('ENOTDIR', op);
    if (!wantDir && n.type === 'dir') throw new FsError('EISDIR', op);
    if (wantDir && n.children.size > 0) throw new FsError('ENOTEMPTY', op);
    d.children.delete(name);
    if (wantDir) d.nlink--;
    this.touch(d);
    this.nodes.delete(n.ino);
  }

  async unlink(cred: Cred, parent: Ino, name: string): Promise<void> {
    if (this.unlinkDelayMs > 0) await new Promise((r) => setTimeout(r, this.unlinkDelayMs));
    this.remove(cred, parent, name, false);
  }

  async rmdir(cred: Cred, parent: Ino, name: string): Promise<void> {
    this.remove(cred, parent, name, true);
  }

  async rename(cred: Cred, parent: Ino, name: string, newParent: Ino, newName: string): Promise<void> {
    this.rw('rename');
    this.checkName(newName, 'rename');
    const from = this.dir(cred, parent, W_OK | X_OK, 'rename');
    const to = this.dir(cred, newParent, W_OK | X_OK, 'rename');
    const e = from.children.get(name);
    if (e === undefined) throw new FsError('ENOENT', 'rename', name);
    const n = this.node(e.ino, 'rename');
    const existing = to.children.get(newName);
    if (existing !== undefined) {
      if (existing.ino === e.ino) return;
      const x = this.node(existing.ino, 'rename');
      if (x.type === 'dir' && n.type !== 'dir') throw new FsError('EISDIR', 'rename');
      if (x.type !== 'dir' && n.type === 'dir') throw new FsError('ENOTDIR', 'rename');
      if (x.type === 'dir' && x.children.size > 0) throw new FsError('ENOTEMPTY', 'rename');
      this.nodes.delete(x.ino);
    }
    from.children.delete(name);
    this.link_(to, newName, n);
    n.parent = to.ino;
    n.ctimeNs = nowNs();
    this.touch(from);
  }

  async symlink(cred: Cred, parent: Ino, name: string, target: string): Promise<Attr> {
    this.rw('symlink');
    this.checkName(name, 'symlink');
    const d = this.dir(cred, parent, W_OK | X_OK, 'symlink');
    if (d.children.has(name)) throw new FsError('EEXIST', 'symlink', name);
    const n = this.newNode(cred, 'symlink', 0o777, parent);
    n.target = target;
    this.link_(d, name, n);
    return this.attr(n);
  }

  async readlink(_cred: Cred, ino: Ino): Promise<string> {
    const n = this.node(ino, 'readlink');
    if (n.type !== 'symlink') throw new FsError('EINVAL', 'readlink');
    return n.target;
  }

  async link(cred: Cred, ino: Ino, newParent: Ino, _newName: string): Promise<Attr> {
    this.node(ino, 'link');
    this.dir(cred, newParent, 0, 'link');
    throw new FsError('EPERM', 'link');
  }

  async statfs(): Promise<StatFs> {
    return {
      bsize: 4096,
      frsize: 4096,
      blocks: 1 << 20,
      bfree: 1 << 19,
      bavail: 1 << 19,
      files: 1e6,
      ffree: 9e5,
      namemax: 255,
    };
  }

  onInvalidate(_listener: (ev: InvalidateEvent) => void): () => void {
    return () => undefined;
  }
}
