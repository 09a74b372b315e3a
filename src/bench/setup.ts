/**
 * What the benchmark needs on the machine: Debian packages of the peers and tools (installed
 * with apt-get when missing), a description of the machine, and the test data.
 */
import { createHash, randomFillSync, randomBytes } from 'node:crypto';
import { copyFile, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import type { Machine } from './schema.js';
import { prng } from './stats.js';
import { run } from './util.js';

export interface Tool {
  name: string;
  bin: string;
  packages: string[];
}

/** Tools by the part of the benchmark that needs them. */
export const TOOLS: Record<string, Tool> = {
  fusermount: { name: 'fusermount', bin: 'fusermount', packages: ['fuse'] },
  s3fs: { name: 's3fs', bin: 's3fs', packages: ['s3fs'] },
  rclone: { name: 'rclone', bin: 'rclone', packages: ['rclone'] },
  libnfs: { name: 'libnfs-utils', bin: 'nfs-cat', packages: ['libnfs-utils'] },
  ganesha: { name: 'nfs-ganesha', bin: 'ganesha.nfsd', packages: ['nfs-ganesha', 'nfs-ganesha-vfs'] },
  rpcbind: { name: 'rpcbind', bin: 'rpcbind', packages: ['rpcbind'] },
  strace: { name: 'strace', bin: 'strace', packages: ['strace'] },
};

export async function has(bin: string): Promise<boolean> {
  const r = await run('bash', ['-c', `PATH="$PATH:/usr/sbin:/sbin" command -v ${bin}`], {
    check: false,
    timeoutMs: 10_000,
  });
  return r.code === 0;
}

/**
 * Install the packages of the missing tools (one apt-get call, an `apt-get update` and a retry if
 * it fails). Returns the tools still missing afterwards, with the reason.
 */
export async function ensureTools(
  tools: Tool[],
  allowInstall: boolean,
  log: (s: string) => void,
): Promise<Map<string, string>> {
  const missing: Tool[] = [];
  for (const t of tools) if (!(await has(t.bin))) missing.push(t);
  const still = new Map<string, string>();
  if (missing.length === 0) return still;
  const pkgs = [...new Set(missing.flatMap((t) => t.packages))];
  let lastErr = '';
  if (allowInstall) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = async (): Promise<boolean> => {
      log(`installing ${pkgs.join(' ')} (apt-get)`);
      const r = await run('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], {
        env,
        check: false,
        timeoutMs: 900_000,
      });
      lastErr = r.stderr.trim().split('\n').slice(-3).join(' | ');
      return r.code === 0;
    };
    if (!(await install())) {
      await run('apt-get', ['update'], { env, check: false, timeoutMs: 600_000 });
      if (!(await install())) {
        // one package at a time, so that one that cannot be installed does not block the others
        for (const p of pkgs) {
          const r = await run('apt-get', ['install', '-y', '--no-install-recommends', p], {
            env,
            check: false,
            timeoutMs: 600_000,
          });
          if (r.code !== 0) lastErr = `${p}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`;
        }
      }
    }
  }
  for (const t of missing) {
    if (!(await has(t.bin))) {
      still.set(
        t.name,
        allowInstall
          ? `Debian package ${t.packages.join(' ')} could not be installed (${lastErr || 'unknown error'})`
          : `${t.bin} is not installed (--no-install)`,
      );
    }
  }
  return still;
}

export async function machineInfo(): Promise<Machine> {
  let osName = `${os.type()} ${os.release()}`;
  try {
    const rel = await readFile('/etc/os-release', 'utf8');
    const m = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(rel);
    if (m?.[1]) osName = m[1];
  } catch {
    // keep the generic name
  }
  return {
    nproc: os.availableParallelism(),
    memTotalMiB: Math.round(os.totalmem() / 2 ** 20),
    kernel: os.release(),
    node: process.version,
    os: osName,
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
  };
}

/** Write `bytes` of random data to `path`; returns its MD5 (hex). */
export async function randomFile(path: string, bytes: number): Promise<string> {
  const h = createHash('md5');
  const fh = await open(path, 'w');
  try {
    const chunk = Buffer.allocUnsafe(8 * 2 ** 20);
    for (let done = 0; done < bytes;) {
      const n = Math.min(chunk.length, bytes - done);
      const b = chunk.subarray(0, n);
      randomFillSync(b);
      h.update(b);
      await fh.write(b, 0, n);
      done += n;
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

/** Sizes of the files of the untar tree: `files` sizes averaging `meanBytes` (deterministic). */
export function treeSizes(files: number, meanBytes: number, seed = 42): number[] {
  const r = prng(seed);
  return Array.from({ length: files }, () => 1 + Math.floor(r() * (2 * meanBytes - 2)));
}

/**
 * A tree of `files` files (50 per directory) and a tarball of it; returns the content bytes.
 * About 9.5 KB per file: 2000 files make ~19 MB.
 */
export async function makeTree(dir: string, tarPath: string, files: number): Promise<number> {
  const sizes = treeSizes(files, 9500);
  let total = 0;
  for (let i = 0; i < files; i++) {
    const sub = join(dir, `d${String(Math.floor(i / 50)).padStart(3, '0')}`);
    if (i % 50 === 0) await mkdir(sub, { recursive: true });
    const size = sizes[i]!;
    await writeFile(join(sub, `file${String(i).padStart(5, '0')}.txt`), randomBytes(size));
    total += size;
  }
  await run('tar', ['-cf', tarPath, '-C', dir, '.'], { timeoutMs: 120_000 });
  return total;
}

/** The local directory with the same data as the bucket (for the `local` system). */
export async function makeLocalData(root: string, big: string, lsFiles: number): Promise<void> {
  await mkdir(join(root, 'data', 'ls'), { recursive: true });
  await copyFile(big, join(root, 'data', 'big.bin'));
  const b = Buffer.alloc(4096, 1);
  for (let i = 0; i < lsFiles; i++)
    await writeFile(join(root, 'data', 'ls', `f${String(i).padStart(5, '0')}`), b);
}
