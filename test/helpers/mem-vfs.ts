/**
 * A small, correct in-memory Vfs used ONLY to test the protocol adapters (FUSE binding). It
 * keeps directories, files, symlinks, modes/owners/times, stable readdir cookies and checks
 * permissions with the caller's credentials (uid 0 bypasses them). Not the real VFS.
 *
 * Test hooks: `calls` records every operation with its credentials, `writeSizes` the size of
 * every write, `slowLookups` delays lookups of given names, and inode numbers start above 2^32
 * by default so that 64-bit inode handling is exercised.
 */
import {
  nowNs,
  NAME_MAX,
  O_ACCMODE,
  O_APPEND,
  O_EXCL,
  O_RDONLY,
  O_RDWR,
  O_TRUNC,
  O_WRONLY,
  R_OK,
  ROOT_INO,
  W_OK,
  X_OK,
  type Attr,
  type Cred,
  type DirEntry,
  type FileType,
  type Ino,
  type SetAttrChanges,
  type StatFs,
} from '../../src/core/types.js';
import { FsError, type Errno } from '../../src/core/errors.js';
import type { Fh, InvalidateEvent, ReaddirResult, Vfs } from '../../src/vfs/types.js';

interface DirSlot {
  ino: Ino;
  cookie: bigint;
}

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
  /** file: contents (capacity may exceed size) */
  data: Buffer;
  size: number;
  /** dir: name -> slot, in cookie order */
  children: Map<string, DirSlot>;
  nextCookie: bigint;
  parent: Ino;
  /** symlink target */
  target: string;
  openCount: number;
}

interface Handle {
  ino: Ino;
  flags: number;
}

export interface CallRecord {
  op: string;
  cred?: Cred;
  ino?: Ino;
  name?: string;
  flags?: number;
  size?: number;
}

export interface MemVfsOptions {
  /** First inode number handed out after the root (default 2^32 + 1). */
  firstIno?: number;
  /** Most entries one readdir call returns, whatever the limit (default 100). */
  maxReaddirPage?: number;
  readOnly?: boolean;
}

const STATFS: StatFs = {
  bsize: 4096,
  frsize: 4096,
  blocks: 1_000_000,
  bfree: 750_000,
  bavail: 700_000,
  files: 500_000,
  ffree: 400_000,
  namemax: NAME_MAX,
};

function err(code: Errno, op: string, path?: string): FsError {
  return new FsError(code, op, path);
}

export class MemVfs implements Vfs {
  readonly readOnly: boolean;
  readonly calls: CallRecord[] = [];
  readonly writeSizes: number[] = [];
  readonly readSizes: number[] = [];
  /** Number of read() calls (to tell page-cache hits from VFS reads). */
  reads = 0;
  /** name -> milliseconds: lookups of that name wait this long. */
  readonly slowLookups = new Map<string, number>();
  /** Slow lookups (see `slowLookups`) currently waiting. */
  slowLookupsInFlight = 0;
  readonly statfsResult: StatFs = { ...STATFS };
  private readonly nodes = new Map<Ino, Node>();
  private readonly handles = new Map<Fh, Handle>();
  private readonly listeners = new Set<(ev: InvalidateEvent) => void>();
  private nextIno: number;
  private nextFh = 1;
  private readonly maxPage: number;

  constructor(opts: MemVfsOptions = {}) {
    this.readOnly = opts.readOnly ?? false;
    this.maxPage = opts.maxReaddirPage ?? 100;
    this.nextIno = ROOT_INO;
    this.newNode('dir', 0o755, 0, 0, ROOT_INO);
    this.nextIno = opts.firstIno ?? 2 ** 32 + 1;
  }

  // ---- test helpers ---------------------------------------------------------------------

  /** Number of open handles (the adapter must release what it opened). */
  get openHandles(): number {
    return this.handles.size;
  }

  callsOf(op: string): CallRecord[] {
    return this.calls.filter((c) => c.op === op);
  }

  /** Attributes by path from the root, without permission checks (for assertions). */
  statPath(path: string): Attr {
    let node = this.get(ROOT_INO, 'stat');
    for (const part of path.split('/').filter((p) => p.length > 0)) {
      const slot = node.children.get(part);
      if (!slot) throw err('ENOENT', 'stat', path);
      node = this.get(slot.ino, 'stat');
    }
    return this.attr(node);
  }

