/**
 * NFSv3 with the libnfs tools (`nfs-cat`, `nfs-cp`): bucketgate's export (`bucketgate mount
 * s3://BUCKET --no-fuse --nfs 127.0.0.1:PORT`, its own portmapper off) next to nfs-ganesha 4.3
 * exporting a local directory holding the same file (ganesha needs rpcbind on port 111).
 */
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { UsageWindow, waitIdle } from './proc.js';
import { S3_KEY, S3_SECRET } from './s3rver.js';
import type { SystemId, WorkloadId } from './schema.js';
import { MiB, waitObject } from './sdk.js';
import { BIN } from './systems.js';
import { dropCaches, errText, now, onCleanup, run, sleep, startDaemon, type Daemon } from './util.js';
import { KEY_NFS, type BenchCtx } from './workloads.js';

const OP_TIMEOUT_MS = 10 * 60_000;

/** A free TCP port on 127.0.0.1 (bound and released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}

async function waitPort(port: number, alive: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await portOpen(port)) return true;
    if (!alive()) return false;
    await sleep(100);
  }
  return false;
}

interface NfsServer {
  id: SystemId;
  pid(): number | undefined;
  /** nfs:// URL of a path below the export, with the ports. */
  url(path: string): string;
  start(fresh: boolean, tag: string): Promise<void>;
  stop(): Promise<void>;
  /** After a write of `name` at the export root: seconds (now() clock) when it is durable/in the bucket. */
  landed(name: string, t0: number): Promise<number | null>;
  remove(name: string): Promise<void>;
}

class BucketgateNfs implements NfsServer {
  readonly id = 'bg-nfs' as const;
  private daemon: Daemon | undefined;
  private port = 0;
  private readonly cacheDir: string;
  private readonly name = 'bench-nfs';

  constructor(
    private readonly ctx: BenchCtx,
    private readonly profileDir: string | undefined,
  ) {
    this.cacheDir = join(ctx.work, 'cache', 'bg-nfs');
  }

  pid(): number | undefined {
    return this.daemon?.running() ? this.daemon.pid : undefined;
  }

  url(path: string): string {
    return `nfs://127.0.0.1/${this.name}/${path}?nfsport=${this.port}&mountport=${this.port}&version=3`;
  }

  async start(fresh: boolean, tag: string): Promise<void> {
    if (fresh) await rm(this.cacheDir, { recursive: true, force: true });
    await mkdir(this.cacheDir, { recursive: true });
    this.port = await freePort();
    const nodeArgs: string[] = [];
    if (this.profileDir) {
      const dir = join(this.profileDir, `bg-nfs-${tag}`);
      await mkdir(dir, { recursive: true });
      nodeArgs.push('--cpu-prof', '--cpu-prof-dir', dir);
    }
    const args = [
      ...nodeArgs,
      BIN,
      'mount',
      `s3://${this.ctx.bucket}`,
      '--no-fuse',
      '--nfs',
      `127.0.0.1:${this.port}`,
      '--nfs-squash',
      'none',
      '--endpoint',
      this.ctx.s3.endpoint,
      '--path-style',
      '--cache-dir',
      this.cacheDir,
      '--name',
      this.name,
      '--admin-dir',
      join(this.ctx.work, 'run'),
      '--log-level',
      'warn',
    ];
    const env = {
      ...process.env,
      AWS_ACCESS_KEY_ID: S3_KEY,
      AWS_SECRET_ACCESS_KEY: S3_SECRET,
      NODE_OPTIONS: '',
    };
    const d = startDaemon('bg-nfs', process.execPath, args, { env });
    this.daemon = d;
    if (!(await waitPort(this.port, d.running, 20_000))) {
      const out = d.output().trim();
      await d.stop('SIGTERM', 10_000);
      this.daemon = undefined;
      throw new NfsUnavailable(
        d.running() || out === ''
          ? `bucketgate mount --no-fuse --nfs 127.0.0.1:${this.port} started but nothing listened on the port within 20 s (the NFS export is not wired into the mount command yet)`
          : `bucketgate mount --no-fuse --nfs failed: ${out.split('\n').slice(-5).join(' | ')}`,
      );
    }
  }

