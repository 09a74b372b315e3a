/**
 * Prometheus metrics of one daemon (prom-client), served over HTTP at `/metrics` by
 * MetricsServer (loopback by default: `metrics: 127.0.0.1:9464` in the config file, `--metrics`
 * for `mount`).
 *
 * Event metrics are recorded by the decorators (MeteredVfs: file operations, MeteredObjectStore:
 * S3 requests) and by the share's refresh hook; state metrics (cache, upload queue, failures)
 * are read from the running shares at scrape time. Every series carries `share`.
 *
 *   bucketgate_vfs_operations_total{share,protocol,op,result}     result: ok or the errno name
 *   bucketgate_vfs_operation_duration_seconds{share,protocol,op}  histogram
 *   bucketgate_vfs_bytes_total{share,protocol,direction}          direction: read, write
 *   bucketgate_s3_requests_total{share,op,outcome,status}         outcome: ok or the error kind
 *   bucketgate_s3_request_duration_seconds{share,op}              histogram
 *   bucketgate_s3_bytes_total{share,direction}                    download, upload
 *   bucketgate_refresh_runs_total{share,trigger,result}           reverse sync runs
 *   bucketgate_refresh_changes_total{share,change}                added, changed, removed, conflicts
 *   bucketgate_refresh_duration_seconds{share}                    histogram
 *   bucketgate_cache_{used,limit,dirty}_bytes, bucketgate_cache_dirty_files, bucketgate_cache_hit_ratio,
 *   bucketgate_cache_lookups_total{share,result}, bucketgate_upload_queue_length,
 *   bucketgate_uploads_inflight, bucketgate_upload_oldest_dirty_age_seconds,
 *   bucketgate_uploads_failing, bucketgate_uploaded_{files,bytes}_total, bucketgate_share_info,
 *   bucketgate_config_reloads_total{result}, plus prom-client's process_* and nodejs_* metrics.
 *
 * NFS calls by procedure are not here yet: the NFS adapter exposes no per-procedure hook (the
 * VFS operations that NFS calls make are counted with protocol="nfs").
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { HostPort } from '../config/index.js';
import { getLogger } from '../log/index.js';
import type { RefreshResult } from '../sync/scheduler.js';

/** What the scrape reads from a running share (Share implements it). */
export interface MeteredShareSource {
  readonly config: { name: string; url: string; mode: string; mountpoint?: string; nfs?: HostPort };
  status(): {
    cache: {
      usedBytes: number;
      limitBytes: number;
      dirtyBytes: number;
      dirtyFiles: number;
      hitRatio: number | null;
    };
    uploads: { queued: number; inflight: number; uploadedFiles: number; uploadedBytes: number };
    failing: unknown[];
  };
  /** Cumulative cache lookups of this share instance. */
  cacheLookups(): { hits: number; misses: number };
  /** Enqueue time (ms since the epoch) of the oldest journaled upload, or undefined. */
  oldestUploadMs(): number | undefined;
}

const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];
const S3_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const REFRESH_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900];

type Labels<T extends string> = Partial<Record<T, string | number>>;

export class DaemonMetrics {
  readonly registry = new Registry();

