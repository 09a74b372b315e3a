/**
 * Runs the real `bucketgate` CLI (bin/bucketgate → dist/) as a child process, the way a user
 * does, and waits for its mount. Requires `npm run build` (scripts/test.sh does it).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { resolveAdminSocket } from '../../src/daemon/admin.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = join(ROOT, 'bin', 'bucketgate');
const pexec = promisify(execFile);

export function assertBuilt(): void {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
    throw new Error(
      'dist/ is missing: run "npm run build" (scripts/test.sh does) before the end-to-end tests',
    );
  }
}

export async function isMounted(path: string): Promise<boolean> {
  return (await mountIds(path)).length > 0;
}

/** Mount ids of the mounts at `path` (a stale mount of a killed daemon keeps its id). */
export async function mountIds(path: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[4] === path)
    .map((f) => f[0]!);
}

export interface Daemon {
  proc: ChildProcess;
  output(): string;
  /** Send a signal and wait for exit; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

export interface DaemonEnv {
  AWS_ACCESS_KEY_ID: string;
  AWS_SECRET_ACCESS_KEY: string;
  [name: string]: string;
}

/** Start `bucketgate ARGS`; when `mountpoint` is given, resolve once it is mounted. */
export async function startDaemon(
  args: string[],
  env: DaemonEnv,
  mountpoint?: string,
  timeoutMs = 30_000,
): Promise<Daemon> {
  assertBuilt();
  const proc = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, ...env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const d: Daemon = {
    proc,
    output: () => out,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), 60_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
  if (mountpoint) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // Mounted and answering (a stale mount of a killed daemon fails stat with ENOTCONN).
      if (
        (await isMounted(mountpoint)) &&
        (await stat(mountpoint).then(
          () => true,
          () => false,
        ))
      )
        break;
      if (proc.exitCode !== null)
        throw new Error(`bucketgate exited (${proc.exitCode}) before mounting:\n${out}`);
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`bucketgate did not mount ${mountpoint} in time:\n${out}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    // The mount answers a little before the share is fully started: with --admin-dir, ready
    // also means its admin socket is there (status, flush and refresh go through it). The
    // socket's index must name this process: a daemon killed just before leaves its index, and
    // its dead mount still answers stat from the kernel's attribute cache for up to a second, so
    // without the pid both checks above could pass before this daemon has even mounted.
    const i = args.indexOf('--admin-dir');
    const adminDir = i >= 0 ? args[i + 1] : undefined;
    while (adminDir !== undefined) {
      const found = await ownAdminIndex(adminDir, proc.pid);
      if (found) break;
      if (proc.exitCode !== null)
        throw new Error(`bucketgate exited (${proc.exitCode}) after mounting:\n${out}`);
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`bucketgate mounted ${mountpoint} but its admin socket did not appear:\n${out}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return d;
}

/** Does an admin index in `dir` name process `pid` (written once its share is mounted)? */
async function ownAdminIndex(dir: string, pid: number | undefined): Promise<boolean> {
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    if (!f.endsWith('.json')) continue;
    const idx: { pid?: number; name?: string } = await readFile(join(dir, f), 'utf8')
      .then((t) => JSON.parse(t) as { pid?: number; name?: string })
      .catch(() => ({})); // being written, or not ours
    if (idx.pid === pid && idx.name !== undefined)
      return resolveAdminSocket(dir, idx.name).then(
        () => true,
        () => false,
      );
  }
  return false;
}

/** Run a shell snippet (never blocks this process's event loop). */
export async function sh(
  script: string,
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<string> {
  try {
    const { stdout } = await pexec('bash', ['-euo', 'pipefail', '-c', script], {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      timeout: opts.timeoutMs ?? 120_000,
      maxBuffer: 64 << 20,
    });
    return stdout;
  } catch (e) {
    const err = e as Error & { stdout?: string; stderr?: string };
    throw new Error(`${err.message}\nstdout: ${err.stdout ?? ''}\nstderr: ${err.stderr ?? ''}`);
  }
}

/** Run the CLI once (admin commands); resolves with code and output. */
export async function cli(
  args: string[],
  env?: DaemonEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  assertBuilt();
  try {
    const { stdout, stderr } = await pexec(process.execPath, [BIN, ...args], {
      env: { ...process.env, ...env, NODE_OPTIONS: '' },
      timeout: 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as Error & { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof err.code === 'number' ? err.code : 1,
      stdout: err.stdout ?? '',
      stderr: err.stderr ?? '',
    };
  }
}
