/**
 * Daemon-wide services around the shares: the metrics registry and its HTTP listener, the
 * audit log, and the instrumentation hooks (decorators) each share is started with. Used by
 * `mount` (runner.ts) and `serve` (serve.ts); configure() may be called again on reload.
 */
import type { HostPort, ShareConfig } from '../config/index.js';
import { getLogger } from '../log/index.js';
import { AuditLog } from './audit.js';
import { MeteredObjectStore } from './metered-store.js';
import { MeteredVfs } from './metered-vfs.js';
import { DaemonMetrics, MetricsServer, type MeteredShareSource } from './metrics.js';
import type { Share, ShareHooks } from './share.js';

export interface ServiceSettings {
  metrics?: HostPort;
  auditLog?: string;
}

const log = getLogger({ component: 'daemon' });

function sameListen(a: HostPort | undefined, b: HostPort | undefined): boolean {
  return a?.host === b?.host && a?.port === b?.port;
}

/** What the metrics scrape reads from a running share. */
export function shareSource(share: Share): MeteredShareSource {
  return {
    config: share.config,
    status: () => share.status(),
    cacheLookups: () => {
      const u = share.cache.usage();
      return { hits: u.hits, misses: u.misses };
    },
    oldestUploadMs: () => {
      let min: number | undefined;
      for (const u of share.meta.allUploads())
        if (min === undefined || u.enqueuedMs < min) min = u.enqueuedMs;
      return min;
    },
  };
}

export class DaemonServices {
  private metricsInstance: DaemonMetrics | undefined;
  private server: MetricsServer | undefined;
  private audit: AuditLog | undefined;
  private readonly sources = new Map<Share, MeteredShareSource>();

  /**
   * @param instrumentAlways decorate every share even when neither metrics nor the audit log is
   *   on (serve: a reload may switch them on for shares that keep running)
   */
  constructor(private readonly instrumentAlways: boolean) {}

  /** The registry (created on first use: a `mount` without metrics or audit log never needs it). */
  get metrics(): DaemonMetrics {
    this.metricsInstance ??= new DaemonMetrics();
    return this.metricsInstance;
  }

  get metricsAddress(): HostPort | undefined {
    return this.server?.address;
  }

  /**
   * Start, replace or stop the metrics listener and the audit log. Throws when a new one cannot
   * be started (the previous one, if any, is kept running then).
   */
  async configure(s: ServiceSettings): Promise<void> {
    if (!sameListen(s.metrics, this.server?.listen)) {
      const old = this.server;
      if (old) await old.stop();
      this.server = undefined;
      if (s.metrics) {
        const next = new MetricsServer(this.metrics, s.metrics);
        try {
          await next.start();
          this.server = next;
        } catch (e) {
          if (old) {
            await old.start().then(
              () => (this.server = old),
              () => undefined,
            );
          }
          throw e;
        }
      }
    }
    if (s.auditLog !== this.audit?.file) {
      const old = this.audit;
      if (s.auditLog) {
        const next = new AuditLog(s.auditLog);
        try {
          await next.open();
        } catch (e) {
          throw new Error(`auditLog: cannot open ${s.auditLog}: ${(e as Error).message}`, { cause: e });
        }
        this.audit = next;
        log.info('audit log open', { file: s.auditLog });
      } else {
        this.audit = undefined;
      }
      await old?.close();
    }
  }

  /** Reopen the audit log (log rotation; SIGHUP). */
  async reopenAudit(): Promise<void> {
    await this.audit
      ?.reopen()
      .catch((e: unknown) => log.error('cannot reopen the audit log', { file: this.audit?.file, error: e }));
  }

  /** The decorators for one share, or undefined when nothing is to be recorded. */
  hooksFor(cfg: ShareConfig): ShareHooks | undefined {
    if (!this.instrumentAlways && !this.server && !this.audit) return undefined;
    const m = this.metrics;
    return {
      store: (store) => new MeteredObjectStore(store, m, cfg.name),
      vfs: (vfs, protocol, pathOf) =>
        new MeteredVfs(vfs, { share: cfg.name, protocol, metrics: m, audit: () => this.audit, pathOf }),
      nfsCall: (program, procedure, seconds, failed) => {
        m.nfsCalls.inc({ share: cfg.name, program, procedure, result: failed ? 'error' : 'ok' });
        m.nfsLatency.observe({ share: cfg.name, program, procedure }, seconds);
      },
      refresh: (trigger, seconds, result, error) =>
        m.observeRefresh(cfg.name, trigger, seconds, result, error),
    };
  }

  /** A started share: its state appears in the metrics. */
  add(share: Share): void {
    if (!this.metricsInstance && !this.instrumentAlways && !this.server && !this.audit) return;
    const src = shareSource(share);
    this.sources.set(share, src);
    this.metrics.addShare(src);
  }

  remove(share: Share): void {
    const src = this.sources.get(share);
    if (src) this.metricsInstance?.removeShare(src);
    this.sources.delete(share);
  }

  async close(): Promise<void> {
    await this.server?.stop();
    this.server = undefined;
    await this.audit?.close();
    this.audit = undefined;
  }
}