  async stop(): Promise<void> {
    const d = this.daemon;
    this.daemon = undefined;
    await d?.stop('SIGTERM', 120_000);
  }

  async landed(name: string): Promise<number | null> {
    const got = await waitObject(
      this.ctx.client,
      this.ctx.bucket,
      name,
      this.ctx.params.nfsBytes,
      OP_TIMEOUT_MS,
    );
    if (/^[0-9a-f]{32}$/.test(got.etag) && got.etag !== this.ctx.files.nfsMd5)
      throw new Error(`ETag ${got.etag} is not the MD5 of the data written`);
    return got.at;
  }

  async remove(name: string): Promise<void> {
    const { DeleteObjectCommand } = await import('@aws-sdk/client-s3');
    await this.ctx.client.send(new DeleteObjectCommand({ Bucket: this.ctx.bucket, Key: name }));
  }
}

export class NfsUnavailable extends Error {}

class Ganesha implements NfsServer {
  readonly id = 'ganesha' as const;
  private daemon: Daemon | undefined;
  private rpcbind: Daemon | undefined;
  private nfsPort = 0;
  private mntPort = 0;
  private readonly dir: string;
  readonly exportDir: string;

  constructor(private readonly ctx: BenchCtx) {
    this.dir = join(ctx.work, 'ganesha');
    this.exportDir = join(this.dir, 'export');
  }

  pid(): number | undefined {
    return this.daemon?.running() ? this.daemon.pid : undefined;
  }

  url(path: string): string {
    return `nfs://127.0.0.1${this.exportDir}/${path}?nfsport=${this.nfsPort}&mountport=${this.mntPort}&version=3`;
  }

  async start(): Promise<void> {
    await mkdir(join(this.exportDir, 'data'), { recursive: true });
    if (await portOpen(111))
      throw new NfsUnavailable('port 111 is in use (another portmapper): ganesha needs its own rpcbind');
    this.rpcbind = startDaemon('rpcbind', 'rpcbind', ['-f', '-w']);
    if (!(await waitPort(111, this.rpcbind.running, 10_000)))
      throw new NfsUnavailable(`rpcbind did not start: ${this.rpcbind.output()}`);
    this.nfsPort = await freePort();
    this.mntPort = await freePort();
    const conf = join(this.dir, 'ganesha.conf');
    await writeFile(
      conf,
      `NFS_CORE_PARAM {
  NFS_Port = ${this.nfsPort};
  MNT_Port = ${this.mntPort};
  Enable_NLM = false;
  Enable_RQUOTA = false;
  Protocols = 3;
}
NFSV4 { Graceless = true; }
EXPORT {
  Export_Id = 77;
  Path = ${this.exportDir};
  Pseudo = /bench;
  Access_Type = RW;
  Squash = No_Root_Squash;
  Protocols = 3;
  Transports = TCP;
  SecType = sys;
  FSAL { Name = VFS; }
}
`,
    );
    const d = startDaemon('ganesha', 'ganesha.nfsd', [
      '-F',
      '-L',
      join(this.dir, 'ganesha.log'),
      '-f',
      conf,
      '-p',
      join(this.dir, 'ganesha.pid'),
    ]);
    this.daemon = d;
    if (
      !(await waitPort(this.nfsPort, d.running, 30_000)) ||
      !(await waitPort(this.mntPort, d.running, 10_000))
    ) {
      await this.stop();
      throw new NfsUnavailable(`ganesha.nfsd did not listen: ${d.output().slice(-500)}`);
    }
  }

  async stop(): Promise<void> {
    const d = this.daemon;
    this.daemon = undefined;
    await d?.stop('SIGTERM', 20_000);
    const r = this.rpcbind;
    this.rpcbind = undefined;
    await r?.stop('SIGTERM', 10_000);
  }

  async landed(name: string): Promise<number | null> {
    void name;
    return null; // a local export: the write is the whole story
  }

  async remove(name: string): Promise<void> {
    await rm(join(this.exportDir, name), { force: true });
  }
}

