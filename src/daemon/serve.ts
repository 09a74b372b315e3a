/**
 * `bucketgate serve --config FILE [--check]`: every share of a config file in one process
 * (the systemd unit's command).
 *
 * - Start: the metrics listener and the audit log, then each share (mount/export + admin
 *   socket) in file order. If one fails, the others are stopped and the command exits 1
 *   (systemd restarts it); an invalid file exits 2 (the unit does not restart on 2).
 *   When everything is up, READY=1 goes to systemd (notify.ts).
 * - SIGHUP: reload the file. An invalid file changes nothing (the error is logged). Otherwise
 *   shares no longer listed stop cleanly, shares whose settings changed restart, new shares
 *   start; unchanged shares keep running untouched. Log level/format, the metrics listener and
 *   the audit log follow the new file (the audit log is reopened in any case, for logrotate).
 *   A share that fails to start is logged and, if it was a changed share, restarted with its
 *   previous settings. Reloads never overlap; a SIGHUP during a reload queues one more.
 * - SIGTERM/SIGINT: STOPPING=1, stop every share (unmount, finish requests in flight, journal
 *   kept), exit 0.
 * - A mount removed from outside (umount) stops that share only.
 * - `--check` validates the file, prints the shares and exits (0 valid, 2 invalid).
 */
import { isDeepStrictEqual } from 'node:util';
import { isConfigError, UsageError, type LogLevel, type ShareConfig } from '../config/index.js';
import { loadConfigFile, type ServeConfig } from '../config/file.js';
import { configureLogging, getLogger, logLevel, registerSecrets } from '../log/index.js';
import { AdminServer } from './admin.js';
import { notifyFailed, notifyReady, notifyReloading, notifyStopping } from './notify.js';
import { adminHandler } from './runner.js';
import { DaemonServices } from './services.js';
import { Share } from './share.js';

const log = getLogger({ component: 'serve' });

interface Running {
  cfg: ShareConfig;
  share: Share;
  admin: AdminServer;
}

function secretsOf(cfg: ServeConfig): string[] {
  return cfg.shares.flatMap((s) =>
    s.credentials
      ? [s.credentials.secretAccessKey, ...(s.credentials.sessionToken ? [s.credentials.sessionToken] : [])]
      : [],
  );
}

/** Settings compared to decide whether a share restarts (the log level changes live). */
function restartKey(cfg: ShareConfig): Omit<ShareConfig, 'logLevel'> {
  const { logLevel: _level, ...rest } = cfg;
  return rest;
}

function describe(s: Share): string {
  const where = [
    s.mountpoint,
    s.nfsAddress ? `nfs ${s.nfsAddress.host}:${s.nfsAddress.port}:/${s.config.name}` : undefined,
  ].filter(Boolean);
  return `${s.config.name} (${where.join(', ') || 'stopped'})`;
}

export class ServeDaemon {
  private readonly running = new Map<string, Running>();
  private readonly services = new DaemonServices(true);
  private readonly levels = new Map<string, LogLevel>();
  private lock: Promise<unknown> = Promise.resolve();
  private reloadQueued = false;
  private stopRequested = false;
  private stopping: Promise<void> | undefined;
  private resolveDone!: () => void;
  private readonly done = new Promise<void>((r) => (this.resolveDone = r));
  private lastReloadError: string | undefined;

  constructor(private config: ServeConfig) {}

  /** Names of the running shares (for tests and status). */
  get shareNames(): string[] {
    return [...this.running.keys()];
  }

  get metricsAddress(): { host: string; port: number } | undefined {
    return this.services.metricsAddress;
  }

  /** Run until SIGTERM/SIGINT (or stop()). Throws when the initial start fails. */
  async run(opts: { signals?: boolean; onReady?: (d: ServeDaemon) => void } = {}): Promise<void> {
    const onStop = (sig: NodeJS.Signals): void => void this.stop(sig);
    const onHup = (): void => void this.requestReload();
    if (opts.signals ?? true) {
      process.on('SIGINT', onStop);
      process.on('SIGTERM', onStop);
      process.on('SIGHUP', onHup);
    }
    try {
      await this.exclusive(async () => {
        await this.services.configure(this.serviceSettings(this.config));
        for (const cfg of this.config.shares) {
          if (this.stopRequested) break;
          await this.startShare(cfg);
        }
      });
    } catch (e) {
      await this.stop('start failed');
      throw e;
    }
    if (!this.stopRequested) {
      log.info('serving', { config: this.config.file, shares: this.shareNames });
      opts.onReady?.(this);
      void notifyReady(this.statusLine());
    }
    await this.done;
    if (opts.signals ?? true) {
      process.off('SIGINT', onStop);
      process.off('SIGTERM', onStop);
      process.off('SIGHUP', onHup);
    }
  }

