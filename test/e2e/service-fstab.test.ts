/**
 * End to end: the fstab helper `mount.fuse.bucketgate`, called exactly as mount(8) calls it
 * (`SOURCE TARGET -v -o OPTIONS`), then through util-linux mount itself (`mount -t
 * fuse.bucketgate`, `mount -T FSTAB TARGET`, `mount -a -T FSTAB`) with the helper installed as
 * /sbin/mount.fuse.bucketgate for the duration of the test (root only; skipped with a message
 * when /sbin/mount.fuse.bucketgate belongs to someone else). The helper returns once the mount
 * is up, leaves the daemon running detached, and reports the daemon's error with status 32.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, cli, isMounted, ROOT, sh } from '../helpers/daemon.js';
import { startS3rver, type S3rverHandle } from '../helpers/s3rver.js';

const pexec = promisify(execFile);
const HELPER = join(ROOT, 'bin', 'mount.fuse.bucketgate');
const SBIN_HELPER = '/sbin/mount.fuse.bucketgate';

let s3: S3rverHandle;
let work: string;
let installed = false;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  assertBuilt();
  s3 = await startS3rver({ buckets: ['test'] });
  work = await mkdtemp(join(tmpdir(), 'bg-svc-fstab-'));
  env = {
    ...process.env,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    NODE_OPTIONS: '',
  };
});

afterAll(async () => {
  // umount makes each detached daemon exit (it sees its mount go away).
  await sh(
    `for m in $(grep -o '${work}[^ ]*' /proc/mounts || true); do umount "$m" || umount -l "$m" || true; done`,
  ).catch(() => undefined);
  if (installed) await unlink(SBIN_HELPER).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 500));
  await s3?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await pexec(cmd, args, { env, timeout: 90_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof err.code === 'number' ? err.code : 1,
      stdout: err.stdout ?? '',
      stderr: err.stderr ?? '',
    };
  }
}

/** fstab options of a test share. */
function opts(name: string, extra = ''): string {
  return [
    '_netdev',
    `cache-dir=${join(work, 'cache', name)}`,
    `endpoint=${s3.endpoint}`,
    'path-style',
    `admin-dir=${join(work, 'run')}`,
    'refresh-interval=0',
    `log-file=${join(work, `${name}.log`)}`,
    ...(extra ? [extra] : []),
  ].join(',');
}

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

