/**
 * Uploads local changes to the bucket from the durable upload journal (the `uploads` table).
 *
 * One entry per inode. An entry is processed when due (cache mode: `delayMs` after the last
 * close; write-through: at once, by the closing caller through uploadNow). An entry stays in the
 * journal until the bucket holds the node's current content, metadata and path; failures are
 * retried with exponential backoff and jitter, never dropped.
 *
 * Ordering rules:
 * - at most one upload per inode runs at a time (`inflight`);
 * - namespace operations call hold(ino) and quiesce(ino) (or exclusive() for directory renames)
 *   first, so an upload never lands on a key that a rename/unlink already moved away from;
 * - a node is marked clean only if nothing changed it while its upload ran (change counters).
 *
 * Background uploads give way to a busy writer: while the share is being changed at a high rate
 * (BUSY_CHANGES changes within the last one to two BUSY_WINDOW_MS windows: an untar, a copy of
 * many files, a big write) and dirty data fills less than a quarter of the cache, entries start
 * only once they are `busyDeferMs` past their due time.
 * Every small-file upload costs the daemon's one JavaScript thread about as much CPU as creating
 * the file (and the S3 server its own): on a small machine, uploading while an untar runs made
 * the untar twice as slow as without uploads. When the writer pauses, the poll starts the
 * backlog within pollMs; a flush (drain) and write-through closes never wait.
 */
import type { Ino } from '../core/types.js';
import { FsError, errMessage } from '../core/errors.js';
import type { DataCache } from '../datacache/types.js';
import type { Logger } from '../log/index.js';
import type { MetaStore, NodeRow } from '../metastore/types.js';
import type { ObjectHead, ObjectStore, PutBody, PutOptions } from '../objectstore/types.js';
import { ObjectStoreError } from '../objectstore/types.js';
import { DIR_CONTENT_TYPE, encodePosixMeta } from '../objectstore/posix-meta.js';
import type { Fetcher } from './fetcher.js';
import type { RemoteTree } from './tree.js';

export interface UploaderOptions {
  concurrency: number;
  /** Cache mode: delay after the last close before uploading. */
  delayMs: number;
  /** Poll interval of the background pump. */
  pollMs?: number;
  /** How long background uploads may wait beyond their due time while the share is busy (0: never). */
  busyDeferMs?: number;
}

/** Busy: at least BUSY_CHANGES changes in the current and the previous window of BUSY_WINDOW_MS. */
const BUSY_WINDOW_MS = 250;
const BUSY_CHANGES = 25;
/** schedule() of an unchanged inode this soon after the previous one changes nothing. */
const RESCHEDULE_SLACK_MS = 50;
/** How often change counts of deleted or clean inodes are dropped. */
const CHANGE_PRUNE_MS = 30_000;
const CHANGE_PRUNE_BATCH = 4096;
/** Default of UploaderOptions.busyDeferMs. */
export const BUSY_DEFER_MS = 5000;

interface Running {
  promise: Promise<void>;
  abort: AbortController;
}

export interface UploadStats {
  queued: number;
  inflight: number;
  /** Background uploads are waiting for a busy writer (see the class comment). */
  deferring: boolean;
  failing: Array<{ ino: Ino; path: string; attempts: number; lastError: string | null }>;
  uploadedFiles: number;
  uploadedBytes: number;
}

export class Uploader {
  private readonly inflight = new Map<Ino, Running>();
  /** Inodes a namespace change is working on: no upload of them starts (see hold()). */
  private readonly held = new Map<Ino, number>();
  /**
   * Changes per inode since it was last clean (an upload compares the count at its start and end).
   * Entries go when the inode is uploaded clean, and for inodes deleted before their upload at the
   * next prunes (every CHANGE_PRUNE_MS, a batch at a time), so the map holds only inodes that are
   * not clean.
   */
  private readonly changeSeq = new Map<Ino, number>();
  private lastChangePrune = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private paused = 0;
  private stopped = false;
  private uploadedFiles = 0;
  private uploadedBytes = 0;
  private readonly idleWaiters: Array<() => void> = [];
  /** Times (ms) at which a timer started by schedule() will pump. */
  private readonly wakeups = new Set<number>();
  /** Changes counted in the current window (number `window`) and in the one before it. */
  private window = 0;
  private changesNow = 0;
  private changesBefore = 0;
  /** drain() calls under way: they make everything due now, busy or not. */
  private draining = 0;
  /** Recent schedule() calls (the last RESCHEDULE_SLACK_MS): change count, due time, when. */
  private readonly lastScheduled = new Map<Ino, { seq: number; due: number; at: number }>();

