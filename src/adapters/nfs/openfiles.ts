/**
 * NFSv3 is stateless but the VFS reads and writes through open handles: keep a per-inode cache of
 * open VFS handles, keyed by (export, inode, access, credentials) so that one caller's open never
 * serves another caller's I/O, and release each handle after an idle period and on shutdown.
 *
 * Ordering: `acquire` hands out a lease; the handle is not released while a lease is held. Two
 * concurrent acquires for the same key share one `vfs.open()`.
 */
import type { Cred, Ino } from '../../core/types.js';
import type { Fh, Vfs } from '../../vfs/types.js';
import type { Logger } from '../../log/index.js';

export type OpenMode = 'r' | 'w';

interface Entry {
  key: string;
  vfs: Vfs;
  exportId: number;
  ino: Ino;
  mode: OpenMode;
  fh: Promise<Fh>;
  leases: number;
  lastUsed: number;
  /** Set when a write went through this handle since the last fsync. */
  dirty: boolean;
  closing: boolean;
}

export interface Lease {
  readonly fh: Fh;
  markDirty(): void;
  release(): void;
}

export type Opener = (vfs: Vfs, cred: Cred, ino: Ino, mode: OpenMode) => Promise<Fh>;

export class OpenFileCache {
  private readonly entries = new Map<string, Entry>();
  private readonly idleMs: number;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private readonly opener: Opener;
  private readonly maxEntries: number;

  constructor(opts: { idleMs?: number; log: Logger; opener: Opener; maxEntries?: number }) {
    this.idleMs = opts.idleMs ?? 5000;
    this.maxEntries = opts.maxEntries ?? 4096;
    this.log = opts.log;
    this.opener = opts.opener;
  }

  get size(): number {
    return this.entries.size;
  }

  private static key(exportId: number, ino: Ino, mode: OpenMode, cred: Cred): string {
    return `${exportId}:${ino}:${mode}:${cred.uid}:${cred.gid}:${cred.groups.join(',')}`;
  }

  async acquire(vfs: Vfs, exportId: number, ino: Ino, mode: OpenMode, cred: Cred): Promise<Lease> {
    const key = OpenFileCache.key(exportId, ino, mode, cred);
    let e = this.entries.get(key);
    if (e === undefined || e.closing) {
      if (this.entries.size >= this.maxEntries) this.shed();
      const fh = this.opener(vfs, cred, ino, mode);
      e = {
        key,
        vfs,
        exportId,
        ino,
        mode,
        fh,
        leases: 0,
        lastUsed: Date.now(),
        dirty: false,
        closing: false,
      };
      const entry = e;
      this.entries.set(key, entry);
      fh.catch(() => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
      });
      this.arm();
    }
    e.leases++;
    let fh: Fh;
    try {
      fh = await e.fh;
    } catch (err) {
      e.leases--;
      throw err;
    }
    const entry = e;
    let released = false;
    return {
      fh,
      markDirty: () => {
        entry.dirty = true;
      },
      release: () => {
        if (released) return;
        released = true;
        entry.leases--;
        entry.lastUsed = Date.now();
      },
    };
  }

  /** Adopt a handle the caller already opened (e.g. by CREATE), so a following WRITE reuses it. */
  adopt(vfs: Vfs, exportId: number, ino: Ino, mode: OpenMode, cred: Cred, fh: Fh): void {
    const key = OpenFileCache.key(exportId, ino, mode, cred);
    if (this.entries.has(key)) {
      void this.close(vfs, fh);
      return;
    }
    this.entries.set(key, {
      key,
      vfs,
      exportId,
      ino,
      mode,
      fh: Promise.resolve(fh),
      leases: 0,
      lastUsed: Date.now(),
      dirty: false,
      closing: false,
    });
    this.arm();
  }

  /**
   * For COMMIT: lease the write handles of an inode (any credentials) that wrote since the last
   * COMMIT, clearing their dirty mark (a write finishing meanwhile marks its handle again).
   */
  async leaseDirtyWriters(exportId: number, ino: Ino): Promise<Array<{ vfs: Vfs; fh: Fh; release(): void }>> {
    const leases: Array<{ vfs: Vfs; fh: Fh; release(): void }> = [];
    for (const e of [...this.entries.values()]) {
      if (e.exportId !== exportId || e.ino !== ino || e.mode !== 'w' || e.closing) continue;
      if (!e.dirty) continue;
      e.dirty = false;
      e.leases++;
      let fh: Fh;
      try {
        fh = await e.fh;
      } catch {
        e.leases--;
        continue;
      }
      const entry = e;
      leases.push({
        vfs: e.vfs,
        fh,
        release: () => {
          entry.leases--;
          entry.lastUsed = Date.now();
        },
      });
    }
    return leases;
  }

  /**
   * After a COMMIT: close the inode's write handles that no call is using and that nothing wrote
   * to since. NFS has no close; a COMMIT is the client's "done for now" (libnfs and the Linux
   * client send it at close), and closing the handle then starts the upload delay at once instead
   * of after the idle timeout. A later WRITE simply opens a new handle.
   */
  async closeCommitted(exportId: number, ino: Ino): Promise<void> {
    const done: Promise<void>[] = [];
    for (const e of [...this.entries.values()]) {
      if (e.exportId !== exportId || e.ino !== ino || e.mode !== 'w') continue;
      if (e.leases === 0 && !e.dirty && !e.closing) done.push(this.closeEntry(e));
    }
    await Promise.all(done);
  }

  private arm(): void {
    if (this.timer !== undefined || this.entries.size === 0) return;
    this.timer = setInterval(() => this.sweep(), Math.max(250, Math.min(1000, this.idleMs / 2)));
    this.timer.unref();
  }

  /** Over the cap: release the least recently used handles that no call is using. */
  private shed(): void {
    const idle = [...this.entries.values()]
      .filter((e) => e.leases === 0 && !e.closing)
      .sort((a, b) => a.lastUsed - b.lastUsed);
    for (const e of idle.slice(0, Math.max(1, Math.floor(this.maxEntries / 8)))) void this.closeEntry(e);
  }

  private sweep(): void {
    const now = Date.now();
    for (const e of [...this.entries.values()]) {
      if (e.leases === 0 && !e.closing && now - e.lastUsed >= this.idleMs) void this.closeEntry(e);
    }
    if (this.entries.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private async closeEntry(e: Entry): Promise<void> {
    e.closing = true;
    if (this.entries.get(e.key) === e) this.entries.delete(e.key);
    let fh: Fh;
    try {
      fh = await e.fh;
    } catch {
      return;
    }
    await this.close(e.vfs, fh);
  }

  private async close(vfs: Vfs, fh: Fh): Promise<void> {
    try {
      await vfs.flush(fh);
    } catch (err) {
      this.log.warn('nfs: flush of an idle handle failed', { fh, error: err });
    }
    try {
      await vfs.release(fh);
    } catch (err) {
      this.log.warn('nfs: release of an idle handle failed', { fh, error: err });
    }
  }

  /** Release every handle (shutdown). Handles still leased are released as well. */
  async closeAll(): Promise<void> {
    if (this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    const all = [...this.entries.values()];
    await Promise.all(all.map((e) => this.closeEntry(e)));
  }
}
