/**
 * The `bucketgate` command (see docs/CLI.md and ../shared/docs/cli.md).
 * Exit status: 0 success, 1 the operation failed (message on stderr), 2 usage error.
 */
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  DEFAULTS,
  MOUNT_OPTIONS,
  isUsageError,
  parseDuration,
  parseMountArgs,
  resolveShare,
  UsageError,
} from '../config/index.js';
import type { ShareConfig } from '../config/index.js';
import { configureLogging, getLogger } from '../log/index.js';
import { adminCall, resolveAdminSocket } from '../daemon/admin.js';
import { runShares } from '../daemon/runner.js';
import { startEmbeddedS3 } from '../daemon/embedded-s3.js';
import { formatStatus } from './format.js';
import { cmdServe } from '../daemon/serve.js';
import { notifyFailed } from '../daemon/notify.js';
import { takeServiceFlags } from './service-flags.js';
import { bucketgateVersion } from '../core/version.js';

const USAGE = `usage:
  bucketgate mount s3://BUCKET[/PREFIX] MOUNTPOINT [options]   one share, in the foreground
  bucketgate serve --config FILE [--check]                      every share of a config file (systemd)
  bucketgate refresh MOUNTPOINT|SHARE [PATH] [--recursive]      reverse sync now
  bucketgate status  MOUNTPOINT|SHARE [--json]                  cache, dirty data, upload queue
  bucketgate flush   MOUNTPOINT|SHARE [--timeout DURATION]      wait until every dirty byte is uploaded
  bucketgate backup  MOUNTPOINT|SHARE FILE                      online copy of the share's metadata database
  bucketgate demo [--dir DIR]                                   embedded S3 server + mounted share
  bucketgate version                                            versions of bucketgate and Node

Run "bucketgate mount --help" for the mount options (docs/CLI.md lists them all).`;

function fail(msg: string, code = 1): never {
  process.stderr.write(`bucketgate: ${msg}\n`);
  process.exit(code);
}

/** Common flags of the admin commands: --admin-dir DIR. */
function adminDir(args: string[]): string {
  const i = args.findIndex((a) => a === '--admin-dir' || a.startsWith('--admin-dir='));
  if (i < 0) return process.env.BUCKETGATE_ADMIN_DIR ?? DEFAULTS.adminSocketDir;
  const a = args[i]!;
  const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : args[i + 1];
  args.splice(i, a.includes('=') ? 1 : 2);
  if (!v) throw new UsageError('--admin-dir needs a directory');
  return v;
}

function takeFlag(args: string[], flag: string): boolean {
  const i = args.indexOf(flag);
  if (i < 0) return false;
  args.splice(i, 1);
  return true;
}

function takeValue(args: string[], flag: string): string | undefined {
  const i = args.findIndex((a) => a === flag || a.startsWith(`${flag}=`));
  if (i < 0) return undefined;
  const a = args[i]!;
  const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : args[i + 1];
  args.splice(i, a.includes('=') ? 1 : 2);
  if (v === undefined) throw new UsageError(`${flag} needs a value`);
  return v;
}

async function cmdMount(args: string[]): Promise<void> {
  if (args.includes('--help') || args.includes('-h')) {
    const row = (left: string, text: string): string => `${`  ${left}`.padEnd(34)} ${text}`;
    const lines = [
      ...MOUNT_OPTIONS.map((o) =>
        row(
          `--${o.flag}${o.valueName !== undefined ? ` ${o.valueName}` : ''}`,
          `${o.description} (default: ${o.defaultText})`,
        ),
      ),
      row('--metrics HOST:PORT', 'Prometheus endpoint (default: off)'),
      row('--audit-log FILE', 'audit log of file operations (default: off)'),
      row('--log-format text|json', 'log line format (default: text)'),
    ];
    process.stdout.write(
      'usage: bucketgate mount s3://BUCKET[/PREFIX] MOUNTPOINT [options]\n' +
        '       bucketgate mount s3://BUCKET[/PREFIX] --no-fuse --nfs HOST[:PORT] [options]\n\n' +
        `options:\n${lines.join('\n')}\n\nSee docs/CLI.md.\n`,
    );
    return;
  }
  const svc = takeServiceFlags(args);
  const cfg = parseMountArgs(args, { cwd: process.cwd() });
  configureLogging({ level: cfg.logLevel, ...(svc.logFormat ? { format: svc.logFormat } : {}) });
  await runShares([cfg], { sighupRefresh: true, ...svc });
}

