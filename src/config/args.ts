/**
 * Command-line and fstab parsing of one share (cli.md):
 *
 *   bucketgate mount s3://BUCKET[/PREFIX] MOUNTPOINT [options]
 *   bucketgate mount s3://BUCKET[/PREFIX] --no-fuse --nfs HOST[:PORT] [options]
 *
 * Options: `--flag value`, `--flag=value`, boolean `--flag` (or `--flag=true|false`), `--` ends
 * options, and `-o key=value,key2,...` (also `-okey=value`) with the fstab syntax below. Options
 * and positionals may come in any order. A repeated option replaces the earlier value, except
 * the client lists (`--nfs-clients`, `--nfs-ro-clients`), which accumulate.
 *
 * fstab options are the flags without dashes (`cache-dir=/var/cache/x`, `allow-other`); '_' may
 * stand for '-' (`allow_other`). mount(8)'s generic options (`_netdev`, `rw`, `nofail`,
 * `defaults`, `auto`, `noauto`, `user`, `x-systemd.*`, ...) are ignored, except `ro`, which means
 * `read-only`. A client list may be quoted (`nfs-clients="10.0.0.0/8,fd00::/8"`) or continue over
 * following bare addresses (`nfs-clients=10.0.0.0/8,192.168.1.0/24`).
 *
 * Syntax errors are UsageErrors (exit 2) naming the flag; so are bad values, whose messages name
 * the flag as written (`--cache-size: "20X" is not a size ...`).
 */
import { ConfigError, UsageError } from './errors.js';
import {
  closest,
  DEFAULTS,
  parseBool,
  parseClientSpec,
  resolveShare,
  type ShareConfig,
  type ShareInput,
  type ShareInputKey,
} from './schema.js';
import { formatDuration, formatSize } from './units.js';

export type OptionKind = 'boolean' | 'value' | 'list';

export interface OptionSpec {
  /** Long flag without dashes; also the fstab option name. */
  flag: string;
  /** Config-file key (camelCase of the flag). */
  key: ShareInputKey;
  kind: OptionKind;
  /** Placeholder of the value in help texts, e.g. `SIZE`. */
  valueName?: string;
  description: string;
  /** Default as shown in help texts. */
  defaultText: string;
}

function opt(
  flag: string,
  kind: OptionKind,
  valueName: string | undefined,
  description: string,
  defaultText: string,
): OptionSpec {
  const key = flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()) as ShareInputKey;
  return { flag, key, kind, ...(valueName !== undefined ? { valueName } : {}), description, defaultText };
}