  readonly vfsOps = new Counter({
    name: 'bucketgate_vfs_operations_total',
    help: 'File operations by share, protocol, operation and result (ok or errno name)',
    labelNames: ['share', 'protocol', 'op', 'result'] as const,
    registers: [this.registry],
  });
  readonly vfsLatency = new Histogram({
    name: 'bucketgate_vfs_operation_duration_seconds',
    help: 'Latency of file operations',
    labelNames: ['share', 'protocol', 'op'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly vfsBytes = new Counter({
    name: 'bucketgate_vfs_bytes_total',
    help: 'Bytes read from and written to files by clients',
    labelNames: ['share', 'protocol', 'direction'] as const,
    registers: [this.registry],
  });
  readonly s3Requests = new Counter({
    name: 'bucketgate_s3_requests_total',
    help: 'Object store requests by operation, outcome (ok or error kind) and HTTP status',
    labelNames: ['share', 'op', 'outcome', 'status'] as const,
    registers: [this.registry],
  });
  readonly s3Latency = new Histogram({
    name: 'bucketgate_s3_request_duration_seconds',
    help: 'Latency of object store requests (including the SDK retries of one call)',
    labelNames: ['share', 'op'] as const,
    buckets: S3_BUCKETS,
    registers: [this.registry],
  });
  readonly s3Bytes = new Counter({
    name: 'bucketgate_s3_bytes_total',
    help: 'Bytes downloaded from and uploaded to the object store',
    labelNames: ['share', 'direction'] as const,
    registers: [this.registry],
  });
  readonly nfsCalls = new Counter({
    name: 'bucketgate_nfs_calls_total',
    help: 'NFS and MOUNT calls by share, program, procedure and result (ok, error)',
    labelNames: ['share', 'program', 'procedure', 'result'] as const,
    registers: [this.registry],
  });
  readonly nfsLatency = new Histogram({
    name: 'bucketgate_nfs_call_duration_seconds',
    help: 'NFS and MOUNT call latency by procedure',
    labelNames: ['share', 'program', 'procedure'] as const,
    registers: [this.registry],
  });
  readonly refreshRuns = new Counter({
    name: 'bucketgate_refresh_runs_total',
    help: 'Reverse sync runs by trigger (interval, manual) and result (ok, error)',
    labelNames: ['share', 'trigger', 'result'] as const,
    registers: [this.registry],
  });
  readonly refreshChanges = new Counter({
    name: 'bucketgate_refresh_changes_total',
    help: 'Changes found by reverse sync runs (added, changed, removed, conflicts)',
    labelNames: ['share', 'change'] as const,
    registers: [this.registry],
  });
  readonly refreshLatency = new Histogram({
    name: 'bucketgate_refresh_duration_seconds',
    help: 'Duration of reverse sync runs',
    labelNames: ['share'] as const,
    buckets: REFRESH_BUCKETS,
    registers: [this.registry],
  });
  readonly refreshLastSuccess = new Gauge({
    name: 'bucketgate_refresh_last_success_timestamp_seconds',
    help: 'When the last successful reverse sync run finished (unix time)',
    labelNames: ['share'] as const,
    registers: [this.registry],
  });
  readonly configReloads = new Counter({
    name: 'bucketgate_config_reloads_total',
    help: 'Config reloads (SIGHUP) by result: ok, partial (a share failed to start), invalid (old config kept)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  private readonly shareInfo = this.gauge('bucketgate_share_info', 'Running shares (value 1)', [
    'share',
    'url',
    'mode',
    'mountpoint',
    'nfs',
  ]);
  private readonly cacheUsed = this.gauge(
    'bucketgate_cache_used_bytes',
    'Bytes of file data in the disk cache',
  );
  private readonly cacheLimit = this.gauge('bucketgate_cache_limit_bytes', 'Disk cache limit (cacheSize)');
  private readonly cacheDirty = this.gauge(
    'bucketgate_cache_dirty_bytes',
    'Bytes written locally and not yet uploaded',
  );
  private readonly cacheDirtyFiles = this.gauge(
    'bucketgate_cache_dirty_files',
    'Files with data not yet uploaded',
  );
  private readonly cacheHitRatio = this.gauge(
    'bucketgate_cache_hit_ratio',
    'Cache hits / lookups since the share started',
  );
  private readonly cacheLookups = new Counter({
    name: 'bucketgate_cache_lookups_total',
    help: 'Cache lookups of file data by result (hit, miss)',
    labelNames: ['share', 'result'] as const,
    registers: [this.registry],
  });
  private readonly uploadQueue = this.gauge(
    'bucketgate_upload_queue_length',
    'Files journaled for upload and not in flight',
  );
  private readonly uploadsInflight = this.gauge('bucketgate_uploads_inflight', 'Uploads in flight');
  private readonly oldestDirty = this.gauge(
    'bucketgate_upload_oldest_dirty_age_seconds',
    'Age of the oldest journaled upload (0 when the journal is empty)',
  );
  private readonly uploadsFailing = this.gauge(
    'bucketgate_uploads_failing',
    'Files whose upload failed and is being retried',
  );
  private readonly uploadedFiles = new Counter({
    name: 'bucketgate_uploaded_files_total',
    help: 'Files uploaded',
    labelNames: ['share'] as const,
    registers: [this.registry],
  });
  private readonly uploadedBytes = new Counter({
    name: 'bucketgate_uploaded_bytes_total',
    help: 'Bytes of files uploaded',
    labelNames: ['share'] as const,
    registers: [this.registry],
  });

  private readonly sources = new Set<MeteredShareSource>();
  /** Last cumulative values seen per share instance (counters grow by the difference). */
  private readonly seen = new WeakMap<
    MeteredShareSource,
    { hits: number; misses: number; files: number; bytes: number }
  >();

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  private gauge(name: string, help: string, labelNames: string[] = ['share']): Gauge<string> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  addShare(s: MeteredShareSource): void {
    this.sources.add(s);
  }

  removeShare(s: MeteredShareSource): void {
    this.sources.delete(s);
  }

  /** Record one reverse sync run (the share's refresh hook). */
  observeRefresh(
    share: string,
    trigger: string,
    seconds: number,
    result?: RefreshResult,
    error?: unknown,
  ): void {
    this.refreshRuns.inc({ share, trigger, result: error === undefined ? 'ok' : 'error' });
    this.refreshLatency.observe({ share }, seconds);
    if (result !== undefined) {
      for (const change of ['added', 'changed', 'removed', 'conflicts'] as const) {
        this.refreshChanges.inc({ share, change }, result[change] ?? 0);
      }
      this.refreshLastSuccess.set({ share }, Date.now() / 1000);
    }
  }

  /** Read the state of every running share into the gauges. */
  private collect(): void {
    for (const g of [
      this.shareInfo,
      this.cacheUsed,
      this.cacheLimit,
      this.cacheDirty,
      this.cacheDirtyFiles,
      this.cacheHitRatio,
      this.uploadQueue,
      this.uploadsInflight,
      this.oldestDirty,
      this.uploadsFailing,
    ]) {
      g.reset();
    }
    const now = Date.now();
    for (const src of this.sources) {
      const share = src.config.name;
      let st;
      try {
        st = src.status();
      } catch {
        continue; // stopping
      }
      const l: Labels<'share'> = { share };
      this.shareInfo.set(
        {
          share,
          url: src.config.url,
          mode: src.config.mode,
          mountpoint: src.config.mountpoint ?? '',
          nfs: src.config.nfs ? `${src.config.nfs.host}:${src.config.nfs.port}` : '',
        },
        1,
      );
      this.cacheUsed.set(l, st.cache.usedBytes);
      this.cacheLimit.set(l, st.cache.limitBytes);
      this.cacheDirty.set(l, st.cache.dirtyBytes);
      this.cacheDirtyFiles.set(l, st.cache.dirtyFiles);
      if (st.cache.hitRatio !== null) this.cacheHitRatio.set(l, st.cache.hitRatio);
      this.uploadQueue.set(l, st.uploads.queued);
      this.uploadsInflight.set(l, st.uploads.inflight);
      this.uploadsFailing.set(l, st.failing.length);
      let oldest: number | undefined;
      try {
        oldest = src.oldestUploadMs();
      } catch {
        oldest = undefined;
      }
      this.oldestDirty.set(l, oldest !== undefined ? Math.max(0, (now - oldest) / 1000) : 0);

      const look = src.cacheLookups();
      const prev = this.seen.get(src) ?? { hits: 0, misses: 0, files: 0, bytes: 0 };
      const next = {
        hits: look.hits,
        misses: look.misses,
        files: st.uploads.uploadedFiles,
        bytes: st.uploads.uploadedBytes,
      };
      this.cacheLookups.inc({ share, result: 'hit' }, Math.max(0, next.hits - prev.hits));
      this.cacheLookups.inc({ share, result: 'miss' }, Math.max(0, next.misses - prev.misses));
      this.uploadedFiles.inc(l, Math.max(0, next.files - prev.files));
      this.uploadedBytes.inc(l, Math.max(0, next.bytes - prev.bytes));
      this.seen.set(src, next);
    }
  }

  /** The exposition text (what /metrics returns). */
  async text(): Promise<string> {
    this.collect();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

const log = getLogger({ component: 'metrics' });

/** HTTP listener serving `/metrics`. */
export class MetricsServer {
  private server: Server | undefined;

  constructor(
    private readonly metrics: DaemonMetrics,
    readonly listen: HostPort,
  ) {}

  /** Where it listens once started (the port is real even when 0 was asked). */
  get address(): HostPort | undefined {
    const a = this.server?.address() as AddressInfo | null | undefined;
    return a ? { host: a.address, port: a.port } : undefined;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      const url = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (url === '/metrics') {
        this.metrics.text().then(
          (body) => {
            res.writeHead(200, { 'content-type': this.metrics.contentType });
            res.end(req.method === 'HEAD' ? undefined : body);
          },
          (e: unknown) => {
            log.error('collecting metrics failed', { error: e });
            res.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed\n');
          },
        );
        return;
      }
      if (url === '/' || url === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('bucketgate: metrics at /metrics\n');
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    });
    server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listen.port, this.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((e: unknown) => {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'EADDRINUSE' ? 'the address is in use' : (e as Error).message;
      throw new Error(`metrics: cannot listen on ${this.listen.host}:${this.listen.port}: ${why}`, {
        cause: e,
      });
    });
    server.on('error', (e) => log.error('metrics listener error', { error: e }));
    this.server = server;
    log.info('metrics listening', {
      url: `http://${fmtHost(this.address?.host ?? this.listen.host)}:${this.address?.port ?? this.listen.port}/metrics`,
    });
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }
}

function fmtHost(h: string): string {
  return h.includes(':') ? `[${h}]` : h;
}