  /** Tell subscribers that something changed behind the kernel's back. */
  emitInvalidate(ev: InvalidateEvent): void {
    for (const l of this.listeners) l(ev);
  }

  // ---- internals ------------------------------------------------------------------------

  private newNode(type: FileType, mode: number, uid: number, gid: number, parent: Ino): Node {
    const t = nowNs();
    const node: Node = {
      ino: this.nextIno++,
      generation: 1,
      type,
      mode: mode & 0o7777,
      uid,
      gid,
      nlink: type === 'dir' ? 2 : 1,
      atimeNs: t,
      mtimeNs: t,
      ctimeNs: t,
      data: Buffer.alloc(0),
      size: 0,
      children: new Map(),
      nextCookie: 1n,
      parent,
      target: '',
      openCount: 0,
    };
    this.nodes.set(node.ino, node);
    return node;
  }

  private get(ino: Ino, op: string): Node {
    const n = this.nodes.get(ino);
    if (!n) throw err('ENOENT', op);
    return n;
  }

  private dir(ino: Ino, op: string): Node {
    const n = this.get(ino, op);
    if (n.type !== 'dir') throw err('ENOTDIR', op);
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
    if (mask === 0) return true;
    if (cred.uid === 0) {
      // root may execute only what someone may execute
      return (mask & X_OK) === 0 || n.type === 'dir' || (n.mode & 0o111) !== 0;
    }
    let bits: number;
    if (cred.uid === n.uid) bits = (n.mode >> 6) & 7;
    else if (cred.gid === n.gid || cred.groups.includes(n.gid)) bits = (n.mode >> 3) & 7;
    else bits = n.mode & 7;
    return (bits & mask) === mask;
  }

  private check(cred: Cred, n: Node, mask: number, op: string, name?: string): void {
    if (!this.allowed(cred, n, mask)) throw err('EACCES', op, name);
  }

  private writable(op: string): void {
    if (this.readOnly) throw err('EROFS', op);
  }

  private validName(name: string, op: string): void {
    if (name.length === 0 || name === '.' || name === '..' || name.includes('/'))
      throw err('EINVAL', op, name);
    if (Buffer.byteLength(name) > NAME_MAX) throw err('ENAMETOOLONG', op, name);
  }

  private child(dir: Node, name: string): Node | undefined {
    const slot = dir.children.get(name);
    return slot ? this.nodes.get(slot.ino) : undefined;
  }

  private addEntry(dir: Node, name: string, ino: Ino): void {
    dir.children.set(name, { ino, cookie: dir.nextCookie++ });
    dir.mtimeNs = dir.ctimeNs = nowNs();
  }

  private unlinkName(dir: Node, name: string): void {
    dir.children.delete(name);
    dir.mtimeNs = dir.ctimeNs = nowNs();
  }

  private maybeFree(n: Node): void {
    if (n.nlink <= 0 && n.openCount === 0 && n.ino !== ROOT_INO) this.nodes.delete(n.ino);
  }

  private handle(fh: Fh, op: string): Handle {
    const h = this.handles.get(fh);
    if (!h) throw err('EBADF', op);
    return h;
  }

  private truncate(n: Node, size: number): void {
    if (size > n.data.length) {
      const grown = Buffer.alloc(Math.max(size, n.data.length * 2));
      n.data.copy(grown, 0, 0, n.size);
      n.data = grown;
    } else if (size < n.size) {
      n.data.fill(0, size, n.size);
    }
    n.size = size;
    n.mtimeNs = n.ctimeNs = nowNs();
  }

  private record(op: string, cred: Cred | undefined, extra: Omit<CallRecord, 'op' | 'cred'> = {}): void {
    this.calls.push({
      op,
      cred: cred ? { uid: cred.uid, gid: cred.gid, groups: [...cred.groups] } : undefined,
      ...extra,
    });
  }

  // ---- Vfs ------------------------------------------------------------------------------

