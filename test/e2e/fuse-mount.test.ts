/**
 * End to end: the real `bucketgate mount` over s3rver (real HTTP), worked with ordinary tools,
 * checked in the bucket through the S3 API, then unmounted and remounted on an EMPTY cache
 * directory: the tree must come back identical (names, sizes, contents, modes, owners, mtimes,
 * symlinks, empty directories). Both modes.
 */
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, isMounted, ROOT, sh, startDaemon, type Daemon } from '../helpers/daemon.js';
import { e2eEnv } from '../helpers/e2e-env.js';

const E = e2eEnv('bg-e2e-');

async function mount(url: string, mnt: string, cacheDir: string, extra: string[]): Promise<Daemon> {
  await mkdir(mnt, { recursive: true });
  const d = await startDaemon(
    [
      'mount',
      url,
      mnt,
      '--endpoint',
      E.s3.endpoint,
      '--path-style',
      '--cache-dir',
      cacheDir,
      '--admin-dir',
      join(E.work, 'run'),
      '--refresh-interval',
      '0',
      '--log-level',
      'warn',
      ...extra,
    ],
    E.env,
    mnt,
  );
  E.daemons.push(d);
  return d;
}

async function listKeys(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const r = await E.client.send(
      new ListObjectsV2Command({ Bucket: 'test', Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of r.Contents ?? []) keys.push(o.Key!);
    token = r.NextContinuationToken;
  } while (token);
  return keys.sort();
}

/** Everything a user would compare: type, size, mode, owner, group, mtime (ns), link target, md5. */
async function snapshot(mnt: string): Promise<string> {
  return sh(
    `cd '${mnt}' && find . -mindepth 1 -printf '%p|%y|%s|%m|%U|%G|%T@|%l\\n' | sort && ` +
      `find . -type f -print0 | sort -z | xargs -0 -r md5sum`,
  );
}

const WORKLOAD = String.raw`
set -euo pipefail
cd "$MNT"
echo hello > hello.txt
mkdir -p a/b/c
cp /etc/os-release a/b/c/os-release
head -c 3000000 /dev/urandom > big.bin
dd if=/dev/urandom of=a/dd.bin bs=64k count=40 status=none
dd if=/dev/zero of=a/dd.bin bs=1 count=5 seek=100 conv=notrunc status=none
dd if=/dev/urandom of=sparse.bin bs=1k count=1 seek=3000 status=none
truncate -s 12345 a/dd.bin
echo more >> hello.txt
ln -s a/b/c/os-release link
chmod 600 hello.txt
chmod 750 a
chown 1234:5678 a/b/c/os-release
touch -d '2001-02-03 04:05:06.123456789' big.bin
touch -h -d '2002-01-01 00:00:00' link
mkdir empty
mkdir -p tmp/x/y && touch tmp/x/y/z && rm -r tmp
mv a/b a/moved
mv hello.txt hello2.txt
# a small tree through tar
SRC=$(mktemp -d)
for i in $(seq 1 12); do mkdir -p "$SRC/d$((i % 4))/e$((i % 3))"; head -c $((i * 1000)) /dev/urandom > "$SRC/d$((i % 4))/e$((i % 3))/f$i"; done
tar cf "$SRC.tar" -C "$SRC" .
mkdir untar && tar xf "$SRC.tar" -C untar
diff -r "$SRC" untar
rm -rf "$SRC" "$SRC.tar"
# several concurrent writers
for i in 1 2 3 4 5 6 7 8; do (head -c $((100000 + i)) /dev/urandom > "par$i.bin") & done
wait
cat a/moved/c/os-release > /dev/null
cmp <(head -c 1000 big.bin) <(dd if=big.bin bs=1000 count=1 status=none)
`;

describe.each(['write-through', 'cache'] as const)('FUSE mount end to end (%s mode)', (mode) => {
  it('works the mount with ordinary tools, and a remount on an empty cache shows the same tree', async () => {
    const prefix = `${mode}/`;
    const mnt = join(E.work, `mnt-${mode}`);
    const d = await mount(`s3://test/${mode}`, mnt, join(E.work, `cache-${mode}-1`), [
      '--mode',
      mode,
      '--upload-delay',
      '100ms',
    ]);
    await sh(WORKLOAD, { env: { MNT: mnt } });

    // POSIX errors, as a program sees them
    const errs = await sh(
      `cd '${mnt}'; ` +
        `mkdir "$(printf 'n%.0s' $(seq 1 256))" 2>&1 || true; ` +
        `touch $'\\xff' 2>&1 || true; ` +
        `rmdir a 2>&1 || true; ` +
        `ln big.bin hard 2>&1 || true; ` +
        `cat missing 2>&1 || true`,
    );
    expect(errs).toMatch(/File name too long/);
    expect(errs).toMatch(/Invalid or incomplete multibyte or wide character/);
    expect(errs).toMatch(/Directory not empty/);
    expect(errs).toMatch(/Operation not permitted/);
    expect(errs).toMatch(/No such file or directory/);

    const ls = await sh(`ls -l '${mnt}'`);
    expect(ls).toMatch(/-rw------- 1 root root +11 .* hello2.txt/);
    expect(ls).toMatch(/lrwxrwxrwx .* link -> a\/b\/c\/os-release/);
    const before = await snapshot(mnt);
    expect(before).toContain('./a/moved/c/os-release|f|');
    expect(before).toMatch(/\.\/a\/moved\/c\/os-release\|f\|\d+\|644\|1234\|5678\|/);
    expect(before).toContain('./big.bin|f|3000000|644|0|0|981173106.1234567890|');
    expect(before).toContain('./empty|d|');

    if (mode === 'cache') {
      const f = await cli(['flush', mnt, '--admin-dir', join(E.work, 'run'), '--timeout', '60s']);
      expect(f.stderr + f.stdout).toContain('all data is in the bucket');
      expect(f.code).toBe(0);
      const st = await cli(['status', mnt, '--json', '--admin-dir', join(E.work, 'run')]);
      expect(st.code).toBe(0);
      const status = JSON.parse(st.stdout) as {
        uploads: { queued: number };
        cache: { dirtyFiles: number };
        daemon: { version: string; node: string; pid: number; startedAt: string };
      };
      expect(status.uploads.queued).toBe(0);
      // Which daemon serves the share (after an upgrade: is it still the old code?).
      const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
      expect(status.daemon).toMatchObject({ version: pkg.version, node: process.version });
      expect(status.daemon.pid).toBe(d.proc.pid);
      expect(Date.parse(status.daemon.startedAt)).toBeLessThanOrEqual(Date.now());
    }

    // The bucket, through the S3 API
    const keys = await listKeys(prefix);
    expect(keys).toContain(`${prefix}hello2.txt`);
    expect(keys).toContain(`${prefix}a/moved/c/os-release`);
    expect(keys).toContain(`${prefix}empty/`);
    expect(keys).toContain(`${prefix}a/`);
    expect(
      keys.some(
        (k) => k.startsWith(`${prefix}a/b/`) || k.startsWith(`${prefix}tmp`) || k.endsWith('hello.txt'),
      ),
    ).toBe(false);
    const hello = await E.client.send(new GetObjectCommand({ Bucket: 'test', Key: `${prefix}hello2.txt` }));
    expect(await hello.Body!.transformToString()).toBe('hello\nmore\n');
    expect(hello.Metadata).toMatchObject({
      'file-permissions': '0100600',
      'file-owner': '0',
      'file-group': '0',
      mode: String(0o100600),
      uid: '0',
      gid: '0',
    });
    const osr = await E.client.send(
      new HeadObjectCommand({ Bucket: 'test', Key: `${prefix}a/moved/c/os-release` }),
    );
    expect(osr.Metadata).toMatchObject({
      'file-owner': '1234',
      'file-group': '5678',
      uid: '1234',
      gid: '5678',
    });
    const big = await E.client.send(new HeadObjectCommand({ Bucket: 'test', Key: `${prefix}big.bin` }));
    expect(big.Metadata?.['file-mtime']).toBe('981173106123456789ns');
    expect(big.Metadata?.['mtime']).toBe('981173106.123456789');
    const marker = await E.client.send(new HeadObjectCommand({ Bucket: 'test', Key: `${prefix}empty/` }));
    expect(marker.ContentType).toBe('application/x-directory');
    expect(marker.ContentLength).toBe(0);
    const link = await E.client.send(new GetObjectCommand({ Bucket: 'test', Key: `${prefix}link` }));
    expect(await link.Body!.transformToString()).toBe('a/b/c/os-release');
    expect(link.Metadata?.['file-permissions']).toBe('0120777');

    expect(await d.stop('SIGINT')).toBe(0);
    expect(await isMounted(mnt)).toBe(false);

    // A new gateway on an empty cache directory sees the same tree.
    const d2 = await mount(`s3://test/${mode}`, mnt, join(E.work, `cache-${mode}-2`), ['--mode', mode]);
    const after = await snapshot(mnt);
    expect(after).toBe(before);
    expect(await d2.stop('SIGTERM')).toBe(0);
  });
});

describe('mount errors are clear', () => {
  it('a missing bucket, bad credentials and a mountpoint in use', async () => {
    const mnt = join(E.work, 'mnt-err');
    await mkdir(mnt, { recursive: true });
    const base = [
      '--endpoint',
      E.s3.endpoint,
      '--path-style',
      '--cache-dir',
      join(E.work, 'cache-err'),
      '--admin-dir',
      join(E.work, 'run'),
    ];
    const nob = await cli(['mount', 's3://no-such-bucket', mnt, ...base], E.env);
    expect(nob.code).toBe(1);
    expect(nob.stderr).toMatch(/bucket "no-such-bucket" does not exist/);
    const bad = await cli(['mount', 's3://test', mnt, ...base], {
      AWS_ACCESS_KEY_ID: 'WRONG',
      AWS_SECRET_ACCESS_KEY: 'WRONG',
    });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/denied: check the credentials/);
    const usage = await cli(['mount', 's3://test'], E.env);
    expect(usage.code).toBe(2);
    const d = await mount('s3://test/inuse', mnt, join(E.work, 'cache-inuse'), []);
    const twice = await cli(['mount', 's3://test/other', mnt, ...base], E.env);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/already in use/);
    expect(await d.stop()).toBe(0);
  });
});

