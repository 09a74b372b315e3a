/**
 * Checks run before a share starts, each turning a likely mistake into a clear message.
 */
import { constants } from 'node:fs';
import { access, mkdir, open, readFile, stat, unlink, writeFile } from 'node:fs/promises';
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

export async function checkMountpoint(mountpoint: string, log?: Logger): Promise<string> {
  const abs = resolve(mountpoint);
  let st;
  try {
    st = await stat(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN' && (await staleBucketgateMount(abs))) {
      // Our own mount, left behind by a daemon that was killed: detach it and go on.
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
    throw new StartupError(`mountpoint ${abs} is already in use by another mount (unmount it first)`);
  }
  return abs;
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

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