/** Every `mount` option, in cli.md's order (then the later additions). */
export const MOUNT_OPTIONS: readonly OptionSpec[] = [
  opt('endpoint', 'value', 'URL', 'S3 endpoint, e.g. http://127.0.0.1:9000', 'AWS for the region'),
  opt('region', 'value', 'R', 'region', DEFAULTS.region),
  opt(
    'path-style',
    'boolean',
    undefined,
    'path-style addressing (MinIO, s3rver, most on-premise stores)',
    'off',
  ),
  opt(
    'cache-dir',
    'value',
    'DIR',
    'cache files and the SQLite metadata database',
    '/var/cache/bucketgate/<share>',
  ),
  opt('cache-size', 'value', 'SIZE', 'disk cache limit, e.g. 20G', formatSize(DEFAULTS.cacheSize)),
  opt(
    'mode',
    'value',
    'cache|write-through',
    'write-back through the local cache, or upload before close/fsync returns',
    DEFAULTS.mode,
  ),
  opt(
    'refresh-interval',
    'value',
    'DUR',
    'periodic reverse sync of the whole share; 0 = off',
    formatDuration(DEFAULTS.refreshIntervalMs),
  ),
  opt(
    'dir-ttl',
    'value',
    'DUR',
    'a cached directory listing older than this is re-listed on access',
    formatDuration(DEFAULTS.dirTtlMs),
  ),
  opt(
    'name',
    'value',
    'NAME',
    'share name: admin commands, admin socket, NFS export path /NAME; unique per host',
    'bucket name, or BUCKET-PREFIX with / → -',
  ),
  opt('checksum', 'value', 'MODE', 'upload integrity: auto, md5, crc32c, crc64nvme', DEFAULTS.checksum),
  opt(
    'nfs',
    'value',
    'HOST[:PORT]',
    'also export the share over NFSv3 at /NAME (MOUNT on the same port)',
    `off; port ${DEFAULTS.nfsPort}`,
  ),
  opt('nfs-portmap', 'boolean', undefined, 'also answer portmapper/rpcbind queries on port 111', 'off'),
  opt(
    'nfs-secure',
    'boolean',
    undefined,
    'accept NFS/MOUNT calls only from privileged source ports (< 1024)',
    'off',
  ),
  opt('no-fuse', 'boolean', undefined, 'NFS export only; MOUNTPOINT is then omitted', 'off'),
  opt(
    'nfs-clients',
    'list',
    'LIST',
    'comma-separated IPs/CIDRs allowed read-write',
    DEFAULTS.nfsClients.join(','),
  ),
  opt('nfs-ro-clients', 'list', 'LIST', 'IPs/CIDRs allowed read-only', 'none'),
  opt(
    'nfs-squash',
    'value',
    'MODE',
    'none, root_squash, all_squash, all_anonymous (synonym of all_squash)',
    DEFAULTS.nfsSquash,
  ),
  opt('nfs-anon-uid', 'value', 'N', 'uid that squashed callers become', String(DEFAULTS.nfsAnonUid)),
  opt('nfs-anon-gid', 'value', 'N', 'gid that squashed callers become', String(DEFAULTS.nfsAnonGid)),
  opt('read-only', 'boolean', undefined, 'refuse every change with EROFS', 'off'),
  opt('uid', 'value', 'N', 'owner of objects that carry no POSIX metadata', String(DEFAULTS.uid)),
  opt('gid', 'value', 'N', 'group of objects that carry no POSIX metadata', String(DEFAULTS.gid)),
  opt('file-mode', 'value', 'OCT', 'permissions of files that carry no POSIX metadata', '0644'),
  opt('dir-mode', 'value', 'OCT', 'permissions of directories that carry no POSIX metadata', '0755'),
  opt('allow-other', 'boolean', undefined, 'FUSE allow_other', 'off'),
  opt('log-level', 'value', 'LEVEL', 'error, warn, info, debug', DEFAULTS.logLevel),
  opt(
    'upload-delay',
    'value',
    'DUR',
    'cache mode: delay after the last close before the upload starts',
    formatDuration(DEFAULTS.uploadDelayMs),
  ),
  opt(
    'upload-busy-defer',
    'value',
    'DUR',
    'cache mode: how long uploads may wait beyond the delay while files are being written (0: never)',
    formatDuration(DEFAULTS.uploadBusyDeferMs),
  ),
  opt(
    'cache-write-wait',
    'value',
    'DUR',
    'how long a write waits for cache space (dirty data uploading) before ENOSPC',
    formatDuration(DEFAULTS.cacheWriteWaitMs),
  ),
  opt(
    's3-timeout',
    'value',
    'DUR',
    'an S3 request with no progress for this long is abandoned and retried',
    formatDuration(DEFAULTS.s3TimeoutMs),
  ),
  opt(
    'upload-concurrency',
    'value',
    'N',
    'uploads running at the same time',
    String(DEFAULTS.uploadConcurrency),
  ),
  opt(
    'attr-timeout',
    'value',
    'DUR',
    'FUSE attribute/entry cache timeout',
    formatDuration(DEFAULTS.attrTimeoutMs),
  ),
  opt('admin-dir', 'value', 'DIR', 'directory of the admin sockets NAME.sock', DEFAULTS.adminSocketDir),
];

const BY_FLAG = new Map(MOUNT_OPTIONS.map((o) => [o.flag, o]));
const BY_KEY = new Map<string, OptionSpec>(MOUNT_OPTIONS.map((o) => [o.key, o]));