  private serviceSettings(cfg: ServeConfig): { metrics?: ServeConfig['metrics']; auditLog?: string } {
    return {
      ...(cfg.metrics ? { metrics: cfg.metrics } : {}),
      ...(cfg.auditLog ? { auditLog: cfg.auditLog } : {}),
    };
  }

  private statusLine(): string {
    const shares = [...this.running.values()].map((r) => describe(r.share));
    const base = `serving ${shares.length} share${shares.length === 1 ? '' : 's'}${shares.length ? `: ${shares.join(', ')}` : ''}`;
    return this.lastReloadError ? `${base}; last reload failed: ${this.lastReloadError}` : base;
  }

  /** Run `f` after every earlier start/reload/stop step has finished. */
  private exclusive<T>(f: () => Promise<T>): Promise<T> {
    const p = this.lock.then(f);
    this.lock = p.catch(() => undefined);
    return p;
  }

  private async startShare(cfg: ShareConfig): Promise<void> {
    this.levels.set(cfg.name, cfg.logLevel);
    const shareLog = getLogger({ share: cfg.name }, { level: () => this.levels.get(cfg.name) ?? logLevel() });
    const hooks = this.services.hooksFor(cfg);
    const share = await Share.start(cfg, shareLog, hooks ? { hooks } : {});
    const admin = new AdminServer(
      cfg.adminSocketDir,
      cfg.name,
      share.mountpoint,
      (req, p) => adminHandler(share, req, p),
      shareLog,
    );
    try {
      await admin.start();
    } catch (e) {
      await share.stop().catch(() => undefined);
      throw e;
    }
    const entry: Running = { cfg, share, admin };
    this.running.set(cfg.name, entry);
    this.services.add(share);
    share.onUnmounted(() => {
      if (this.running.get(cfg.name) !== entry) return;
      void this.exclusive(async () => {
        if (this.running.get(cfg.name) !== entry) return;
        log.warn('the share was unmounted from outside: stopping it (SIGHUP starts it again)', {
          share: cfg.name,
        });
        await this.stopShare(cfg.name);
        void notifyReady(this.statusLine());
      });
    });
  }

  private async stopShare(name: string): Promise<void> {
    const r = this.running.get(name);
    if (!r) return;
    this.running.delete(name);
    this.services.remove(r.share);
    await r.admin
      .stop()
      .catch((e: unknown) => log.error('admin socket stop failed', { share: name, error: e }));
    await r.share.stop().catch((e: unknown) => log.error('share stop failed', { share: name, error: e }));
  }

  /** SIGHUP: reload after any step in progress; several signals during one reload queue one more. */
  requestReload(): Promise<void> {
    if (this.stopRequested) return Promise.resolve();
    if (this.reloadQueued) return this.lock.then(() => undefined);
    this.reloadQueued = true;
    return this.exclusive(async () => {
      this.reloadQueued = false;
      if (!this.stopRequested) await this.reload();
    });
  }

