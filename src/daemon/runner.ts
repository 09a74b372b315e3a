/**
 * Runs shares in the foreground until a signal: SIGINT/SIGTERM stop cleanly (unmount, let
 * in-flight requests finish, journal intact) and exit 0; SIGHUP refreshes (mount) or reloads.
 */
import { isAbsolute } from 'node:path';
import type { HostPort, ShareConfig } from '../config/index.js';
import { errMessage } from '../core/errors.js';
import { getLogger } from '../log/index.js';
import { AdminServer, type AdminRequest } from './admin.js';
import { notifyReady, notifyStopping } from './notify.js';
import { DaemonServices } from './services.js';
import { Share } from './share.js';

export interface RunOptions {
  sighupRefresh: boolean;
  onReady?: (shares: Share[]) => void;
  onStopped?: () => Promise<void>;
  /** Prometheus listener (`--metrics HOST:PORT`). */
  metrics?: HostPort;
  /** Audit log file (`--audit-log FILE`). */
  auditLog?: string;
}

export async function adminHandler(
  share: Share,
  req: AdminRequest,
  progress: (p: unknown) => void,
): Promise<Record<string, unknown>> {
  switch (req.cmd) {
    case 'status':
      return { status: share.status() };
    case 'flush': {
      const timeoutMs =
        typeof req.timeoutMs === 'number' && req.timeoutMs > 0 ? req.timeoutMs : 24 * 3600_000;
      const timer = setInterval(() => {
        const s = share.status();
        progress({ queued: s.uploads.queued, inflight: s.uploads.inflight, dirtyBytes: s.cache.dirtyBytes });
      }, 500);
      try {
        await share.vfs.flushAll(timeoutMs);
      } finally {
        clearInterval(timer);
      }
      return {};
    }
    case 'refresh':
      return { summary: await share.refresh(req.path ?? '/', req.recursive ?? false, progress) };
    case 'backup': {
      if (typeof req.dest !== 'string' || !isAbsolute(req.dest))
        throw new Error('backup needs an absolute destination path');
      try {
        return await share.meta.backup(req.dest);
      } catch (e) {
        const msg = `backup of the metadata database to ${req.dest} failed: ${errMessage(e)}`;
        getLogger().error(msg, { share: share.config.name });
        throw new Error(msg);
      }
    }
    default:
      throw new Error(`unknown admin command "${(req as { cmd: string }).cmd}"`);
  }
}

export async function runShares(configs: ShareConfig[], opts: RunOptions): Promise<void> {
  const log = getLogger();
  const shares: Share[] = [];
  const admins: AdminServer[] = [];
  const services = new DaemonServices(false);
  let stopping: Promise<void> | undefined;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));

  const stopAll = (why: string): Promise<void> => {
    stopping ??= (async () => {
      log.info('stopping', { reason: why });
      await notifyStopping();
      await Promise.allSettled(admins.map((a) => a.stop()));
      for (const s of shares) services.remove(s);
      await Promise.allSettled(shares.map((s) => s.stop()));
      await services.close();
      await opts.onStopped?.();
      resolveDone();
    })();
    return stopping;
  };

  const onSignal = (sig: NodeJS.Signals): void => {
    void stopAll(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', () => {
    void services.reopenAudit();
    if (!opts.sighupRefresh) return;
    for (const s of shares) {
      s.refresh('/', true, () => undefined).then(
        (sum) => log.info('refresh after SIGHUP finished', { share: s.config.name, ...sum }),
        (e: unknown) => log.error('refresh after SIGHUP failed', { share: s.config.name, error: e }),
      );
    }
  });

  try {
    await services.configure({
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
      ...(opts.auditLog ? { auditLog: opts.auditLog } : {}),
    });
    for (const cfg of configs) {
      const hooks = services.hooksFor(cfg);
      const share = await Share.start(
        cfg,
        log.child({ share: cfg.name }, { level: cfg.logLevel }),
        hooks ? { hooks } : {},
      );
      shares.push(share);
      services.add(share);
      share.onUnmounted(() => void stopAll(`${cfg.mountpoint ?? cfg.name} was unmounted from outside`));
      const admin = new AdminServer(
        cfg.adminSocketDir,
        cfg.name,
        share.mountpoint,
        (req, p) => adminHandler(share, req, p),
        log,
      );
      await admin.start();
      admins.push(admin);
    }
  } catch (e) {
    await stopAll('start failed');
    throw e;
  }
  opts.onReady?.(shares);
  void notifyReady(
    shares
      .map(
        (s) =>
          `${s.config.name} ${s.mountpoint ?? (s.nfsAddress ? `nfs ${s.nfsAddress.host}:${s.nfsAddress.port}` : '')}`,
      )
      .join(', '),
  );
  await done;
}
