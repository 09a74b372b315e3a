/**
 * Scale run of reverse sync (not a unit test): a prefix of 100 000 objects (100 directories of
 * 1000) in s3rver, mounted by bucketgate; measures the cold listing, a recursive `refresh` with
 * nothing changed, and one after remote changes, with the S3 requests sent (from the metrics
 * endpoint) and the daemon's peak RSS.
 *
 *   npm run build && node dist/tools/scale-refresh.js [--objects 100000] [--per-dir 1000]
 *
 * The objects are written straight into s3rver's storage directory (its documented on-disk
 * layout: `<key>._S3rver_object` + `.md5` + `._S3rver_metadata.json`), which takes seconds
 * instead of the minutes 100 000 PUTs through s3rver would.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { S3Client, PutObjectCommand, DeleteObjectCommand } from '@aws-sdk/client-s3';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
import { startEmbeddedS3 } from '../daemon/embedded-s3.js';

const pexec = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => res(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

async function seed(
  dir: string,
  bucket: string,
  prefix: string,
  total: number,
  perDir: number,
): Promise<void> {
  const body = Buffer.from('scale test object\n');
  const md5 = createHash('md5').update(body).digest('hex');
  const meta = JSON.stringify({ 'content-type': 'application/octet-stream' });
  const dirs = Math.ceil(total / perDir);
  for (let d = 0; d < dirs; d++) {
    const base = join(dir, bucket, prefix, `d${String(d).padStart(4, '0')}`);
    await mkdir(base, { recursive: true });
    const jobs: Promise<void>[] = [];
    for (let f = 0; f < perDir && d * perDir + f < total; f++) {
      const p = join(base, `f${String(f).padStart(5, '0')}`);
      jobs.push(writeFile(`${p}._S3rver_object`, body));
      jobs.push(writeFile(`${p}._S3rver_object.md5`, md5));
      jobs.push(writeFile(`${p}._S3rver_metadata.json`, meta));
    }
    await Promise.all(jobs);
  }
}

async function s3Requests(metricsPort: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^bucketgate_s3_requests_total\{([^}]*)\} (\d+)/.exec(line);
    if (!m) continue;
    const op = /op="([^"]+)"/.exec(m[1]!)?.[1] ?? '?';
    out[op] = (out[op] ?? 0) + Number(m[2]);
  }
  return out;
}

function diff(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const d = (b[k] ?? 0) - (a[k] ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}

async function rssKiB(pid: number): Promise<{ now: number; peak: number }> {
  const st = await readFile(`/proc/${pid}/status`, 'utf8');
  const v = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(st)?.[1] ?? 0);
  return { now: v('VmRSS'), peak: v('VmHWM') };
}

async function main(): Promise<void> {
  const total = arg('objects', 100_000);
  const perDir = arg('per-dir', 1000);
  const work = await mkdtemp(join(tmpdir(), 'bg-scale-'));
  const mnt = join(work, 'mnt');
  await mkdir(mnt);
  const out: string[] = [];
  const say = (s: string): void => {
    out.push(s);
    process.stdout.write(`${s}\n`);
  };
  let t = Date.now();
  await seed(join(work, 's3'), 'scale', 'p', total, perDir);
  say(`seeded ${total} objects in ${Math.ceil(total / perDir)} directories: ${Date.now() - t} ms`);
  const s3 = await startEmbeddedS3({ directory: join(work, 's3'), buckets: ['scale'] });
  const metricsPort = await freePort();
  const env = {
    ...process.env,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
  };
  const admin = join(work, 'run');
  const daemon = spawn(
    process.execPath,
    [
      join(ROOT, 'bin', 'bucketgate'),
      'mount',
      's3://scale/p',
      mnt,
      '--endpoint',
      s3.endpoint,
      '--path-style',
      '--cache-dir',
      join(work, 'cache'),
      '--admin-dir',
      admin,
      '--refresh-interval',
      '0',
      '--dir-ttl',
      '0',
      '--log-level',
      'warn',
      '--metrics',
      `127.0.0.1:${metricsPort}`,
    ],
    { env, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  const cliRun = (args: string[]): Promise<{ stdout: string }> =>
    pexec(process.execPath, [join(ROOT, 'bin', 'bucketgate'), ...args], { env, maxBuffer: 1 << 26 });
  try {
    for (let i = 0; i < 300; i++) {
      const mounted = (await readFile('/proc/self/mountinfo', 'utf8')).includes(` ${mnt} `);
      if (mounted) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await cliRun(['status', mnt, '--admin-dir', admin]);
    const pid = daemon.pid!;

    let before = await s3Requests(metricsPort);
    t = Date.now();
    const { stdout } = await pexec('bash', ['-c', `find '${mnt}' -type f | wc -l`], { maxBuffer: 1 << 26 });
    say(
      `cold listing (find -type f: readdir of every directory, POSIX metadata loaded): ${stdout.trim()} files, ${Date.now() - t} ms, requests ${JSON.stringify(diff(before, await s3Requests(metricsPort)))}, daemon RSS ${JSON.stringify(await rssKiB(pid))} KiB`,
    );

    before = await s3Requests(metricsPort);
    t = Date.now();
    const r1 = await cliRun(['refresh', mnt, '--recursive', '--admin-dir', admin]);
    say(
      `refresh --recursive, nothing changed: ${Date.now() - t} ms, ${r1.stdout.trim()}, requests ${JSON.stringify(diff(before, await s3Requests(metricsPort)))}, daemon RSS ${JSON.stringify(await rssKiB(pid))} KiB`,
    );

    // Someone else changes 100 objects, adds 100 and deletes 100.
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
    });
    for (let i = 0; i < 100; i++) {
      const d = `p/d${String(i % Math.ceil(total / perDir)).padStart(4, '0')}`;
      await client.send(
        new PutObjectCommand({
          Bucket: 'scale',
          Key: `${d}/f${String(i).padStart(5, '0')}`,
          Body: `changed ${i}`,
        }),
      );
      await client.send(new PutObjectCommand({ Bucket: 'scale', Key: `${d}/new${i}`, Body: `new ${i}` }));
      await client.send(
        new DeleteObjectCommand({ Bucket: 'scale', Key: `${d}/f${String(perDir - 1 - i).padStart(5, '0')}` }),
      );
    }
    before = await s3Requests(metricsPort);
    t = Date.now();
    const r2 = await cliRun(['refresh', mnt, '--recursive', '--admin-dir', admin]);
    say(
      `refresh --recursive after 100 changed, 100 added, 100 deleted: ${Date.now() - t} ms, ${r2.stdout.trim()}, requests ${JSON.stringify(diff(before, await s3Requests(metricsPort)))}, daemon RSS ${JSON.stringify(await rssKiB(pid))} KiB`,
    );
    client.destroy();
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
    await s3.stop();
    await rm(work, { recursive: true, force: true });
  }
  say(`machine: ${(await pexec('nproc')).stdout.trim()} cores, node ${process.version}`);
}

main().catch((e: unknown) => {
  process.stderr.write(`scale-refresh failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