async function cmdStatus(args: string[]): Promise<void> {
  const dir = adminDir(args);
  const json = takeFlag(args, '--json');
  const target = args.shift();
  if (!target || args.length > 0) throw new UsageError('usage: bucketgate status MOUNTPOINT|SHARE [--json]');
  const sock = await resolveAdminSocket(dir, target);
  const r = await adminCall(sock, { cmd: 'status' });
  if (!r.ok) fail(r.error ?? 'status failed');
  process.stdout.write(json ? `${JSON.stringify(r.status, null, 2)}\n` : formatStatus(r.status));
}

async function cmdFlush(args: string[]): Promise<void> {
  const dir = adminDir(args);
  const t = takeValue(args, '--timeout');
  const timeoutMs = t !== undefined ? parseDuration(t, 'timeout') : 24 * 3600_000;
  const target = args.shift();
  if (!target || args.length > 0)
    throw new UsageError('usage: bucketgate flush MOUNTPOINT|SHARE [--timeout DURATION]');
  const sock = await resolveAdminSocket(dir, target);
  const tty = process.stderr.isTTY;
  const r = await adminCall(sock, { cmd: 'flush', timeoutMs }, (p) => {
    const q = p as { queued?: number; dirtyBytes?: number };
    const line = `flushing: ${q.queued ?? 0} files queued, ${q.dirtyBytes ?? 0} dirty bytes`;
    process.stderr.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
  });
  if (tty) process.stderr.write('\n');
  if (!r.ok) fail(r.error ?? 'flush failed');
  process.stdout.write('all data is in the bucket\n');
}

async function cmdBackup(args: string[]): Promise<void> {
  const dir = adminDir(args);
  const target = args.shift();
  const dest = args.shift();
  if (!target || !dest || args.length > 0)
    throw new UsageError('usage: bucketgate backup MOUNTPOINT|SHARE FILE');
  const sock = await resolveAdminSocket(dir, target);
  const r = await adminCall(sock, { cmd: 'backup', dest: resolve(dest) });
  if (!r.ok) fail(r.error ?? 'backup failed');
  process.stdout.write(`metadata database copied to ${resolve(dest)}\n`);
}

async function cmdRefresh(args: string[]): Promise<void> {
  const dir = adminDir(args);
  const recursive = takeFlag(args, '--recursive') || takeFlag(args, '-r');
  const target = args.shift();
  const path = args.shift();
  if (!target || args.length > 0)
    throw new UsageError('usage: bucketgate refresh MOUNTPOINT|SHARE [PATH] [--recursive]');
  const sock = await resolveAdminSocket(dir, target);
  const tty = process.stderr.isTTY;
  const r = await adminCall(
    sock,
    { cmd: 'refresh', ...(path !== undefined ? { path } : {}), recursive },
    (p) => {
      const q = p as { directories?: number; objects?: number };
      const line = `refreshing: ${q.directories ?? 0} directories, ${q.objects ?? 0} objects listed`;
      process.stderr.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
    },
  );
  if (tty) process.stderr.write('\n');
  if (!r.ok) fail(r.error ?? 'refresh failed');
  const s = r.summary as Record<string, number> | undefined;
  process.stdout.write(
    `refreshed: ${s?.added ?? 0} added, ${s?.changed ?? 0} changed, ${s?.removed ?? 0} removed, ${s?.conflicts ?? 0} conflicts\n`,
  );
}

