/**
 * End to end: `bucketgate serve --config FILE` (the real CLI over s3rver) running a FUSE share
 * and an NFS-only share in one process, under a fake systemd notification socket:
 * READY=1 once the mount and the export are up (sent as the daemon's pid), a workload through
 * FUSE and NFS, the Prometheus endpoint scraped for every series family, the audit log, SIGHUP
 * reloads (a share removed, one added, one changed, a bad file that changes nothing), and
 * SIGTERM with STOPPING=1 and exit 0.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, isMounted, sh, startDaemon, type Daemon } from '../helpers/daemon.js';
import { startNotifySocket, type NotifySocket } from '../helpers/notify-socket.js';
import { startS3rver, type S3rverHandle } from '../helpers/s3rver.js';

let s3: S3rverHandle;
let work: string;
let notify: NotifySocket;
const daemons: Daemon[] = [];

beforeAll(async () => {
  s3 = await startS3rver({ buckets: ['test', 'other'] });
  work = await mkdtemp(join(tmpdir(), 'bg-svc-serve-'));
  notify = await startNotifySocket(work);
});

afterAll(async () => {
  for (const d of daemons) await d.stop('SIGKILL').catch(() => undefined);
  await sh(`for m in $(grep -o '${work}[^ ]*' /proc/mounts || true); do umount -l "$m" || true; done`).catch(
    () => undefined,
  );
  await notify?.close();
  await s3?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection({ host: '127.0.0.1', port });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** Value of one series, e.g. value(text, 'x_total', { op: 'read' }); undefined when absent. */