  private async reload(): Promise<void> {
    void notifyReloading();
    const file = this.config.file;
    log.info('reloading the configuration', { file });
    let next: ServeConfig;
    try {
      next = await loadConfigFile(file);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      this.lastReloadError = why;
      log.error('reload failed: the configuration in force is kept', { file, error: why });
      this.services.metrics.configReloads.inc({ result: 'invalid' });
      void notifyReady(this.statusLine());
      return;
    }
    this.lastReloadError = undefined;
    registerSecrets(secretsOf(next));
    if (next.logLevel !== this.config.logLevel || next.logFormat !== this.config.logFormat) {
      configureLogging({ level: next.logLevel, format: next.logFormat });
    }
    const failed: string[] = [];
    const auditUnchanged = next.auditLog !== undefined && next.auditLog === this.config.auditLog;
    try {
      await this.services.configure(this.serviceSettings(next));
    } catch (e) {
      failed.push('metrics/auditLog');
      log.error('reload: metrics listener or audit log not changed', { error: e });
    }
    if (auditUnchanged) await this.services.reopenAudit();

    const wanted = new Map(next.shares.map((s) => [s.name, s]));
    const removed = [...this.running.keys()].filter((n) => !wanted.has(n));
    const changed = [...this.running.entries()]
      .filter(([n, r]) => {
        const w = wanted.get(n);
        return w !== undefined && !isDeepStrictEqual(restartKey(r.cfg), restartKey(w));
      })
      .map(([n]) => n);
    const previous = new Map(changed.map((n) => [n, this.running.get(n)?.cfg]));
    for (const s of next.shares) {
      const r = this.running.get(s.name);
      if (r && !changed.includes(s.name)) {
        r.cfg = s; // same settings but the log level
        this.levels.set(s.name, s.logLevel);
      }
    }
    if (removed.length + changed.length > 0) {
      log.info('reload: stopping shares', { removed, restarting: changed });
      await Promise.all([...removed, ...changed].map((n) => this.stopShare(n)));
    }
    const started: string[] = [];
    for (const cfg of next.shares) {
      if (this.running.has(cfg.name) || this.stopRequested) continue;
      try {
        await this.startShare(cfg);
        started.push(cfg.name);
      } catch (e) {
        failed.push(cfg.name);
        log.error('reload: the share failed to start', { share: cfg.name, error: e });
        const old = previous.get(cfg.name);
        if (old) {
          try {
            await this.startShare(old);
            log.warn('reload: the share runs with its previous settings', { share: cfg.name });
          } catch (e2) {
            log.error('reload: the share could not be restarted with its previous settings either', {
              share: cfg.name,
              error: e2,
            });
          }
        }
      }
    }
    this.config = next;
    this.services.metrics.configReloads.inc({ result: failed.length > 0 ? 'partial' : 'ok' });
    log.info('configuration reloaded', {
      started: started.filter((n) => !changed.includes(n)),
      restarted: changed.filter((n) => started.includes(n)),
      stopped: removed,
      failed,
      running: this.shareNames,
    });
    void notifyReady(this.statusLine());
  }

  /** Stop every share and the services; idempotent. */
  stop(reason: string): Promise<void> {
    this.stopRequested = true;
    this.stopping ??= (async () => {
      log.info('stopping', { reason });
      await notifyStopping();
      await this.exclusive(async () => {
        await Promise.all([...this.running.keys()].map((n) => this.stopShare(n)));
        await this.services.close();
      });
      this.resolveDone();
    })();
    return this.stopping;
  }
}

const SERVE_USAGE = 'usage: bucketgate serve --config FILE [--check]';

/** The `serve` command. */
export async function cmdServe(args: string[]): Promise<void> {
  let file: string | undefined;
  let check = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    if (a === '--check') check = true;
    else if (a === '--config' || a === '-c') {
      file = args[++i];
      if (file === undefined) throw new UsageError(`--config needs a file (${SERVE_USAGE})`);
    } else if (a.startsWith('--config=')) file = a.slice('--config='.length);
    else if (a === '--help' || a === '-h') {
      process.stdout.write(
        `${SERVE_USAGE}\nRuns every share of the config file (docs/CONFIGURATION.md); SIGHUP reloads it.\n`,
      );
      return;
    } else throw new UsageError(`unexpected argument ${JSON.stringify(a)} (${SERVE_USAGE})`);
  }
  if (file === undefined || file === '') throw new UsageError(`--config FILE is required (${SERVE_USAGE})`);

  let cfg: ServeConfig;
  try {
    cfg = await loadConfigFile(file);
  } catch (e) {
    if (!isConfigError(e)) throw e;
    notifyFailed(e.message);
    process.stderr.write(`bucketgate: ${e.message}\n`);
    process.exit(2);
  }
  if (check) {
    const lines = cfg.shares.map((s) => {
      const where = [s.mountpoint, s.nfs ? `nfs ${s.nfs.host}:${s.nfs.port}:/${s.name}` : undefined]
        .filter(Boolean)
        .join(', ');
      return `  ${s.name}: ${s.url} -> ${where} (cache ${s.cacheDir}, ${s.mode})`;
    });
    process.stdout.write(
      `${cfg.file}: OK, ${cfg.shares.length} share${cfg.shares.length === 1 ? '' : 's'}\n${lines.join('\n')}\n`,
    );
    return;
  }
  configureLogging({ level: cfg.logLevel, format: cfg.logFormat });
  registerSecrets(secretsOf(cfg));
  await new ServeDaemon(cfg).run();
}
