/**
 * `mount.fuse.bucketgate`: the mount(8) helper behind fstab lines such as
 *
 *   s3://bucket/prefix  /mnt/x  fuse.bucketgate  _netdev,allow_other,cache-dir=/var/cache/bg/x  0 0
 *
 * mount(8) (libmount) runs `/sbin/mount.fuse.bucketgate SOURCE TARGET [-s] [-f] [-n] [-v]
 * [-o OPTIONS] [-t TYPE] [-N NAMESPACE]` for the type `fuse.bucketgate` (and `mount -a` does for
 * each such fstab line). This helper:
 * 1. checks the options exactly as `bucketgate mount` will (bad option → exit 1, nothing started);
 * 2. starts `bucketgate mount SOURCE TARGET -o OPTIONS` in the background, detached (own session,
 *    stdin closed), its log going to `log-file=FILE`, else to journald through systemd-cat, else
 *    to /var/log/bucketgate/NAME.log;
 * 3. returns 0 once the daemon reports the mount up, or exits 32 with the daemon's error.
 *
 * Helper-only options (not passed on as share settings): `log-file=FILE`, `log-format=text|json`,
 * `metrics=[HOST:]PORT`, `audit-log=FILE`, `profile=NAME` (AWS_PROFILE), `credentials-file=FILE`
 * (AWS_SHARED_CREDENTIALS_FILE), `mount-timeout=DURATION` (default 60s). Flags: `-f` checks only,
 * `-s` drops unknown options instead of failing, `-v` prints what is run, `-n` is ignored,
 * `-N` (another mount namespace) is refused.
 *
 * Exit status (mount(8) conventions): 0 mounted, 1 bad invocation or options, 32 mount failure.
 */
import { spawn } from 'node:child_process';
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  statSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  GENERIC_MOUNT_OPTIONS,
  MOUNT_OPTIONS,
  parseClientSpec,
  parseDuration,
  parseMountArgs,
  type ShareConfig,
} from '../config/index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(ROOT, 'bin', 'bucketgate');
const JOURNAL_STDOUT = '/run/systemd/journal/stdout';

const HELPER_OPTIONS = [
  'log-file',
  'log-format',
  'metrics',
  'audit-log',
  'profile',
  'credentials-file',
  'mount-timeout',
] as const;
type HelperOption = (typeof HELPER_OPTIONS)[number];

const USAGE = 'usage: mount.fuse.bucketgate s3://BUCKET[/PREFIX] MOUNTPOINT [-s] [-f] [-n] [-v] [-o OPTIONS]';

class HelperError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export interface HelperArgs {
  source: string;
  target: string;
  options: string;
  sloppy: boolean;
  fake: boolean;
  verbose: boolean;
}

/** The argument vector as mount(8) builds it. */
export function parseHelperArgv(argv: readonly string[]): HelperArgs {
  const pos: string[] = [];
  const opts: string[] = [];
  let sloppy = false;
  let fake = false;
  let verbose = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '-o') {
      const v = argv[++i];
      if (v === undefined) throw new HelperError('-o needs a value', 1);
      opts.push(v);
    } else if (a.startsWith('-o') && a.length > 2) opts.push(a.slice(2));
    else if (a === '-t')
      i++; // the type (fuse.bucketgate): we are its helper
    else if (a === '-N' || a.startsWith('-N'))
      throw new HelperError('mounting in another mount namespace (-N) is not supported', 1);
    else if (/^-[sfnvrw]+$/.test(a)) {
      for (const c of a.slice(1)) {
        if (c === 's') sloppy = true;
        else if (c === 'f') fake = true;
        else if (c === 'v') verbose = true;
        else if (c === 'r') opts.push('ro');
        else if (c === 'w') opts.push('rw');
        // 'n' (no mtab): nothing to do
      }
    } else if (a === '-h' || a === '--help') throw new HelperError(USAGE, 0);
    else if (a.startsWith('-') && a !== '-') throw new HelperError(`unknown flag ${a}\n${USAGE}`, 1);
    else pos.push(a);
  }
  const [src, target, ...extra] = pos;
  if (src === undefined || target === undefined || extra.length > 0) throw new HelperError(USAGE, 1);
  const source = src.includes('://') ? src : `s3://${src.replace(/^\/+/, '')}`;
  return { source, target, options: opts.join(','), sloppy, fake, verbose };
}

