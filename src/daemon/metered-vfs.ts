/**
 * MeteredVfs: a Vfs decorator between a protocol adapter and the real VFS. It changes no
 * behaviour; it records
 * - metrics (DaemonMetrics): every operation by type and result (ok or errno name), its
 *   latency, and the bytes read and written;
 * - audit events (AuditSink): create, mkdir, symlink, write-close, rename, unlink, rmdir and
 *   setattr with the caller's uid/gid and the protocol.
 *
 * One instance per (share, protocol): the FUSE adapter and the NFS server each get their own.
 * The audit sink is looked up per event, so a reload can switch the audit log on or off.
 */
import { isFsError } from '../core/errors.js';
import {
  O_ACCMODE,
  O_RDONLY,
  O_TRUNC,
  ROOT_INO,
  type Attr,
  type Cred,
  type FileRange,
  type Ino,
  type SetAttrChanges,
  type StatFs,
} from '../core/types.js';
import type { Fh, InvalidateEvent, ReaddirResult, Vfs } from '../vfs/types.js';
import type { AuditEvent, AuditOp, AuditSink } from './audit.js';
import type { DaemonMetrics } from './metrics.js';

export type Protocol = 'fuse' | 'nfs';

export interface MeteredVfsOptions {
  share: string;
  protocol: Protocol;
  metrics?: DaemonMetrics;
  /** The audit log in force (undefined = off). */
  audit?: () => AuditSink | undefined;
  /** Path of an inode relative to the share root (`/a/b`), undefined when it has no name. */
  pathOf: (ino: Ino) => string | undefined;
}

/** A writable handle: audited at close when something was written. */
interface Tracked {
  ino: Ino;
  cred: Cred;
  bytes: number;
  changed: boolean;
}

type Counted = { inc(v?: number): void };
type Observed = { observe(v: number): void };

function resultOf(e: unknown): string {
  return isFsError(e) ? e.code : 'EIO';
}