  async lookup(cred: Cred, parent: Ino, name: string): Promise<Attr> {
    this.record('lookup', cred, { ino: parent, name });
    const dir = this.dir(parent, 'lookup');
    this.check(cred, dir, X_OK, 'lookup', name);
    const delay = this.slowLookups.get(name);
    if (delay !== undefined) {
      this.slowLookupsInFlight++;
      try {
        await new Promise((r) => setTimeout(r, delay));
      } finally {
        this.slowLookupsInFlight--;
      }
    }
    const n = this.child(dir, name);
    if (!n) throw err('ENOENT', 'lookup', name);
    return this.attr(n);
  }

  async getattr(cred: Cred, ino: Ino): Promise<Attr> {
    this.record('getattr', cred, { ino });
    return this.attr(this.get(ino, 'getattr'));
  }

  async setattr(cred: Cred, ino: Ino, changes: SetAttrChanges, fh?: Fh): Promise<Attr> {
    this.record('setattr', cred, { ino });
    this.writable('setattr');
    const n = this.get(ino, 'setattr');
    const root = cred.uid === 0;
    const owner = root || cred.uid === n.uid;
    if (changes.mode !== undefined && !owner) throw err('EPERM', 'chmod');
    if (changes.uid !== undefined && !root && changes.uid !== n.uid) throw err('EPERM', 'chown');
    if (changes.gid !== undefined && !root && changes.gid !== n.gid) {
      if (cred.uid !== n.uid || (cred.gid !== changes.gid && !cred.groups.includes(changes.gid))) {
        throw err('EPERM', 'chown');
      }
    }
    if (changes.size !== undefined) {
      if (n.type === 'dir') throw err('EISDIR', 'truncate');
      const h = fh !== undefined ? this.handles.get(fh) : undefined;
      const viaHandle = h !== undefined && (h.flags & O_ACCMODE) !== O_RDONLY;
      if (!viaHandle) this.check(cred, n, W_OK, 'truncate');
    }
    for (const t of [changes.atimeNs, changes.mtimeNs]) {
      if (t === undefined) continue;
      if (t === 'now') {
        if (!owner && !this.allowed(cred, n, W_OK)) throw err('EACCES', 'utimens');
      } else if (!owner) {
        throw err('EPERM', 'utimens');
      }
    }
    const now = nowNs();
    if (changes.mode !== undefined) n.mode = changes.mode & 0o7777;
    if (changes.uid !== undefined) n.uid = changes.uid;
    if (changes.gid !== undefined) n.gid = changes.gid;
    if (changes.size !== undefined) this.truncate(n, changes.size);
    if (changes.atimeNs !== undefined) n.atimeNs = changes.atimeNs === 'now' ? now : changes.atimeNs;
    if (changes.mtimeNs !== undefined) n.mtimeNs = changes.mtimeNs === 'now' ? now : changes.mtimeNs;
    n.ctimeNs = now;
    return this.attr(n);
  }

  async access(cred: Cred, ino: Ino, mask: number): Promise<void> {
    this.record('access', cred, { ino, flags: mask });
    const n = this.get(ino, 'access');
    if ((mask & W_OK) !== 0 && this.readOnly) throw err('EROFS', 'access');
    this.check(cred, n, mask, 'access');
  }

  async readdir(cred: Cred, ino: Ino, cookie: bigint, limit: number): Promise<ReaddirResult> {
    this.record('readdir', cred, { ino, size: limit });
    const dir = this.dir(ino, 'readdir');
    this.check(cred, dir, R_OK, 'readdir');
    const max = Math.min(limit, this.maxPage);
    const entries: DirEntry[] = [];
    let eof = true;
    for (const [name, slot] of dir.children) {
      if (slot.cookie <= cookie) continue;
      if (entries.length >= max) {
        eof = false;
        break;
      }
      const n = this.nodes.get(slot.ino);
      if (n) entries.push({ name, attr: this.attr(n), cookie: slot.cookie });
    }
    return { entries, eof, verifier: 1n };
  }

  async open(cred: Cred, ino: Ino, flags: number): Promise<Fh> {
    this.record('open', cred, { ino, flags });
    const n = this.get(ino, 'open');
    const acc = flags & O_ACCMODE;
    if (acc !== O_WRONLY) this.check(cred, n, R_OK, 'open');
    if (acc === O_WRONLY || acc === O_RDWR || (flags & O_TRUNC) !== 0) {
      if (n.type === 'dir') throw err('EISDIR', 'open');
      this.writable('open');
      this.check(cred, n, W_OK, 'open');
    }
    if ((flags & O_TRUNC) !== 0 && n.type === 'file' && acc !== O_RDONLY) this.truncate(n, 0);
    return this.openHandle(n, flags);
  }

