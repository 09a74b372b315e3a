/**
 * One running share: the composition root that wires the concrete object store, metadata store,
 * data cache, VFS and protocol adapters, and takes them down in order.
 */
import { join } from 'node:path';
import type { ShareConfig } from '../config/index.js';
import { DiskDataCache } from '../datacache/disk-cache.js';
import type { Logger } from '../log/index.js';
import { SqliteMetaStore } from '../metastore/sqlite.js';
import { S3ObjectStore } from '../objectstore/s3.js';
import type { ObjectStore } from '../objectstore/types.js';
import { CoreVfs } from '../vfs/core.js';
import type { Vfs } from '../vfs/types.js';
import { ROOT_INO, type Ino } from '../core/types.js';
import { FuseAdapter } from '../adapters/fuse/adapter.js';
import { NfsServer } from '../adapters/nfs/index.js';
import { ioAddon } from '../adapters/nfs/sendfile.js';
import { createHash } from 'node:crypto';
import { RefreshScheduler, type RefreshResult } from '../sync/scheduler.js';
import { StartupError, checkBucket, checkFuseDevice, checkMountpoint, lockCacheDir } from './preflight.js';
import { bucketgateVersion } from '../core/version.js';

export interface ShareStatus {
  /** The daemon serving the share: its bucketgate and Node versions, pid, and when the share started. */
  daemon: { version: string; node: string; pid: number; startedAt: string };
  name: string;
  url: string;
  mode: ShareConfig['mode'];
  mountpoint: string | null;
  cache: {
    usedBytes: number;
    limitBytes: number;
    dirtyBytes: number;
    dirtyFiles: number;
    hitRatio: number | null;
  };
  uploads: {
    queued: number;
    inflight: number;
    deferring: boolean;
    uploadedFiles: number;
    uploadedBytes: number;
  };
  failing: Array<{ path: string; attempts: number; lastError: string | null }>;
  lastRefresh: (Partial<RefreshResult> & { at: string }) | null;
}

/**
 * Optional instrumentation of a share (metrics, audit log), wired by the daemon: decorators of
 * the object store and of the Vfs each adapter sees, and a hook for reverse sync runs.
 */
export interface ShareHooks {
  store?: (store: ObjectStore) => ObjectStore;
  /** `pathOf` names an inode relative to the share root (`/a/b`), for audit events. */
  vfs?: (vfs: Vfs, protocol: 'fuse' | 'nfs', pathOf: (ino: Ino) => string | undefined) => Vfs;
  /** Every NFS/MOUNT call of the share's export. */
  nfsCall?: (program: string, procedure: string, seconds: number, failed: boolean) => void;
  refresh?: (
    trigger: 'interval' | 'manual',
    seconds: number,
    result?: RefreshResult,
    error?: unknown,
  ) => void;
}

export class Share {
  private fuse: FuseAdapter | undefined;
  private nfs: NfsServer | undefined;
  /** Where the NFS export listens, once started. */
  nfsAddress: { host: string; port: number } | undefined;
  private stopping: Promise<void> | undefined;
  private scheduler: RefreshScheduler | undefined;
  private readonly unmountListeners: Array<() => void> = [];
  private readonly startedAtMs = Date.now();

  private constructor(
    readonly config: ShareConfig,
    readonly store: ObjectStore,
    readonly meta: SqliteMetaStore,
    readonly cache: DiskDataCache,
    readonly vfs: CoreVfs,
    private readonly unlock: () => Promise<void>,
    private readonly log: Logger,
    private readonly hooks: ShareHooks = {},
  ) {}

