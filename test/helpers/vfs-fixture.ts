/**
 * The real VFS for tests: SQLite metadata store, disk data cache and an object store (the
 * in-memory one by default, or any ObjectStore such as S3ObjectStore on s3rver).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskDataCache } from '../../src/datacache/disk-cache.js';
import { getLogger } from '../../src/log/index.js';
import { SqliteMetaStore } from '../../src/metastore/sqlite.js';
import type { ObjectStore } from '../../src/objectstore/types.js';
import { CoreVfs, type ShareMode } from '../../src/vfs/core.js';
import { MemoryObjectStore } from './memory-objectstore.js';

export interface TestVfs {
  vfs: CoreVfs;
  meta: SqliteMetaStore;
  cache: DiskDataCache;
  store: ObjectStore;
  dir: string;
  /** Stop the VFS and close stores (keeps `dir` unless remove). */
  close(opts?: { remove?: boolean }): Promise<void>;
}

export interface TestVfsOptions {
  /** Cache directory (a fresh temp dir by default). Reuse it to simulate a restart. */
  dir?: string;
  store?: ObjectStore;
  prefix?: string;
  mode?: ShareMode;
  readOnly?: boolean;
  uploadDelayMs?: number;
  uploadPollMs?: number;
  uploadBusyDeferMs?: number;
  dirTtlMs?: number;
  cacheLimitBytes?: number;
  defaults?: { uid: number; gid: number; fileMode: number; dirMode: number };
  /** Do not start the uploader (inspect the journal). */
  noStart?: boolean;
}

export async function createTestVfs(opts: TestVfsOptions = {}): Promise<TestVfs> {
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'bg-vfs-')));
  const store = opts.store ?? new MemoryObjectStore();
  const defaults = opts.defaults ?? { uid: 0, gid: 0, fileMode: 0o644, dirMode: 0o755 };
  const meta = new SqliteMetaStore({
    path: join(dir, 'meta.db'),
    // As the daemon does (src/daemon/share.ts): a prefix share's root comes from its marker.
    root: {
      mode: defaults.dirMode,
      uid: defaults.uid,
      gid: defaults.gid,
      fromMarker: (opts.prefix ?? '') !== '',
    },
  });
  const log = getLogger({ test: 'vfs' });
  const cacheLimitBytes = opts.cacheLimitBytes ?? 1024 ** 3;
  const cache = await DiskDataCache.open({ dir, limitBytes: cacheLimitBytes, index: meta, logger: log });
  const vfs = new CoreVfs({
    name: 'test',
    prefix: opts.prefix ?? '',
    mode: opts.mode ?? 'cache',
    readOnly: opts.readOnly ?? false,
    defaults,
    uploadDelayMs: opts.uploadDelayMs ?? 0,
    uploadConcurrency: 4,
    ...(opts.uploadPollMs !== undefined ? { uploadPollMs: opts.uploadPollMs } : {}),
    ...(opts.uploadBusyDeferMs !== undefined ? { uploadBusyDeferMs: opts.uploadBusyDeferMs } : {}),
    dirTtlMs: opts.dirTtlMs ?? 0,
    cacheLimitBytes,
    meta,
    cache,
    store,
    logger: log,
  });
  if (!opts.noStart) await vfs.start();
  return {
    vfs,
    meta,
    cache,
    store,
    dir,
    async close(c?: { remove?: boolean }) {
      await vfs.shutdown();
      await cache.close();
      meta.close();
      if (c?.remove) await rm(dir, { recursive: true, force: true });
    },
  };
}