  private openHandle(n: Node, flags: number): Fh {
    const fh = this.nextFh++;
    this.handles.set(fh, { ino: n.ino, flags });
    n.openCount++;
    return fh;
  }

  async create(
    cred: Cred,
    parent: Ino,
    name: string,
    mode: number,
    flags: number,
  ): Promise<{ attr: Attr; fh: Fh }> {
    this.record('create', cred, { ino: parent, name, flags });
    this.writable('create');
    const dir = this.dir(parent, 'create');
    this.validName(name, 'create');
    this.check(cred, dir, X_OK, 'create', name);
    const existing = this.child(dir, name);
    if (existing) {
      if ((flags & O_EXCL) !== 0) throw err('EEXIST', 'create', name);
      if (existing.type === 'dir') throw err('EISDIR', 'create', name);
      const fh = await this.open(cred, existing.ino, flags);
      return { attr: this.attr(existing), fh };
    }
    this.check(cred, dir, W_OK, 'create', name);
    const gid = (dir.mode & 0o2000) !== 0 ? dir.gid : cred.gid;
    const n = this.newNode('file', mode, cred.uid, gid, dir.ino);
    this.addEntry(dir, name, n.ino);
    const fh = this.openHandle(n, flags);
    return { attr: this.attr(n), fh };
  }

  async read(fh: Fh, offset: number, length: number): Promise<Buffer> {
    this.readSizes.push(length);
    this.reads++;
    const h = this.handle(fh, 'read');
    if ((h.flags & O_ACCMODE) === O_WRONLY) throw err('EBADF', 'read');
    const n = this.get(h.ino, 'read');
    if (offset >= n.size) return Buffer.alloc(0);
    return Buffer.from(n.data.subarray(offset, Math.min(n.size, offset + length)));
  }

  async write(fh: Fh, offset: number, data: Buffer): Promise<number> {
    const h = this.handle(fh, 'write');
    if ((h.flags & O_ACCMODE) === O_RDONLY) throw err('EBADF', 'write');
    this.writeSizes.push(data.length);
    const n = this.get(h.ino, 'write');
    const at = (h.flags & O_APPEND) !== 0 ? n.size : offset;
    const end = at + data.length;
    if (end > n.data.length) {
      const grown = Buffer.alloc(Math.max(end, n.data.length * 2));
      n.data.copy(grown, 0, 0, n.size);
      n.data = grown;
    }
    data.copy(n.data, at);
    if (end > n.size) n.size = end;
    n.mtimeNs = n.ctimeNs = nowNs();
    return data.length;
  }

  async flush(fh: Fh): Promise<void> {
    this.handle(fh, 'flush');
  }

  async fsync(fh: Fh, _datasync: boolean): Promise<void> {
    this.handle(fh, 'fsync');
  }

  async release(fh: Fh): Promise<void> {
    this.record('release', undefined, { ino: this.handles.get(fh)?.ino });
    const h = this.handle(fh, 'release');
    this.handles.delete(fh);
    const n = this.nodes.get(h.ino);
    if (n) {
      n.openCount--;
      this.maybeFree(n);
    }
  }

  async commit(_cred: Cred, ino: Ino): Promise<void> {
    this.get(ino, 'commit');
  }

  async mkdir(cred: Cred, parent: Ino, name: string, mode: number): Promise<Attr> {
    this.record('mkdir', cred, { ino: parent, name });
    this.writable('mkdir');
    const dir = this.dir(parent, 'mkdir');
    this.validName(name, 'mkdir');
    this.check(cred, dir, W_OK | X_OK, 'mkdir', name);
    if (dir.children.has(name)) throw err('EEXIST', 'mkdir', name);
    const gid = (dir.mode & 0o2000) !== 0 ? dir.gid : cred.gid;
    const n = this.newNode('dir', mode, cred.uid, gid, dir.ino);
    this.addEntry(dir, name, n.ino);
    dir.nlink++;
    return this.attr(n);
  }

