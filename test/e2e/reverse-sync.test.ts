/**
 * Reverse sync with real processes: changes made through the S3 API (another client) and through
 * a second bucketgate reach a mount on demand (`bucketgate refresh`), after the TTL, and on the
 * refresh interval; conflicts keep both versions; a remote delete of an open file does not break
 * the reader.
 */
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, sh, startDaemon, type Daemon } from '../helpers/daemon.js';
import { e2eEnv } from '../helpers/e2e-env.js';

const E = e2eEnv('bg-rsync-');

const admin = (): string => join(E.work, 'run');

async function mount(url: string, id: string, extra: string[]): Promise<{ d: Daemon; mnt: string }> {
  const mnt = join(E.work, `mnt-${id}`);
  await mkdir(mnt, { recursive: true });
  const d = await startDaemon(
    [
      'mount',
      url,
      mnt,
      '--name',
      id,
      '--endpoint',
      E.s3.endpoint,
      '--path-style',
      '--cache-dir',
      join(E.work, `cache-${id}`),
      '--admin-dir',
      admin(),
      '--upload-delay',
      '100ms',
      '--log-level',
      'warn',
      '--attr-timeout',
      '0s',
      ...extra,
    ],
    E.env,
    mnt,
  );
  E.daemons.push(d);
  return { d, mnt };
}

async function put(key: string, body: string, metadata?: Record<string, string>): Promise<void> {
  await E.client.send(
    new PutObjectCommand({
      Bucket: 'test',
      Key: key,
      Body: body,
      ...(metadata ? { Metadata: metadata } : {}),
    }),
  );
}