/** Split on commas outside double quotes (quotes kept: bucketgate's parser removes them). */
function splitOptions(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of s) {
    if (ch === '"') quoted = !quoted;
    if (ch === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.filter((t) => t.trim() !== '');
}

function isAddress(tok: string): boolean {
  try {
    parseClientSpec(tok);
    return true;
  } catch {
    return false;
  }
}

/** Options for the daemon, the helper's own, and (sloppy mode) the dropped ones. */
export function splitHelperOptions(
  options: string,
  sloppy: boolean,
): { share: string[]; helper: Partial<Record<HelperOption, string>>; dropped: string[] } {
  const known = new Set(MOUNT_OPTIONS.map((o) => o.flag));
  const share: string[] = [];
  const helper: Partial<Record<HelperOption, string>> = {};
  const dropped: string[] = [];
  for (const tok of splitOptions(options)) {
    const eq = tok.indexOf('=');
    const raw = eq < 0 ? tok : tok.slice(0, eq);
    const name = raw.trim().toLowerCase().replace(/_/g, '-');
    const value = eq < 0 ? undefined : tok.slice(eq + 1);
    if ((HELPER_OPTIONS as readonly string[]).includes(name)) {
      if (value === undefined || value === '')
        throw new HelperError(`mount option ${raw} needs a value (${raw}=...)`, 1);
      helper[name as HelperOption] = value;
      continue;
    }
    const isKnown =
      known.has(name) ||
      GENERIC_MOUNT_OPTIONS.includes(raw) ||
      /^x-/i.test(raw) ||
      ['ro', 'comment', 'user'].includes(raw) ||
      (value === undefined && isAddress(tok));
    if (!isKnown && sloppy) {
      dropped.push(tok);
      continue;
    }
    share.push(tok);
  }
  return { share, helper, dropped };
}

function onPath(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    try {
      accessSync(path.join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      continue;
    }
  }
  return false;
}

/** The source (`bucketgate:NAME`) of the fuse.bucketgate mount at `target`, if any. */
function mountedSource(target: string): string | undefined {
  const text = readFileSync('/proc/self/mountinfo', 'utf8');
  const unescape = (s: string): string =>
    s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  for (const l of text.split('\n')) {
    const f = l.split(' ');
    const sep = f.indexOf('-');
    if (unescape(f[4] ?? '') === target && sep > 0 && f[sep + 1] === 'fuse.bucketgate')
      return unescape(f[sep + 2] ?? '');
  }
  return undefined;
}

async function isMounted(target: string): Promise<boolean> {
  return mountedSource(target) !== undefined;
}

/** A mount that answers (a stale one of a killed daemon fails with ENOTCONN). */
function isLive(target: string): boolean {
  try {
    statSync(target);
    return true;
  } catch {
    return false;
  }
}

function tail(file: string, fromByte: number): string {
  try {
    const text = readFileSync(file, 'utf8').slice(fromByte);
    return text.trim().split('\n').slice(-5).join('\n');
  } catch {
    return '';
  }
}

/** Run the helper; resolves with the exit status. */
export async function mountHelper(argv: readonly string[]): Promise<number> {
  try {
    return await run(argv);
  } catch (e) {
    if (e instanceof HelperError) {
      (e.status === 0 ? process.stdout : process.stderr).write(
        `${e.status === 0 ? '' : 'mount.fuse.bucketgate: '}${e.message}\n`,
      );
      return e.status;
    }
    process.stderr.write(`mount.fuse.bucketgate: ${e instanceof Error ? e.message : String(e)}\n`);
    return 32;
  }
}

async function run(argv: readonly string[]): Promise<number> {
  const a = parseHelperArgv(argv);
  const { share, helper, dropped } = splitHelperOptions(a.options, a.sloppy);
  if (dropped.length > 0 && a.verbose)
    process.stderr.write(`mount.fuse.bucketgate: ignoring unknown options ${dropped.join(',')}\n`);

  const target = path.resolve(a.target);
  const mountArgs = [a.source, target, ...(share.length > 0 ? ['-o', share.join(',')] : [])];
  let cfg: ShareConfig;
  try {
    cfg = parseMountArgs(mountArgs);
  } catch (e) {
    throw new HelperError((e as Error).message, 1);
  }
  const service: string[] = [];
  if (helper.metrics !== undefined) service.push('--metrics', helper.metrics);
  if (helper['audit-log'] !== undefined) service.push('--audit-log', path.resolve(helper['audit-log']));
  if (helper['log-format'] !== undefined) service.push('--log-format', helper['log-format']);
  let timeoutMs = 60_000;
  if (helper['mount-timeout'] !== undefined) {
    try {
      timeoutMs = parseDuration(helper['mount-timeout'], 'mount-timeout');
    } catch (e) {
      throw new HelperError((e as Error).message, 1);
    }
  }
  const daemonArgv = [BIN, 'mount', ...mountArgs, ...service];
  if (a.fake) {
    if (a.verbose)
      process.stderr.write(`mount.fuse.bucketgate: would run ${process.execPath} ${daemonArgv.join(' ')}\n`);
    return 0;
  }
  // `mount -a` cannot tell that the share is mounted (the mount's source is bucketgate:NAME, not
  // the s3:// URL of fstab), so a live mount of the same share is success, as mount -a expects.
  const existing = mountedSource(target);
  if (existing !== undefined && isLive(target)) {
    if (existing === `bucketgate:${cfg.name}`) {
      if (a.verbose)
        process.stderr.write(`mount.fuse.bucketgate: ${a.source} is already mounted at ${target}\n`);
      return 0;
    }
    throw new HelperError(`${target} is already mounted (${existing})`, 32);
  }

  const env: NodeJS.ProcessEnv = { ...process.env, BUCKETGATE_READY_FD: '3', NODE_OPTIONS: '' };
  delete env.NOTIFY_SOCKET;
  delete env.JOURNAL_STREAM;
  if (helper.profile !== undefined) env.AWS_PROFILE = helper.profile;
  if (helper['credentials-file'] !== undefined)
    env.AWS_SHARED_CREDENTIALS_FILE = path.resolve(helper['credentials-file']);

  // Where the daemon's log goes.
  let command = process.execPath;
  let args = daemonArgv;
  let logFile: string | undefined =
    helper['log-file'] !== undefined ? path.resolve(helper['log-file']) : undefined;
  let out: number | 'ignore' = 'ignore';
  if (logFile === undefined && existsSync(JOURNAL_STDOUT) && onPath('systemd-cat')) {
    command = 'systemd-cat';
    args = ['--identifier', `bucketgate-${cfg.name}`, '--', process.execPath, ...daemonArgv];
    env.BUCKETGATE_LOG_JOURNAL = '1';
  } else {
    logFile ??= path.join('/var/log/bucketgate', `${cfg.name}.log`);
    mkdirSync(path.dirname(logFile), { recursive: true, mode: 0o750 });
    out = openSync(logFile, 'a', 0o640);
  }
  const logStart = logFile !== undefined ? statSync(logFile).size : 0;
  if (a.verbose)
    process.stderr.write(
      `mount.fuse.bucketgate: running ${command} ${args.join(' ')}${logFile ? ` (log: ${logFile})` : ''}\n`,
    );

  const child = spawn(command, args, { detached: true, env, stdio: ['ignore', out, out, 'pipe'] });
  if (typeof out === 'number') closeSync(out);
  const where = logFile !== undefined ? `see ${logFile}` : `see journalctl -t bucketgate-${cfg.name}`;

  const result = await new Promise<{ ok: true } | { ok: false; message: string }>((resolve) => {
    let settled = false;
    let buf = '';
    const finish = (r: { ok: true } | { ok: false; message: string }): void => {
      if (settled) return;
      settled = true;
      clearInterval(poll);
      clearTimeout(timer);
      resolve(r);
    };
    const ready = child.stdio[3] as NodeJS.ReadableStream | null;
    ready?.setEncoding('utf8');
    ready?.on('data', (d: string) => {
      buf += d;
      const line = buf.split('\n')[0] ?? '';
      if (!buf.includes('\n')) return;
      if (line.startsWith('READY=1')) finish({ ok: true });
      else if (line.startsWith('ERROR=')) finish({ ok: false, message: line.slice('ERROR='.length) });
    });
    ready?.on('error', () => undefined);
    child.once('error', (e) => finish({ ok: false, message: `cannot start ${command}: ${e.message}` }));
    child.once('close', (code, signal) => {
      const t = logFile !== undefined ? tail(logFile, logStart) : '';
      finish({
        ok: false,
        message: `the daemon exited (${signal ?? `status ${code}`}) before mounting${t ? `:\n${t}` : ` (${where})`}`,
      });
    });
    // Belt and braces: the mount itself (in case the readiness descriptor was not passed on).
    const poll = setInterval(() => {
      void isMounted(target).then((m) => m && finish({ ok: true }));
    }, 250);
    const timer = setTimeout(
      () =>
        finish({ ok: false, message: `${target} was not mounted within ${timeoutMs / 1000}s (${where})` }),
      timeoutMs,
    );
  });

  if (!result.ok) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    throw new HelperError(result.message, 32);
  }
  (child.stdio[3] as { destroy?: () => void } | null)?.destroy?.();
  child.unref();
  if (a.verbose)
    process.stderr.write(
      `mount.fuse.bucketgate: ${a.source} mounted at ${target} (pid ${child.pid}; ${where})\n`,
    );
  return 0;
}

// Run when executed directly (bin/mount.fuse.bucketgate execs this file).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  void mountHelper(process.argv.slice(2)).then((status) => process.exit(status));
}
