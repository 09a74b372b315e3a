/**
 * The file systems under test, each mounted over the same s3rver bucket (or, for `local`, a
 * local directory holding the same data): bucketgate in both modes (the real CLI,
 * `node bin/bucketgate mount ...`), s3fs and rclone mount with their default settings apart
 * from what each needs to reach s3rver.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SystemId } from './schema.js';
import { S3_KEY, S3_SECRET, type BenchS3 } from './s3rver.js';
import { isMounted, run, startDaemon, umountAllUnder, waitMounted, type Daemon } from './util.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = join(ROOT, 'bin', 'bucketgate');

export interface SystemEnv {
  work: string;
  s3: BenchS3;
  bucket: string;
  /** Run bucketgate under `node --cpu-prof`, writing profiles below this directory. */
  profileDir?: string;
}

export interface FsSystem {
  id: SystemId;
  /** Where the bucket's root (or the local copy of the data) appears. */
  root: string;
  /** The daemon serving the mount, when mounted. */
  pid(): number | undefined;
  /** Mount; `fresh` starts on an empty cache. `tag` names the mount (profiles). */
  start(fresh: boolean, tag: string): Promise<void>;
  stop(): Promise<void>;
}

const MOUNT_TIMEOUT_MS = 60_000;

/** Unmount a FUSE mount served by `d` and wait for the daemon; force it if it does not go. */
async function fuseStop(d: Daemon | undefined, mnt: string, viaSignal: boolean): Promise<void> {
  if (d && d.running()) {
    if (viaSignal) {
      await d.stop('SIGTERM', 120_000);
    } else {
      await run('fusermount', ['-u', mnt], { check: false, timeoutMs: 60_000 });
      const t = setTimeout(() => d.proc.kill('SIGTERM'), 30_000);
      const t2 = setTimeout(() => d.proc.kill('SIGKILL'), 60_000);
      await d.exited;
      clearTimeout(t);
      clearTimeout(t2);
    }
  }
  if (await isMounted(mnt)) await umountAllUnder(mnt);
}

export class BucketgateSystem implements FsSystem {
  readonly root: string;
  private readonly cacheDir: string;
  private daemon: Daemon | undefined;

  constructor(
    readonly id: 'bg-cache' | 'bg-wt',
    private readonly env: SystemEnv,
  ) {
    this.root = join(env.work, 'mnt', id);
    this.cacheDir = join(env.work, 'cache', id);
  }

  pid(): number | undefined {
    return this.daemon?.running() ? this.daemon.pid : undefined;
  }

  async start(fresh: boolean, tag: string): Promise<void> {
    if (fresh) await rm(this.cacheDir, { recursive: true, force: true });
    await mkdir(this.cacheDir, { recursive: true });
    await mkdir(this.root, { recursive: true });
    const mode = this.id === 'bg-cache' ? 'cache' : 'write-through';
    const nodeArgs: string[] = [];
    if (this.env.profileDir) {
      const dir = join(this.env.profileDir, `${this.id}-${tag}`);
      await mkdir(dir, { recursive: true });
      nodeArgs.push('--cpu-prof', '--cpu-prof-dir', dir);
    }
    const args = [
      ...nodeArgs,
      BIN,
      'mount',
      `s3://${this.env.bucket}`,
      this.root,
      '--endpoint',
      this.env.s3.endpoint,
      '--path-style',
      '--cache-dir',
      this.cacheDir,
      '--mode',
      mode,
      '--name',
      `bench-${this.id}`,
      '--admin-dir',
      join(this.env.work, 'run'),
      '--log-level',
      'warn',
    ];
    const env = {
      ...process.env,
      AWS_ACCESS_KEY_ID: S3_KEY,
      AWS_SECRET_ACCESS_KEY: S3_SECRET,
      NODE_OPTIONS: '',
    };
    const d = startDaemon(this.id, process.execPath, args, { env });
    this.daemon = d;
    await waitMounted(this.root, d.running, MOUNT_TIMEOUT_MS, d.output);
  }