async function until(fn: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

describe('reverse sync', () => {
  it('objects put, overwritten and deleted through S3 appear, change and vanish after `bucketgate refresh`', async () => {
    await put('rs1/a.txt', 'first');
    const { d, mnt } = await mount('s3://test/rs1', 'rs1', ['--dir-ttl', '0', '--refresh-interval', '0']);
    expect(await sh(`ls '${mnt}'`)).toBe('a.txt\n');
    await put('rs1/b.txt', 'new object', {
      'file-permissions': '0100600',
      'file-owner': '42',
      'file-group': '43',
      'file-mtime': '1500000000000000000ns',
    });
    await put('rs1/a.txt', 'first, rewritten');
    expect(await sh(`ls '${mnt}'`)).toBe('a.txt\n'); // cached listing, TTL off: no network
    const r = await cli(['refresh', mnt, '--recursive', '--admin-dir', admin()]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/1 added, 1 changed, 0 removed, 0 conflicts/);
    expect(await sh(`ls '${mnt}'`)).toBe('a.txt\nb.txt\n');
    expect(await sh(`cat '${mnt}/a.txt'`)).toBe('first, rewritten');
    expect(await sh(`stat -c '%a %u %g %Y %s' '${mnt}/b.txt'`)).toBe('600 42 43 1500000000 10\n');
    await E.client.send(new DeleteObjectCommand({ Bucket: 'test', Key: 'rs1/a.txt' }));
    const r2 = await cli(['refresh', 'rs1', '--admin-dir', admin()]);
    expect(r2.stdout).toMatch(/0 added, 0 changed, 1 removed/);
    expect(await sh(`ls '${mnt}'`)).toBe('b.txt\n');
    expect((await cli(['refresh', mnt, 'no/such/dir', '--admin-dir', admin()])).code).toBe(1);
    expect(await d.stop()).toBe(0);
  });

  it('after the directory TTL, and on the refresh interval', async () => {
    const ttl = await mount('s3://test/rs2', 'rs2', ['--dir-ttl', '1s', '--refresh-interval', '0']);
    const iv = await mount('s3://test/rs3', 'rs3', ['--dir-ttl', '0', '--refresh-interval', '1s']);
    expect(await sh(`ls -A '${ttl.mnt}' '${iv.mnt}'`)).not.toContain('.txt');
    await put('rs2/late.txt', 'ttl');
    await put('rs3/late.txt', 'interval');
    expect(await until(async () => (await sh(`ls '${ttl.mnt}'`)).includes('late.txt'), 5000)).toBe(true);
    // With --dir-ttl 0 an `ls` never re-lists: only the interval refresh can make the file appear.
    expect(await until(async () => (await sh(`ls '${iv.mnt}'`)).includes('late.txt'), 6000)).toBe(true);
    const st = JSON.parse((await cli(['status', 'rs3', '--json', '--admin-dir', admin()])).stdout) as {
      lastRefresh: { at: string } | null;
    };
    expect(st.lastRefresh?.at).toBeTruthy();
    expect(await sh(`cat '${iv.mnt}/late.txt'`)).toBe('interval');
    await ttl.d.stop();
    await iv.d.stop();
  });

  it('two gateways on one bucket: a tree written through one appears through the other with the same attributes', async () => {
    const x = await mount('s3://test/two', 'gx', ['--dir-ttl', '0', '--refresh-interval', '0']);
    const y = await mount('s3://test/two', 'gy', ['--dir-ttl', '0', '--refresh-interval', '0']);
    expect(await sh(`ls -A '${y.mnt}'`)).toBe('');
    await sh(
      `cd '${x.mnt}' && mkdir -p d/e && echo one > d/one && head -c 200000 /dev/urandom > d/e/bin && ln -s d/one link && ` +
        `chmod 640 d/one && chown 7:8 d/e/bin && touch -d '2020-02-02 02:02:02.5' d/one && mkdir empty && chmod 700 empty`,
    );
    expect((await cli(['flush', x.mnt, '--admin-dir', admin()])).code).toBe(0);
    expect((await cli(['refresh', y.mnt, '--recursive', '--admin-dir', admin()])).code).toBe(0);
    const snap = (m: string): Promise<string> =>
      sh(
        `cd '${m}' && find . -mindepth 1 -printf '%p|%y|%s|%m|%U|%G|%T@|%l\\n' | sort && find . -type f -print0 | sort -z | xargs -0 md5sum`,
      );
    expect(await snap(y.mnt)).toBe(await snap(x.mnt));
    await x.d.stop();
    await y.d.stop();
  });

  it('a remote change of a file with local unsynced changes: the local version keeps the name, the remote one is kept as a sibling', async () => {
    await put('cf/c.txt', 'base');
    const { d, mnt } = await mount('s3://test/cf', 'cf', [
      '--dir-ttl',
      '0',
      '--refresh-interval',
      '0',
      '--upload-delay',
      '1h',
    ]);
    expect(await sh(`cat '${mnt}/c.txt'`)).toBe('base');
    await sh(`echo local > '${mnt}/c.txt'`); // dirty, upload delayed by an hour
    await put('cf/c.txt', 'remote edit');
    const r = await cli(['refresh', mnt, '--admin-dir', admin()]);
    expect(r.stdout).toMatch(/1 conflicts/);
    const names = (await sh(`ls '${mnt}'`)).trim().split('\n');
    expect(names).toHaveLength(2);
    const sibling = names.find((n) => n.startsWith('c.txt.conflict-'))!;
    expect(await sh(`cat '${mnt}/${sibling}'`)).toBe('remote edit');
    expect(await sh(`cat '${mnt}/c.txt'`)).toBe('local\n');
    expect((await cli(['flush', mnt, '--admin-dir', admin()])).code).toBe(0);
    // The bucket, seen through a fresh gateway, holds both versions.
    const other = await mount('s3://test/cf', 'cf2', ['--dir-ttl', '0', '--refresh-interval', '0']);
    expect(await sh(`cat '${other.mnt}/c.txt'`)).toBe('local\n');
    expect(await sh(`cat '${other.mnt}/${sibling}'`)).toBe('remote edit');
    await other.d.stop();
    await d.stop();
  });

  it('a remote delete of a file open locally: the name goes, the open reader keeps its cached data', async () => {
    const body = 'x'.repeat(300_000);
    await put('od/open.txt', body);
    const { d, mnt } = await mount('s3://test/od', 'od', ['--dir-ttl', '0', '--refresh-interval', '0']);
    await sh(`cat '${mnt}/open.txt' > /dev/null`); // cached
    // A reader that opens the file, reads a little, waits for a line on stdin, then reads the rest.
    const reader = spawn(
      'python3',
      [
        '-c',
        `import sys\nf=open(${JSON.stringify(join(mnt, 'open.txt'))},'rb')\na=f.read(1000)\nprint('ready',flush=True)\nsys.stdin.readline()\nb=f.read()\nprint(len(a)+len(b),flush=True)`,
      ],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    );
    let out = '';
    reader.stdout.on('data', (c: Buffer) => (out += c.toString()));
    expect(await until(async () => out.includes('ready'), 5000)).toBe(true);
    await E.client.send(new DeleteObjectCommand({ Bucket: 'test', Key: 'od/open.txt' }));
    const r = await cli(['refresh', mnt, '--admin-dir', admin()]);
    expect(r.stdout).toMatch(/1 removed/);
    expect(await sh(`ls -A '${mnt}'`)).toBe('');
    reader.stdin.write('\n');
    await new Promise((res) => reader.once('exit', res));
    expect(out).toContain('300000');
    await d.stop();
  });
});
