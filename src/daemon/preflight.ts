/**
 * Checks run before a share starts, each turning a likely mistake into a clear message.
 */
import { constants, readFileSync } from 'node:fs';
import { access, mkdir, open, readFile, stat, statfs, unlink, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import type { Logger } from '../log/index.js';
import type { ObjectStore } from '../objectstore/types.js';
import { ObjectStoreError } from '../objectstore/types.js';

export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupError';
  }
}

export async function checkFuseDevice(): Promise<void> {
  try {
    await access('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch {
    throw new StartupError(
      'FUSE is not available: /dev/fuse is missing or not accessible (load the fuse kernel module, or give a container --device /dev/fuse --cap-add SYS_ADMIN)',
    );
  }
}

/** Mount points listed in /proc/self/mountinfo (field 5, with octal escapes decoded). */
async function mountPoints(): Promise<Set<string>> {
  const text = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f[4]) out.add(f[4].replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

/** True when `path` is a FUSE mount of bucketgate (fstype fuse.bucketgate) in this namespace. */
async function staleBucketgateMount(path: string): Promise<boolean> {
  const text = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (f[4] === path && sep > 0 && f[sep + 1] === 'fuse.bucketgate') return true;
  }
  return false;
}

/**
 * Does the mount at `path` have a daemon behind it? statfs always reaches the FUSE daemon, while
 * stat of the mount's root is answered from the kernel's attribute cache for up to the attribute
 * timeout after its daemon died (so a restart right after a kill -9 saw a "live" mount).
 */
async function mountAnswers(path: string, timeoutMs = 5000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_r, reject) => {
    timer = setTimeout(
      () =>
        reject(new StartupError(`mountpoint ${path} is a mount that does not answer (statfs hangs): unmount it first`)),
      timeoutMs,
    );
  });
  try {
    await Promise.race([statfs(path), timeout]);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOTCONN') return false;
    if (e instanceof StartupError) throw e;
    return true; // it answered, with an error of its own
  } finally {
    clearTimeout(timer);
  }
}

export async function checkMountpoint(mountpoint: string, log?: Logger): Promise<string> {
  const abs = resolve(mountpoint);
  let st;
  try {
    st = await stat(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN' && (await staleBucketgateMount(abs))) return detachStale(mountpoint, abs, log);
    if (code === 'ENOTCONN') {
      throw new StartupError(
        `mountpoint ${abs} is a stale FUSE mount ("Transport endpoint is not connected"): run "umount -l ${abs}" (or "fusermount -uz ${abs}") first`,
      );
    }
    if (code === 'ENOENT')
      throw new StartupError(`mountpoint ${abs} does not exist (create it with mkdir -p)`);
    throw new StartupError(`mountpoint ${abs} cannot be used: ${(e as Error).message}`);
  }
  if (!st.isDirectory()) throw new StartupError(`mountpoint ${abs} is not a directory`);
  if ((await mountPoints()).has(abs)) {
    // A bucketgate mount whose daemon just died still answers stat of its root from the cache.
    if ((await staleBucketgateMount(abs)) && !(await mountAnswers(abs))) return detachStale(mountpoint, abs, log);
    throw new StartupError(`mountpoint ${abs} is already in use by another mount (unmount it first)`);
  }
  return abs;
}

/** Our own mount, left behind by a daemon that was killed: detach it and check again. */
async function detachStale(mountpoint: string, abs: string, log?: Logger): Promise<string> {
  await new Promise<void>((resolveP, reject) =>
    execFile('umount', ['-l', abs], (err) => (err ? reject(err) : resolveP())),
  ).catch((err: unknown) => {
    throw new StartupError(
      `mountpoint ${abs} is a stale bucketgate mount and "umount -l" failed: ${(err as Error).message}`,
    );
  });
  log?.warn('detached a stale bucketgate mount left by a previous daemon', { mountpoint: abs });
  return checkMountpoint(mountpoint, log);
}

/** Probe the bucket once so that a wrong endpoint, bucket or credential fails the start clearly. */
export async function checkBucket(
  store: ObjectStore,
  bucket: string,
  prefix: string,
  endpoint: string | undefined,
): Promise<void> {
  try {
    await store.list(prefix, { maxKeys: 1, delimiter: '/' });
  } catch (e) {
    const where = endpoint ? ` at ${endpoint}` : '';
    if (e instanceof ObjectStoreError) {
      if (e.kind === 'no-bucket')
        throw new StartupError(`bucket "${bucket}" does not exist${where}`, { cause: e });
      if (e.kind === 'denied') {
        throw new StartupError(
          `access to bucket "${bucket}"${where} was denied: check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile or config file) and the bucket policy (${e.message})`,
          { cause: e },
        );
      }
      if (e.kind === 'transient') {
        throw new StartupError(`cannot reach the object store${where}: ${e.message}`, { cause: e });
      }
    }
    throw new StartupError(`cannot list bucket "${bucket}"${where}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * One daemon per cache directory: a lock file holding our pid. A lock left by a dead process is
 * taken over.
 */
export async function lockCacheDir(dir: string): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, 'lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return async () => {
        await unlink(path).catch(() => undefined);
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new StartupError(`cache directory ${dir} is in use by another bucketgate process (pid ${pid})`);
      }
      await writeFile(path, '').catch(() => undefined);
      await unlink(path).catch(() => undefined);
    }
  }
  throw new StartupError(`cannot lock cache directory ${dir}`);
}

/**
 * Is `pid` a process that can still touch the cache? A zombie, or a process with SIGKILL pending
 * (killed, while the kernel still tears down its FUSE connection and files), cannot: its lock is
 * taken over, so a restart right after a kill -9 is not refused.
 */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return true; // no procfs: trust kill(0)
  }
  const state = /^State:\s+(\S)/m.exec(status)?.[1];
  if (state === 'Z' || state === 'X') return false;
  const SIGKILL_BIT = 1n << 8n; // signal 9
  for (const field of ['ShdPnd', 'SigPnd']) {
    const hex = new RegExp(`^${field}:\\s+([0-9a-f]+)`, 'm').exec(status)?.[1];
    if (hex !== undefined && (BigInt(`0x${hex}`) & SIGKILL_BIT) !== 0n) return false;
  }
  return true;
}
