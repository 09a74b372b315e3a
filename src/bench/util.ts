/**
 * Process and mount plumbing of the benchmark: running commands with a timeout, long-running
 * daemons that are always stopped, lazy unmounts, and a cleanup list that runs on every exit
 * path (normal end, exception, SIGINT/SIGTERM).
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function now(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

// ---------------------------------------------------------------- cleanup

type CleanupFn = () => Promise<void> | void;
const cleanups: Array<{ name: string; fn: CleanupFn }> = [];
const liveChildren = new Set<ChildProcess>();

/** Register a cleanup; returns a function that runs it now and unregisters it. */
export function onCleanup(name: string, fn: CleanupFn): () => Promise<void> {
  const entry = { name, fn };
  cleanups.push(entry);
  return async () => {
    const i = cleanups.indexOf(entry);
    if (i >= 0) {
      cleanups.splice(i, 1);
      await fn();
    }
  };
}

/** Run every registered cleanup, newest first; errors are reported, never thrown. */
export async function runCleanups(): Promise<void> {
  while (cleanups.length > 0) {
    const c = cleanups.pop()!;
    try {
      await withTimeout(Promise.resolve(c.fn()), 90_000, `cleanup ${c.name}`);
    } catch (e) {
      process.stderr.write(`bench: cleanup ${c.name} failed: ${errText(e)}\n`);
    }
  }
  for (const c of liveChildren) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}

process.once('exit', () => {
  for (const c of liveChildren) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
});

export function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rej) => {
    t = setTimeout(() => rej(new Error(`${what}: timed out after ${Math.round(ms / 1000)} s`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(t);
  }
}

// ---------------------------------------------------------------- commands

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  /** Send stdout to /dev/null (large outputs such as nfs-cat). */
  discardStdout?: boolean;
  /** Throw when the exit status is not 0 (default true). */
  check?: boolean;
}

/** Run a command to completion, timing it from spawn to exit. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    let devnull: number | undefined;
    let stdio: StdioOptions = ['ignore', 'pipe', 'pipe'];
    if (opts.discardStdout) {
      devnull = openSync('/dev/null', 'w');
      stdio = ['ignore', devnull, 'pipe'];
    }
    const t0 = now();
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio });
    liveChildren.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (d: string) => {
      if (stdout.length < 1 << 20) stdout += d;
    });
    child.stderr?.on('data', (d: string) => {
      stderr = (stderr + d).slice(-16_384);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 600_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      if (devnull !== undefined) closeSync(devnull);
      reject(e);
    });
    child.once('close', (code, signal) => {
      const seconds = now() - t0;
      clearTimeout(timer);
      liveChildren.delete(child);
      if (devnull !== undefined) closeSync(devnull);
      const res: RunResult = { code, signal, stdout, stderr, seconds };
      const what = `${cmd} ${args.join(' ')}`.slice(0, 300);
      if (timedOut)
        return reject(
          new Error(`${what}: timed out after ${Math.round((opts.timeoutMs ?? 600_000) / 1000)} s`),
        );
      if ((opts.check ?? true) && code !== 0) {
        return reject(
          new Error(`${what}: exit ${code ?? signal}${stderr ? `: ${stderr.trim().slice(-1000)}` : ''}`),
        );
      }
      resolve(res);
    });
  });
}

/** `bash -c SCRIPT` (set -euo pipefail). */
export function sh(script: string, opts: RunOptions = {}): Promise<RunResult> {
  return run('bash', ['-euo', 'pipefail', '-c', script], opts);
}

export interface Daemon {
  name: string;
  proc: ChildProcess;
  pid: number;
  /** The last 64 KiB of stdout and stderr. */
  output(): string;
  exited: Promise<void>;
  running(): boolean;
  /** Signal, wait up to `graceMs`, then SIGKILL. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

/** Start a long-running process whose output is kept (tail) and which is killed on exit. */
export function startDaemon(
  name: string,
  cmd: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Daemon {
  const proc = spawn(cmd, args, {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(proc);
  let out = '';
  const add = (d: Buffer): void => {
    out = (out + d.toString()).slice(-65_536);
  };
  proc.stdout?.on('data', add);
  proc.stderr?.on('data', add);
  const exited = new Promise<void>((resolve) => {
    proc.once('exit', () => {
      liveChildren.delete(proc);
      resolve();
    });
    proc.once('error', (e) => {
      out += `\n${errText(e)}`;
      liveChildren.delete(proc);
      resolve();
    });
  });
  const running = (): boolean => proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined;
  return {
    name,
    proc,
    pid: proc.pid ?? -1,
    output: () => out,
    exited,
    running,
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 60_000) {
      if (!running()) return;
      proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

// ---------------------------------------------------------------- mounts

export async function isMounted(path: string): Promise<boolean> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text.split('\n').some((l) => l.split(' ')[4] === path);
}

/** Mount points at or below `dir` (mountinfo escapes spaces as \040). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .map((l) => (l.split(' ')[4] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/** Lazy unmount of everything at or below `dir` (deepest first). */
export async function umountAllUnder(dir: string): Promise<void> {
  const ms = (await mountsUnder(dir)).sort((a, b) => b.length - a.length);
  for (const m of ms) await run('umount', ['-l', m], { check: false, timeoutMs: 30_000 });
}

/** Wait until `path` is a mount point while `alive()` holds. */
export async function waitMounted(
  path: string,
  alive: () => boolean,
  timeoutMs: number,
  what: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await isMounted(path)) return;
    if (!alive()) throw new Error(`exited before mounting ${path}:\n${what()}`);
    if (Date.now() > deadline) throw new Error(`did not mount ${path} in ${timeoutMs / 1000} s:\n${what()}`);
    await sleep(50);
  }
}

export async function dropCaches(): Promise<void> {
  await run('sync', [], { check: false, timeoutMs: 120_000 });
  await run('bash', ['-c', 'echo 3 > /proc/sys/vm/drop_caches'], { check: false });
}