  static async start(
    config: ShareConfig,
    log: Logger,
    opts: { store?: ObjectStore; hooks?: ShareHooks } = {},
  ): Promise<Share> {
    const hooks = opts.hooks ?? {};
    const mountpoint = config.noFuse || !config.mountpoint ? undefined : config.mountpoint;
    if (mountpoint) {
      await checkFuseDevice();
      await checkMountpoint(mountpoint, log);
    }
    const baseStore =
      opts.store ??
      new S3ObjectStore({
        bucket: config.bucket,
        ...(config.endpoint ? { endpoint: config.endpoint } : {}),
        region: config.region,
        forcePathStyle: config.pathStyle,
        ...(config.credentials ? { credentials: config.credentials } : {}),
        checksum: config.checksum,
        requestTimeoutMs: config.s3TimeoutMs,
        // Parts in flight per upload (16 MiB buffers each): 4 keep the pipe full without
        // pushing the daemon's memory past ~300 MiB with several uploads running.
        concurrency: 4,
      });
    const store = hooks.store ? hooks.store(baseStore) : baseStore;
    await checkBucket(store, config.bucket, config.prefix, config.endpoint);

    // Page-aligned (and huge-page backed) GET buffers from the io addon, when it is built.
    const io = ioAddon();
    const alignedAlloc = io?.alignedBuffer ? (size: number): Buffer => io.alignedBuffer!(size) : undefined;
    const unlock = await lockCacheDir(config.cacheDir);
    let meta: SqliteMetaStore | undefined;
    let cache: DiskDataCache | undefined;
    try {
      meta = new SqliteMetaStore({
        path: join(config.cacheDir, 'meta.db'),
        root: { mode: config.dirMode, uid: config.uid, gid: config.gid, fromMarker: config.prefix !== '' },
        exclusive: true,
      });
      cache = await DiskDataCache.open({
        dir: config.cacheDir,
        limitBytes: config.cacheSize,
        index: meta,
        logger: log,
        writeWaitMs: config.cacheWriteWaitMs,
        // O_DIRECT fills only where FUSE alone serves reads: the kernel keeps its own page cache
        // of the mount for rereads, while an NFS export rereads the cache file (sendfile from its
        // page cache), which direct-written data would no longer be in.
        directFill: !config.nfs,
      });
      const vfs = new CoreVfs({
        name: config.name,
        prefix: config.prefix,
        mode: config.mode,
        readOnly: config.readOnly,
        defaults: { uid: config.uid, gid: config.gid, fileMode: config.fileMode, dirMode: config.dirMode },
        uploadDelayMs: config.uploadDelayMs,
        uploadBusyDeferMs: config.uploadBusyDeferMs,
        uploadConcurrency: config.uploadConcurrency,
        dirTtlMs: config.dirTtlMs,
        cacheLimitBytes: config.cacheSize,
        meta,
        cache,
        store,
        logger: log.child({ component: 'vfs' }),
        ...(alignedAlloc ? { allocAligned: alignedAlloc } : {}),
      });
      await vfs.start();
      const share = new Share(config, store, meta, cache, vfs, unlock, log, hooks);
      const m = meta;
      const pathOf = (ino: Ino): string | undefined => pathOfInode(m, ino);
      const adapterVfs = (protocol: 'fuse' | 'nfs'): Vfs =>
        hooks.vfs ? hooks.vfs(vfs, protocol, pathOf) : vfs;
      share.scheduler = new RefreshScheduler(
        () => share.observeRefresh('interval', () => vfs.refresh('/', true)),
        config.refreshIntervalMs,
        log,
      );
      share.scheduler.start();
      if (mountpoint) {
        const fuse = new FuseAdapter({
          vfs: adapterVfs('fuse'),
          mountpoint,
          options: {
            fsName: config.name,
            allowOther: config.allowOther,
            attrTimeoutSec: config.attrTimeoutMs / 1000,
            entryTimeoutSec: config.attrTimeoutMs / 1000,
            ...(alignedAlloc ? { allocBuffer: alignedAlloc } : {}),
          },
          logger: log.child({ component: 'fuse' }),
        });
        await fuse.mount();
        fuse.on('unmounted', () => {
          if (!share.stopping) {
            log.warn('the mountpoint was unmounted from outside', { mountpoint });
            for (const l of share.unmountListeners) l();
          }
        });
        share.fuse = fuse;
      }
      if (config.nfs) {
        const nfs = new NfsServer({
          exports: [
            {
              name: config.name,
              vfs: adapterVfs('nfs'),
              policy: {
                clients: config.nfsClients,
                roClients: config.nfsRoClients,
                squash: config.nfsSquash,
                anonUid: config.nfsAnonUid,
                anonGid: config.nfsAnonGid,
                readOnly: config.readOnly,
                secure: config.nfsSecure,
              },
              exportId: exportIdOf(config.name),
              dbGeneration: meta.getMeta('db_generation') ?? Buffer.alloc(8),
              secret: meta.getMeta('secret') ?? Buffer.alloc(32),
            },
          ],
          host: config.nfs.host,
          port: config.nfs.port,
          ...(config.nfsPortmap ? { portmap: { host: config.nfs.host, port: 111 } } : {}),
          ...(opts.hooks?.nfsCall ? { onCall: opts.hooks.nfsCall } : {}),
          logger: log.child({ component: 'nfs' }),
        });
        try {
          const r = await nfs.start();
          share.nfs = nfs;
          share.nfsAddress = { host: config.nfs.host, port: r.port };
        } catch (e) {
          await share.fuse?.unmount().catch(() => undefined);
          throw new StartupError(
            `cannot start the NFS export on ${config.nfs.host}:${config.nfs.port}: ${(e as Error).message}`,
            { cause: e },
          );
        }
      }
      log.info('share started', {
        share: config.name,
        version: bucketgateVersion(),
        node: process.version,
        url: config.url,
        mode: config.mode,
        mountpoint: mountpoint ?? null,
        nfs: share.nfsAddress ? `${share.nfsAddress.host}:${share.nfsAddress.port}:/${config.name}` : null,
      });
      return share;
    } catch (e) {
      await cache?.close().catch(() => undefined);
      meta?.close();
      await unlock();
      throw e;
    }
  }