  async stop(): Promise<void> {
    const d = this.daemon;
    this.daemon = undefined;
    await fuseStop(d, this.root, true);
  }
}

export class S3fsSystem implements FsSystem {
  readonly id = 's3fs' as const;
  readonly root: string;
  private daemon: Daemon | undefined;

  constructor(private readonly env: SystemEnv) {
    this.root = join(env.work, 'mnt', 's3fs');
  }

  pid(): number | undefined {
    return this.daemon?.running() ? this.daemon.pid : undefined;
  }

  async start(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    const passwd = join(this.env.work, 's3fs.passwd');
    await writeFile(passwd, `${S3_KEY}:${S3_SECRET}\n`, { mode: 0o600 });
    const opts = `passwd_file=${passwd},url=${this.env.s3.endpoint},use_path_request_style`;
    const d = startDaemon('s3fs', 's3fs', [this.env.bucket, this.root, '-f', '-o', opts]);
    this.daemon = d;
    await waitMounted(this.root, d.running, MOUNT_TIMEOUT_MS, d.output);
  }

  async stop(): Promise<void> {
    const d = this.daemon;
    this.daemon = undefined;
    await fuseStop(d, this.root, false);
  }
}

export class RcloneSystem implements FsSystem {
  readonly root: string;
  private readonly cacheDir: string;
  private daemon: Daemon | undefined;

  constructor(
    readonly id: 'rclone-writes' | 'rclone-full',
    private readonly env: SystemEnv,
  ) {
    this.root = join(env.work, 'mnt', id);
    this.cacheDir = join(env.work, 'cache', id);
  }

  pid(): number | undefined {
    return this.daemon?.running() ? this.daemon.pid : undefined;
  }

  async start(fresh: boolean): Promise<void> {
    if (fresh) await rm(this.cacheDir, { recursive: true, force: true });
    await mkdir(this.cacheDir, { recursive: true });
    await mkdir(this.root, { recursive: true });
    const conf = join(this.env.work, 'rclone.conf');
    await writeFile(
      conf,
      [
        '[s3r]',
        'type = s3',
        'provider = Other',
        `access_key_id = ${S3_KEY}`,
        `secret_access_key = ${S3_SECRET}`,
        `endpoint = ${this.env.s3.endpoint}`,
        'force_path_style = true',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const mode = this.id === 'rclone-writes' ? 'writes' : 'full';
    // rclone 1.60 fails with LoadCustomCABundleError when AWS_CA_BUNDLE is set.
    const env = { ...process.env };
    delete env.AWS_CA_BUNDLE;
    const d = startDaemon(
      this.id,
      'rclone',
      [
        'mount',
        `s3r:${this.env.bucket}`,
        this.root,
        '--config',
        conf,
        '--vfs-cache-mode',
        mode,
        '--cache-dir',
        this.cacheDir,
        '--log-level',
        'ERROR',
      ],
      { env },
    );
    this.daemon = d;
    await waitMounted(this.root, d.running, MOUNT_TIMEOUT_MS, d.output);
  }

  async stop(): Promise<void> {
    const d = this.daemon;
    this.daemon = undefined;
    await fuseStop(d, this.root, false);
  }
}

/** A local directory with the same data: the file-system limit. */
export class LocalSystem implements FsSystem {
  readonly id = 'local' as const;
  readonly root: string;

  constructor(env: SystemEnv) {
    this.root = join(env.work, 'local');
  }

  pid(): number | undefined {
    return undefined;
  }

  async start(): Promise<void> {
    await mkdir(this.root, { recursive: true });
  }

  async stop(): Promise<void> {
    // nothing mounted
  }
}

export async function versionOf(cmd: string, args: string[], re: RegExp): Promise<string | undefined> {
  try {
    const r = await run(cmd, args, { check: false, timeoutMs: 10_000 });
    const m = re.exec(`${r.stdout}\n${r.stderr}`);
    return m?.[1];
  } catch {
    return undefined;
  }
}