describe('page cache', () => {
  it('a file read once right after its directory was first listed is reread from the page cache', async () => {
    // Resident bytes of the file after one cold `cat`, on a fresh mount whose path walk to it
    // lists data/ for the first time (no ls or stat first).
    const residentAfterFirstRead = async (attempt: number): Promise<number> => {
      const mnt = join(E.work, `mnt-pc${attempt}`);
      await E.client.send(
        new PutObjectCommand({
          Bucket: 'test',
          Key: `pc${attempt}/data/f.bin`,
          Body: Buffer.alloc(8 << 20, 9),
        }),
      );
      const d = await mount(`s3://test/pc${attempt}`, mnt, join(E.work, `cache-pc${attempt}`), []);
      await sh(`sync; echo 3 > /proc/sys/vm/drop_caches; cat '${mnt}/data/f.bin' > /dev/null`);
      // fincore -nb: resident bytes, pages, size, file.
      const [resident, , size] = (await sh(`fincore -nb '${mnt}/data/f.bin'`)).trim().split(/\s+/);
      expect(size).toBe(String(8 << 20));
      expect(await d.stop()).toBe(0);
      return Number(resident);
    };
    // The bug this guards against dropped the whole file (0 bytes resident). Virtual machines may
    // also reclaim a few clean pages on their own: the test VM runs DAMON with a `pageout` scheme
    // on unmapped file pages (a kernel trace of a run that missed 9 of 2048 pages showed kdamond
    // removing them, in about 1 of 30 runs under load). Such a scattered loss, and only that, gets
    // one more attempt on a fresh mount; every page must be resident in one of the two.
    let resident = await residentAfterFirstRead(1);
    if (resident < 8 << 20 && resident >= (8 << 20) * 0.9) resident = await residentAfterFirstRead(2);
    expect(resident).toBe(8 << 20);
  });
});

