/**
 * Crash-safe namespace operations in the bucket (unlink, rmdir, rename of files and directories).
 *
 * Each operation is journaled (SQLite `remote_ops`) before it touches the bucket, and the journal
 * entry is removed in the same transaction as the local change. A crash in between leaves the
 * entry; at the next start it is replayed: the bucket side is idempotent (copy, then delete; a
 * directory rename lists what is still under the old prefix), then the local view is brought in
 * line by path. So a rename or delete is never half done, and no deleted file comes back.
 *
 * Ordering: bucket first, local view second. A backend failure of a live operation removes the
 * entry and leaves the local view unchanged (the caller gets EIO).
 */
import type { Ino } from '../core/types.js';
import { ROOT_INO } from '../core/types.js';
import { errMessage } from '../core/errors.js';
import type { DataCache } from '../datacache/types.js';
import type { Logger } from '../log/index.js';
import type { MetaStore, NodeRow } from '../metastore/types.js';
import type { ObjectStore } from '../objectstore/types.js';
import type { RemoteTree } from './tree.js';

export type RemoteOp =
  | { kind: 'delete'; keys: string[]; path: string[] }
  | {
      kind: 'rename';
      /** Object to copy (null: nothing in the bucket yet, e.g. a file not uploaded). */
      from: string | null;
      to: string;
      size: number;
      /** User metadata to put on the copy (live renames carry the node's attributes). */
      metadata?: Record<string, string>;
      /** Keys deleted after the copy (the old key, stale leftovers, a replaced destination). */
      deletes: string[];
      fromPath: string[];
      toPath: string[];
    }
  | {
      kind: 'renamedir';
      from: string;
      to: string;
      replacedMarker: boolean;
      fromPath: string[];
      toPath: string[];
    };

export interface RemoteResult {
  /** ETag of the copy of a file rename. */
  etag?: string;
  /** Copies of a directory rename: old key → new ETag. */
  copies?: Map<string, string>;
}

