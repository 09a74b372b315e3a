/**
 * `npm run bench [-- options]`: bucketgate against the SDK limits, a local directory, s3fs and
 * rclone mount (FUSE), and nfs-ganesha (NFS), all on one s3rver on loopback, in one run.
 * See docs/benchmarks.md.
 *
 * Options:
 *   --quick            1 repetition and reduced sizes (about two minutes)
 *   --reps N           repetitions (default 3, quick 1)
 *   --only LIST        systems to run: sdk,local,bg-cache,bg-wt,s3fs,rclone-writes,rclone-full,
 *                      bg-nfs,ganesha (also: bucketgate = bg-cache,bg-wt,bg-nfs; peers; nfs)
 *   --profile          run bucketgate's daemons under node --cpu-prof and summarise the profiles
 *   --no-install       do not apt-get install missing peers
 *   --out DIR          results directory (default .bench)
 *   --docs / --no-docs write docs/benchmarks.md (default: only for a full run of every system)
 */
import { readdir, readFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isCpuProfile, summarizeProfile } from './cpuprofile.js';
import { runNfs } from './nfs.js';
import { Recorder, type Mark } from './recorder.js';
import { mergeDoc, renderMarkdown, renderText } from './report.js';
import { s3Client, startS3rver } from './s3rver.js';
import { RESULTS_SCHEMA, validateResults, type BenchResults, type SystemId } from './schema.js';
import { paramsFor, parseOptions, USAGE } from './options.js';
import { deletePrefix } from './sdk.js';
import { ensureTools, machineInfo, makeLocalData, makeTree, randomFile, TOOLS, type Tool } from './setup.js';
import {
  BucketgateSystem,
  LocalSystem,
  RcloneSystem,
  ROOT,
  S3fsSystem,
  versionOf,
  type FsSystem,
} from './systems.js';
import { evaluateTargets } from './targets.js';
import { errText, now, onCleanup, run, runCleanups, umountAllUnder } from './util.js';
import { fsRep, sdkRep, seedSdkData, writePrefix, type BenchCtx } from './workloads.js';

const MiB = 2 ** 20;
const BUCKET = 'bench';

/** ` (git abc1234)`, plus a warning when the measured sources differ from the commit. */
async function gitDescription(): Promise<string> {
  try {
    const head = await run('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { timeoutMs: 10_000 });
    const dirty = await run(
      'git',
      ['-C', ROOT, 'status', '--porcelain', '--', 'src', 'native', 'package.json'],
      { timeoutMs: 10_000 },
    );
    const changed = dirty.stdout
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.includes('src/bench/')).length;
    return ` (git ${head.stdout.trim()}${changed > 0 ? `, plus ${changed} uncommitted changed file(s) in src/native` : ''})`;
  } catch {
    return '';
  }
}

/** Scripts of bucketgate itself (dist/), for inclusive times. */
const ownCode = (url: string): boolean => url.includes('/dist/') && !url.includes('node_modules');

function hotTable(
  title: string,
  fns: Array<{ name: string; selfMs: number; pct: number }>,
  what: string,
): string[] {
  if (fns.length === 0) return [];
  return [
    title,
    '',
    `| ${what} ms | % busy | function |`,
    '|---:|---:|---|',
    ...fns.map((h) => `| ${h.selfMs.toFixed(0)} | ${h.pct.toFixed(1)} | ${h.name.replace(/\|/g, '\\|')} |`),
    '',
  ];
}

/**
 * Summaries of the profiles under `dir` (one sub-directory per mount, `SYSTEM-TAG`): the whole
 * profile, then each workload's time window (the profile's clock is the same monotonic clock as
 * the benchmark's `now()`, in microseconds).
 */