describe('random reads', () => {
  it('random 4 KiB reads of a cold file read the right bytes, and enough misses bring the whole file', async () => {
    // 24 MiB = 3 GETs of 8 MiB: the whole-file fetch starts at the 4th random miss.
    const data = Buffer.alloc(24 << 20);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    const src = join(E.work, 'rand-src.bin');
    await writeFile(src, data);
    await E.client.send(new PutObjectCommand({ Bucket: 'test', Key: 'rand/r.bin', Body: data }));
    const mnt = join(E.work, 'mnt-rand');
    const cache = join(E.work, 'cache-rand');
    const d = await mount('s3://test/rand', mnt, cache, []);
    await sh('sync; echo 3 > /proc/sys/vm/drop_caches');
    // 40 reads at scattered 4 KiB offsets, each compared with the source; then every byte.
    const prog = String.raw`
const fs = require('fs');
const [a, b] = [fs.openSync(process.argv[1], 'r'), fs.openSync(process.argv[2], 'r')];
const x = Buffer.alloc(4096), y = Buffer.alloc(4096);
const blocks = fs.fstatSync(b).size / 4096;
for (let i = 0; i < 40; i++) {
  const off = ((i * 2971 + 13) % blocks) * 4096;
  if (fs.readSync(a, x, 0, 4096, off) !== 4096) throw new Error('short read at ' + off);
  fs.readSync(b, y, 0, 4096, off);
  if (!x.equals(y)) throw new Error('wrong bytes at ' + off);
}
console.log('ok');`;
    expect((await sh(`node -e "$P" '${mnt}/r.bin' '${src}'`, { env: { P: prog } })).trim()).toBe('ok');
    // The rest of the file arrives in the background: the cache file fills up to its size.
    const cached = async (): Promise<number> =>
      Number((await sh(`du -s --block-size=1 '${cache}/data' | cut -f1`)).trim());
    for (let i = 0; i < 100 && (await cached()) < data.length; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(await cached()).toBeGreaterThanOrEqual(data.length);
    await sh(`cmp '${mnt}/r.bin' '${src}'`);
    expect(await d.stop()).toBe(0);
  });
});

describe('bucketgate backup', () => {
  it('copies the metadata database of a running share (the daemon holds it exclusively)', async () => {
    const mnt = join(E.work, 'mnt-backup');
    const run = join(E.work, 'run');
    const d = await mount('s3://test/backup', mnt, join(E.work, 'cache-backup'), ['--upload-delay', '1h']);
    await sh(`cd '${mnt}' && mkdir -p d/e && for i in 1 2 3; do echo $i > d/e/f$i; done`);
    // Another process cannot read the live database: the daemon keeps its locks.
    const direct = await sh(
      `node -e "const D=require('better-sqlite3');try{new D('${join(E.work, 'cache-backup', 'meta.db')}',{readonly:true}).prepare('select count(*) c from nodes').get();console.log('read')}catch(e){console.log(e.code)}"`,
      { cwd: process.cwd() },
    );
    expect(direct.trim()).toBe('SQLITE_BUSY');
    const dest = join(E.work, 'backup-meta.db');
    const r = await cli(['backup', mnt, dest, '--admin-dir', run]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(dest);
    // The copy opens on its own and holds the tree and the upload journal (nothing uploaded yet).
    const names = await sh(
      `node -e "const D=require('better-sqlite3');const db=new D('${dest}',{readonly:true});` +
        `console.log(db.prepare('select name from edges order by name').all().map(r=>r.name).join(','));` +
        `console.log(db.prepare('select count(*) c from uploads').get().c)"`,
      { cwd: process.cwd() },
    );
    expect(names.trim().split('\n')).toEqual(['d,e,f1,f2,f3', '3']);
    // A destination that cannot be written: a clear error, nothing left behind, the share runs on.
    const bad = await cli(['backup', mnt, join(E.work, 'no-such-dir', 'x.db'), '--admin-dir', run]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/backup of the metadata database to .*no-such-dir.* failed/);
    expect(await sh(`cat '${mnt}/d/e/f2'`)).toBe('2\n');
    expect(await d.stop()).toBe(0);
  });
});

describe('restart right after kill -9', () => {
  it('detaches the dead mount even while the kernel still answers stat of its root from cache', async () => {
    const mnt = join(E.work, 'mnt-kill');
    const cache = join(E.work, 'cache-kill');
    // A long attribute timeout keeps the root's attributes cached well past the kill.
    const d = await mount('s3://test/kill', mnt, cache, ['--mode', 'cache', '--attr-timeout', '60s']);
    await sh(`echo kept > '${mnt}/f.txt' && stat '${mnt}' > /dev/null`);
    d.proc.kill('SIGKILL');
    await d.exited;
    // The dead mount's root still stats fine (cached), while anything reaching the daemon fails.
    await sh(`stat '${mnt}' > /dev/null`);
    expect(await sh(`stat -f '${mnt}' 2>&1 || true`)).toContain('Transport endpoint is not connected');
    const again = await mount('s3://test/kill', mnt, cache, ['--mode', 'cache']);
    expect(again.output()).toContain('detached a stale bucketgate mount');
    expect(await sh(`cat '${mnt}/f.txt'`)).toBe('kept\n');
    expect(await again.stop()).toBe(0);
  });
});