async function daemonGone(mnt: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const ps = await sh(`ps -eo args | grep -F 'bucketgate mount' | grep -F '${mnt}' | grep -v grep || true`);
    if (ps.trim() === '') return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the daemon of ${mnt} is still running after umount`);
}

describe('mount.fuse.bucketgate', () => {
  it('mounts when called the way mount(8) calls it, and returns only once the mount is up', async () => {
    const mnt = join(work, 'mnt1');
    await mkdir(mnt, { recursive: true });
    const metricsPort = await freePort();
    const r = await run(HELPER, [
      's3://test/fstab1',
      mnt,
      '-v',
      '-o',
      `rw,${opts('one', 'allow_other')},metrics=${metricsPort}`,
    ]);
    expect(r.stderr).toMatch(/mounted at/);
    expect(r.code).toBe(0);
    expect(await isMounted(mnt)).toBe(true); // already, when the helper returned
    expect(await readFile('/proc/self/mountinfo', 'utf8')).toMatch(
      new RegExp(`${mnt} .* - fuse\\.bucketgate bucketgate:test-fstab1 .*allow_other`),
    );
    await writeFile(join(mnt, 'hello.txt'), 'hello via fstab\n');
    expect(await readFile(join(mnt, 'hello.txt'), 'utf8')).toBe('hello via fstab\n');
    // The detached daemon answers admin commands by mountpoint.
    const st = await cli(['status', mnt, '--json', '--admin-dir', join(work, 'run')]);
    expect(st.code).toBe(0);
    expect(JSON.parse(st.stdout)).toMatchObject({ name: 'test-fstab1', mountpoint: mnt });
    // Helper options reach the daemon: metrics=PORT serves this mount's metrics on loopback.
    const m = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(m).toMatch(
      /^bucketgate_vfs_operations_total\{share="test-fstab1",protocol="fuse",op="write",result="ok"\} [1-9]/m,
    );
    expect(m).toMatch(/^bucketgate_share_info\{share="test-fstab1"/m);
    // Its log went to log-file=.
    expect(await readFile(join(work, 'one.log'), 'utf8')).toMatch(/share started share="test-fstab1"/);
    await sh(`umount '${mnt}'`);
    await daemonGone(mnt);
  });

  it('reports the daemon error with status 32, bad options with status 1, and checks only with -f', async () => {
    const mnt = join(work, 'mnt2');
    await mkdir(mnt, { recursive: true });
    const nob = await run(HELPER, ['s3://no-such-bucket', mnt, '-o', opts('two')]);
    expect(nob.code).toBe(32);
    expect(nob.stderr).toMatch(/mount\.fuse\.bucketgate: bucket "no-such-bucket" does not exist/);
    expect(await isMounted(mnt)).toBe(false);
    const bad = await run(HELPER, ['s3://test/x', mnt, '-o', `${opts('two')},cache-size=20X`]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/cache-size: "20X" is not a size/);
    const fake = await run(HELPER, ['s3://test/x', mnt, '-f', '-o', opts('two')]);
    expect(fake.code).toBe(0);
    expect(await isMounted(mnt)).toBe(false);
    const notdir = await run(HELPER, ['s3://test/x', join(work, 'nope'), '-o', opts('two')]);
    expect(notdir.code).toBe(32);
    expect(notdir.stderr).toMatch(/does not exist \(create it with mkdir -p\)/);
  });

  it('runs the Node that built the native modules (recorded by npm ci) when no node is on the PATH, else the usual one', async () => {
    // A copy of the helper in a tree of its own, whose build/node-path names a wrapper around
    // this Node (as the record of an nvm install would: on no PATH that mount(8) gives).
    const app = join(work, 'app');
    await mkdir(join(app, 'bin'), { recursive: true });
    await mkdir(join(app, 'build'), { recursive: true });
    await writeFile(join(app, 'bin', 'mount.fuse.bucketgate'), await readFile(HELPER), { mode: 0o755 });
    await symlink(join(ROOT, 'dist'), join(app, 'dist'));
    const marker = join(work, 'wrapper-used');
    const wrapper = join(work, 'recorded-node');
    await writeFile(wrapper, `#!/bin/sh\necho "$@" > '${marker}'\nexec '${process.execPath}' "$@"\n`, {
      mode: 0o755,
    });
    await writeFile(join(app, 'build', 'node-path'), `${wrapper}\n`);
    const mnt = join(work, 'mnt-node');
    await mkdir(mnt, { recursive: true });
    // A PATH with the tools the helper uses and no node.
    const tools = join(work, 'tools');
    await mkdir(tools, { recursive: true });
    for (const tool of ['dirname', 'readlink', 'cat'])
      await symlink((await pexec('/bin/sh', ['-c', `command -v ${tool}`])).stdout.trim(), join(tools, tool));
    const { BUCKETGATE_NODE: _, ...rest } = env;
    const noNodeEnv = { ...rest, PATH: tools };
    const args = [
      join(app, 'bin', 'mount.fuse.bucketgate'),
      's3://test/x',
      mnt,
      '-f',
      '-v',
      '-o',
      opts('node'),
    ];
    const r = await pexec('/bin/sh', args, { env: noNodeEnv, timeout: 90_000 });
    expect(r.stderr).toMatch(/would run .* mount s3:\/\/test\/x/);
    expect(await readFile(marker, 'utf8')).toMatch(/mount-helper\.js s3:\/\/test\/x/);
    // A record whose Node is gone (uninstalled): the helper falls back to /usr/bin/node and the
    // like instead of failing.
    await rm(marker);
    await writeFile(join(app, 'build', 'node-path'), `${join(work, 'no-such-node')}\n`);
    const fallback = await pexec('/bin/sh', args, { env: noNodeEnv, timeout: 90_000 }).catch(
      (e: { code?: number; stderr?: string }) => ({ stderr: `exit ${e.code}: ${e.stderr}` }),
    );
    if (existsSync('/usr/bin/node') || existsSync('/usr/local/bin/node')) {
      expect(fallback.stderr).toMatch(/would run .* mount s3:\/\/test\/x/);
    } else {
      expect(fallback.stderr).toMatch(/node \(>= 20\) not found/);
    }
    expect(existsSync(marker)).toBe(false);
  });

  it('works through util-linux mount: mount -t, mount -T FSTAB TARGET and mount -a', async (ctx) => {
    const existing = await lstat(SBIN_HELPER).then(
      () => true,
      () => false,
    );
    if (existing && (await readlink(SBIN_HELPER).catch(() => '')) !== HELPER) {
      ctx.skip(`${SBIN_HELPER} exists and is not this checkout's helper: not replacing it`);
    }
    if (!existing) {
      await symlink(HELPER, SBIN_HELPER);
      installed = true;
    }
    const mnt = join(work, 'mnt3');
    await mkdir(mnt, { recursive: true });

    const t = await run('mount', ['-t', 'fuse.bucketgate', 's3://test/fstab3', mnt, '-o', opts('three')]);
    expect(t.stderr).toBe('');
    expect(t.code).toBe(0);
    expect(await isMounted(mnt)).toBe(true);
    await writeFile(join(mnt, 'a.txt'), 'a');
    await sh(`umount '${mnt}'`);
    await daemonGone(mnt);

    const fstab = join(work, 'fstab');
    await writeFile(fstab, `# test fstab\ns3://test/fstab4 ${mnt} fuse.bucketgate ${opts('four')} 0 0\n`);
    const byTarget = await run('mount', ['-T', fstab, mnt]);
    expect(byTarget.stderr).toBe('');
    expect(byTarget.code).toBe(0);
    expect(await isMounted(mnt)).toBe(true);
    expect(await readFile('/proc/self/mountinfo', 'utf8')).toContain('bucketgate:test-fstab4');
    await sh(`umount '${mnt}'`);
    await daemonGone(mnt);

    const all = await run('mount', ['-a', '-T', fstab, '-t', 'fuse.bucketgate']);
    expect(all.code).toBe(0);
    expect(await isMounted(mnt)).toBe(true);
    // mount -a again: already mounted, nothing to do.
    expect((await run('mount', ['-a', '-T', fstab, '-t', 'fuse.bucketgate'])).code).toBe(0);
    await sh(`umount '${mnt}'`);
    await daemonGone(mnt);

    const failing = await run('mount', [
      '-t',
      'fuse.bucketgate',
      's3://no-such-bucket',
      mnt,
      '-o',
      opts('five'),
    ]);
    expect(failing.code).toBe(32);
    expect(failing.stderr).toMatch(/bucket "no-such-bucket" does not exist/);
  });
});