function join(dir: string | undefined, name: string): string {
  if (dir === undefined) return `?/${name}`;
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

function nsToIso(v: bigint | 'now' | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (v === 'now') return 'now';
  const ms = Number(v / 1_000_000n);
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 19)}.${(v % 1_000_000_000n).toString().padStart(9, '0')}Z`;
}

function describeChanges(ch: SetAttrChanges): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (ch.mode !== undefined) out.mode = `0${(ch.mode & 0o7777).toString(8)}`;
  if (ch.uid !== undefined) out.uid = ch.uid;
  if (ch.gid !== undefined) out.gid = ch.gid;
  if (ch.size !== undefined) out.size = ch.size;
  const at = nsToIso(ch.atimeNs);
  if (at !== undefined) out.atime = at;
  const mt = nsToIso(ch.mtimeNs);
  if (mt !== undefined) out.mtime = mt;
  return out;
}

export class MeteredVfs implements Vfs {
  private readonly counters = new Map<string, Counted>();
  private readonly histograms = new Map<string, Observed>();
  private readonly tracked = new Map<Fh, Tracked>();
  private readonly readBytes: Counted | undefined;
  private readonly writeBytes: Counted | undefined;

  constructor(
    private readonly inner: Vfs,
    private readonly opts: MeteredVfsOptions,
  ) {
    const m = opts.metrics;
    if (m) {
      this.readBytes = m.vfsBytes.labels({ share: opts.share, protocol: opts.protocol, direction: 'read' });
      this.writeBytes = m.vfsBytes.labels({ share: opts.share, protocol: opts.protocol, direction: 'write' });
    }
  }

  get readOnly(): boolean {
    return this.inner.readOnly;
  }

  // --- recording ------------------------------------------------------------------------------

  private count(op: string, result: string, seconds: number): void {
    const m = this.opts.metrics;
    if (!m) return;
    const key = `${op}\0${result}`;
    let c = this.counters.get(key);
    if (!c) {
      c = m.vfsOps.labels({ share: this.opts.share, protocol: this.opts.protocol, op, result });
      this.counters.set(key, c);
    }
    c.inc();
    let h = this.histograms.get(op);
    if (!h) {
      h = m.vfsLatency.labels({ share: this.opts.share, protocol: this.opts.protocol, op });
      this.histograms.set(op, h);
    }
    h.observe(seconds);
  }

  /** Run one operation, recording its result and latency. */
  private async run<T>(op: string, f: () => Promise<T>): Promise<T> {
    if (!this.opts.metrics) return f();
    const t0 = process.hrtime.bigint();
    try {
      const r = await f();
      this.count(op, 'ok', Number(process.hrtime.bigint() - t0) / 1e9);
      return r;
    } catch (e) {
      this.count(op, resultOf(e), Number(process.hrtime.bigint() - t0) / 1e9);
      throw e;
    }
  }

  private get audit(): AuditSink | undefined {
    return this.opts.audit?.();
  }

  private path(ino: Ino): string {
    if (ino === ROOT_INO) return '/';
    try {
      return this.opts.pathOf(ino) ?? `?ino=${ino}`;
    } catch {
      return `?ino=${ino}`;
    }
  }

  private dirPath(ino: Ino): string | undefined {
    try {
      return ino === ROOT_INO ? '/' : this.opts.pathOf(ino);
    } catch {
      return undefined;
    }
  }

  private record(
    op: AuditOp,
    cred: Cred,
    path: string,
    result: string,
    extra: Record<string, unknown> = {},
  ): void {
    const sink = this.audit;
    if (!sink) return;
    const ev: AuditEvent = {
      share: this.opts.share,
      protocol: this.opts.protocol,
      op,
      uid: cred.uid,
      gid: cred.gid,
      path,
      ...extra,
      result,
    };
    sink.record(ev);
  }

  /** Run an audited operation: the event is written after it finished, with its result. */
  private async audited<T>(
    op: string,
    auditOp: AuditOp,
    cred: Cred,
    path: () => string,
    extra: Record<string, unknown>,
    f: () => Promise<T>,
  ): Promise<T> {
    if (!this.audit) return this.run(op, f);
    const p = path();
    try {
      const r = await this.run(op, f);
      this.record(auditOp, cred, p, 'ok', extra);
      return r;
    } catch (e) {
      this.record(auditOp, cred, p, resultOf(e), extra);
      throw e;
    }
  }

  private track(fh: Fh, ino: Ino, cred: Cred, changed: boolean): void {
    if (this.audit) this.tracked.set(fh, { ino, cred, bytes: 0, changed });
  }

  /** A write-close event when the handle wrote (or truncated) since the last one. */
  private closeEvent(fh: Fh, result: string): void {
    const t = this.tracked.get(fh);
    if (!t || (!t.changed && t.bytes === 0)) return;
    this.record('write-close', t.cred, this.path(t.ino), result, { bytes: t.bytes });
    t.bytes = 0;
    t.changed = false;
  }

  // --- Vfs -------------------------------------------------------------------------------------

  lookup(cred: Cred, parent: Ino, name: string): Promise<Attr> {
    return this.run('lookup', () => this.inner.lookup(cred, parent, name));
  }

  getattr(cred: Cred, ino: Ino): Promise<Attr> {
    return this.run('getattr', () => this.inner.getattr(cred, ino));
  }

  setattr(cred: Cred, ino: Ino, changes: SetAttrChanges, fh?: Fh): Promise<Attr> {
    return this.audited(
      'setattr',
      'setattr',
      cred,
      () => this.path(ino),
      { changes: describeChanges(changes) },
      () => this.inner.setattr(cred, ino, changes, fh),
    );
  }

  access(cred: Cred, ino: Ino, mask: number): Promise<void> {
    return this.run('access', () => this.inner.access(cred, ino, mask));
  }

  readdir(cred: Cred, ino: Ino, cookie: bigint, limit: number): Promise<ReaddirResult> {
    return this.run('readdir', () => this.inner.readdir(cred, ino, cookie, limit));
  }

  async open(cred: Cred, ino: Ino, flags: number): Promise<Fh> {
    const fh = await this.run('open', () => this.inner.open(cred, ino, flags));
    if ((flags & O_ACCMODE) !== O_RDONLY || (flags & O_TRUNC) !== 0)
      this.track(fh, ino, cred, (flags & O_TRUNC) !== 0);
    return fh;
  }

  async create(
    cred: Cred,
    parent: Ino,
    name: string,
    mode: number,
    flags: number,
  ): Promise<{ attr: Attr; fh: Fh }> {
    const r = await this.audited(
      'create',
      'create',
      cred,
      () => join(this.dirPath(parent), name),
      { mode: `0${(mode & 0o7777).toString(8)}` },
      () => this.inner.create(cred, parent, name, mode, flags),
    );
    this.track(r.fh, r.attr.ino, cred, false);
    return r;
  }

  async read(fh: Fh, offset: number, length: number, scratch?: Buffer): Promise<Buffer> {
    const b = await this.run('read', () => this.inner.read(fh, offset, length, scratch));
    this.readBytes?.inc(b.length);
    return b;
  }

  async readLocal(fh: Fh, offset: number, length: number, scratch?: Buffer): Promise<Buffer | FileRange> {
    const inner = this.inner;
    const r = await this.run('read', () =>
      inner.readLocal
        ? inner.readLocal(fh, offset, length, scratch)
        : inner.read(fh, offset, length, scratch),
    );
    this.readBytes?.inc(r.length);
    return r;
  }

  async write(fh: Fh, offset: number, data: Buffer): Promise<number> {
    const n = await this.run('write', () => this.inner.write(fh, offset, data));
    this.writeBytes?.inc(n);
    const t = this.tracked.get(fh);
    if (t) t.bytes += n;
    return n;
  }

  async flush(fh: Fh): Promise<void> {
    try {
      await this.run('flush', () => this.inner.flush(fh));
      this.closeEvent(fh, 'ok');
    } catch (e) {
      this.closeEvent(fh, resultOf(e));
      throw e;
    }
  }

  fsync(fh: Fh, datasync: boolean): Promise<void> {
    return this.run('fsync', () => this.inner.fsync(fh, datasync));
  }

  async release(fh: Fh): Promise<void> {
    try {
      await this.run('release', () => this.inner.release(fh));
      this.closeEvent(fh, 'ok');
    } catch (e) {
      this.closeEvent(fh, resultOf(e));
      throw e;
    } finally {
      this.tracked.delete(fh);
    }
  }

  commit(cred: Cred, ino: Ino): Promise<void> {
    return this.run('commit', () => this.inner.commit(cred, ino));
  }

  mkdir(cred: Cred, parent: Ino, name: string, mode: number): Promise<Attr> {
    return this.audited(
      'mkdir',
      'mkdir',
      cred,
      () => join(this.dirPath(parent), name),
      { mode: `0${(mode & 0o7777).toString(8)}` },
      () => this.inner.mkdir(cred, parent, name, mode),
    );
  }

  unlink(cred: Cred, parent: Ino, name: string): Promise<void> {
    return this.audited(
      'unlink',
      'unlink',
      cred,
      () => join(this.dirPath(parent), name),
      {},
      () => this.inner.unlink(cred, parent, name),
    );
  }

  rmdir(cred: Cred, parent: Ino, name: string): Promise<void> {
    return this.audited(
      'rmdir',
      'rmdir',
      cred,
      () => join(this.dirPath(parent), name),
      {},
      () => this.inner.rmdir(cred, parent, name),
    );
  }

  rename(cred: Cred, parent: Ino, name: string, newParent: Ino, newName: string): Promise<void> {
    if (!this.audit)
      return this.run('rename', () => this.inner.rename(cred, parent, name, newParent, newName));
    const newPath = join(this.dirPath(newParent), newName);
    return this.audited(
      'rename',
      'rename',
      cred,
      () => join(this.dirPath(parent), name),
      { newPath },
      () => this.inner.rename(cred, parent, name, newParent, newName),
    );
  }

  symlink(cred: Cred, parent: Ino, name: string, target: string): Promise<Attr> {
    return this.audited(
      'symlink',
      'symlink',
      cred,
      () => join(this.dirPath(parent), name),
      { target },
      () => this.inner.symlink(cred, parent, name, target),
    );
  }

  readlink(cred: Cred, ino: Ino): Promise<string> {
    return this.run('readlink', () => this.inner.readlink(cred, ino));
  }

  link(cred: Cred, ino: Ino, newParent: Ino, newName: string): Promise<Attr> {
    return this.run('link', () => this.inner.link(cred, ino, newParent, newName));
  }

  statfs(cred: Cred): Promise<StatFs> {
    return this.run('statfs', () => this.inner.statfs(cred));
  }

  onInvalidate(listener: (ev: InvalidateEvent) => void): () => void {
    return this.inner.onInvalidate(listener);
  }
}
