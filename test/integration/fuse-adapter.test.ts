/**
 * FUSE binding + adapter over an in-memory VFS, checked with real syscalls from CHILD processes
 * (coreutils, python3, setpriv). Never touch a mount served by this process synchronously from
 * this process: the JS thread answers the requests, so only async child processes are used.
 *
 * Needs root, /dev/fuse and fusermount (Debian: fuse, libfuse2, libfuse-dev for the build).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FuseAdapter, type FuseAdapterOptions } from '../../src/adapters/fuse/adapter.js';
import { loadFuseAddon } from '../../src/adapters/fuse/native.js';
import { ERRNO } from '../../src/core/errors.js';
import { O_APPEND, O_CREAT, O_EXCL, O_TRUNC, O_WRONLY, ROOT_CRED, ROOT_INO } from '../../src/core/types.js';
import type { Logger } from '../../src/log/index.js';
import { MemVfs } from '../helpers/mem-vfs.js';

const REPO = resolve(import.meta.dirname, '..', '..');
const ADDON = join(REPO, 'build', 'Release', 'bucketgate_fuse.node');
// Skipped only where FUSE cannot work at all; a missing addon build fails loudly instead.
const canRun = process.getuid?.() === 0 && existsSync('/dev/fuse');

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a bash command in a child process (async: the event loop keeps serving the mount). */
function sh(cmd: string, timeoutMs = 30_000): Promise<RunResult> {
  return new Promise((res) => {
    execFile(
      'bash',
      ['-c', cmd],
      { env: { ...process.env, TZ: 'UTC', LC_ALL: 'C' }, timeout: timeoutMs, maxBuffer: 16 << 20 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        res({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

async function ok(cmd: string): Promise<string> {
  const r = await sh(cmd);
  if (r.code !== 0) throw new Error(`command failed (${r.code}): ${cmd}\n${r.stderr}`);
  return r.stdout;
}

function q(p: string): string {
  return `'${p.replace(/'/g, `'\\''`)}'`;
}

interface LogLine {
  level: string;
  msg: string;
  meta?: Record<string, unknown>;
}

function testLogger(lines: LogLine[]): Logger {
  const mk = (level: string) => (msg: string, meta?: Record<string, unknown>) => {
    lines.push({ level, msg, meta });
  };
  const l: Logger = {
    error: mk('error'),
    warn: mk('warn'),
    info: mk('info'),
    debug: mk('debug'),
    child: () => l,
  };
  return l;
}

/** Poll until `cond` holds (releases reach the VFS asynchronously after close). */
async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return cond();
}

async function mountedAt(path: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((line) => line.split(' ')[4] === path);
}

const OPTS: FuseAdapterOptions = { fsName: 'test', allowOther: true, attrTimeoutSec: 0, entryTimeoutSec: 0 };

describe.runIf(canRun)('FUSE adapter over a memory VFS', () => {
  let base: string;
  let mnt: string;
  let vfs: MemVfs;
  let adapter: FuseAdapter;
  const logs: LogLine[] = [];
  const adapters: FuseAdapter[] = [];
  const children: ChildProcess[] = [];
  let slow: Promise<RunResult>;
  let slowStarted = 0;

  function newAdapter(mountpoint: string, v: MemVfs, opts: Partial<FuseAdapterOptions> = {}): FuseAdapter {
    const a = new FuseAdapter({
      vfs: v,
      mountpoint,
      options: { ...OPTS, ...opts },
      logger: testLogger(logs),
    });
    adapters.push(a);
    return a;
  }

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'bg-fuse-'));
    await chmod(base, 0o755); // setpriv'd children must reach the mount point
    mnt = join(base, 'mnt');
    await mkdir(mnt);
    vfs = new MemVfs({ maxReaddirPage: 100 });
    // A lookup that takes 20 s, in its own directory (a lookup holds its parent's lock shared,
    // which would hold up creates in that directory for as long).
    const dir = await vfs.mkdir(ROOT_CRED, ROOT_INO, 'slowdir', 0o755);
    const { fh } = await vfs.create(ROOT_CRED, dir.ino, 'slow', 0o644, O_CREAT | O_WRONLY);
    await vfs.write(fh, 0, Buffer.from('12345'));
    await vfs.release(fh);
    vfs.slowLookups.set('slow', 20_000);
    await vfs.mkdir(ROOT_CRED, ROOT_INO, 'shared', 0o777);
    adapter = newAdapter(mnt, vfs);
    await adapter.mount();
    slowStarted = Date.now();
    slow = sh(`stat -c %s ${q(join(mnt, 'slowdir', 'slow'))}`, 60_000);
  });

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    for (const a of adapters) {
      try {
        await Promise.race([a.unmount(), new Promise((r) => setTimeout(r, 10_000))]);
      } catch {
        // reported by the tests themselves
      }
    }
    // Whatever is still mounted below base (a failed test): detach it before deleting anything.
    if (base) {
      const info = await readFile('/proc/self/mountinfo', 'utf8');
      for (const line of info.split('\n')) {
        const mp = line.split(' ')[4];
        if (mp?.startsWith(base)) await sh(`umount -l ${q(mp)}`);
      }
      await rm(base, { recursive: true, force: true });
    }
  });

  it('mounts with the expected source, type and options', async () => {
    const out = await ok(`findmnt -n -o SOURCE,FSTYPE,OPTIONS ${q(mnt)}`);
    expect(out).toMatch(/^bucketgate:test\s+fuse\.bucketgate\s+/);
    expect(out).toContain('allow_other');
    expect(out).toContain('max_read=1048576');
    expect(out).not.toContain('default_permissions');
    // The binding grants 1 MiB requests (FUSE_MAX_PAGES) on kernels that offer protocol 7.28+.
    const big = (adapter.connection?.protoMinor ?? 0) >= 28;
    expect(adapter.connection?.maxPages).toBe(big ? 256 : 0);
    expect(adapter.connection?.maxWrite).toBe(big ? 1 << 20 : 131072);
    expect(adapter.mounted).toBe(true);
    // The slow lookup started in beforeAll is in flight while other requests are served (wait
    // until the stat process it runs in has reached the daemon: spawning it takes a moment).
    expect(await until(() => vfs.slowLookupsInFlight > 0)).toBe(true);
    expect(adapter.pendingRequests).toBeGreaterThanOrEqual(1);
  });

  it('creates, writes, reads and appends', async () => {
    const f = join(mnt, 'hello.txt');
    await ok(`echo hello > ${q(f)} && echo world >> ${q(f)}`);
    expect(await ok(`cat ${q(f)}`)).toBe('hello\nworld\n');
    const src = join(base, 'random.bin');
    await ok(`head -c 3000000 /dev/urandom > ${q(src)} && cp ${q(src)} ${q(join(mnt, 'random.bin'))}`);
    await ok(`cmp ${q(src)} ${q(join(mnt, 'random.bin'))}`);
    expect(vfs.statPath('random.bin').size).toBe(3_000_000);
    // partial overwrite in the middle, without truncation
    await ok(`printf XY | dd of=${q(f)} bs=1 seek=2 conv=notrunc status=none`);
    expect(await ok(`cat ${q(f)}`)).toBe('heXYo\nworld\n');
  });

  it('receives a 1 MiB write(2) as one WRITE where the kernel allows it, else as 128 KiB ones', async () => {
    vfs.writeSizes.length = 0;
    const src = join(base, 'dd-src.bin');
    await ok(`head -c ${9 << 20} /dev/urandom > ${q(src)}`);
    await ok(`dd if=${q(src)} of=${q(join(mnt, 'dd.bin'))} bs=1M status=none`);
    expect(vfs.statPath('dd.bin').size).toBe(9 << 20);
    await ok(`cmp ${q(src)} ${q(join(mnt, 'dd.bin'))}`);
    const max = adapter.connection?.maxWrite ?? 0;
    expect(Math.max(...vfs.writeSizes)).toBe(max);
    expect(vfs.writeSizes.filter((n) => n === max).length).toBe((9 << 20) / max);
    expect(await ok(`stat -c %o ${q(join(mnt, 'dd.bin'))}`)).toBe(`${1 << 20}\n`);
    // 24 writers at once, each with its own bytes: more WRITEs in flight than the binding's
    // write pool has slots (16; the rest take a buffer of their own).
    const files = Array.from({ length: 24 }, (_, i) => join(mnt, `par${i}.bin`));
    await ok(files.map((_f, i) => `head -c ${3 << 20} /dev/urandom > ${q(`${src}.${i}`)}`).join(' && '));
    await ok(
      files.map((f, i) => `dd if=${q(`${src}.${i}`)} of=${q(f)} bs=1M status=none &`).join(' ') + ' wait',
    );
    for (const [i, f] of files.entries()) await ok(`cmp ${q(`${src}.${i}`)} ${q(f)}`);
  });

  it('raises the kernel read-ahead so that sequential reads arrive as 1 MiB READs', async () => {
    if ((adapter.connection?.maxPages ?? 0) === 0) return; // kernel without FUSE_MAX_PAGES
    const dev = (await ok(`mountpoint -d ${q(mnt)}`)).trim();
    expect(await ok(`cat /sys/class/bdi/${dev}/read_ahead_kb`)).toBe('1024\n');
    const f = join(mnt, 'dd.bin');
    // Drop the file's pages (it was written through the page cache), then read it in order.
    await ok(`dd if=${q(f)} iflag=nocache count=0 status=none`);
    vfs.readSizes.length = 0;
    await ok(`cmp ${q(join(base, 'dd-src.bin'))} ${q(f)}`);
    expect(Math.max(...vfs.readSizes)).toBe(1 << 20);
  });

  it('keeps explicit times with nanosecond precision, atime and mtime separately', async () => {
    const f = join(mnt, 'times');
    await ok(`touch -d '2001-02-03 04:05:06.123456789' ${q(f)}`);
    expect(await ok(`stat -c '%x|%y' ${q(f)}`)).toBe(
      '2001-02-03 04:05:06.123456789 +0000|2001-02-03 04:05:06.123456789 +0000\n',
    );
    const t0 = BigInt(Date.UTC(2001, 1, 3, 4, 5, 6)) * 1_000_000n + 123_456_789n;
    expect(vfs.statPath('times').mtimeNs).toBe(t0);
    await ok(`touch -a -d '2010-01-01 00:00:00.5' ${q(f)}`);
    expect(await ok(`stat -c '%x|%y' ${q(f)}`)).toBe(
      '2010-01-01 00:00:00.500000000 +0000|2001-02-03 04:05:06.123456789 +0000\n',
    );
    await ok(`touch -m -d '2011-06-07 08:09:10.000000001' ${q(f)}`);
    expect(await ok(`stat -c '%x|%y' ${q(f)}`)).toBe(
      '2010-01-01 00:00:00.500000000 +0000|2011-06-07 08:09:10.000000001 +0000\n',
    );
    // touch without a date: UTIME_NOW for both (FUSE_SET_ATTR_*_NOW)
    const before = BigInt(Date.now() - 5000) * 1_000_000n;
    await ok(`touch ${q(f)}`);
    const a = vfs.statPath('times');
    expect(a.mtimeNs > before && a.atimeNs > before).toBe(true);
  });

  it('passes the real open flags to create and open (O_EXCL, O_APPEND, O_TRUNC)', async () => {
    const f = join(mnt, 'excl');
    const py = (flags: string) =>
      sh(
        `python3 -c 'import os,sys; fd=os.open(sys.argv[1], ${flags}, 0o600); os.write(fd, b"abc"); os.close(fd)' ${q(f)}`,
      );
    vfs.calls.length = 0;
    expect((await py('os.O_CREAT|os.O_EXCL|os.O_WRONLY|os.O_APPEND')).code).toBe(0);
    const created = vfs.callsOf('create');
    expect(created).toHaveLength(1);
    const flags = created[0]?.flags ?? 0;
    expect(flags & O_EXCL).toBe(O_EXCL);
    expect(flags & O_APPEND).toBe(O_APPEND);
    expect(await ok(`stat -c %a ${q(f)}`)).toBe('600\n');
    const again = await py('os.O_CREAT|os.O_EXCL|os.O_WRONLY');
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('FileExistsError');
    const noclobber = await sh(`set -o noclobber; echo x > ${q(f)}`);
    expect(noclobber.code).not.toBe(0);
    expect(noclobber.stderr).toContain('cannot overwrite existing file');
    // O_TRUNC on an existing file reaches open() (atomic_o_trunc) and truncates it
    await ok(`echo 0123456789 > ${q(f)}`);
    vfs.calls.length = 0;
    expect((await py('os.O_CREAT|os.O_TRUNC|os.O_WRONLY')).code).toBe(0);
    const opened = vfs.callsOf('open');
    expect(opened.some((c) => ((c.flags ?? 0) & O_TRUNC) !== 0)).toBe(true);
    expect(await ok(`cat ${q(f)}`)).toBe('abc');
  });

  it('shows 64-bit inode numbers', async () => {
    const ino = Number(await ok(`stat -c %i ${q(join(mnt, 'hello.txt'))}`));
    expect(ino).toBeGreaterThan(2 ** 32);
    expect(ino).toBe(vfs.statPath('hello.txt').ino);
    const ls = await ok(`ls -i ${q(mnt)}`);
    expect(ls).toContain(`${ino} hello.txt`);
  });

  it("passes the caller's uid, gid and groups to the VFS", async () => {
    const f = join(mnt, 'shared', 'by-1234');
    vfs.calls.length = 0;
    await ok(`setpriv --reuid=1234 --regid=1234 --groups=4321,4322 touch ${q(f)}`);
    const c = vfs.callsOf('create')[0];
    expect(c?.cred).toEqual({ uid: 1234, gid: 1234, groups: [4321, 4322] });
    expect(await ok(`stat -c '%u %g' ${q(f)}`)).toBe('1234 1234\n');
    // The VFS checks permissions with those credentials (default_permissions is off).
    const denied = await sh(
      `setpriv --reuid=1234 --regid=1234 --clear-groups sh -c 'echo x > ${q(join(mnt, 'hello.txt'))}'`,
    );
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain('Permission denied');
    const g = join(mnt, 'group-only');
    await ok(`echo secret > ${q(g)} && chown 0:4321 ${q(g)} && chmod 640 ${q(g)}`);
    expect(await ok(`setpriv --reuid=1234 --regid=1234 --groups=4321 cat ${q(g)}`)).toBe('secret\n');
    const noGroup = await sh(`setpriv --reuid=1234 --regid=1234 --clear-groups cat ${q(g)}`);
    expect(noGroup.stderr).toContain('Permission denied');
    // access(2) goes to the VFS too
    expect((await sh(`setpriv --reuid=1234 --regid=1234 --clear-groups test -r ${q(g)}`)).code).toBe(1);
    expect((await sh(`setpriv --reuid=1234 --regid=1234 --groups=4321 test -r ${q(g)}`)).code).toBe(0);
  });

  it('rejects names that are not UTF-8 (EILSEQ) or longer than 255 bytes (ENAMETOOLONG)', async () => {
    const bad = await sh(`touch ${q(mnt)}/$'\\xff'`);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('Invalid or incomplete multibyte or wide character');
    const long = await sh(`touch ${q(mnt)}/${'a'.repeat(256)}`);
    expect(long.code).not.toBe(0);
    expect(long.stderr).toContain('File name too long');
    await ok(`touch ${q(mnt)}/${'b'.repeat(255)}`);
    expect(vfs.statPath('b'.repeat(255)).type).toBe('file');
    await ok(`touch ${q(mnt)}/'naïve – ünïcødé ✓'`);
    expect(await ok(`ls ${q(mnt)}`)).toContain('naïve – ünïcødé ✓');
  });

  it('lists 1000 entries with ls -l (readdir paging)', async () => {
    const d = join(mnt, 'many');
    await ok(`mkdir ${q(d)} && cd ${q(d)} && touch $(seq -f 'entry-with-a-rather-long-name-%04g' 0 999)`);
    vfs.calls.length = 0;
    const out = await ok(`ls -l ${q(d)}`);
    const lines = out.trim().split('\n').slice(1);
    expect(lines).toHaveLength(1000);
    const names = (await ok(`ls -f ${q(d)}`)).trim().split('\n');
    expect(names).toHaveLength(1002); // with . and ..
    expect(new Set(names).size).toBe(1002);
    const expected = Array.from(
      { length: 1000 },
      (_, i) => `entry-with-a-rather-long-name-${String(i).padStart(4, '0')}`,
    );
    expect(names.filter((n) => n !== '.' && n !== '..').sort()).toEqual(expected);
    expect(vfs.callsOf('readdir').length).toBeGreaterThanOrEqual(10); // the VFS pages 100 at a time
    // python's listdir (getdents64 with a small buffer) sees the same set
    const py = await ok(`python3 -c 'import os,sys; print(len(os.listdir(sys.argv[1])))' ${q(d)}`);
    expect(py).toBe('1000\n');
  });

  it('makes and reads symlinks', async () => {
    await ok(`ln -s hello.txt ${q(join(mnt, 'ln'))} && ln -s 'some/where/else' ${q(join(mnt, 'dangling'))}`);
    expect(await ok(`readlink ${q(join(mnt, 'dangling'))}`)).toBe('some/where/else\n');
    expect(await ok(`stat -c %F ${q(join(mnt, 'ln'))}`)).toBe('symbolic link\n');
    expect(await ok(`cat ${q(join(mnt, 'ln'))}`)).toBe('heXYo\nworld\n');
  });

  it('renames files and directories', async () => {
    await ok(
      `cd ${q(mnt)} && echo a > ra && echo b > rb && mkdir rd && mv ra rc && mv rc rb && mv rd re && mv rb re/`,
    );
    expect(await ok(`cat ${q(join(mnt, 're', 'rb'))}`)).toBe('a\n');
    expect((await sh(`test -e ${q(join(mnt, 'ra'))}`)).code).toBe(1);
    const into = await sh(
      `python3 -c 'import os,sys; os.rename(sys.argv[1], sys.argv[1] + "/sub")' ${q(join(mnt, 're'))}`,
    );
    expect(into.stderr).toContain('[Errno 22] Invalid argument');
  });

  it('unlinks files and removes directories', async () => {
    await ok(`cd ${q(mnt)} && mkdir -p rm1/sub && touch rm1/f`);
    const notEmpty = await sh(`rmdir ${q(join(mnt, 'rm1'))}`);
    expect(notEmpty.stderr).toContain('Directory not empty');
    await ok(`cd ${q(mnt)} && rm rm1/f && rmdir rm1/sub && rmdir rm1`);
    expect((await sh(`test -e ${q(join(mnt, 'rm1'))}`)).code).toBe(1);
    // an unlinked file stays readable through an open descriptor
    expect(await ok(`cd ${q(mnt)} && echo keep > gone && exec 3< gone && rm gone && cat <&3`)).toBe('keep\n');
  });

  it('changes modes and owners, truncates', async () => {
    const f = join(mnt, 'attrs');
    await ok(`echo 123456789 > ${q(f)} && chmod 640 ${q(f)} && chown 1234:5678 ${q(f)}`);
    expect(await ok(`stat -c '%a %u %g' ${q(f)}`)).toBe('640 1234 5678\n');
    const notOwner = await sh(`setpriv --reuid=4444 --regid=4444 --clear-groups chmod 777 ${q(f)}`);
    expect(notOwner.stderr).toContain('Operation not permitted');
    await ok(`truncate -s 4 ${q(f)}`);
    expect(await ok(`cat ${q(f)}`)).toBe('1234');
    await ok(`truncate -s 6 ${q(f)}`);
    expect(await ok(`od -An -c ${q(f)}`)).toMatch(/1\s+2\s+3\s+4\s+\\0\s+\\0/);
    await ok(`truncate -s 0 ${q(f)}`);
    expect(await ok(`stat -c %s ${q(f)}`)).toBe('0\n');
  });

  it('reports statfs (df)', async () => {
    expect(await ok(`stat -f -c '%S %b %f %a %c %d %l' ${q(mnt)}`)).toBe(
      '4096 1000000 750000 700000 500000 400000 255\n',
    );
    expect(await ok(`df -P ${q(mnt)}`)).toContain('bucketgate:test');
  });

  it('refuses hard links and special files; xattrs are not supported', async () => {
    const ln = await sh(`ln ${q(join(mnt, 'hello.txt'))} ${q(join(mnt, 'hard'))}`);
    expect(ln.stderr).toContain('Operation not permitted');
    const fifo = await sh(`mkfifo ${q(join(mnt, 'fifo'))}`);
    expect(fifo.stderr).toContain('Operation not permitted');
    await ok(`python3 -c 'import os,sys; os.mknod(sys.argv[1], 0o100644)' ${q(join(mnt, 'mknod-file'))}`);
    expect(vfs.statPath('mknod-file').type).toBe('file');
    const x = await sh(
      `python3 -c 'import os,sys
for _ in range(3):
  try: os.getxattr(sys.argv[1], "user.x")
  except OSError as e: print(e.errno)' ${q(join(mnt, 'hello.txt'))}`,
    );
    expect(x.stdout).toBe('95\n95\n95\n'); // EOPNOTSUPP
  });

  it('answers a 20 s operation (no request timeout) while serving others', async () => {
    const r = await slow;
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('5\n');
    expect(Date.now() - slowStarted).toBeGreaterThanOrEqual(19_900);
  });

  it('logged no unexpected errors and released every handle', async () => {
    expect(logs.filter((l) => l.level === 'error')).toEqual([]);
    expect(await until(() => vfs.openHandles === 0)).toBe(true);
  });

  describe('READDIRPLUS (entries with their attributes)', () => {
    let m3: string;
    let v3: MemVfs;
    let a3: FuseAdapter;

    beforeAll(async () => {
      m3 = join(base, 'plus');
      await mkdir(m3);
      v3 = new MemVfs({ maxReaddirPage: 1000 });
      a3 = newAdapter(m3, v3, { attrTimeoutSec: 60, entryTimeoutSec: 60 });
      await a3.mount();
    });

    afterAll(async () => {
      await a3.unmount();
    });

    /** Files `prefix-NNNN` (i bytes, mode 0600 | (i % 2 ? 0o040 : 0)) made straight in the VFS. */
    async function populate(dir: string, n: number, prefix: string): Promise<void> {
      const d = await v3.mkdir(ROOT_CRED, ROOT_INO, dir, 0o755);
      for (let i = 0; i < n; i++) {
        const name = `${prefix}-${String(i).padStart(4, '0')}`;
        const { fh } = await v3.create(ROOT_CRED, d.ino, name, 0o600 | (i % 2 ? 0o040 : 0), O_CREAT | O_WRONLY);
        if (i > 0) await v3.write(fh, 0, Buffer.alloc(i, 0x61));
        await v3.release(fh);
      }
    }

    function expectListing(out: string, n: number, prefix: string): void {
      const rows = out
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.split(/\s+/));
      expect(rows).toHaveLength(n);
      for (const r of rows) {
        const i = Number(r[8]?.slice(prefix.length + 1));
        expect(r[8]).toBe(`${prefix}-${String(i).padStart(4, '0')}`);
        expect(r[0]).toBe(i % 2 ? '-rw-r-----' : '-rw-------');
        expect(r[4]).toBe(String(i));
      }
    }

    it('is granted where the kernel offers it (protocol 7.28 and up)', () => {
      expect(a3.connection?.readdirplus).toBe((a3.connection?.protoMinor ?? 0) >= 28);
    });

    it('gives the kernel every entry with its attributes: ls -l of 600 names looks none up', async () => {
      if (!a3.connection?.readdirplus) return;
      await populate('six-hundred', 600, 'f');
      v3.calls.length = 0;
      expectListing(await ok(`ls -l ${q(join(m3, 'six-hundred'))}`), 600, 'f');
      // Only the directory itself is looked up; stat of each name is answered from the entries.
      expect(v3.callsOf('lookup').filter((c) => c.name !== 'six-hundred')).toEqual([]);
      expect(v3.callsOf('getattr')).toEqual([]);
    });

    it('lists a directory that needs several replies once and in full, with long names', async () => {
      if (!a3.connection?.readdirplus) return;
      // 3000 entries of 408 bytes: more than one reply holds even where the kernel asks for
      // 1 MiB at a time, so entries fetched for one reply are sent with the next (fresh attributes).
      const prefix = 'n'.repeat(250);
      await populate('long-names', 3000, prefix);
      v3.calls.length = 0;
      expectListing(await ok(`ls -l ${q(join(m3, 'long-names'))}`), 3000, prefix);
      expect(v3.callsOf('getattr').length).toBeGreaterThan(0); // the kept entries' attributes
      // getdents64 with a small buffer (python) sees every name once as well.
      const py = await ok(
        `python3 -c 'import os,sys; n=os.listdir(sys.argv[1]); print(len(n), len(set(n)))' ${q(join(m3, 'long-names'))}`,
      );
      expect(py).toBe('3000 3000\n');
      expect(v3.callsOf('lookup').filter((c) => c.name !== 'long-names')).toEqual([]);
    });

    it('refreshes attributes the kernel has cached when the directory is read again', async () => {
      if (!a3.connection?.readdirplus) return;
      const d = await v3.mkdir(ROOT_CRED, ROOT_INO, 'refresh', 0o755);
      const { fh, attr } = await v3.create(ROOT_CRED, d.ino, 'grows', 0o644, O_CREAT | O_WRONLY);
      await v3.write(fh, 0, Buffer.from('1234'));
      const f = join(m3, 'refresh', 'grows');
      expect(await ok(`stat -c %s ${q(f)}`)).toBe('4\n');
      // Behind the kernel's back: the attributes it cached (60 s) keep the old size ...
      await v3.write(fh, 4, Buffer.from('5678'));
      await v3.release(fh);
      expect(await ok(`stat -c %s ${q(f)}`)).toBe('4\n');
      // ... until a READDIRPLUS brings the new ones.
      expect(await ok(`ls -l ${q(join(m3, 'refresh'))}`)).toMatch(/ 8 .* grows\n/);
      expect(await ok(`stat -c '%s %i' ${q(f)}`)).toBe(`8 ${attr.ino}\n`);
    });

    it("checks the caller's uid, gid and groups (read from /proc for these requests)", async () => {
      if (!a3.connection?.readdirplus) return;
      const d = await v3.mkdir(ROOT_CRED, ROOT_INO, 'group-dir', 0o750);
      await v3.setattr(ROOT_CRED, d.ino, { gid: 4321 });
      await v3.create(ROOT_CRED, d.ino, 'inside', 0o644, O_CREAT | O_WRONLY).then((r) => v3.release(r.fh));
      const dir = q(join(m3, 'group-dir'));
      expect(await ok(`setpriv --reuid=1234 --regid=1234 --groups=4321 ls ${dir}`)).toBe('inside\n');
      const denied = await sh(`setpriv --reuid=1234 --regid=1234 --clear-groups ls ${dir}`);
      expect(denied.stderr).toContain('Permission denied');
      const rd = v3.callsOf('readdir').find((c) => c.cred?.uid === 1234);
      expect(rd?.cred).toEqual({ uid: 1234, gid: 1234, groups: [4321] });
    });
  });

  describe('kernel cache invalidation', () => {
    it('drops cached entries and attributes when the VFS says so', async () => {
      const m2 = join(base, 'cached');
      await mkdir(m2);
      const v2 = new MemVfs();
      const a2 = newAdapter(m2, v2, { attrTimeoutSec: 60, entryTimeoutSec: 60 });
      await a2.mount();
      const f = join(m2, 'c');
      await ok(`echo old > ${q(f)}`);
      expect(await ok(`stat -c %s ${q(f)}`)).toBe('4\n');
      // change the file behind the kernel's back: the cached size stays
      const ino = v2.statPath('c').ino;
      const fh = await v2.open(ROOT_CRED, ino, O_WRONLY);
      await v2.write(fh, 4, Buffer.from('more'));
      await v2.release(fh);
      expect(await ok(`stat -c %s ${q(f)}`)).toBe('4\n');
      v2.emitInvalidate({ kind: 'inode', ino });
      await new Promise((r) => setTimeout(r, 100));
      expect(await ok(`stat -c %s ${q(f)}`)).toBe('8\n');
      // remove it behind the kernel's back: the cached entry stays until invalidated
      await v2.unlink(ROOT_CRED, ROOT_INO, 'c');
      expect((await sh(`test -e ${q(f)}`)).code).toBe(0);
      v2.emitInvalidate({ kind: 'entry', parent: ROOT_INO, name: 'c' });
      await new Promise((r) => setTimeout(r, 100));
      expect((await sh(`test -e ${q(f)}`)).code).toBe(1);
      await a2.unmount();
      expect(await mountedAt(m2)).toBe(false);
    });

    it('sends no entry notice for the names a rename request in flight is changing', async () => {
      // CoreVfs asks to forget the old name of a rename (for NFS's sake); for FUSE's own rename
      // the kernel holds the directory locked until the answer and fixes its dentries itself.
      const m3 = join(base, 'renamenotice');
      await mkdir(m3);
      const v3 = new MemVfs();
      const a3 = newAdapter(m3, v3, { attrTimeoutSec: 60, entryTimeoutSec: 60 });
      await a3.mount();
      const rename = v3.rename.bind(v3);
      v3.rename = async (c, p, n, np, nn) => {
        await rename(c, p, n, np, nn);
        v3.emitInvalidate({ kind: 'entry', parent: p, name: n });
      };
      // The native session's methods are read-only: watch them through a proxy.
      const holder = a3 as unknown as { session: object };
      const session = holder.session;
      const sent: string[] = [];
      holder.session = new Proxy(session, {
        get(t, k) {
          const v: unknown = Reflect.get(t, k);
          if (typeof v !== 'function') return v;
          if (k === 'notifyInvalEntry')
            return (p: number, n: Buffer): unknown => {
              sent.push(n.toString());
              return (v as (p: number, n: Buffer) => unknown).call(t, p, n);
            };
          return (v as (...a: unknown[]) => unknown).bind(t);
        },
      });
      await ok(`echo x > ${q(join(m3, 'a'))} && mv ${q(join(m3, 'a'))} ${q(join(m3, 'b'))} && cat ${q(join(m3, 'b'))}`);
      expect(sent).toEqual([]);
      expect((await sh(`test -e ${q(join(m3, 'a'))}`)).code).toBe(1);
      // A notice from elsewhere (NFS, a listing) still goes to the kernel.
      v3.emitInvalidate({ kind: 'entry', parent: ROOT_INO, name: 'b' });
      expect(sent).toEqual(['b']);
      await a3.unmount();
    });

    it('keeps the page cache across opens only while mtime and size are unchanged (auto_cache)', async () => {
      const m = join(base, 'autocache');
      await mkdir(m);
      const v = new MemVfs();
      const a = newAdapter(m, v, { attrTimeoutSec: 60, entryTimeoutSec: 60 });
      await a.mount();
      const f = join(m, 'f');
      await ok(`echo one > ${q(f)}`);
      expect(await ok(`cat ${q(f)}`)).toBe('one\n');
      expect(await ok(`cat ${q(f)}`)).toBe('one\n');
      const reads = v.reads;
      expect(await ok(`cat ${q(f)}`)).toBe('one\n');
      expect(v.reads).toBe(reads); // served from the page cache
      // same size, new content and mtime, behind the kernel's back
      const ino = v.statPath('f').ino;
      await new Promise((r) => setTimeout(r, 5));
      const fh = await v.open(ROOT_CRED, ino, O_WRONLY);
      await v.write(fh, 0, Buffer.from('two'));
      await v.release(fh);
      expect(await ok(`cat ${q(f)}`)).toBe('two\n');
      expect(v.reads).toBeGreaterThan(reads);
      await a.unmount();
    });
  });

  describe('unmounting', () => {
    it.each([['fusermount -u'], ['umount']])('ends the session cleanly on an external %s', async (cmd) => {
      const m = join(base, `ext-${cmd.split(' ')[0]}`);
      await mkdir(m);
      const a = newAdapter(m, new MemVfs());
      await a.mount();
      const events: unknown[] = [];
      a.on('unmounted', (info) => events.push(info));
      await ok(`echo x > ${q(join(m, 'f'))}`);
      await ok(`${cmd} ${q(m)}`);
      expect(await a.whenUnmounted()).toEqual({ reason: 'external', errno: 0 });
      expect(events).toEqual([{ reason: 'external', errno: 0 }]);
      expect(a.mounted).toBe(false);
      expect(await mountedAt(m)).toBe(false);
    });

    it('lets in-flight requests finish before the session ends', async () => {
      const m = join(base, 'inflight');
      await mkdir(m);
      const v = new MemVfs();
      const dir = await v.mkdir(ROOT_CRED, ROOT_INO, 'd', 0o755);
      const { fh } = await v.create(ROOT_CRED, dir.ino, 'later', 0o644, O_CREAT | O_WRONLY);
      await v.release(fh);
      v.slowLookups.set('later', 1500);
      // Attributes come with the lookup's answer and stay valid: stat needs no further request
      // (requests that arrive after unmount() are not served; they fail once the session ends).
      const a = newAdapter(m, v, { attrTimeoutSec: 10, entryTimeoutSec: 10 });
      await a.mount();
      const started = Date.now();
      const st = sh(`stat -c %F ${q(join(m, 'd', 'later'))}`);
      // Wait for the slow lookup itself: the lookup of 'd' before it is also a pending request.
      expect(await until(() => v.slowLookupsInFlight > 0)).toBe(true);
      expect(a.pendingRequests).toBeGreaterThan(0);
      await a.unmount();
      expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
      expect(await st).toMatchObject({ code: 0, stdout: 'regular empty file\n' });
      expect(await mountedAt(m)).toBe(false);
    });

    it('detaches the mount point when the serving process exits without unmounting', async () => {
      const m = join(base, 'exiting');
      await mkdir(m);
      const script = join(base, 'exit-child.mjs');
      await writeFile(
        script,
        `import { createRequire } from 'node:module';
const addon = createRequire(import.meta.url)(process.argv[2]);
const s = new addon.FuseSession();
s.mount(process.argv[3], ['fsname=bucketgate:exiting', 'subtype=bucketgate'], (r) => s.replyErr(r.id, 38),
  (ev) => { if (ev.type === 'init') process.exit(7); });
`,
      );
      const child = spawn(process.execPath, [script, ADDON, m], { stdio: 'ignore' });
      children.push(child);
      const code = await new Promise((res) => child.once('exit', res));
      expect(code).toBe(7);
      expect(await mountedAt(m)).toBe(false);
      expect(await ok(`stat -c %F ${q(m)}`)).toBe('directory\n');
    });

    it('unmounts while a process still holds a file open', async () => {
      const m = join(base, 'busy');
      await mkdir(m);
      const v = new MemVfs();
      const a = newAdapter(m, v);
      await a.mount();
      await ok(`echo data > ${q(join(m, 'open'))}`);
      const child = spawn(
        'bash',
        ['-c', `exec 3< ${q(join(m, 'open'))}; cd ${q(m)}; echo ready; exec sleep 60`],
        {
          stdio: ['ignore', 'pipe', 'ignore'],
        },
      );
      children.push(child);
      await new Promise<void>((res) => child.stdout?.once('data', () => res()));
      expect(await until(() => v.openHandles === 1)).toBe(true);
      await a.unmount();
      expect(await mountedAt(m)).toBe(false);
      expect(v.openHandles).toBe(0); // the adapter released what the kernel never will
      child.kill('SIGKILL');
      // mountable again afterwards
      const again = newAdapter(m, new MemVfs());
      await again.mount();
      await again.unmount();
    });
  });

  describe('native binding', () => {
    it('refuses a second reply and a reply of the wrong type', async () => {
      const m = join(base, 'raw');
      await mkdir(m);
      const addon = loadFuseAddon();
      const s = new addon.FuseSession();
      const errors: string[] = [];
      const t = 1_000_000_000n;
      const root = {
        ino: 1,
        mode: 0o40755,
        nlink: 2,
        uid: 0,
        gid: 0,
        size: 0,
        atimeNs: t,
        mtimeNs: t,
        ctimeNs: t,
      };
      let unmounted: (v: unknown) => void = () => {};
      const done = new Promise((res) => (unmounted = res));
      await s.mount(
        m,
        ['fsname=bucketgate:raw', 'subtype=bucketgate'],
        (r) => {
          if (r.op !== 'getattr') {
            s.replyErr(r.id, ERRNO.ENOSYS);
            return;
          }
          try {
            s.replyEntry(r.id, { ino: 1, generation: 0, attr: root, attrTimeout: 0, entryTimeout: 0 });
          } catch (e) {
            errors.push(`${(e as Error).name}: ${(e as Error).message}`);
          }
          s.replyAttr(r.id, root, 0);
          try {
            s.replyAttr(r.id, root, 0);
          } catch (e) {
            errors.push(`${(e as Error).name}: ${(e as Error).message}`);
          }
        },
        (ev) => {
          if (ev.type === 'unmounted') unmounted(ev);
        },
      );
      expect(s.state).toBe('running');
      expect(await ok(`stat -c %a ${q(m)}`)).toBe('755\n');
      expect(errors[0]).toBe('TypeError: replyEntry is not a valid reply to getattr');
      expect(errors[1]).toMatch(/^Error: replyAttr: request \d+ is unknown or was already answered$/);
      expect(s.pendingCount).toBe(0);
      expect(s.unmount()).toBe(true);
      expect(await done).toEqual({ type: 'unmounted', reason: 'unmount', errno: 0 });
      expect(s.state).toBe('unmounted');
      expect(await s.notifyInvalInode(1)).toBe(107); // ENOTCONN once unmounted
    });
  });

  describe('mount errors', () => {
    const codeOf = async (p: Promise<void>): Promise<{ code: unknown; errno: unknown; message: string }> => {
      try {
        await p;
      } catch (e) {
        const err = e as { code?: unknown; errno?: unknown; message?: string };
        return { code: err.code, errno: err.errno, message: err.message ?? '' };
      }
      throw new Error('mount unexpectedly succeeded');
    };

    it('reports a missing mount point', async () => {
      const e = await codeOf(newAdapter(join(base, 'nope'), new MemVfs()).mount());
      expect(e).toMatchObject({ code: 'ENOENT', errno: 2 });
      expect(e.message).toContain(join(base, 'nope'));
    });

    it('reports a mount point that is not a directory, or not empty', async () => {
      const file = join(base, 'plainfile');
      await writeFile(file, 'x');
      expect(await codeOf(newAdapter(file, new MemVfs()).mount())).toMatchObject({ code: 'ENOTDIR' });
      const full = join(base, 'full');
      await mkdir(full);
      await writeFile(join(full, 'x'), 'x');
      const e = await codeOf(newAdapter(full, new MemVfs()).mount());
      expect(e).toMatchObject({ code: 'ENOTEMPTY' });
      expect(e.message).toContain('nonempty');
    });

    it('reports a mount point that is already mounted', async () => {
      const e = await codeOf(newAdapter(mnt, new MemVfs()).mount());
      expect(e).toMatchObject({ code: 'EBUSY' });
      expect(e.message).toContain('already a mount point');
    });

    it('reports a stale mount (Transport endpoint is not connected)', async () => {
      const m = join(base, 'stale');
      await mkdir(m);
      const script = join(base, 'stale-child.mjs');
      await writeFile(
        script,
        `import { createRequire } from 'node:module';
const addon = createRequire(import.meta.url)(process.argv[2]);
const s = new addon.FuseSession();
s.mount(process.argv[3], ['fsname=bucketgate:stale', 'subtype=bucketgate'], (r) => s.replyErr(r.id, 38),
  (ev) => { if (ev.type === 'init') console.log('ready'); });
`,
      );
      const child = spawn(process.execPath, [script, ADDON, m], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(child);
      await new Promise<void>((res) => child.stdout?.once('data', () => res()));
      const died = new Promise((res) => child.once('exit', res));
      child.kill('SIGKILL');
      await died;
      const st = await sh(`stat ${q(m)}`);
      expect(st.stderr).toContain('Transport endpoint is not connected');
      const e = await codeOf(newAdapter(m, new MemVfs()).mount());
      expect(e).toMatchObject({ code: 'ENOTCONN' });
      expect(e.message).toContain('stale FUSE mount');
      await ok(`umount -l ${q(m)}`);
    });

    it('reports options libfuse rejects', async () => {
      const m = join(base, 'badopt');
      await mkdir(m);
      const e = await codeOf(newAdapter(m, new MemVfs(), { extraOptions: ['no_such_option'] }).mount());
      expect(e).toMatchObject({ code: 'EINVAL' });
      expect(await mountedAt(m)).toBe(false);
    });
  });
});