async function summariseProfiles(dir: string, marks: Mark[], log: (s: string) => void): Promise<string> {
  const lines: string[] = [];
  let subdirs: string[] = [];
  try {
    subdirs = (await readdir(dir)).sort();
  } catch {
    return '';
  }
  for (const sub of subdirs) {
    let files: string[] = [];
    try {
      files = (await readdir(join(dir, sub))).filter((f) => f.endsWith('.cpuprofile'));
    } catch {
      continue;
    }
    const system = sub.slice(0, sub.lastIndexOf('-'));
    for (const f of files) {
      try {
        const p: unknown = JSON.parse(await readFile(join(dir, sub, f), 'utf8'));
        if (!isCpuProfile(p)) continue;
        const s = summarizeProfile(p, { topN: 20, own: ownCode });
        lines.push(
          `## ${sub}: ${(s.totalMs / 1000).toFixed(1)} s profiled, ${(s.busyMs / 1000).toFixed(1)} s busy`,
          '',
        );
        lines.push(...hotTable('Whole mount, self time:', s.top, 'self'));
        for (const m of marks) {
          const fromUs = m.from * 1e6;
          const toUs = m.to * 1e6;
          if (m.system !== system || fromUs < p.startTime || toUs > p.endTime) continue;
          const w = summarizeProfile(p, { topN: Number(process.env.BG_PROFILE_TOP ?? 12), fromUs, toUs, own: ownCode });
          lines.push(
            `### ${sub} / ${m.workload}: ${(m.to - m.from).toFixed(2)} s wall, ${(w.busyMs / 1000).toFixed(2)} s busy in the daemon`,
            '',
          );
          lines.push(...hotTable('Self time:', w.top, 'self'));
          lines.push(...hotTable('Total time of bucketgate functions:', w.ownTotal ?? [], 'total'));
        }
      } catch (e) {
        log(`profile ${sub}/${f}: ${errText(e)}`);
      }
    }
  }
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const opts = parseOptions(argv, ROOT);
  if (opts.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const startedAt = new Date();
  const t0 = performance.now();
  const log = (s: string): void => {
    const t = ((performance.now() - t0) / 1000).toFixed(0).padStart(4);
    process.stdout.write(`[${t}s] ${s}\n`);
  };
  if (process.getuid?.() !== 0)
    throw new Error('the benchmark needs root (FUSE mounts, drop_caches, apt-get)');
  const params = paramsFor(opts.quick, opts.reps);
  const want = (id: SystemId): boolean => opts.only.has(id);
  const skipped: Array<{ what: string; reason: string }> = [];
  const notes: string[] = [];

  // ---- tools
  const needed: Tool[] = [TOOLS.fusermount!, TOOLS.strace!];
  if (want('s3fs')) needed.push(TOOLS.s3fs!);
  if (want('rclone-writes') || want('rclone-full')) needed.push(TOOLS.rclone!);
  if (want('bg-nfs') || want('ganesha')) needed.push(TOOLS.libnfs!);
  if (want('ganesha')) needed.push(TOOLS.ganesha!, TOOLS.rpcbind!);
  const missing = await ensureTools(needed, opts.install, log);
  const drop = (ids: SystemId[], reason: string): void => {
    for (const id of ids) {
      if (opts.only.delete(id)) skipped.push({ what: id, reason });
    }
  };
  if (missing.has('s3fs')) drop(['s3fs'], missing.get('s3fs')!);
  if (missing.has('rclone')) drop(['rclone-writes', 'rclone-full'], missing.get('rclone')!);
  if (missing.has('libnfs-utils')) drop(['bg-nfs', 'ganesha'], missing.get('libnfs-utils')!);
  if (missing.has('nfs-ganesha')) drop(['ganesha'], missing.get('nfs-ganesha')!);
  if (missing.has('rpcbind')) drop(['ganesha'], missing.get('rpcbind')!);
  if (missing.has('fusermount')) drop(['s3fs', 'rclone-writes', 'rclone-full'], missing.get('fusermount')!);

  const versions: Record<string, string> = {};
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version?: string };
  versions.bucketgate = `${pkg.version ?? '?'}${await gitDescription()}`;
  if (want('s3fs')) versions.s3fs = (await versionOf('s3fs', ['--version'], /V(\d+\.\d+(?:\.\d+)?)/)) ?? '?';
  if (want('rclone-writes') || want('rclone-full'))
    versions.rclone = (await versionOf('rclone', ['version'], /rclone v(\S+)/)) ?? '?';
  if (want('ganesha'))
    versions['nfs-ganesha'] = (await versionOf('ganesha.nfsd', ['-v'], /Release = V(\S+)/)) ?? '?';
  if (want('bg-nfs') || want('ganesha'))
    versions['libnfs-utils'] =
      (await versionOf('dpkg-query', ['-W', '-f', '${Version}', 'libnfs-utils'], /^(\S+)/)) ?? '?';

  // ---- work directory, cleanup on every path
  await mkdir(opts.out, { recursive: true });
  const work = await mkdtemp('/tmp/bucketgate-bench-');
  onCleanup('work directory', () => rm(work, { recursive: true, force: true, maxRetries: 3 }));
  onCleanup('mounts', () => umountAllUnder(work));
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\nbench: ${sig}: cleaning up\n`);
    void runCleanups().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  log(
    `work directory ${work}; ${opts.quick ? 'quick run' : 'full run'}, ${params.repetitions} repetition(s)`,
  );

  // ---- data
  const dataDir = join(work, 'src');
  await mkdir(dataDir, { recursive: true });
  const big = join(dataDir, 'big.bin');
  const nfs = join(dataDir, 'nfs.bin');
  const tar = join(dataDir, 'tree.tar');
  const bigMd5 = await randomFile(big, params.bigBytes);
  const nfsMd5 = await randomFile(nfs, params.nfsBytes);
  params.treeBytes = await makeTree(join(dataDir, 'tree'), tar, params.treeFiles);
  log(
    `data: ${params.bigBytes / MiB} MiB file, ${params.nfsBytes / MiB} MiB NFS file, tree of ${params.treeFiles} files (${(params.treeBytes / 1e6).toFixed(1)} MB)`,
  );

  // ---- s3rver
  const s3 = await startS3rver(join(work, 's3'), [BUCKET]);
  const stopS3 = onCleanup('s3rver', () => s3.stop());
  versions.s3rver = s3.version;
  versions.node = process.version;
  const client = s3Client(s3.endpoint);
  log(`s3rver ${s3.version} at ${s3.endpoint} (pid ${s3.pid})`);

  const rec = new Recorder(now);
  const ctx: BenchCtx = {
    params,
    work,
    bucket: BUCKET,
    s3,
    client,
    rec,
    files: { big, bigMd5, nfs, nfsMd5, tar },
    log,
    probes: [],
  };
  const profileDir = opts.profile
    ? join(opts.out, `profiles-${startedAt.toISOString().replace(/[:.]/g, '-')}`)
    : undefined;
  const sysEnv = { work, s3, bucket: BUCKET, ...(profileDir ? { profileDir } : {}) };

  try {
    // ---- limits: the SDK (also writes the objects the file systems read)
    log('SDK limits:');
    for (let rep = 1; rep <= params.repetitions; rep++) await sdkRep(ctx, rep);
    await seedSdkData(ctx);

    // ---- file systems, repetitions interleaved across systems
    const systems: FsSystem[] = [];
    if (want('local')) {
      await makeLocalData(join(work, 'local'), big, params.lsFiles);
      systems.push(new LocalSystem(sysEnv));
    }
    if (want('bg-cache')) systems.push(new BucketgateSystem('bg-cache', sysEnv));
    if (want('bg-wt')) systems.push(new BucketgateSystem('bg-wt', sysEnv));
    if (want('s3fs')) systems.push(new S3fsSystem(sysEnv));
    if (want('rclone-writes')) systems.push(new RcloneSystem('rclone-writes', sysEnv));
    if (want('rclone-full')) systems.push(new RcloneSystem('rclone-full', sysEnv));
    for (const fs of systems) onCleanup(`stop ${fs.id}`, () => fs.stop());
    for (let rep = 1; rep <= params.repetitions; rep++) {
      for (const fs of systems) {
        log(`${fs.id}, repetition ${rep}/${params.repetitions}:`);
        await fsRep(ctx, fs, rep, rep === 1);
        if (fs.id !== 'local')
          await deletePrefix(client, BUCKET, writePrefix(fs.id)).catch((e: unknown) =>
            log(`  cleanup of ${writePrefix(fs.id)}: ${errText(e)}`),
          );
      }
    }

    // ---- NFS
    if (want('bg-nfs') || want('ganesha')) {
      log('NFS:');
      skipped.push(...(await runNfs(ctx, params.repetitions, opts.only, profileDir)));
    }
  } finally {
    client.destroy();
    await stopS3();
  }

  // ---- results
  const rows = rec.rows();
  if (opts.quick)
    notes.push('Quick run: one repetition and a quarter of the sizes; use the full run for decisions.');
  notes.push(
    'Cold runs start a fresh mount on an empty cache directory after `sync; echo 3 > /proc/sys/vm/drop_caches`; ' +
      '"warm ls" waits 2 s after the cold one so that the kernel\'s 1 s attribute/entry caches have expired (the daemon answers); ' +
      '"until in the bucket" is timed from the start of the write, polling HEAD (100 ms) or a listing (250 ms).',
  );
  const results: BenchResults = {
    schema: RESULTS_SCHEMA,
    quick: opts.quick,
    command: `npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: await machineInfo(),
    params,
    versions,
    rows,
    targets: evaluateTargets(rows, params, ctx.probes),
    skipped,
    notes,
    fsyncProbes: ctx.probes,
  };
  const problems = validateResults(results);
  if (problems.length > 0) throw new Error(`results do not match the schema: ${problems.join('; ')}`);
  // Only a full run of every system (no profiler) owns results.json.
  const partial = opts.onlyGiven || opts.profile || opts.reps < 3;
  const jsonPath = join(
    opts.out,
    opts.quick ? 'results-quick.json' : partial ? 'results-partial.json' : 'results.json',
  );
  await writeFile(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`\n${renderText(results)}\n\nresults: ${jsonPath}\n`);

  const writeDocs = opts.docs ?? (!opts.quick && !partial);
  const md = renderMarkdown(results);
  if (writeDocs) {
    const docPath = join(ROOT, 'docs', 'benchmarks.md');
    let existing: string | undefined;
    try {
      existing = await readFile(docPath, 'utf8');
    } catch {
      existing = undefined;
    }
    await writeFile(
      docPath,
      mergeDoc(
        existing,
        md,
        '# Benchmarks\n\nRun with `npm run bench` (as root).',
        '## Profiling findings\n\n(none yet)\n',
      ),
    );
    process.stdout.write(`report: ${docPath}\n`);
  } else {
    const p = join(opts.out, opts.quick ? 'benchmarks-quick.md' : 'benchmarks-partial.md');
    await writeFile(p, `${md}\n`);
    process.stdout.write(`report: ${p} (docs/benchmarks.md is written by full runs of every system)\n`);
  }
  if (profileDir) {
    const summary = await summariseProfiles(profileDir, rec.marks, log);
    const p = join(profileDir, 'summary.md');
    await writeFile(p, `# CPU profiles of bucketgate (self time)\n\n${summary}\n`);
    process.stdout.write(`\nCPU profiles: ${profileDir} (summary: ${p})\n`);
  }
  return 0;
}

// Entry point (npm run bench → node dist/bench/main.js).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
void main(process.argv.slice(2))
  .then(
    async (code) => {
      await runCleanups();
      process.exit(code);
    },
    async (e: unknown) => {
      process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      await runCleanups();
      process.exit(1);
    },
  )
  .catch(() => process.exit(1));
