/**
 * The workloads: SDK limits, the file-system operations run on every mounted system (and on a
 * local directory), and the NFS reads/writes. Each measured operation is timed from spawn to
 * exit of an ordinary tool (dd, ls, tar, mv, nfs-cat, nfs-cp) or by a small Node program that
 * times its own loop (small-file creation, random reads), while the daemon's and s3rver's peak
 * RSS and CPU time are read from /proc.
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { UsageWindow, waitIdle, type Usage } from './proc.js';
import type { Recorder, Sample } from './recorder.js';
import { countSyncCalls, describeProbe, PROBE_BYTES, SYNC_CALLS } from './fsync-probe.js';
import type { FsyncProbe, Params, SystemId, WorkloadId } from './schema.js';
import type { BenchS3 } from './s3rver.js';
import {
  getAll,
  getRanged,
  getSmall,
  head,
  MiB,
  multipartFile,
  putFile,
  putSmall,
  waitKeys,
  waitObject,
} from './sdk.js';
import type { FsSystem } from './systems.js';
import { dropCaches, errText, now, run, sleep, startDaemon } from './util.js';

export interface DataFiles {
  /** The big file (bigBytes of random data) and its MD5. */
  big: string;
  bigMd5: string;
  /** The NFS file (nfsBytes) and its MD5. */
  nfs: string;
  nfsMd5: string;
  /** The tree tarball (treeFiles files, treeBytes bytes of content). */
  tar: string;
}

export interface BenchCtx {
  params: Params;
  work: string;
  bucket: string;
  s3: BenchS3;
  client: S3Client;
  rec: Recorder;
  files: DataFiles;
  log: (msg: string) => void;
  /** fsync probes of the FUSE systems (first repetition). */
  probes: FsyncProbe[];
}

/** Bucket keys of the shared read-only data (written once through the SDK). */
export const KEY_BIG = 'data/big.bin';
export const KEY_BIG_MP = 'data/big-mp.bin';
export const KEY_NFS = 'data/nfs.bin';
export const PREFIX_LS = 'data/ls/';

const OP_TIMEOUT_MS = 15 * 60_000;
const BUCKET_TIMEOUT_MS = 15 * 60_000;
/** Wait before a "warm" ls so that the kernel's 1 s attribute/entry caches have expired. */
const WARM_LS_PAUSE_MS = 2000;

// Small Node programs run as child processes; they time their own loop (no startup cost).
const CREATE_JS = `
const fs = require('fs');
const [dir, n, size] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const b = require('crypto').randomBytes(size);
const t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) { b.writeUInt32LE(i, 0); fs.writeFileSync(dir + '/f' + String(i).padStart(5, '0'), b); }
process.stdout.write(String(Number(process.hrtime.bigint() - t0) / 1e9));
`;
const RANDOM_JS = `
const fs = require('fs');
const [file, n, seed] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
let a = seed >>> 0;
const rnd = () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
const blocks = Math.floor(fs.statSync(file).size / 4096);
const fd = fs.openSync(file, 'r');
const b = Buffer.alloc(4096);
const t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) {
  const off = Math.floor(rnd() * blocks) * 4096;
  const got = fs.readSync(fd, b, 0, 4096, off);
  if (got !== 4096) throw new Error('short read at ' + off + ': ' + got);
}
process.stdout.write(String(Number(process.hrtime.bigint() - t0) / 1e9));
fs.closeSync(fd);
`;