/** mount(8) options that concern mount(8), systemd or the kernel's generic flags: ignored. */
export const GENERIC_MOUNT_OPTIONS: readonly string[] = [
  '_netdev',
  'rw',
  'nofail',
  'defaults',
  'auto',
  'noauto',
  'user',
  'nouser',
  'users',
  'owner',
  'group',
  'exec',
  'noexec',
  'dev',
  'nodev',
  'suid',
  'nosuid',
  'atime',
  'noatime',
  'relatime',
  'norelatime',
  'strictatime',
  'nostrictatime',
  'lazytime',
  'nolazytime',
  'diratime',
  'nodiratime',
  'async',
  'sync',
  'dirsync',
  'silent',
  'loud',
];

function isGeneric(name: string): boolean {
  return (
    GENERIC_MOUNT_OPTIONS.includes(name) ||
    /^x-/i.test(name) || // x-systemd.*, x-gvfs-*, userspace comments
    name === 'comment' ||
    name === 'user' // `user=NAME`, added by mount(8) for user mounts
  );
}

/** The raw settings of a command line, before resolveShare, and how each key was spelled. */
export interface MountArgs {
  input: ShareInput;
  /** key → how the user wrote it (`--cache-size`, `-o cache-size`), for error messages. */
  labels: Record<string, string>;
}

type Raw = Record<string, string | boolean | string[]>;

class Collector {
  readonly raw: Raw = {};
  readonly labels: Record<string, string> = {};
  readonly positionals: string[] = [];

  set(spec: OptionSpec, value: string | boolean, label: string): void {
    if (spec.kind === 'list') {
      const prev = this.raw[spec.key];
      const items = String(value).split(',');
      this.raw[spec.key] = Array.isArray(prev) ? [...prev, ...items] : items;
    } else {
      this.raw[spec.key] = value;
    }
    this.labels[spec.key] = label;
  }

  append(key: string, item: string): void {
    const prev = this.raw[key];
    this.raw[key] = Array.isArray(prev) ? [...prev, item] : [item];
  }
}

function unknownFlag(flag: string): UsageError {
  const hint = closest(
    flag,
    MOUNT_OPTIONS.map((o) => o.flag),
  );
  return new UsageError(`unknown option --${flag}${hint !== undefined ? ` (did you mean --${hint}?)` : ''}`);
}