/** One repetition of the NFS workloads on a server. */
async function nfsRep(ctx: BenchCtx, srv: NfsServer, rep: number): Promise<void> {
  const { rec, params: p, files } = ctx;
  const sys = srv.id;
  const usage = (): Promise<UsageWindow> =>
    UsageWindow.open({ daemon: srv.pid(), ...(sys === 'bg-nfs' ? { s3rver: ctx.s3.pid } : {}) });
  const fail = (ws: WorkloadId[], e: unknown): void => {
    const msg = errText(e).split('\n').slice(0, 4).join(' | ');
    for (const w of ws) rec.fail(sys, w, msg);
    ctx.log(`  ${sys} ${ws.join('+')}: FAILED: ${msg}`);
  };
  const logRow = (w: WorkloadId, s: number): void => {
    ctx.log(
      `  ${sys.padEnd(13)} ${w.padEnd(22)} ${s.toFixed(3)} s  (${Math.round(p.nfsBytes / MiB / s)} MiB/s)`,
    );
  };

  await srv.start(true, `r${rep}`);
  try {
    // write
    try {
      const name = `nfs-up-r${rep}.bin`;
      const u = await usage();
      const t0 = now();
      const r = await run('nfs-cp', [files.nfs, srv.url(name)], { timeoutMs: OP_TIMEOUT_MS });
      rec.add(sys, 'nfs-write', { seconds: r.seconds, ...(await u.read()) }, p.nfsBytes);
      logRow('nfs-write', r.seconds);
      const at = await srv.landed(name, t0);
      if (at !== null) {
        rec.add(sys, 'nfs-write-in-bucket', { seconds: at - t0, ...(await u.read()) }, p.nfsBytes);
        ctx.log(`  ${sys.padEnd(13)} ${'nfs-write-in-bucket'.padEnd(22)} ${(at - t0).toFixed(3)} s`);
      }
      u.close();
      await waitIdle(srv.pid());
      await srv.remove(name);
    } catch (e) {
      fail(['nfs-write', 'nfs-write-in-bucket'], e);
    }
    // cold and cached reads
    const read = async (w: WorkloadId): Promise<void> => {
      const u = await usage();
      const r = await run('nfs-cat', [srv.url(KEY_NFS)], { timeoutMs: OP_TIMEOUT_MS, discardStdout: true });
      rec.add(sys, w, { seconds: r.seconds, ...(await u.read()) }, p.nfsBytes);
      u.close();
      logRow(w, r.seconds);
    };
    try {
      await dropCaches();
      await read('nfs-cold-read');
      await read('nfs-cached-read');
    } catch (e) {
      fail(['nfs-cold-read', 'nfs-cached-read'], e);
    }
  } finally {
    await srv.stop();
  }
}

/** The NFS part: returns reasons for servers that could not run. */
export async function runNfs(
  ctx: BenchCtx,
  reps: number,
  which: Set<SystemId>,
  profileDir: string | undefined,
): Promise<Array<{ what: string; reason: string }>> {
  const skipped: Array<{ what: string; reason: string }> = [];
  const servers: NfsServer[] = [];
  if (which.has('bg-nfs')) servers.push(new BucketgateNfs(ctx, profileDir));
  if (which.has('ganesha')) {
    const g = new Ganesha(ctx);
    await mkdir(join(g.exportDir, 'data'), { recursive: true });
    await copyFile(ctx.files.nfs, join(g.exportDir, KEY_NFS));
    servers.push(g);
  }
  for (const srv of servers) {
    const stopOnExit = onCleanup(`nfs ${srv.id}`, () => srv.stop());
    ctx.log(`${srv.id}:`);
    try {
      for (let rep = 1; rep <= reps; rep++) await nfsRep(ctx, srv, rep);
    } catch (e) {
      if (e instanceof NfsUnavailable) {
        skipped.push({ what: srv.id, reason: e.message });
        ctx.log(`  ${srv.id}: SKIPPED: ${e.message}`);
      } else {
        for (const w of ['nfs-write', 'nfs-cold-read', 'nfs-cached-read'] as const)
          ctx.rec.fail(srv.id, w, errText(e));
        ctx.log(`  ${srv.id}: FAILED: ${errText(e)}`);
      }
    } finally {
      await stopOnExit();
    }
  }
  return skipped;
}