async function selfTimed(script: string, args: string[]): Promise<number> {
  const r = await run(process.execPath, ['-e', script, ...args], {
    timeoutMs: OP_TIMEOUT_MS,
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  const s = Number(r.stdout.trim());
  if (!Number.isFinite(s))
    throw new Error(
      `no timing from the workload program: ${r.stdout.slice(0, 200)} ${r.stderr.slice(0, 500)}`,
    );
  return s;
}

function sample(seconds: number, u: Record<string, Usage>): Sample {
  return { seconds, daemon: u.daemon, s3rver: u.s3rver };
}

/** Run `fn`; on failure record the error for every listed workload and go on. */
async function step(
  ctx: BenchCtx,
  system: SystemId,
  workloads: WorkloadId[],
  fn: () => Promise<void>,
): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch (e) {
    const msg = errText(e).split('\n').slice(0, 6).join(' | ');
    for (const w of workloads) ctx.rec.fail(system, w, msg);
    ctx.log(`  ${system} ${workloads.join('+')}: FAILED: ${msg}`);
    return false;
  }
}

/** Unmount; a failure is noted on the mount's last workload (the figures stand). */
async function stopMount(ctx: BenchCtx, fs: FsSystem, last: WorkloadId): Promise<void> {
  try {
    await fs.stop();
  } catch (e) {
    ctx.rec.note(fs.id, last, `unmount failed: ${errText(e).split('\n')[0] ?? ''}`);
    ctx.log(`  ${fs.id}: unmount failed: ${errText(e)}`);
  }
}

async function win(ctx: BenchCtx, daemonPid: number | undefined, withS3: boolean): Promise<UsageWindow> {
  return UsageWindow.open({ daemon: daemonPid, ...(withS3 ? { s3rver: ctx.s3.pid } : {}) });
}

function log2(ctx: BenchCtx, system: SystemId, w: WorkloadId, s: number, extra = ''): void {
  ctx.log(`  ${system.padEnd(13)} ${w.padEnd(22)} ${s.toFixed(3)} s${extra}`);
}

// ---------------------------------------------------------------- SDK limits

export async function sdkRep(ctx: BenchCtx, rep: number): Promise<void> {
  const { client: c, bucket, params: p, files, rec } = ctx;
  const sys: SystemId = 'sdk';
  const measure = async (
    w: WorkloadId,
    bytes: number | undefined,
    fn: () => Promise<void>,
  ): Promise<void> => {
    await step(ctx, sys, [w], async () => {
      const u = await win(ctx, undefined, true);
      const t0 = now();
      await fn();
      const s = now() - t0;
      rec.add(sys, w, sample(s, await u.read()), bytes);
      u.close();
      log2(ctx, sys, w, s, bytes ? `  (${Math.round(bytes / MiB / s)} MiB/s)` : '');
    });
  };
  await measure('sdk-put', p.bigBytes, () => putFile(c, bucket, KEY_BIG, files.big, p.bigBytes));
  await measure('sdk-put-mp', p.bigBytes, () => multipartFile(c, bucket, KEY_BIG_MP, files.big));
  await measure('sdk-get', p.bigBytes, async () => {
    const n = await getAll(c, bucket, KEY_BIG);
    if (n !== p.bigBytes) throw new Error(`GET returned ${n} bytes`);
  });
  await measure('sdk-get-ranged', p.bigBytes, async () => {
    const n = await getRanged(c, bucket, KEY_BIG, p.bigBytes, 8 * MiB, 8);
    if (n !== p.bigBytes) throw new Error(`ranged GETs returned ${n} bytes`);
  });
  const body = Buffer.alloc(4096, rep);
  await measure('sdk-put-small', p.sdkSmallObjects * 4096, () =>
    putSmall(c, bucket, PREFIX_LS, p.sdkSmallObjects, body, 32),
  );
  await measure('sdk-get-small', p.sdkSmallObjects * 4096, async () => {
    const n = await getSmall(c, bucket, PREFIX_LS, p.sdkSmallObjects, 32);
    if (n !== p.sdkSmallObjects * 4096) throw new Error(`small GETs returned ${n} bytes`);
  });
}

// ---------------------------------------------------------------- file systems

/** Bucket prefix (and mount-relative directory) of a system's writes. */
export const writePrefix = (sys: SystemId): string => `w/${sys}/`;

/**
 * One repetition of every file-system workload on `fs`: three mounts, each on an empty cache —
 * (A) ls -l cold/warm, write, small files, rename, untar; (B) cold and warm sequential read;
 * (C) random reads.
 */
export async function fsRep(ctx: BenchCtx, fs: FsSystem, rep: number, verify: boolean): Promise<void> {
  const { params: p, rec, files, client: c, bucket } = ctx;
  const sys = fs.id;
  const remote = sys !== 'local';
  const wdir = join(fs.root, writePrefix(sys));
  const inBucketFor = (w: WorkloadId): boolean => remote && w.endsWith('-in-bucket');

  // ---- mount A
  const mountedA = await step(
    ctx,
    sys,
    ['ls-cold', 'ls-warm', 'write', 'create-small', 'rename-dir', 'untar'],
    () => fs.start(true, `a${rep}`),
  );
  if (mountedA) {
    try {
      const lsDir = join(fs.root, PREFIX_LS);
      const ls = async (w: WorkloadId): Promise<void> => {
        const u = await win(ctx, fs.pid(), remote);
        const r = await run('ls', ['-l', lsDir], { timeoutMs: OP_TIMEOUT_MS });
        rec.add(sys, w, sample(r.seconds, await u.read()));
        u.close();
        const entries = r.stdout.split('\n').filter((l) => l !== '' && !l.startsWith('total')).length;
        if (entries !== p.lsFiles) rec.note(sys, w, `ls showed ${entries} entries, expected ${p.lsFiles}`);
        log2(ctx, sys, w, r.seconds, entries !== p.lsFiles ? ` (${entries} entries!)` : '');
      };
      await step(ctx, sys, ['ls-cold'], async () => {
        await dropCaches();
        await ls('ls-cold');
      });
      await step(ctx, sys, ['ls-warm'], async () => {
        await sleep(WARM_LS_PAUSE_MS);
        await ls('ls-warm');
      });

      await step(ctx, sys, ['write', 'write-in-bucket'], async () => {
        await mkdir(wdir, { recursive: true });
        const name = `big-r${rep}.bin`;
        const u = await win(ctx, fs.pid(), remote);
        const t0 = now();
        const r = await run(
          'dd',
          [`if=${files.big}`, `of=${join(wdir, name)}`, 'bs=1M', 'conv=fsync', 'status=none'],
          { timeoutMs: OP_TIMEOUT_MS },
        );
        rec.add(sys, 'write', sample(r.seconds, await u.read()), p.bigBytes);
        log2(ctx, sys, 'write', r.seconds, `  (${Math.round(p.bigBytes / MiB / r.seconds)} MiB/s)`);
        if (inBucketFor('write-in-bucket')) {
          const got = await waitObject(
            c,
            bucket,
            `${writePrefix(sys)}${name}`,
            p.bigBytes,
            BUCKET_TIMEOUT_MS,
          );
          const s = got.at - t0;
          rec.add(sys, 'write-in-bucket', sample(s, await u.read()), p.bigBytes);
          log2(ctx, sys, 'write-in-bucket', s);
          if (/^[0-9a-f]{32}$/.test(got.etag) && got.etag !== files.bigMd5) {
            rec.fail(
              sys,
              'write-in-bucket',
              `ETag ${got.etag} is not the MD5 of the data written (${files.bigMd5})`,
            );
          }
        }
        u.close();
        await waitIdle(fs.pid());
        await rm(join(wdir, name), { force: true });
      });

      if (verify && remote) {
        const pid = fs.pid();
        if (pid !== undefined) {
          const probe = await probeFsync(ctx, sys, pid, wdir);
          ctx.probes.push(probe);
          ctx.log(`  ${sys} ${describeProbe(probe)}`);
        }
      }

      const cdir = join(wdir, `c-r${rep}`);
      const created = await step(ctx, sys, ['create-small', 'create-small-in-bucket'], async () => {
        await mkdir(cdir, { recursive: true });
        const u = await win(ctx, fs.pid(), remote);
        const t0 = now();
        const s = await selfTimed(CREATE_JS, [cdir, String(p.smallFiles), '4096']);
        rec.add(sys, 'create-small', sample(s, await u.read()), p.smallFiles * 4096);
        log2(ctx, sys, 'create-small', s);
        if (inBucketFor('create-small-in-bucket')) {
          const at = await waitKeys(
            c,
            bucket,
            `${writePrefix(sys)}c-r${rep}/`,
            p.smallFiles,
            p.smallFiles * 4096,
            BUCKET_TIMEOUT_MS,
          );
          rec.add(sys, 'create-small-in-bucket', sample(at - t0, await u.read()));
          log2(ctx, sys, 'create-small-in-bucket', at - t0);
        }
        u.close();
        await waitIdle(fs.pid());
      });
      if (created) {
        await step(ctx, sys, ['rename-dir'], async () => {
          const u = await win(ctx, fs.pid(), remote);
          const r = await run('mv', [cdir, join(wdir, `m-r${rep}`)], { timeoutMs: OP_TIMEOUT_MS });
          rec.add(sys, 'rename-dir', sample(r.seconds, await u.read()));
          u.close();
          log2(ctx, sys, 'rename-dir', r.seconds);
        });
      } else {
        rec.fail(sys, 'rename-dir', 'not run: creating the files failed');
      }

      await step(ctx, sys, ['untar', 'untar-in-bucket'], async () => {
        const tdir = join(wdir, `t-r${rep}`);
        await mkdir(tdir, { recursive: true });
        const u = await win(ctx, fs.pid(), remote);
        const t0 = now();
        const r = await run('tar', ['-xf', files.tar, '-C', tdir], { timeoutMs: OP_TIMEOUT_MS });
        rec.add(sys, 'untar', sample(r.seconds, await u.read()), p.treeBytes);
        log2(ctx, sys, 'untar', r.seconds);
        if (inBucketFor('untar-in-bucket')) {
          const at = await waitKeys(
            c,
            bucket,
            `${writePrefix(sys)}t-r${rep}/`,
            p.treeFiles,
            p.treeBytes,
            BUCKET_TIMEOUT_MS,
          );
          rec.add(sys, 'untar-in-bucket', sample(at - t0, await u.read()));
          log2(ctx, sys, 'untar-in-bucket', at - t0);
        }
        u.close();
        await waitIdle(fs.pid());
      });
    } finally {
      await stopMount(ctx, fs, 'untar');
    }
  }
  if (!remote) await rm(wdir, { recursive: true, force: true });

  // ---- mount B: cold then warm sequential read
  const bigPath = join(fs.root, KEY_BIG);
  const mountedB = await step(ctx, sys, ['cold-read', 'warm-read'], () => fs.start(true, `b${rep}`));
  if (mountedB) {
    try {
      const read = async (w: WorkloadId): Promise<void> => {
        const u = await win(ctx, fs.pid(), remote);
        const r = await run('dd', [`if=${bigPath}`, 'of=/dev/null', 'bs=1M', 'status=none'], {
          timeoutMs: OP_TIMEOUT_MS,
        });
        rec.add(sys, w, sample(r.seconds, await u.read()), p.bigBytes);
        u.close();
        log2(ctx, sys, w, r.seconds, `  (${Math.round(p.bigBytes / MiB / r.seconds)} MiB/s)`);
      };
      const cold = await step(ctx, sys, ['cold-read'], async () => {
        await dropCaches();
        await read('cold-read');
      });
      if (cold) {
        const warm = await step(ctx, sys, ['warm-read'], () => read('warm-read'));
        if (warm) await step(ctx, sys, ['reread'], () => read('reread'));
      }
      if (verify) {
        await step(ctx, sys, ['warm-read'], async () => {
          const r = await run('md5sum', [bigPath], { timeoutMs: OP_TIMEOUT_MS });
          const sum = r.stdout.split(' ')[0];
          if (sum !== files.bigMd5)
            throw new Error(`read back data has MD5 ${sum}, expected ${files.bigMd5}`);
        });
      }
    } finally {
      await stopMount(ctx, fs, 'warm-read');
    }
  }

  // ---- mount C: random 4 KiB reads on an empty cache
  const mountedC = await step(ctx, sys, ['random-read'], () => fs.start(true, `c${rep}`));
  if (mountedC) {
    try {
      await step(ctx, sys, ['random-read'], async () => {
        await dropCaches();
        const u = await win(ctx, fs.pid(), remote);
        const s = await selfTimed(RANDOM_JS, [bigPath, String(p.randomReads), String(1000 + rep)]);
        rec.add(sys, 'random-read', sample(s, await u.read()), p.randomReads * 4096);
        u.close();
        log2(ctx, sys, 'random-read', s);
      });
    } finally {
      await stopMount(ctx, fs, 'random-read');
    }
  }
}

// ---------------------------------------------------------------- SDK helpers used by main

export async function seedSdkData(ctx: BenchCtx): Promise<void> {
  // The big object and the ls directory are written by the SDK limit runs; the NFS object here.
  await putFile(ctx.client, ctx.bucket, KEY_NFS, ctx.files.nfs, ctx.params.nfsBytes);
}

/** strace attaches to every thread of the daemon; give it this long before the probe's write. */
const ATTACH_MS = 1500;

/**
 * The fsync probe (fsync-probe.ts), outside the timed runs: `dd conv=fsync` of PROBE_BYTES into
 * `dir` while strace records the daemon's sync calls, then a HEAD of the object at once.
 */
async function probeFsync(ctx: BenchCtx, sys: SystemId, pid: number, dir: string): Promise<FsyncProbe> {
  const name = 'fsync-probe.bin';
  const traceFile = join(ctx.work, `strace-${sys}.txt`);
  const tracer = startDaemon('strace', 'strace', [
    '-f',
    '-qq',
    '-e',
    `trace=${SYNC_CALLS.join(',')}`,
    '-o',
    traceFile,
    '-p',
    String(pid),
  ]);
  try {
    await sleep(ATTACH_MS);
    if (!tracer.running()) throw new Error(`strace ended: ${tracer.output().trim().slice(-300)}`);
    await run(
      'dd',
      [
        'if=/dev/zero',
        `of=${join(dir, name)}`,
        'bs=1M',
        `count=${PROBE_BYTES / MiB}`,
        'conv=fsync',
        'status=none',
      ],
      { timeoutMs: OP_TIMEOUT_MS },
    );
    const obj = await head(ctx.client, ctx.bucket, `${writePrefix(sys)}${name}`);
    await sleep(300);
    await tracer.stop('SIGINT', 10_000);
    const syncCalls = countSyncCalls(await readFile(traceFile, 'utf8'));
    return { system: sys, syncCalls, inBucket: obj !== null && obj.size === PROBE_BYTES };
  } catch (e) {
    return { system: sys, syncCalls: null, inBucket: null, error: errText(e).split('\n')[0] ?? '' };
  } finally {
    await tracer.stop('SIGINT', 10_000);
    await rm(traceFile, { force: true });
    await rm(join(dir, name), { force: true }).catch(() => undefined);
    await waitIdle(pid);
  }
}