/** Split an -o string on commas outside double quotes; quotes are removed. */
function splitOptions(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of s) {
    if (ch === '"') quoted = !quoted;
    else if (ch === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (quoted) throw new UsageError(`mount options ${JSON.stringify(s)}: unbalanced '"'`);
  out.push(cur);
  return out;
}

function isClientSpec(s: string): boolean {
  try {
    parseClientSpec(s);
    return true;
  } catch {
    return false;
  }
}

function addFstabOptions(options: string, c: Collector, labelPrefix: string): void {
  let lastList: string | undefined;
  for (const rawTok of splitOptions(options)) {
    const tok = rawTok.trim();
    if (tok === '') continue;
    const eq = tok.indexOf('=');
    const rawName = eq < 0 ? tok : tok.slice(0, eq);
    const value = eq < 0 ? undefined : tok.slice(eq + 1);
    if (isGeneric(rawName)) {
      lastList = undefined;
      continue;
    }
    if (rawName === 'ro' && value === undefined) {
      const spec = BY_FLAG.get('read-only');
      if (spec !== undefined) c.set(spec, true, `${labelPrefix}ro`);
      lastList = undefined;
      continue;
    }
    // A bare address right after a client list continues it: nfs-clients=10.0.0.0/8,192.168.0.0/16
    if (value === undefined && lastList !== undefined && isClientSpec(tok)) {
      c.append(lastList, tok);
      continue;
    }
    const name = rawName.toLowerCase().replace(/_/g, '-');
    const spec = BY_FLAG.get(name);
    if (spec === undefined) {
      const hint = closest(
        name,
        MOUNT_OPTIONS.map((o) => o.flag),
      );
      throw new UsageError(
        `unknown mount option ${JSON.stringify(rawName)}${hint !== undefined ? ` (did you mean ${hint}?)` : ''}`,
      );
    }
    const label = `${labelPrefix}${rawName}`;
    if (spec.kind === 'boolean') {
      c.set(spec, value ?? true, label);
    } else {
      if (value === undefined) {
        throw new UsageError(
          `mount option ${rawName} needs a value (${rawName}=${spec.valueName ?? 'VALUE'})`,
          {
            key: spec.key,
          },
        );
      }
      c.set(spec, value, label);
    }
    lastList = spec.kind === 'list' ? spec.key : undefined;
  }
}

/** Settings of an fstab option string (`cache-dir=/x,mode=write-through,allow_other,_netdev`). */
export function parseFstabOptions(options: string): ShareInput {
  const c = new Collector();
  addFstabOptions(options, c, '');
  return c.raw as ShareInput;
}

/** The raw settings of `mount` arguments (everything after the word `mount`), unvalidated. */
export function parseMountInput(argv: readonly string[]): MountArgs {
  const c = new Collector();
  let endOfOptions = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (endOfOptions || a === '-' || !a.startsWith('-')) {
      c.positionals.push(a);
      continue;
    }
    if (a === '--') {
      endOfOptions = true;
      continue;
    }
    if (a.startsWith('-o')) {
      let value = a.slice(2);
      if (value === '') {
        const next = argv[i + 1];
        if (next === undefined) throw new UsageError('-o needs a value (-o key=value,...)');
        value = next;
        i++;
      }
      addFstabOptions(value, c, '-o ');
      continue;
    }
    if (!a.startsWith('--')) throw new UsageError(`unknown option ${a}`);
    const eq = a.indexOf('=');
    const flag = eq < 0 ? a.slice(2) : a.slice(2, eq);
    const inline = eq < 0 ? undefined : a.slice(eq + 1);
    const spec = BY_FLAG.get(flag);
    if (spec === undefined) throw unknownFlag(flag);
    const label = `--${flag}`;
    if (spec.kind === 'boolean') {
      c.set(spec, inline ?? true, label);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      const next = argv[i + 1];
      const shape = `${label} ${spec.valueName ?? 'VALUE'}`;
      if (next === undefined) throw new UsageError(`${label} needs a value (${shape})`, { key: spec.key });
      if (next.startsWith('-') && next !== '-') {
        throw new UsageError(
          `${label} needs a value (${shape}); for a value that starts with '-', write ${label}=VALUE`,
          { key: spec.key },
        );
      }
      value = next;
      i++;
    }
    c.set(spec, value, label);
  }

  let noFuse = false;
  const nf = c.raw.noFuse;
  if (nf !== undefined && !Array.isArray(nf)) {
    try {
      noFuse = parseBool(nf, 'noFuse');
    } catch (e) {
      if (e instanceof ConfigError) throw new UsageError(`${c.labels.noFuse ?? '--no-fuse'}: ${e.problem}`);
      throw e;
    }
  }
  const [url, mountpoint, ...extra] = c.positionals;
  if (url === undefined) throw new UsageError('missing s3://BUCKET[/PREFIX]', { key: 'url' });
  const input: Raw = { ...c.raw, url };
  if (noFuse) {
    if (mountpoint !== undefined) {
      throw new UsageError(
        `unexpected argument ${JSON.stringify(mountpoint)} (--no-fuse takes no MOUNTPOINT)`,
      );
    }
  } else {
    if (mountpoint === undefined) {
      throw new UsageError('missing MOUNTPOINT (or give --no-fuse with --nfs HOST[:PORT])', {
        key: 'mountpoint',
      });
    }
    input.mountpoint = mountpoint;
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  return { input: input as ShareInput, labels: { url: 'URL', mountpoint: 'MOUNTPOINT', ...c.labels } };
}

/** How an error names `key`: the flag as written, else the flag of that key, else the key. */
function labeller(labels: Record<string, string>): (key: string) => string {
  return (key) => {
    const l = labels[key];
    if (l !== undefined) return l;
    const spec = BY_KEY.get(key);
    return spec !== undefined ? `--${spec.flag}` : key;
  };
}

/**
 * `bucketgate mount` arguments (everything after the word `mount`) → validated ShareConfig.
 * Every error is a UsageError (exit 2); value errors keep the key (`e.key`).
 */
export function parseMountArgs(argv: readonly string[], options: { cwd?: string } = {}): ShareConfig {
  const { input, labels } = parseMountInput(argv);
  try {
    return resolveShare(input, { ...options, label: labeller(labels) });
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message, { key: e.key, cause: e });
    throw e;
  }
}