export class RemoteOps {
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly meta: MetaStore,
    private readonly store: ObjectStore,
    private readonly tree: RemoteTree,
    private readonly cache: DataCache,
    private readonly log: Logger,
  ) {}

  /**
   * Journal `op`, do its bucket side, then run `local` (synchronous) and drop the journal entry
   * in one transaction. Throws the backend error (entry removed, local view untouched).
   */
  async run<T>(op: RemoteOp, local: (r: RemoteResult) => T): Promise<T> {
    const id = this.meta.addRemoteOp(JSON.stringify(op));
    let r: RemoteResult;
    try {
      r = await this.remote(op);
    } catch (e) {
      this.meta.removeRemoteOp(id);
      throw e;
    }
    return this.meta.transaction(() => {
      const out = local(r);
      this.meta.removeRemoteOp(id);
      return out;
    });
  }

  /** The bucket side; idempotent, so a replay after a crash at any point completes it. */
  private async remote(op: RemoteOp): Promise<RemoteResult> {
    switch (op.kind) {
      case 'delete':
        if (op.keys.length > 0) await this.store.delete(op.keys);
        return {};
      case 'rename': {
        let etag: string | undefined;
        if (op.from !== null && op.from !== op.to) {
          // After a crash the copy may be done and the source gone: then only the deletes remain.
          const src = await this.store.head(op.from);
          if (src) {
            const r = await this.store.copy(op.from, op.to, {
              size: src.size,
              ...(op.metadata ? { metadata: op.metadata } : {}),
            });
            etag = r.etag;
          } else {
            etag = (await this.store.head(op.to))?.etag;
          }
        }
        const del = [...new Set(op.deletes.filter((k) => k !== op.to))];
        if (del.length > 0) await this.store.delete(del);
        return etag !== undefined ? { etag } : {};
      }
      case 'renamedir': {
        const moved: Array<{ from: string; to: string; size: number }> = [];
        let token: string | undefined;
        do {
          const page = await this.store.list(op.from, token ? { token } : {});
          for (const o of page.objects)
            moved.push({ from: o.key, to: op.to + o.key.slice(op.from.length), size: o.size });
          token = page.nextToken;
        } while (token);
        if (op.replacedMarker) await this.store.delete([op.to]);
        // Copy everything first, then delete: a failure halfway leaves both trees, never neither.
        const copies = new Map<string, string>();
        const queue = [...moved];
        const worker = async (): Promise<void> => {
          for (let m = queue.shift(); m; m = queue.shift())
            copies.set(m.from, (await this.store.copy(m.from, m.to, { size: m.size })).etag);
        };
        await Promise.all(Array.from({ length: 8 }, worker));
        for (let i = 0; i < moved.length; i += 1000)
          await this.store.delete(moved.slice(i, i + 1000).map((m) => m.from));
        return { copies };
      }
    }
  }

  /** Replay journaled operations of a previous run. Failures are retried every 30 s. */
  async replay(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    let failed = 0;
    for (const { id, body } of this.meta.remoteOps()) {
      let op: RemoteOp;
      try {
        op = JSON.parse(body) as RemoteOp;
      } catch {
        this.meta.removeRemoteOp(id);
        continue;
      }
      try {
        const r = await this.remote(op);
        const drops: Ino[] = [];
        this.meta.transaction(() => {
          this.replayLocal(op, r, drops);
          this.meta.removeRemoteOp(id);
        });
        for (const ino of drops) await this.cache.drop(ino);
        this.log.info('completed an interrupted namespace operation', {
          op: op.kind,
          path: '/' + ('path' in op ? op.path : op.fromPath).join('/'),
        });
      } catch (e) {
        failed++;
        this.log.error('cannot complete an interrupted namespace operation yet; will retry', {
          op: op.kind,
          error: errMessage(e),
        });
      }
    }
    if (failed > 0) {
      this.retryTimer = setTimeout(() => void this.replay(), 30_000);
      this.retryTimer.unref();
    }
  }

  stop(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }

  private resolve(path: string[]): NodeRow | undefined {
    let cur = this.meta.getNode(ROOT_INO);
    for (const seg of path) {
      if (!cur) return undefined;
      cur = this.meta.lookup(cur.ino, seg);
    }
    return cur;
  }

  private replayLocal(op: RemoteOp, r: RemoteResult, drops: Ino[]): void {
    if (op.kind === 'delete') {
      const n = this.resolve(op.path);
      if (n) {
        this.tree.forget(n.ino);
        drops.push(n.ino);
      }
      return;
    }
    const src = this.resolve(op.fromPath);
    const dstParent = this.resolve(op.toPath.slice(0, -1));
    const dstName = op.toPath[op.toPath.length - 1]!;
    if (!src) return;
    const loc = this.meta.parentOf(src.ino);
    if (!loc || !dstParent || dstParent.type !== 'dir') {
      // The destination directory is not known locally: the next listing shows the new name.
      this.tree.forget(src.ino);
      return;
    }
    const existing = this.meta.lookup(dstParent.ino, dstName);
    if (existing && existing.ino !== src.ino) {
      this.tree.forget(existing.ino);
      drops.push(existing.ino);
    }
    this.meta.moveEdge(loc.parent, loc.name, dstParent.ino, dstName);
    if (op.kind === 'rename') {
      if (src.remoteKey !== null && r.etag !== undefined)
        this.meta.updateNode(src.ino, { remoteKey: op.to, etag: r.etag });
      else if (src.remoteKey !== null)
        this.meta.updateNode(src.ino, { remoteKey: null, etag: null, state: 'dirty' });
    } else {
      this.rekey(src.ino, op.from, op.to, r.copies ?? new Map());
    }
  }

  /** After a directory rename: every remote key below it moves to the new prefix. */
  rekey(dir: Ino, from: string, to: string, copies: Map<string, string>): void {
    const d = this.meta.getNode(dir);
    if (d?.remoteKey?.startsWith(from))
      this.meta.updateNode(dir, { remoteKey: to + d.remoteKey.slice(from.length) });
    for (const x of this.meta.descendants(dir)) {
      const rk = x.node.remoteKey;
      if (rk !== null && rk.startsWith(from)) {
        this.meta.updateNode(x.node.ino, {
          remoteKey: to + rk.slice(from.length),
          etag: copies.get(rk) ?? x.node.etag,
        });
      }
      if (x.node.state !== 'clean') this.meta.enqueueUpload(x.node.ino, Date.now());
    }
  }
}