  async unlink(cred: Cred, parent: Ino, name: string): Promise<void> {
    this.record('unlink', cred, { ino: parent, name });
    this.writable('unlink');
    const dir = this.dir(parent, 'unlink');
    this.check(cred, dir, W_OK | X_OK, 'unlink', name);
    const n = this.child(dir, name);
    if (!n) throw err('ENOENT', 'unlink', name);
    if (n.type === 'dir') throw err('EISDIR', 'unlink', name);
    this.unlinkName(dir, name);
    n.nlink--;
    n.ctimeNs = nowNs();
    this.maybeFree(n);
  }

  async rmdir(cred: Cred, parent: Ino, name: string): Promise<void> {
    this.record('rmdir', cred, { ino: parent, name });
    this.writable('rmdir');
    const dir = this.dir(parent, 'rmdir');
    this.check(cred, dir, W_OK | X_OK, 'rmdir', name);
    const n = this.child(dir, name);
    if (!n) throw err('ENOENT', 'rmdir', name);
    if (n.type !== 'dir') throw err('ENOTDIR', 'rmdir', name);
    if (n.children.size > 0) throw err('ENOTEMPTY', 'rmdir', name);
    this.unlinkName(dir, name);
    dir.nlink--;
    n.nlink = 0;
    this.maybeFree(n);
  }

  async rename(cred: Cred, parent: Ino, name: string, newParent: Ino, newName: string): Promise<void> {
    this.record('rename', cred, { ino: parent, name });
    this.writable('rename');
    const from = this.dir(parent, 'rename');
    const to = this.dir(newParent, 'rename');
    this.validName(newName, 'rename');
    this.check(cred, from, W_OK | X_OK, 'rename', name);
    this.check(cred, to, W_OK | X_OK, 'rename', newName);
    const n = this.child(from, name);
    if (!n) throw err('ENOENT', 'rename', name);
    const dst = this.child(to, newName);
    if (dst === n) return;
    if (n.type === 'dir') {
      // no moving a directory below itself
      for (let p: Node | undefined = to; p; p = p.ino === ROOT_INO ? undefined : this.nodes.get(p.parent)) {
        if (p.ino === n.ino) throw err('EINVAL', 'rename', newName);
      }
    }
    if (dst) {
      if (n.type === 'dir' && dst.type !== 'dir') throw err('ENOTDIR', 'rename', newName);
      if (n.type !== 'dir' && dst.type === 'dir') throw err('EISDIR', 'rename', newName);
      if (dst.type === 'dir' && dst.children.size > 0) throw err('ENOTEMPTY', 'rename', newName);
      this.unlinkName(to, newName);
      if (dst.type === 'dir') {
        to.nlink--;
        dst.nlink = 0;
      } else {
        dst.nlink--;
      }
      this.maybeFree(dst);
    }
    this.unlinkName(from, name);
    this.addEntry(to, newName, n.ino);
    if (n.type === 'dir' && from !== to) {
      from.nlink--;
      to.nlink++;
    }
    n.parent = to.ino;
    n.ctimeNs = nowNs();
  }

  async symlink(cred: Cred, parent: Ino, name: string, target: string): Promise<Attr> {
    this.record('symlink', cred, { ino: parent, name });
    this.writable('symlink');
    const dir = this.dir(parent, 'symlink');
    this.validName(name, 'symlink');
    this.check(cred, dir, W_OK | X_OK, 'symlink', name);
    if (dir.children.has(name)) throw err('EEXIST', 'symlink', name);
    const n = this.newNode('symlink', 0o777, cred.uid, cred.gid, dir.ino);
    n.target = target;
    this.addEntry(dir, name, n.ino);
    return this.attr(n);
  }

  async readlink(cred: Cred, ino: Ino): Promise<string> {
    this.record('readlink', cred, { ino });
    const n = this.get(ino, 'readlink');
    if (n.type !== 'symlink') throw err('EINVAL', 'readlink');
    return n.target;
  }

  async link(cred: Cred, ino: Ino, newParent: Ino, newName: string): Promise<Attr> {
    this.record('link', cred, { ino, name: newName });
    this.get(ino, 'link');
    this.dir(newParent, 'link');
    throw err('EPERM', 'link', newName);
  }

  async statfs(cred: Cred): Promise<StatFs> {
    this.record('statfs', cred);
    return { ...this.statfsResult };
  }

  onInvalidate(listener: (ev: InvalidateEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }
}