  get mountpoint(): string | undefined {
    return this.fuse ? this.config.mountpoint : undefined;
  }

  /** Called when the FUSE mount goes away without stop() (umount from outside). */
  onUnmounted(cb: () => void): void {
    this.unmountListeners.push(cb);
  }

  /** Reverse sync on demand (admin `refresh`, SIGHUP). */
  async refresh(path: string, recursive: boolean, progress: (p: unknown) => void): Promise<RefreshResult> {
    const r = await this.observeRefresh('manual', () => this.vfs.refresh(path, recursive, progress));
    const { objects: _o, ...summary } = r;
    this.lastRefresh = { at: new Date().toISOString(), ...summary };
    return summary;
  }
  private lastRefresh: (RefreshResult & { at: string }) | undefined;

  /** Run a reverse sync, reporting it to the refresh hook (metrics). */
  private async observeRefresh<T extends RefreshResult>(
    trigger: 'interval' | 'manual',
    run: () => Promise<T>,
  ): Promise<T> {
    const t0 = process.hrtime.bigint();
    const secs = (): number => Number(process.hrtime.bigint() - t0) / 1e9;
    try {
      const r = await run();
      this.hooks.refresh?.(trigger, secs(), r);
      return r;
    } catch (e) {
      this.hooks.refresh?.(trigger, secs(), undefined, e);
      throw e;
    }
  }

  status(): ShareStatus {
    const u = this.cache.usage();
    const up = this.vfs.uploadStats();
    const lookups = u.hits + u.misses;
    return {
      daemon: {
        version: bucketgateVersion(),
        node: process.version,
        pid: process.pid,
        startedAt: new Date(this.startedAtMs).toISOString(),
      },
      name: this.config.name,
      url: this.config.url,
      mode: this.config.mode,
      mountpoint: this.mountpoint ?? null,
      cache: {
        usedBytes: u.usedBytes,
        limitBytes: u.limitBytes,
        dirtyBytes: u.dirtyBytes,
        dirtyFiles: u.dirtyFiles,
        hitRatio: lookups > 0 ? u.hits / lookups : null,
      },
      uploads: {
        queued: up.queued,
        inflight: up.inflight,
        deferring: up.deferring,
        uploadedFiles: up.uploadedFiles,
        uploadedBytes: up.uploadedBytes,
      },
      failing: up.failing.map((f) => ({ path: f.path, attempts: f.attempts, lastError: f.lastError })),
      lastRefresh:
        this.lastRefresh ??
        (this.scheduler?.lastRun
          ? { at: this.scheduler.lastRun.at.toISOString(), ...this.scheduler.lastRun.result }
          : null),
    };
  }

  /** Stop: unmount (no new operations), let in-flight uploads finish, persist and close. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    await this.scheduler?.stop();
    if (this.nfs) {
      await this.nfs
        .stop()
        .catch((e: unknown) =>
          this.log.error('NFS server stop failed', { share: this.config.name, error: e }),
        );
    }
    if (this.fuse) {
      await this.fuse
        .unmount()
        .catch((e: unknown) => this.log.error('unmount failed', { share: this.config.name, error: e }));
    }
    await this.vfs.shutdown();
    await this.cache.close();
    this.meta.close();
    await this.unlock();
    this.log.info('share stopped', { share: this.config.name });
  }
}

/** `/a/b` for an inode of the metadata store; undefined when it has no name (unlinked). */
function pathOfInode(meta: SqliteMetaStore, ino: Ino): string | undefined {
  const parts: string[] = [];
  let cur = ino;
  for (let depth = 0; cur !== ROOT_INO; depth++) {
    if (depth > 4096) return undefined;
    const e = meta.parentOf(cur);
    if (e === undefined) return undefined;
    parts.push(e.name);
    cur = e.parent;
  }
  return `/${parts.reverse().join('/')}`;
}

/** Stable 32-bit export id from the share name (part of NFS file handles). */
function exportIdOf(name: string): number {
  return createHash('sha256').update(name).digest().readUInt32BE(0);
}