  constructor(
    private readonly meta: MetaStore,
    private readonly cache: DataCache,
    private readonly store: ObjectStore,
    private readonly tree: RemoteTree,
    private readonly fetcher: Fetcher,
    private readonly opts: UploaderOptions,
    private readonly log: Logger,
    /** Inodes currently open for writing are not uploaded in the background. */
    private readonly isOpenForWrite: (ino: Ino) => boolean,
  ) {}

  start(): void {
    // Recovery: every node that differs from the bucket gets a journal entry.
    for (const n of this.meta.unsyncedNodes()) {
      if (!this.meta.getUpload(n.ino)) this.meta.enqueueUpload(n.ino, Date.now());
    }
    this.timer = setInterval(() => {
      this.pruneScheduled();
      this.pruneChanges();
      this.pump();
    }, this.opts.pollMs ?? 200);
    this.timer.unref();
    this.pump();
  }

  /** Stop starting uploads; wait for those running (they finish or are aborted by `signal`). */
  async stop(abortRunning = false): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (abortRunning) for (const r of this.inflight.values()) r.abort.abort();
    await Promise.allSettled([...this.inflight.values()].map((r) => r.promise));
  }

  isUploading(ino: Ino): boolean {
    return this.inflight.has(ino);
  }

  /** Record that a node changed (content, attributes or path). */
  touch(ino: Ino): void {
    this.changeSeq.set(ino, (this.changeSeq.get(ino) ?? 0) + 1);
    this.rollWindow(Date.now());
    this.changesNow++;
  }

  private rollWindow(now: number): void {
    const w = Math.floor(now / BUSY_WINDOW_MS);
    if (w === this.window) return;
    this.changesBefore = w === this.window + 1 ? this.changesNow : 0;
    this.changesNow = 0;
    this.window = w;
  }

  /** Whether background uploads are waiting for a busy writer now. */
  private deferring(now: number): boolean {
    if (this.draining > 0 || (this.opts.busyDeferMs ?? BUSY_DEFER_MS) <= 0) return false;
    // Uploads are what frees a cache filling with dirty data: never hold them back then.
    const space = this.cache.space();
    if (space.dirtyBytes * 4 > space.limitBytes) return false;
    this.rollWindow(now);
    return this.changesNow + this.changesBefore >= BUSY_CHANGES;
  }

  /** Journal the node for upload after the configured delay (cache mode close). */
  schedule(ino: Ino, delayMs = this.opts.delayMs): void {
    const now = Date.now();
    const due = now + delayMs;
    const seq = this.changeSeq.get(ino) ?? 0;
    // A close is a FLUSH and then a RELEASE: the second would only move the due time by a
    // moment, at the price of a commit. Nothing changed and no upload started in between.
    const last = this.lastScheduled.get(ino);
    if (last !== undefined && last.seq === seq && due - last.due <= RESCHEDULE_SLACK_MS) return;
    this.lastScheduled.set(ino, { seq, due, at: now });
    this.meta.enqueueUpload(ino, due);
    // Start it when due rather than at the next poll (up to pollMs later); one timer per 25 ms.
    if (this.stopped) return;
    const at = Math.ceil((Date.now() + delayMs + 1) / 25) * 25;
    if (this.wakeups.has(at)) return;
    this.wakeups.add(at);
    setTimeout(
      () => {
        this.wakeups.delete(at);
        this.pump();
      },
      Math.max(0, at - Date.now()),
    ).unref();
  }

  /** Upload now and wait (write-through close/fsync, flush). Throws FsError EIO on failure. */
  async uploadNow(ino: Ino): Promise<void> {
    for (;;) {
      const running = this.inflight.get(ino);
      if (running) {
        await running.promise.catch(() => undefined);
        continue;
      }
      if (!this.held.has(ino)) break;
      await new Promise((r) => setTimeout(r, 10)); // a namespace change is working on it
    }
    if (!this.meta.getUpload(ino)) this.meta.enqueueUpload(ino, Date.now());
    const r = this.startOne(ino);
    await r.promise;
  }

  /**
   * Wait for a running upload of `ino` (before a namespace change touches its keys). It is not
   * aborted: a server may still store an aborted single-part PUT after a later DELETE, which
   * would leave an orphan object.
   */
  async quiesce(ino: Ino): Promise<void> {
    // Loop: an upload that finds the file changed meanwhile re-queues it, and the next one may
    // start as soon as this one settles (see hold()).
    for (let r = this.inflight.get(ino); r !== undefined; r = this.inflight.get(ino))
      await r.promise.catch(() => undefined);
  }

  /**
   * Keep new uploads of `ino` from starting until the returned function is called. A namespace
   * change holds the inode, then quiesces it: without the hold, an upload re-queued by the one it
   * waited for could start in between, and its PUT could land after the change's DELETE (a
   * deleted file back in the bucket; seen in the kill -9 test).
   */
  hold(ino: Ino): () => void {
    this.held.set(ino, (this.held.get(ino) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = (this.held.get(ino) ?? 1) - 1;
      if (n > 0) this.held.set(ino, n);
      else this.held.delete(ino);
      queueMicrotask(() => this.pump());
    };
  }

  /** Run `fn` with no upload in flight and none starting (directory renames). */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.paused++;
    try {
      // Wait (no abort, see quiesce) for running uploads; none start while paused.
      await Promise.allSettled([...this.inflight.values()].map((r) => r.promise));
      return await fn();
    } finally {
      this.paused--;
      this.pump();
    }
  }

  /** Resolves when the journal is empty (or `timeoutMs` passes: then rejects with ETIMEDOUT). */
  async drain(timeoutMs: number): Promise<void> {
    this.draining++;
    try {
      await this.drainAll(timeoutMs);
    } finally {
      this.draining--;
    }
  }

  private async drainAll(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    // Everything queued is due now, failing entries included (their backoff restarts from here).
    this.meta.hurryUploads(Date.now(), true);
    // Woken after every finished upload: only counting and one UPDATE here (reading the whole
    // journal each time made a flush of n small files cost O(n^2)).
    for (;;) {
      const queued = this.meta.uploadCount();
      if (queued === 0 && this.inflight.size === 0) return;
      if (Date.now() > deadline) {
        throw new FsError('ETIMEDOUT', 'flush', undefined, {
          message: `uploads did not finish in time (${queued} files still queued)`,
        });
      }
      // Entries closed during the flush become due at once too.
      this.meta.hurryUploads(Date.now(), false);
      this.pump();
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        this.idleWaiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  stats(): UploadStats {
    const all = this.meta.allUploads();
    return {
      queued: all.length,
      inflight: this.inflight.size,
      deferring: all.length > 0 && this.deferring(Date.now()),
      failing: all
        .filter((e) => e.attempts > 0)
        .map((e) => ({
          ino: e.ino,
          path: this.tree.pathOf(e.ino),
          attempts: e.attempts,
          lastError: e.lastError,
        })),
      uploadedFiles: this.uploadedFiles,
      uploadedBytes: this.uploadedBytes,
    };
  }

  private pump(): void {
    if (this.stopped || this.paused > 0) return;
    const room = this.opts.concurrency - this.inflight.size;
    if (room <= 0) return;
    const now = Date.now();
    const cutoff = this.deferring(now) ? now - (this.opts.busyDeferMs ?? BUSY_DEFER_MS) : now;
    const due = this.meta.dueUploads(cutoff, room + this.inflight.size + 16);
    let started = 0;
    for (const e of due) {
      if (started >= room) break;
      if (this.inflight.has(e.ino) || this.held.has(e.ino) || this.isOpenForWrite(e.ino)) continue;
      this.startOne(e.ino).promise.catch(() => undefined);
      started++;
    }
  }

  /** Forget schedule() calls too old to matter (files deleted before their upload stay out). */
  private pruneScheduled(): void {
    const old = Date.now() - RESCHEDULE_SLACK_MS;
    for (const [ino, s] of this.lastScheduled) if (s.at < old) this.lastScheduled.delete(ino);
  }

  /** Drop change counts of inodes that are gone or clean and not being uploaded. */
  private pruneChanges(): void {
    const now = Date.now();
    if (now - this.lastChangePrune < CHANGE_PRUNE_MS) return;
    this.lastChangePrune = now;
    // A bounded batch per prune; the inodes kept go to the back, so the next batch sees others.
    let budget = Math.min(this.changeSeq.size, CHANGE_PRUNE_BATCH);
    for (const [ino, seq] of this.changeSeq) {
      if (budget-- <= 0) break;
      this.changeSeq.delete(ino);
      if (this.inflight.has(ino)) this.changeSeq.set(ino, seq);
      else {
        const n = this.meta.getNode(ino);
        if (n !== undefined && n.state !== 'clean') this.changeSeq.set(ino, seq);
      }
    }
  }

  private startOne(ino: Ino): Running {
    this.lastScheduled.delete(ino);
    const abort = new AbortController();
    const promise = this.uploadOne(ino, abort.signal)
      .catch((e: unknown) => {
        this.failed(ino, e, abort.signal.aborted);
        throw e instanceof FsError ? e : new FsError('EIO', 'upload', this.tree.pathOf(ino), { cause: e });
      })
      .finally(() => {
        this.inflight.delete(ino);
        for (const w of this.idleWaiters.splice(0)) w();
        queueMicrotask(() => this.pump());
      });
    const r = { promise, abort };
    this.inflight.set(ino, r);
    return r;
  }

  private failed(ino: Ino, e: unknown, aborted: boolean): void {
    const entry = this.meta.getUpload(ino);
    if (!entry) return;
    if (aborted) {
      // Aborted by a namespace operation: retry soon, not a failure.
      this.meta.enqueueUpload(ino, Date.now() + 50);
      return;
    }
    const attempts = entry.attempts + 1;
    const permanent =
      e instanceof ObjectStoreError &&
      (e.kind === 'denied' || e.kind === 'invalid' || e.kind === 'no-bucket');
    // Exponential backoff with jitter: 1 s, 2 s, 4 s … capped at 5 min; permanent errors retry slowly.
    const base = permanent ? 5 * 60_000 : Math.min(300_000, 1000 * 2 ** Math.min(attempts - 1, 9));
    const delay = Math.round(base * (0.5 + Math.random() / 2));
    this.meta.uploadFailed(ino, errMessage(e), Date.now() + delay);
    this.log.error('upload failed; the file stays dirty and will be retried', {
      path: this.tree.pathOf(ino),
      attempts,
      retryInMs: delay,
      error: e,
    });
  }

  private async uploadOne(ino: Ino, signal: AbortSignal): Promise<void> {
    const node = this.meta.getNode(ino);
    const loc = this.meta.parentOf(ino);
    if (!node || (!loc && ino !== 1)) {
      // Deleted (or unlinked) since it was queued: nothing to upload.
      this.meta.removeUpload(ino);
      if (!node) this.changeSeq.delete(ino);
      return;
    }
    const seqAtStart = this.changeSeq.get(ino) ?? 0;
    const key = this.tree.keyOf(ino, node.type);
    if (key === undefined) {
      this.meta.removeUpload(ino);
      return;
    }
    const metadata = encodePosixMeta({
      type: node.type,
      mode: node.mode,
      uid: node.uid,
      gid: node.gid,
      mtimeNs: node.mtimeNs,
      atimeNs: node.atimeNs,
    });

    let result: { etag: string; remoteKey: string; remoteSize: number; bytes: number; version?: number };
    if (node.type === 'dir') {
      if (key === '') {
        this.meta.removeUpload(ino); // whole-bucket root: attributes are not stored
        return;
      }
      const r = await this.store.put(key, Buffer.alloc(0), {
        metadata,
        contentType: DIR_CONTENT_TYPE,
        signal,
      });
      result = { etag: r.etag, remoteKey: key, remoteSize: 0, bytes: 0 };
    } else if (node.state !== 'dirty' && node.remoteKey !== null) {
      // Metadata only (or a path change of clean data): server-side copy, no data transfer.
      try {
        const r = await this.store.copy(node.remoteKey, key, {
          size: node.remoteSize ?? node.size,
          metadata,
          signal,
        });
        result = { etag: r.etag, remoteKey: key, remoteSize: node.remoteSize ?? node.size, bytes: 0 };
      } catch (e) {
        // The server cannot copy its object (a 5xx, e.g. s3rver after a PUT of the same key was
        // cut off by a crash of ours). When the whole content is cached here, upload it instead:
        // the result is the same object, and a copy that keeps failing would block the file's
        // upload (and every flush) for good.
        const size = node.remoteSize ?? node.size;
        const cached =
          node.type === 'file' &&
          this.cache.has(ino) &&
          this.cache.missing(ino, 0, size, { count: false }).length === 0;
        if (!cached || !(e instanceof ObjectStoreError) || e.kind !== 'transient' || signal.aborted) throw e;
        this.log.warn('server-side copy failed; uploading the cached data instead', {
          path: this.tree.pathOf(ino),
          error: e.message,
        });
        result = await this.uploadData(node, key, metadata, signal);
      }
    } else if (node.type === 'symlink') {
      const body = Buffer.from(node.symlink ?? '', 'utf8');
      const r = await this.guardedPut(node, key, body, { metadata, signal });
      result = { etag: r.etag, remoteKey: key, remoteSize: body.length, bytes: body.length };
    } else {
      result = await this.uploadData(node, key, metadata, signal);
    }

    const oldKey = node.remoteKey;
    const clean = this.meta.transaction(() => {
      const now = this.meta.getNode(ino);
      if (!now) return false;
      const unchanged = (this.changeSeq.get(ino) ?? 0) === seqAtStart;
      const dataClean =
        node.type !== 'file' || node.state !== 'dirty' || this.cache.markClean(ino, result.version ?? -1);
      const stillHere = this.tree.keyOf(ino, now.type) === key;
      const isClean = unchanged && dataClean && stillHere;
      this.meta.updateNode(ino, {
        remoteKey: result.remoteKey,
        etag: result.etag,
        remoteSize: result.remoteSize,
        ...(node.type === 'dir' ? { hasMarker: true } : {}),
        ...(isClean ? { state: 'clean' as const } : {}),
      });
      if (isClean) {
        this.meta.removeUpload(ino);
        this.changeSeq.delete(ino);
      } else this.meta.enqueueUpload(ino, Date.now() + (this.isOpenForWrite(ino) ? this.opts.delayMs : 0));
      return isClean;
    });
    if (oldKey !== null && oldKey !== key && oldKey !== result.remoteKey) {
      // The object moved (renamed while dirty): remove the old copy only after the new one exists.
      await this.store.delete([oldKey]);
    }
    this.uploadedFiles++;
    this.uploadedBytes += result.bytes;
    this.log.debug('uploaded', { key, bytes: result.bytes, clean });
  }

  /**
   * Upload that detects a concurrent writer: the object at `key` must still be the version this
   * gateway last saw (or absent for a new file). With conditional-write support that is the
   * server's If-Match / If-None-Match; otherwise a HEAD just before the upload. When someone else
   * changed it, their version is preserved as `NAME.conflict-<timestamp>` first, then ours wins.
   */
  private async guardedPut(
    node: NodeRow,
    key: string,
    body: PutBody,
    opts: PutOptions,
  ): Promise<{ etag: string }> {
    const expected = node.remoteKey === key ? node.etag : null;
    if (this.conditional) {
      try {
        return await this.store.put(key, body, {
          ...opts,
          ...(expected !== null ? { ifMatch: expected } : { ifNoneMatch: true }),
        });
      } catch (e) {
        if (!(e instanceof ObjectStoreError) || e.kind !== 'precondition') throw e;
      }
      const head = await this.store.head(key, opts.signal);
      if (head && !(await this.isOwnUpload(key, head, body))) await this.preserveTheirs(node, key);
      return this.store.put(key, body, opts);
    }
    const head = await this.store.head(key, opts.signal);
    if (head && head.etag !== expected && !(await this.isOwnUpload(key, head, body)))
      await this.preserveTheirs(node, key);
    return this.store.put(key, body, opts);
  }

  /**
   * Is the object in the bucket our own bytes, so that replacing it loses nothing? Either the very
   * bytes we are about to upload (our earlier upload whose result was never recorded: the daemon
   * died between the PUT and the metadata update), or their beginning: a PUT cut off by such a
   * crash on a server that stores bodies as they arrive (s3rver does; such an object can be read
   * but not copied, so "preserving" it would block the upload for good). Whatever another writer
   * may have put there, if it is a prefix of ours, every byte of it is in what we upload.
   */
  private async isOwnUpload(key: string, head: ObjectHead, body: PutBody): Promise<boolean> {
    const size = Buffer.isBuffer(body) ? body.length : body.size;
    if (head.size > size) return false;
    const whole = head.size === size;
    const prefix: PutBody = whole
      ? body
      : Buffer.isBuffer(body)
        ? body.subarray(0, head.size)
        : { path: body.path, size: head.size };
    let etags: string[];
    try {
      etags = await this.store.etagsOf(prefix);
    } catch (e) {
      this.log.warn('could not hash the local file to compare it with the object in the bucket', {
        key,
        err: e,
      });
      return false;
    }
    if (!etags.includes(head.etag)) return false;
    this.log.info(
      whole
        ? 'the object in the bucket already holds these bytes (an upload whose result was lost); no conflict'
        : 'the object in the bucket holds the beginning of these bytes (an upload cut off by a crash); no conflict',
      { key, objectBytes: head.size, localBytes: size },
    );
    return true;
  }

  /** Copy the other writer's object at `key` to a sibling conflict name (bucket and local view). */
  private async preserveTheirs(node: NodeRow, key: string): Promise<void> {
    const head = await this.store.head(key);
    if (!head) return;
    const stamp = new Date()
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z');
    const ckey = `${key}.conflict-${stamp}`;
    const r = await this.store.copy(key, ckey, { size: head.size });
    this.log.warn(
      'conflict: the object was changed in the bucket by another writer; their version is kept as a sibling',
      {
        key,
        preservedAs: ckey,
      },
    );
    this.onConflict(node.ino, ckey.slice(ckey.lastIndexOf('/') + 1), ckey, r.etag, head.size);
  }

  /** Set by the VFS after probing the backend once per share. */
  conditional = false;
  onConflict: (ino: Ino, name: string, key: string, etag: string, size: number) => void = () => undefined;

  private async uploadData(
    node: NodeRow,
    key: string,
    metadata: Record<string, string>,
    signal: AbortSignal,
  ): Promise<{ etag: string; remoteKey: string; remoteSize: number; bytes: number; version: number }> {
    const ino = node.ino;
    this.cache.ensure(ino, node.remoteSize ?? node.size);
    this.cache.pin(ino);
    try {
      const size = this.cache.size(ino) ?? node.size;
      // The whole content must be local: fetch what was never read from the previous object.
      if (this.cache.missing(ino, 0, size, { count: false }).length > 0) {
        if (node.remoteKey === null) {
          throw new FsError('EIO', 'upload', this.tree.pathOf(ino), {
            message: `upload ${this.tree.pathOf(ino)}: cached data is incomplete and no object holds the rest`,
          });
        }
        await this.fetcher.ensure(
          { ino, key: node.remoteKey, etag: node.etag, size: Math.min(size, node.remoteSize ?? size) },
          0,
          size,
        );
      }
      const version = this.cache.version(ino);
      const path = this.cache.filePath(ino);
      // Once nothing is missing the cache file is exactly `size` bytes (datacache invariant).
      const r = await this.guardedPut(node, key, size === 0 ? Buffer.alloc(0) : { path, size }, {
        metadata,
        signal,
      });
      return { etag: r.etag, remoteKey: key, remoteSize: size, bytes: size, version };
    } finally {
      this.cache.unpin(ino);
    }
  }
}