function value(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([^{ ]+)(?:\{(.*)\})? (.+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

async function until(what: string, f: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('bucketgate serve', () => {
  it('rejects a bad file with exit 2 and checks a good one', async () => {
    const bad = join(work, 'bad.yaml');
    await writeFile(bad, 'shares:\n  - url: s3://test\n    mountpoint: /x\n    cacheSize: 20X\n');
    const r = await cli(['serve', '--config', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${bad}:4: shares[0].cacheSize: "20X" is not a size`);
    const good = join(work, 'good.yaml');
    await writeFile(
      good,
      'shares:\n  - {url: "s3://test/x", mountpoint: /mnt/x}\n  - {url: "s3://other", noFuse: true, nfs: 127.0.0.1}\n',
    );
    const c = await cli(['serve', '--config', good, '--check']);
    expect(c.code).toBe(0);
    expect(c.stdout).toMatch(
      /OK, 2 shares\n {2}test-x: s3:\/\/test\/x -> \/mnt\/x .*\n {2}other: s3:\/\/other -> nfs 127\.0\.0\.1:2049:\/other/,
    );
    expect((await cli(['serve'])).code).toBe(2);
    // A share that cannot start stops the others and exits 1 (systemd restarts it).
    const [p1, p2] = [await freePort(), await freePort()];
    const broken = join(work, 'broken.yaml');
    await writeFile(
      broken,
      `adminDir: run-broken\ncacheRoot: cache-broken\ndefaults: {endpoint: "${s3.endpoint}", pathStyle: true, noFuse: true, nfsSquash: none}\n` +
        `shares:\n  - {url: "s3://test/ok", nfs: "127.0.0.1:${p1}"}\n  - {url: "s3://no-such-bucket", nfs: "127.0.0.1:${p2}"}\n`,
    );
    const b = await cli(['serve', '--config', broken], {
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    });
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/bucketgate: bucket "no-such-bucket" does not exist/);
    expect(b.stderr).toMatch(/share stopped share="test-ok"/);
    expect(await portOpen(p1)).toBe(false);
  });

  it('runs a FUSE and an NFS share, reports readiness, metrics and audit events, reloads on SIGHUP, stops on SIGTERM', async () => {
    const [metricsPort, nfsPort] = [await freePort(), await freePort()];
    const mntA = join(work, 'mnt-a');
    const mntC = join(work, 'mnt-c');
    await mkdir(mntA, { recursive: true });
    await mkdir(mntC, { recursive: true });
    const file = join(work, 'bucketgate.yaml');
    const audit = join(work, 'log', 'audit.log');
    const config = (shares: string, extra = ''): string => `# written by the test
logLevel: info
adminDir: run
cacheRoot: cache
metrics: ${metricsPort}
auditLog: log/audit.log
defaults:
  endpoint: ${s3.endpoint}
  pathStyle: true
  refreshInterval: 0
  credentials: {accessKeyId: ${s3.accessKeyId}, secretAccessKey: ${s3.secretAccessKey}}
${extra}shares:
${shares}`;
    const shareA = `  - {name: a, url: "s3://test/a", mountpoint: mnt-a, uploadDelay: 2s}\n`;
    const shareB = `  - {name: b, url: "s3://other", noFuse: true, nfs: "127.0.0.1:${nfsPort}", nfsSquash: none}\n`;
    const shareC = (ttl: string): string =>
      `  - {name: c, url: "s3://test/c", mountpoint: mnt-c, dirTtl: ${ttl}}\n`;
    await writeFile(file, config(shareA + shareB));
    await chmod(file, 0o600); // it holds credentials

    // Credentials come from the file: the environment's are wrong on purpose.
    const d = await startDaemon(
      ['serve', '--config', file],
      { AWS_ACCESS_KEY_ID: 'WRONG', AWS_SECRET_ACCESS_KEY: 'WRONG', NOTIFY_SOCKET: notify.path },
      mntA,
    );
    daemons.push(d);
    const ready = await notify.waitFor((m) => m.fields.READY === '1');
    expect(ready.pid).toBe(d.proc.pid);
    expect(ready.fields.STATUS).toBe(`serving 2 shares: a (${mntA}), b (nfs 127.0.0.1:${nfsPort}:/b)`);
    // READY=1 means both are up.
    expect(await isMounted(mntA)).toBe(true);
    expect(await portOpen(nfsPort)).toBe(true);
    expect(await portOpen(metricsPort)).toBe(true);
    expect(d.output()).not.toContain(s3.secretAccessKey); // registered as a secret: masked in every log line

    // A workload through FUSE and NFS.
    const q = `?nfsport=${nfsPort}&mountport=${nfsPort}&version=3`;
    await sh(
      `cd '${mntA}' && echo hello > hello.txt && mkdir docs && mv hello.txt docs/hi.txt && chmod 600 docs/hi.txt && ` +
        `head -c 2000000 /dev/urandom > big.bin && cat big.bin > /dev/null && cat docs/hi.txt > /dev/null && ` +
        `touch gone && rm gone && cat missing 2>/dev/null || true`,
    );
    await sh(
      `printf 'via nfs' > '${work}/up.txt' && nfs-cp '${work}/up.txt' 'nfs://127.0.0.1/b/from-nfs.txt${q}' && nfs-ls 'nfs://127.0.0.1/b${q}'`,
    );
    const scrape = async (): Promise<string> =>
      (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    let text = await scrape();
    expect(value(text, 'bucketgate_upload_queue_length', { share: 'a' })).toBeGreaterThanOrEqual(1);
    expect(value(text, 'bucketgate_upload_oldest_dirty_age_seconds', { share: 'a' })).toBeGreaterThan(0);
    expect(value(text, 'bucketgate_cache_dirty_bytes', { share: 'a' })).toBeGreaterThanOrEqual(2_000_000);

    // Uploads, and a reverse sync that finds an object written by someone else.
    const run = join(work, 'run');
    expect((await cli(['flush', 'a', '--admin-dir', run, '--timeout', '60s'])).code).toBe(0);
    expect((await cli(['flush', 'b', '--admin-dir', run, '--timeout', '60s'])).code).toBe(0);
    await s3.client().send(new PutObjectCommand({ Bucket: 'test', Key: 'a/by-others.txt', Body: 'x' }));
    const refresh = await cli(['refresh', mntA, '--recursive', '--admin-dir', run]);
    expect(refresh.stdout).toMatch(/refreshed: 1 added/);

    text = await scrape();
    const v = (name: string, labels: Record<string, string>): number | undefined => value(text, name, labels);
    const ops = (share: string, protocol: string, op: string, result = 'ok'): number | undefined =>
      v('bucketgate_vfs_operations_total', { share, protocol, op, result });
    expect(ops('a', 'fuse', 'write')).toBeGreaterThan(0);
    expect(ops('a', 'fuse', 'read')).toBeGreaterThan(0);
    expect(ops('a', 'fuse', 'create')).toBeGreaterThanOrEqual(3);
    expect(ops('a', 'fuse', 'rename')).toBe(1);
    expect(ops('a', 'fuse', 'lookup', 'ENOENT')).toBeGreaterThan(0);
    expect(ops('b', 'nfs', 'write')).toBeGreaterThan(0);
    expect(
      v('bucketgate_vfs_operation_duration_seconds_bucket', { share: 'a', op: 'write', le: '+Inf' }),
    ).toBe(ops('a', 'fuse', 'write'));
    expect(v('bucketgate_vfs_bytes_total', { share: 'a', direction: 'write' })).toBeGreaterThanOrEqual(
      2_000_006,
    );
    expect(v('bucketgate_vfs_bytes_total', { share: 'a', direction: 'read' })).toBeGreaterThanOrEqual(
      2_000_000,
    );
    expect(v('bucketgate_vfs_bytes_total', { share: 'b', protocol: 'nfs', direction: 'write' })).toBe(7);
    expect(
      v('bucketgate_nfs_calls_total', { share: 'b', program: 'nfs', procedure: 'write', result: 'ok' }),
    ).toBeGreaterThan(0);
    expect(
      v('bucketgate_nfs_calls_total', { share: 'b', program: 'mount', procedure: 'mnt', result: 'ok' }),
    ).toBeGreaterThan(0);
    expect(v('bucketgate_cache_hit_ratio', { share: 'a' })).toBeGreaterThan(0);
    expect(v('bucketgate_cache_lookups_total', { share: 'a', result: 'hit' })).toBeGreaterThan(0);
    expect(v('bucketgate_cache_used_bytes', { share: 'a' })).toBeGreaterThanOrEqual(2_000_000);
    expect(v('bucketgate_cache_limit_bytes', { share: 'a' })).toBe(10 * 2 ** 30);
    expect(v('bucketgate_cache_dirty_bytes', { share: 'a' })).toBe(0);
    expect(v('bucketgate_cache_dirty_files', { share: 'a' })).toBe(0);
    expect(v('bucketgate_upload_queue_length', { share: 'a' })).toBe(0);
    expect(v('bucketgate_upload_oldest_dirty_age_seconds', { share: 'a' })).toBe(0);
    expect(v('bucketgate_uploads_failing', { share: 'a' })).toBe(0);
    expect(v('bucketgate_uploads_inflight', { share: 'a' })).toBe(0);
    expect(v('bucketgate_uploaded_files_total', { share: 'a' })).toBeGreaterThanOrEqual(2);
    expect(v('bucketgate_uploaded_bytes_total', { share: 'a' })).toBeGreaterThanOrEqual(2_000_000);
    expect(
      v('bucketgate_s3_requests_total', { share: 'a', op: 'put', outcome: 'ok', status: '2xx' }),
    ).toBeGreaterThanOrEqual(2);
    expect(v('bucketgate_s3_requests_total', { share: 'a', op: 'list', outcome: 'ok' })).toBeGreaterThan(0);
    expect(
      v('bucketgate_s3_requests_total', { share: 'b', op: 'put', outcome: 'ok' }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      v('bucketgate_s3_request_duration_seconds_count', { share: 'a', op: 'put' }),
    ).toBeGreaterThanOrEqual(2);
    expect(v('bucketgate_s3_bytes_total', { share: 'a', direction: 'upload' })).toBeGreaterThanOrEqual(
      2_000_000,
    );
    expect(v('bucketgate_refresh_runs_total', { share: 'a', trigger: 'manual', result: 'ok' })).toBe(1);
    expect(v('bucketgate_refresh_changes_total', { share: 'a', change: 'added' })).toBe(1);
    expect(v('bucketgate_share_info', { share: 'b', nfs: `127.0.0.1:${nfsPort}` })).toBe(1);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes /m);

    // The audit log: who did what, through which protocol.
    const events = (await readFile(audit, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const brief = events.map(
      (e) =>
        `${String(e.protocol)} ${String(e.op)} ${String(e.path)}${e.newPath ? ` ${String(e.newPath)}` : ''} uid=${String(e.uid)} ${String(e.result)}`,
    );
    expect(brief).toEqual(
      expect.arrayContaining([
        'fuse create /hello.txt uid=0 ok',
        'fuse write-close /hello.txt uid=0 ok',
        'fuse mkdir /docs uid=0 ok',
        'fuse rename /hello.txt /docs/hi.txt uid=0 ok',
        'fuse setattr /docs/hi.txt uid=0 ok',
        'fuse unlink /gone uid=0 ok',
        'nfs create /from-nfs.txt uid=0 ok',
        'nfs write-close /from-nfs.txt uid=0 ok',
      ]),
    );
    expect(events.find((e) => e.op === 'setattr')).toMatchObject({
      share: 'a',
      gid: 0,
      changes: { mode: '0600' },
    });

    // SIGHUP 1: b removed, c added; a untouched (never stopped: its log shows one start).
    const count = (s: string): number => d.output().split(s).length - 1;
    await writeFile(file, config(shareA + shareC('60s')));
    const reloads = (): number => notify.messages.filter((m) => m.fields.RELOADING === '1').length;
    const readies = (): number => notify.messages.filter((m) => m.fields.READY === '1').length;
    const r0 = readies();
    d.proc.kill('SIGHUP');
    await until('the first reload', () => readies() > r0 && reloads() === 1);
    expect(await isMounted(mntC)).toBe(true);
    expect(await portOpen(nfsPort)).toBe(false);
    expect(existsSync(join(run, 'b.sock'))).toBe(false);
    expect(existsSync(join(run, 'c.sock'))).toBe(true);
    expect(count('share started share="a"')).toBe(1);
    expect(count('share stopped share="b"')).toBe(1);
    expect((await readFile(join(mntA, 'docs', 'hi.txt'), 'utf8')).trim()).toBe('hello');
    expect(notify.messages.at(-1)?.fields.STATUS).toBe(`serving 2 shares: a (${mntA}), c (${mntC})`);
    expect(d.output()).toMatch(/configuration reloaded .*started=\["c"\] restarted=\[\] stopped=\["b"\]/);

    // SIGHUP 2: c changed → restarted; a untouched.
    await writeFile(file, config(shareA + shareC('30s')));
    const r1 = readies();
    d.proc.kill('SIGHUP');
    await until('the second reload', () => readies() > r1);
    await until('c restarted', () => count('share started share="c"') === 2);
    expect(count('share stopped share="c"')).toBe(1);
    expect(await isMounted(mntC)).toBe(true);
    expect(d.output()).toMatch(/configuration reloaded .*started=\[\] restarted=\["c"\] stopped=\[\]/);
    expect(count('share started share="a"')).toBe(1);
    expect(count('share stopped share="a"')).toBe(0);

    // SIGHUP 3: a bad file changes nothing.
    await writeFile(file, config(shareA + shareC('30s'), 'logLevel: debug\n'));
    const r2 = readies();
    d.proc.kill('SIGHUP');
    await until('the failed reload', () => readies() > r2);
    expect(notify.messages.at(-1)?.fields.STATUS).toMatch(
      /serving 2 shares: .*; last reload failed: .*bucketgate\.yaml:\d+:\d+: YAML: Map keys must be unique/,
    );
    expect(d.output()).toMatch(/error reload failed: the configuration in force is kept/);
    expect(await isMounted(mntA)).toBe(true);
    expect(await isMounted(mntC)).toBe(true);
    text = await scrape();
    expect(value(text, 'bucketgate_config_reloads_total', { result: 'ok' })).toBe(2);
    expect(value(text, 'bucketgate_config_reloads_total', { result: 'invalid' })).toBe(1);
    expect(value(text, 'bucketgate_share_info', { share: 'b' })).toBeUndefined();

    // SIGTERM: STOPPING=1, clean unmounts, exit 0.
    expect(await d.stop('SIGTERM')).toBe(0);
    const stopping = await notify.waitFor((m) => m.fields.STOPPING === '1', 5000);
    expect(stopping.pid).toBe(d.proc.pid);
    expect(await isMounted(mntA)).toBe(false);
    expect(await isMounted(mntC)).toBe(false);
    expect(d.output()).not.toContain('WRONG');
  });
});