async function cmdDemo(args: string[]): Promise<void> {
  const dir = resolve(takeValue(args, '--dir') ?? './bucketgate-demo');
  if (args.length > 0) throw new UsageError(`unexpected argument ${args[0]}`);
  const log = getLogger({ component: 'demo' });
  await mkdir(dir, { recursive: true });
  const s3 = await startEmbeddedS3({ directory: resolve(dir, 's3'), buckets: ['demo'] });
  log.info('embedded S3 server started', { endpoint: s3.endpoint, directory: resolve(dir, 's3') });
  process.env.AWS_ACCESS_KEY_ID = s3.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = s3.secretAccessKey;
  const mnt = resolve(dir, 'mnt');
  await mkdir(mnt, { recursive: true });
  const cfg: ShareConfig = resolveShare(
    {
      url: 's3://demo',
      mountpoint: mnt,
      endpoint: s3.endpoint,
      pathStyle: true,
      cacheDir: resolve(dir, 'cache'),
      cacheSize: '1G',
      name: 'demo',
      adminSocketDir: process.env.BUCKETGATE_ADMIN_DIR ?? resolve(dir, 'run'),
      nfs: `127.0.0.1:${process.env.BUCKETGATE_DEMO_NFS_PORT ?? '20490'}`,
      // Loopback-only demo: NFS callers keep their ids, so `nfs-cp` as root can write.
      nfsSquash: 'none',
    },
    { cwd: process.cwd() },
  );
  await runShares([cfg], {
    sighupRefresh: true,
    onReady: (shares) => {
      const nfs = shares[0]?.nfsAddress;
      const q = nfs ? `?nfsport=${nfs.port}&mountport=${nfs.port}&version=3` : '';
      process.stdout.write(
        [
          '',
          `bucketgate demo is running.`,
          `  S3 endpoint:  ${s3.endpoint}  (bucket "demo", access key S3RVER / secret S3RVER)`,
          `  FUSE mount:   ${mnt}`,
          `  cache:        ${cfg.cacheDir}`,
          ...(nfs ? [`  NFS export:   ${nfs.host}:${nfs.port}:/demo  (NFSv3, MOUNT on the same port)`] : []),
          '',
          'Try, in another shell:',
          `  echo hello > ${mnt}/hello.txt && ls -l ${mnt}`,
          `  mkdir -p ${mnt}/a/b && cp /etc/os-release ${mnt}/a/b/ && cat ${mnt}/a/b/os-release`,
          `  ./bin/bucketgate status ${mnt} --admin-dir ${cfg.adminSocketDir}`,
          ...(nfs
            ? [
                `  nfs-ls 'nfs://127.0.0.1/demo${q}'`,
                `  nfs-cat 'nfs://127.0.0.1/demo/hello.txt${q}'`,
                `  nfs-cp /etc/hostname 'nfs://127.0.0.1/demo/from-nfs.txt${q}' && cat ${mnt}/from-nfs.txt`,
              ]
            : []),
          `  ls ${resolve(dir, 's3', 'demo')}      # the objects, as s3rver stores them`,
          '',
          'Stop with Ctrl-C (SIGINT) or SIGTERM.',
          '',
        ].join('\n'),
      );
    },
    onStopped: () => s3.stop(),
  });
}

export async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'mount':
        return await cmdMount(rest);
      case 'serve':
        return await cmdServe(rest);
      case 'status':
        return await cmdStatus(rest);
      case 'flush':
        return await cmdFlush(rest);
      case 'refresh':
        return await cmdRefresh(rest);
      case 'backup':
        return await cmdBackup(rest);
      case 'demo':
        return await cmdDemo(rest);
      case 'version':
      case '--version':
      case '-V':
        process.stdout.write(`bucketgate ${bucketgateVersion()} (Node ${process.version})\n`);
        return;
      case '--help':
      case '-h':
      case 'help':
        process.stdout.write(`${USAGE}\n`);
        return;
      case undefined:
        throw new UsageError('no command given');
      default:
        throw new UsageError(`unknown command "${cmd}"`);
    }
  } catch (e) {
    notifyFailed(e instanceof Error ? e.message : String(e));
    if (isUsageError(e)) {
      process.stderr.write(`bucketgate: ${e.message}\n${USAGE}\n`);
      process.exit(2);
    }
    fail(e instanceof Error ? e.message : String(e));
  }
}
