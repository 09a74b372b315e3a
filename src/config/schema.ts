/**
 * The settings of one share (cli.md's `mount` options, camelCase) and of the daemon, their
 * defaults, and their validation.
 *
 * Two shapes:
 * - ShareInput: what a user writes — config-file keys (camelCase of the flags: `cacheSize: "20G"`,
 *   `refreshInterval: "5m"`, `adminDir`) or flag values as strings (`uid: "1000"`). Loose types,
 *   checked at run time, unknown keys refused.
 * - ShareConfig: the resolved, validated settings every other module reads (bytes, milliseconds,
 *   numbers, absolute paths, defaults filled in).
 *
 * resolveShare(input) turns the first into the second; every problem is a ConfigError whose key
 * names the setting and whose message quotes the bad value (never a secret).
 */
import { isIP } from 'node:net';
import path from 'node:path';
import { KEY_MAX } from '../core/types.js';
import { ConfigError } from './errors.js';
import { parseDuration, parseSize } from './units.js';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type LogFormat = 'text' | 'json';
export type WriteMode = 'cache' | 'write-through';
export type ChecksumMode = 'auto' | 'md5' | 'crc32c' | 'crc64nvme';
export type NfsSquash = 'none' | 'root_squash' | 'all_squash';

export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];
export const WRITE_MODES: readonly WriteMode[] = ['cache', 'write-through'];
export const CHECKSUM_MODES: readonly ChecksumMode[] = ['auto', 'md5', 'crc32c', 'crc64nvme'];
/** Accepted spellings of --nfs-squash; `all_anonymous` is normalised to `all_squash`. */
export const NFS_SQUASH_MODES: readonly string[] = ['none', 'root_squash', 'all_squash', 'all_anonymous'];

export interface HostPort {
  /** Host name or IP address (IPv6 without brackets). */
  host: string;
  port: number;
}

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Resolved settings of one share. Paths are absolute. */
export interface ShareConfig {
  /** Share name: admin commands, admin socket `<adminSocketDir>/<name>.sock`, NFS export `/<name>`. */
  name: string;
  /** Canonical `s3://BUCKET` or `s3://BUCKET/PREFIX` (no trailing '/'). */
  url: string;
  bucket: string;
  /** Key prefix of the share: '' (whole bucket) or `a/b/` — always ending in '/'. key = prefix + path. */
  prefix: string;
  /** S3 endpoint URL; absent = AWS for the region. */
  endpoint?: string;
  region: string;
  pathStyle: boolean;
  /** From the config file only; absent = the AWS SDK's default chain. */
  credentials?: S3Credentials;
  cacheDir: string;
  /** Disk cache limit in bytes. */
  cacheSize: number;
  mode: WriteMode;
  /** Periodic reverse sync of the whole share; 0 = off. */
  refreshIntervalMs: number;
  /** A cached listing older than this is re-listed on access. */
  dirTtlMs: number;
  /** FUSE attribute/entry cache timeout. */
  attrTimeoutMs: number;
  /** Cache mode: delay after the last close before a file's upload starts. */
  uploadDelayMs: number;
  /** Cache mode: how long background uploads may wait beyond their delay while the share is busy (0: never). */
  uploadBusyDeferMs: number;
  /** How long a write waits for cache space before ENOSPC. */
  cacheWriteWaitMs: number;
  /** An S3 request without progress for this long fails (and is retried). */
  s3TimeoutMs: number;
  /** Uploads running at the same time. */
  uploadConcurrency: number;
  checksum: ChecksumMode;
  /** FUSE mountpoint; absent exactly when noFuse. */
  mountpoint?: string;
  noFuse: boolean;
  allowOther: boolean;
  /** NFSv3 (+ MOUNT) listen address; absent = no NFS export. */
  nfs?: HostPort;
  nfsPortmap: boolean;
  nfsSecure: boolean;
  /** IPs/CIDRs (IPv4 or IPv6) allowed read-write. */
  nfsClients: string[];
  /** IPs/CIDRs allowed read-only. */
  nfsRoClients: string[];
  nfsSquash: NfsSquash;
  nfsAnonUid: number;
  nfsAnonGid: number;
  readOnly: boolean;
  /** Owner, group and permission bits (07777) of objects without POSIX metadata. */
  uid: number;
  gid: number;
  fileMode: number;
  dirMode: number;
  logLevel: LogLevel;
  /** Directory of the admin sockets. */
  adminSocketDir: string;
}

export interface DaemonConfig {
  shares: ShareConfig[];
  logLevel: LogLevel;
  logFormat: LogFormat;
  adminSocketDir: string;
  /** Prometheus-style metrics listener; absent = off. */
  metrics?: HostPort;
}

/** Defaults of cli.md, in resolved units. */
export const DEFAULTS = {
  region: 'us-east-1',
  pathStyle: false,
  cacheDirBase: '/var/cache/bucketgate',
  cacheSize: 10 * 2 ** 30,
  mode: 'cache' as WriteMode,
  refreshIntervalMs: 5 * 60_000,
  dirTtlMs: 60_000,
  attrTimeoutMs: 1000,
  uploadDelayMs: 1000,
  uploadBusyDeferMs: 5000,
  cacheWriteWaitMs: 60_000,
  s3TimeoutMs: 30_000,
  uploadConcurrency: 4,
  checksum: 'auto' as ChecksumMode,
  nfsPort: 2049,
  nfsPortmap: false,
  nfsSecure: false,
  noFuse: false,
  nfsClients: ['127.0.0.1/32'] as readonly string[],
  nfsRoClients: [] as readonly string[],
  nfsSquash: 'root_squash' as NfsSquash,
  nfsAnonUid: 65534,
  nfsAnonGid: 65534,
  readOnly: false,
  uid: 0,
  gid: 0,
  fileMode: 0o644,
  dirMode: 0o755,
  allowOther: false,
  logLevel: 'info' as LogLevel,
  logFormat: 'text' as LogFormat,
  adminSocketDir: '/run/bucketgate',
} as const;

/** Share names: letters, digits, '.', '_', '-'; 1 to 64 characters. */
export const SHARE_NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;
/** Longest timer Node can arm (setTimeout fires at once beyond it). */
export const MAX_TIMER_MS = 2 ** 31 - 1;
const MAX_ID = 2 ** 32 - 2;
const MAX_UPLOAD_CONCURRENCY = 256;

type NumLike = number | string;
type BoolLike = boolean | string;

/**
 * One share as a user writes it. Every key is optional here; resolveShare checks presence,
 * types and values. Aliases: `refreshInterval` (duration string) / `refreshIntervalMs` (number),
 * likewise `dirTtl`, `attrTimeout`, `uploadDelay`, `uploadBusyDefer`; `adminDir` / `adminSocketDir`.
 * File modes must be octal strings ("0644"): a JSON number would be ambiguous.
 */
export interface ShareInput {
  url?: string;
  bucket?: string;
  prefix?: string;
  name?: string;
  endpoint?: string;
  region?: string;
  pathStyle?: BoolLike;
  credentials?: S3Credentials;
  cacheDir?: string;
  cacheSize?: NumLike;
  mode?: string;
  refreshInterval?: NumLike;
  refreshIntervalMs?: NumLike;
  dirTtl?: NumLike;
  dirTtlMs?: NumLike;
  attrTimeout?: NumLike;
  attrTimeoutMs?: NumLike;
  uploadDelay?: NumLike;
  uploadDelayMs?: NumLike;
  uploadBusyDefer?: NumLike;
  uploadBusyDeferMs?: NumLike;
  cacheWriteWait?: NumLike;
  cacheWriteWaitMs?: NumLike;
  s3Timeout?: NumLike;
  s3TimeoutMs?: NumLike;
  uploadConcurrency?: NumLike;
  checksum?: string;
  mountpoint?: string;
  noFuse?: BoolLike;
  allowOther?: BoolLike;
  nfs?: string | { host?: string; port?: NumLike };
  nfsPortmap?: BoolLike;
  nfsSecure?: BoolLike;
  nfsClients?: string | readonly string[];
  nfsRoClients?: string | readonly string[];
  nfsSquash?: string;
  nfsAnonUid?: NumLike;
  nfsAnonGid?: NumLike;
  readOnly?: BoolLike;
  uid?: NumLike;
  gid?: NumLike;
  fileMode?: string;
  dirMode?: string;
  logLevel?: string;
  adminDir?: string;
  adminSocketDir?: string;
}

export type ShareInputKey = keyof ShareInput;

/** Every key ShareInput accepts (the config file's per-share keys). */
export const SHARE_INPUT_KEYS: readonly ShareInputKey[] = [
  'url',
  'bucket',
  'prefix',
  'name',
  'endpoint',
  'region',
  'pathStyle',
  'credentials',
  'cacheDir',
  'cacheSize',
  'mode',
  'refreshInterval',
  'refreshIntervalMs',
  'dirTtl',
  'dirTtlMs',
  'attrTimeout',
  'attrTimeoutMs',
  'uploadDelay',
  'uploadDelayMs',
  'uploadBusyDefer',
  'uploadBusyDeferMs',
  'cacheWriteWait',
  'cacheWriteWaitMs',
  's3Timeout',
  's3TimeoutMs',
  'uploadConcurrency',
  'checksum',
  'mountpoint',
  'noFuse',
  'allowOther',
  'nfs',
  'nfsPortmap',
  'nfsSecure',
  'nfsClients',
  'nfsRoClients',
  'nfsSquash',
  'nfsAnonUid',
  'nfsAnonGid',
  'readOnly',
  'uid',
  'gid',
  'fileMode',
  'dirMode',
  'logLevel',
  'adminDir',
  'adminSocketDir',
];

export interface ResolveOptions {
  /** Base of relative paths (cacheDir, mountpoint, adminDir); default process.cwd(). */
  cwd?: string;
  /** How messages name a key, e.g. `cacheSize` → `--cache-size`. Default: the (prefixed) key. */
  label?: (key: string) => string;
  /** Prefix of the keys in errors, e.g. `shares[2].`. */
  keyPrefix?: string;
  /** Lower-priority values, used for keys the input does not set (e.g. daemon-wide logLevel). */
  defaults?: ShareInput;
}

// ---------------------------------------------------------------------------------------------
// Small parsers, exported for the CLI and the other config code.

/** Levenshtein distance, for "did you mean" hints. */
function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] ?? 0;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j] ?? 0;
      prev[j] = Math.min(up + 1, (prev[j - 1] ?? 0) + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length] ?? 0;
}

/** The closest candidate within a small edit distance, or undefined. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(word.length / 4)) + 1;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

function q(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'object' && v !== null) {
    try {
      return JSON.stringify(v);
    } catch {
      return String(v);
    }
  }
  return String(v);
}

/** Split `s3://BUCKET[/PREFIX]` into bucket and normalised prefix ('' or ending in '/'). */
export function parseS3Url(url: string, key = 'url'): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]*)(?:\/(.*))?$/is.exec(url.trim());
  if (m === null) throw new ConfigError(key, `${q(url)} is not an s3://BUCKET[/PREFIX] URL`);
  const bucket = checkBucket(m[1] ?? '', key, url);
  const prefix = normalisePrefix(m[2] ?? '', key, url);
  return { bucket, prefix };
}

function checkBucket(bucket: string, key: string, shown: string): string {
  if (bucket === '') throw new ConfigError(key, `${q(shown)} names no bucket (s3://BUCKET[/PREFIX])`);
  if (bucket.includes(':')) {
    throw new ConfigError(
      key,
      `${q(shown)}: the bucket name cannot contain ':' (give the server with --endpoint/endpoint)`,
    );
  }
  if (!/^[A-Za-z0-9._-]{1,255}$/.test(bucket)) {
    throw new ConfigError(key, `${q(shown)}: ${q(bucket)} is not a valid bucket name`);
  }
  return bucket;
}

function normalisePrefix(raw: string, key: string, shown: string): string {
  const trimmed = raw.replace(/\/+$/, '');
  if (trimmed === '') return '';
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(trimmed)) {
    throw new ConfigError(key, `${q(shown)}: the prefix contains control characters`);
  }
  const parts = trimmed.split('/');
  for (const p of parts) {
    if (p === '' || p === '.' || p === '..') {
      throw new ConfigError(key, `${q(shown)}: the prefix has an empty, '.' or '..' component`);
    }
  }
  const prefix = `${parts.join('/')}/`;
  if (Buffer.byteLength(prefix) > KEY_MAX - 1)
    throw new ConfigError(key, `${q(shown)}: the prefix is too long`);
  return prefix;
}

/** The default share name: the bucket, or `BUCKET-PREFIX` with '/' → '-' (no trailing '/'). */
export function deriveShareName(bucket: string, prefix: string): string {
  const p = prefix.replace(/\/+$/, '').replace(/^\/+/, '');
  return p === '' ? bucket : `${bucket}-${p.replace(/\//g, '-')}`;
}

const HOSTNAME_RE =
  /^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

export function parsePort(value: NumLike, key = 'port'): number {
  const s = typeof value === 'number' ? String(value) : value.trim();
  if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) {
    throw new ConfigError(key, `${q(value)} is not a port (1-65535)`);
  }
  return Number(s);
}

/**
 * `HOST[:PORT]`, `[IPV6][:PORT]` or a bare IPv6 address; the port defaults to `defaultPort`
 * (required when there is none).
 */
export function parseHostPort(value: string, key: string, defaultPort?: number): HostPort {
  const s = value.trim();
  let host: string;
  let port: string | undefined;
  const bracket = /^\[([^\]]*)\](?::(.*))?$/.exec(s);
  if (bracket !== null) {
    host = bracket[1] ?? '';
    port = bracket[2];
    if (isIP(host) !== 6) throw new ConfigError(key, `${q(value)}: ${q(host)} is not an IPv6 address`);
  } else if ((s.match(/:/g) ?? []).length > 1) {
    host = s;
    if (isIP(host) !== 6) {
      throw new ConfigError(key, `${q(value)} is not HOST[:PORT] (write IPv6 with a port as [ADDR]:PORT)`);
    }
  } else {
    const i = s.indexOf(':');
    host = i < 0 ? s : s.slice(0, i);
    port = i < 0 ? undefined : s.slice(i + 1);
    if (host === '') {
      throw new ConfigError(key, `${q(value)} names no host (e.g. 127.0.0.1:2049, 0.0.0.0:2049)`);
    }
    if (isIP(host) === 0 && !HOSTNAME_RE.test(host)) {
      throw new ConfigError(key, `${q(value)}: ${q(host)} is not a host name or IP address`);
    }
  }
  if (port === undefined) {
    if (defaultPort === undefined) throw new ConfigError(key, `${q(value)} names no port (HOST:PORT)`);
    return { host, port: defaultPort };
  }
  try {
    return { host, port: parsePort(port, key) };
  } catch {
    throw new ConfigError(key, `${q(value)}: ${q(port)} is not a port (1-65535)`);
  }
}

export interface ClientSpec {
  address: string;
  family: 4 | 6;
  /** Prefix length; a bare address is /32 or /128. */
  bits: number;
}

/** One entry of an NFS client list: an IPv4/IPv6 address or CIDR. Throws ConfigError. */
export function parseClientSpec(value: string, key = 'nfsClients'): ClientSpec {
  const s = value.trim();
  const slash = s.indexOf('/');
  const address = slash < 0 ? s : s.slice(0, slash);
  const family = isIP(address);
  if (family !== 4 && family !== 6) {
    throw new ConfigError(key, `${q(value)} is not an IP address or CIDR (e.g. 10.0.0.0/8, fd00::/8)`);
  }
  const max = family === 4 ? 32 : 128;
  if (slash < 0) return { address, family, bits: max };
  const bitsText = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bitsText) || Number(bitsText) > max) {
    throw new ConfigError(key, `${q(value)}: ${q(bitsText)} is not a prefix length (0-${max})`);
  }
  return { address, family, bits: Number(bitsText) };
}

/** A comma-separated list or an array of client specs; empty items are skipped. */
export function parseClientList(value: string | readonly string[], key = 'nfsClients'): string[] {
  const items = typeof value === 'string' ? value.split(',') : value;
  const out: string[] = [];
  for (const item of items) {
    if (typeof item !== 'string') throw new ConfigError(key, `${q(item)} is not an IP address or CIDR`);
    const s = item.trim();
    if (s === '') continue;
    parseClientSpec(s, key);
    if (!out.includes(s)) out.push(s);
  }
  return out;
}

/** An octal permission string (`0644`, `644`, `0o2775`), at most 07777. */
export function parseOctalMode(value: string, key = 'mode'): number {
  if (typeof value !== 'string') {
    throw new ConfigError(key, `${q(value)}: write the mode as an octal string such as "0644"`);
  }
  const m = /^(?:0o)?([0-7]{1,6})$/i.exec(value.trim());
  if (m === null) throw new ConfigError(key, `${q(value)} is not an octal mode (e.g. 0644)`);
  const n = parseInt(m[1] ?? '', 8);
  if (n > 0o7777) throw new ConfigError(key, `${q(value)} is above 07777`);
  return n;
}

const TRUE_WORDS = ['true', 'yes', 'on', '1'];
const FALSE_WORDS = ['false', 'no', 'off', '0'];

export function parseBool(value: BoolLike, key = 'flag'): boolean {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    const s = value.trim().toLowerCase();
    if (TRUE_WORDS.includes(s)) return true;
    if (FALSE_WORDS.includes(s)) return false;
  }
  throw new ConfigError(key, `${q(value)} is not true or false`);
}

/** A whole number in [min, max], from a number or a decimal string. */
export function parseInteger(value: NumLike, key: string, min: number, max: number): number {
  const n = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) throw new ConfigError(key, `${q(value)} is not a whole number`);
  if (n < min || n > max) throw new ConfigError(key, `${q(value)} is out of range (${min}-${max})`);
  return n;
}

function parseEndpoint(value: string, key: string): string {
  let u: URL;
  try {
    u = new URL(value.trim());
  } catch {
    throw new ConfigError(key, `${q(value)} is not an http(s) URL (e.g. http://127.0.0.1:9000)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new ConfigError(key, `${q(value)} is not an http(s) URL (e.g. http://127.0.0.1:9000)`);
  }
  if (u.username !== '' || u.password !== '') {
    // Do not echo the value: it holds a secret.
    throw new ConfigError(
      key,
      'must not contain credentials (use the AWS credential chain or the config file)',
    );
  }
  if (u.search !== '' || u.hash !== '')
    throw new ConfigError(key, `${q(value)}: no query or fragment allowed`);
  return u.href.replace(/\/+$/, '');
}

// ---------------------------------------------------------------------------------------------

type Taken = { key: string; value: unknown; fromDefaults: boolean };

class Resolver {
  private readonly cwd: string;

  constructor(
    private readonly input: Record<string, unknown>,
    private readonly defaults: Record<string, unknown>,
    private readonly opts: ResolveOptions,
  ) {
    this.cwd = opts.cwd ?? process.cwd();
  }

  fail(key: string, problem: string, fromDefaults = false): never {
    const full = fromDefaults ? key : `${this.opts.keyPrefix ?? ''}${key}`;
    const label = this.opts.label && !fromDefaults ? this.opts.label(key) : full;
    throw new ConfigError(full, problem, { label });
  }

  /** Re-throw a ConfigError from a small parser under this resolver's key naming. */
  private wrap<T>(t: Taken, f: () => T): T {
    try {
      return f();
    } catch (e) {
      if (e instanceof ConfigError) this.fail(t.key, e.problem, t.fromDefaults);
      throw e;
    }
  }

  checkKeys(): void {
    for (const [src, fromDefaults] of [
      [this.input, false],
      [this.defaults, true],
    ] as const) {
      for (const k of Object.keys(src)) {
        if ((SHARE_INPUT_KEYS as readonly string[]).includes(k)) continue;
        const hint = closest(k, SHARE_INPUT_KEYS);
        this.fail(k, `unknown setting${hint !== undefined ? ` (did you mean ${hint}?)` : ''}`, fromDefaults);
      }
    }
  }

  /** The value of the first present key among aliases; input before defaults. */
  take(...keys: string[]): Taken | undefined {
    for (const [src, fromDefaults] of [
      [this.input, false],
      [this.defaults, true],
    ] as const) {
      const present = keys.filter((k) => src[k] !== undefined && src[k] !== null);
      if (present.length > 1) {
        this.fail(present[1] ?? '', `give only one of ${present.join(' and ')}`, fromDefaults);
      }
      const k = present[0];
      if (k !== undefined) return { key: k, value: src[k], fromDefaults };
    }
    return undefined;
  }

  string(key: string): (Taken & { value: string }) | undefined {
    const t = this.take(key);
    if (t === undefined) return undefined;
    if (typeof t.value !== 'string') this.fail(t.key, `${q(t.value)} is not a string`, t.fromDefaults);
    if (t.value.trim() === '') this.fail(t.key, 'must not be empty', t.fromDefaults);
    return { ...t, value: t.value };
  }

  path(...keys: string[]): string | undefined {
    const t = this.take(...keys);
    if (t === undefined) return undefined;
    if (typeof t.value !== 'string') this.fail(t.key, `${q(t.value)} is not a path`, t.fromDefaults);
    if (t.value === '') this.fail(t.key, 'must not be empty', t.fromDefaults);
    if (t.value.includes('\0')) this.fail(t.key, 'contains a NUL character', t.fromDefaults);
    return path.resolve(this.cwd, t.value);
  }

  bool(key: string, def: boolean): boolean {
    const t = this.take(key);
    if (t === undefined) return def;
    return this.wrap(t, () => parseBool(t.value as BoolLike, t.key));
  }

  int(key: string, def: number, min: number, max: number): number {
    const t = this.take(key);
    if (t === undefined) return def;
    if (typeof t.value !== 'number' && typeof t.value !== 'string') {
      this.fail(t.key, `${q(t.value)} is not a whole number`, t.fromDefaults);
    }
    return this.wrap(t, () => parseInteger(t.value as NumLike, t.key, min, max));
  }

  oneOf<T extends string>(key: string, allowed: readonly string[], def: T): T {
    const t = this.take(key);
    if (t === undefined) return def;
    const v = typeof t.value === 'string' ? t.value.trim().toLowerCase() : undefined;
    if (v === undefined || !allowed.includes(v)) {
      this.fail(t.key, `${q(t.value)} is not one of ${allowed.join(', ')}`, t.fromDefaults);
    }
    return v as T;
  }

  /** `durKey` holds a duration string, `msKey` milliseconds. */
  duration(durKey: string, msKey: string, def: number, max = Number.MAX_SAFE_INTEGER): number {
    const t = this.take(durKey, msKey);
    if (t === undefined) return def;
    let ms: number;
    if (t.key === msKey) {
      if (typeof t.value !== 'number' && typeof t.value !== 'string') {
        this.fail(t.key, `${q(t.value)} is not a number of milliseconds`, t.fromDefaults);
      }
      ms = this.wrap(t, () => parseInteger(t.value as NumLike, t.key, 0, Number.MAX_SAFE_INTEGER));
    } else {
      if (typeof t.value !== 'number' && typeof t.value !== 'string') {
        this.fail(t.key, `${q(t.value)} is not a duration`, t.fromDefaults);
      }
      ms = this.wrap(t, () => parseDuration(t.value as NumLike, t.key));
    }
    if (ms > max)
      this.fail(
        t.key,
        `${q(t.value)} is too long (at most ${Math.floor(max / 86_400_000)} days)`,
        t.fromDefaults,
      );
    return ms;
  }

  size(key: string, def: number): number {
    const t = this.take(key);
    if (t === undefined) return def;
    if (typeof t.value !== 'number' && typeof t.value !== 'string') {
      this.fail(t.key, `${q(t.value)} is not a size`, t.fromDefaults);
    }
    return this.wrap(t, () => parseSize(t.value as NumLike, t.key));
  }

  octal(key: string, def: number): number {
    const t = this.take(key);
    if (t === undefined) return def;
    return this.wrap(t, () => parseOctalMode(t.value as string, t.key));
  }

  clients(key: string, def: readonly string[]): string[] {
    const t = this.take(key);
    if (t === undefined) return [...def];
    if (typeof t.value !== 'string' && !Array.isArray(t.value)) {
      this.fail(t.key, `${q(t.value)} is not a list of IP addresses or CIDRs`, t.fromDefaults);
    }
    return this.wrap(t, () => parseClientList(t.value as string | string[], t.key));
  }

  hostPort(key: string, defaultPort: number | undefined): HostPort | undefined {
    const t = this.take(key);
    if (t === undefined) return undefined;
    const v = t.value;
    if (typeof v === 'string') return this.wrap(t, () => parseHostPort(v, t.key, defaultPort));
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      for (const k of Object.keys(o)) {
        if (k !== 'host' && k !== 'port')
          this.fail(`${t.key}.${k}`, 'unknown setting (host, port)', t.fromDefaults);
      }
      if (typeof o.host !== 'string')
        this.fail(`${t.key}.host`, `${q(o.host)} is not a host`, t.fromDefaults);
      const host = o.host.trim().replace(/^\[(.*)\]$/, '$1');
      const hp = this.wrap({ ...t, key: `${t.key}.host` }, () =>
        parseHostPort(isIP(host) === 6 ? `[${host}]` : host, `${t.key}.host`, 1),
      );
      let port = defaultPort;
      if (o.port !== undefined && o.port !== null) {
        if (typeof o.port !== 'number' && typeof o.port !== 'string') {
          this.fail(`${t.key}.port`, `${q(o.port)} is not a port (1-65535)`, t.fromDefaults);
        }
        port = this.wrap({ ...t, key: `${t.key}.port` }, () => parsePort(o.port as NumLike, `${t.key}.port`));
      }
      if (port === undefined) this.fail(`${t.key}.port`, 'is required', t.fromDefaults);
      return { host: hp.host, port };
    }
    this.fail(t.key, `${q(v)} is not HOST[:PORT]`, t.fromDefaults);
  }

  credentials(): S3Credentials | undefined {
    const t = this.take('credentials');
    if (t === undefined) return undefined;
    const v = t.value;
    // Never quote values here: they are secrets.
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      this.fail(t.key, 'must be an object {accessKeyId, secretAccessKey, sessionToken?}', t.fromDefaults);
    }
    const o = v as Record<string, unknown>;
    const allowed = ['accessKeyId', 'secretAccessKey', 'sessionToken'];
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k)) {
        const hint = closest(k, allowed);
        this.fail(
          `credentials.${k}`,
          `unknown setting${hint !== undefined ? ` (did you mean ${hint}?)` : ''}`,
          t.fromDefaults,
        );
      }
    }
    const str = (k: string, required: boolean): string | undefined => {
      const x = o[k];
      if (x === undefined || x === null) {
        if (required) this.fail(`credentials.${k}`, 'is required', t.fromDefaults);
        return undefined;
      }
      if (typeof x !== 'string' || x.trim() === '') {
        this.fail(`credentials.${k}`, 'must be a non-empty string', t.fromDefaults);
      }
      return x;
    };
    const accessKeyId = str('accessKeyId', true) ?? '';
    const secretAccessKey = str('secretAccessKey', true) ?? '';
    const sessionToken = str('sessionToken', false);
    return sessionToken !== undefined
      ? { accessKeyId, secretAccessKey, sessionToken }
      : { accessKeyId, secretAccessKey };
  }
}

function asRecord(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new ConfigError(what, 'must be an object of settings');
  }
  return v as Record<string, unknown>;
}

/** Fill in the defaults of one share and validate every setting. Throws ConfigError. */
export function resolveShare(input: ShareInput, options: ResolveOptions = {}): ShareConfig {
  const r: Resolver = new Resolver(
    asRecord(input, options.keyPrefix?.replace(/\.$/, '') || 'share'),
    options.defaults !== undefined ? asRecord(options.defaults, 'defaults') : {},
    options,
  );
  r.checkKeys();

  // Bucket and prefix: from url, or from bucket (+ prefix); both forms must then agree.
  const urlT = r.string('url');
  const bucketT = r.string('bucket');
  const prefixT = r.take('prefix');
  let bucket: string;
  let prefix: string;
  if (urlT !== undefined) {
    ({ bucket, prefix } = (() => {
      try {
        return parseS3Url(urlT.value, urlT.key);
      } catch (e) {
        if (e instanceof ConfigError) r.fail(urlT.key, e.problem, urlT.fromDefaults);
        throw e;
      }
    })());
    if (bucketT !== undefined && bucketT.value !== bucket) {
      r.fail(bucketT.key, `${q(bucketT.value)} does not match the url ${q(urlT.value)}`);
    }
    if (prefixT !== undefined) {
      const p = typeof prefixT.value === 'string' ? normaliseOr(prefixT.value) : undefined;
      if (p !== prefix) r.fail(prefixT.key, `${q(prefixT.value)} does not match the url ${q(urlT.value)}`);
    }
  } else if (bucketT !== undefined) {
    try {
      bucket = checkBucket(bucketT.value.trim(), bucketT.key, bucketT.value);
      if (prefixT !== undefined && typeof prefixT.value !== 'string') {
        r.fail(prefixT.key, `${q(prefixT.value)} is not a string`);
      }
      const rawPrefix = typeof prefixT?.value === 'string' ? prefixT.value.replace(/^\/+/, '') : '';
      prefix = normalisePrefix(rawPrefix, 'prefix', rawPrefix);
    } catch (e) {
      if (e instanceof ConfigError) r.fail(e.key, e.problem);
      throw e;
    }
  } else {
    r.fail('url', 'is required (s3://BUCKET[/PREFIX])');
  }
  const url = `s3://${bucket}${prefix !== '' ? `/${prefix.slice(0, -1)}` : ''}`;

  const nameT = r.string('name');
  const name = nameT !== undefined ? nameT.value.trim() : deriveShareName(bucket, prefix);
  if (!SHARE_NAME_RE.test(name)) {
    const rule = "use 1-64 letters, digits, '.', '_' or '-'";
    if (nameT !== undefined)
      r.fail(nameT.key, `${q(name)} is not a valid share name: ${rule}`, nameT.fromDefaults);
    r.fail('name', `${q(name)} (derived from the URL) is not a valid share name: ${rule}; set a name`);
  }

  const endpointT = r.string('endpoint');
  const endpoint =
    endpointT !== undefined
      ? (() => {
          try {
            return parseEndpoint(endpointT.value, endpointT.key);
          } catch (e) {
            if (e instanceof ConfigError) r.fail(endpointT.key, e.problem, endpointT.fromDefaults);
            throw e;
          }
        })()
      : undefined;

  const regionT = r.string('region');
  const region = regionT !== undefined ? regionT.value.trim() : DEFAULTS.region;
  if (/\s/.test(region)) r.fail('region', `${q(region)} is not a region`);

  const noFuse = r.bool('noFuse', DEFAULTS.noFuse);
  const mountpoint = r.path('mountpoint');
  if (noFuse && mountpoint !== undefined)
    r.fail('mountpoint', 'is not used with noFuse / --no-fuse (NFS export only)');
  if (!noFuse && mountpoint === undefined)
    r.fail('mountpoint', 'is required unless noFuse / --no-fuse (NFS export only, with nfs)');
  const nfs = r.hostPort('nfs', DEFAULTS.nfsPort);
  if (noFuse && nfs === undefined)
    r.fail('nfs', 'is required with noFuse / --no-fuse (nothing else would serve the share)');

  const nfsClients = r.clients('nfsClients', DEFAULTS.nfsClients);
  const nfsRoClients = r.clients('nfsRoClients', DEFAULTS.nfsRoClients);
  const both = nfsRoClients.find((c) => nfsClients.includes(c));
  if (both !== undefined) r.fail('nfsRoClients', `${q(both)} is also in nfsClients (read-write)`);

  let nfsSquash = r.oneOf<NfsSquash | 'all_anonymous'>('nfsSquash', NFS_SQUASH_MODES, DEFAULTS.nfsSquash);
  if (nfsSquash === 'all_anonymous') nfsSquash = 'all_squash';

  const credentials = r.credentials();

  const cfg: ShareConfig = {
    name,
    url,
    bucket,
    prefix,
    ...(endpoint !== undefined ? { endpoint } : {}),
    region,
    pathStyle: r.bool('pathStyle', DEFAULTS.pathStyle),
    ...(credentials !== undefined ? { credentials } : {}),
    cacheDir: r.path('cacheDir') ?? path.join(DEFAULTS.cacheDirBase, name),
    cacheSize: r.size('cacheSize', DEFAULTS.cacheSize),
    mode: r.oneOf<WriteMode>('mode', WRITE_MODES, DEFAULTS.mode),
    refreshIntervalMs: r.duration(
      'refreshInterval',
      'refreshIntervalMs',
      DEFAULTS.refreshIntervalMs,
      MAX_TIMER_MS,
    ),
    dirTtlMs: r.duration('dirTtl', 'dirTtlMs', DEFAULTS.dirTtlMs),
    attrTimeoutMs: r.duration('attrTimeout', 'attrTimeoutMs', DEFAULTS.attrTimeoutMs, MAX_TIMER_MS),
    uploadDelayMs: r.duration('uploadDelay', 'uploadDelayMs', DEFAULTS.uploadDelayMs, MAX_TIMER_MS),
    uploadBusyDeferMs: r.duration('uploadBusyDefer', 'uploadBusyDeferMs', DEFAULTS.uploadBusyDeferMs, MAX_TIMER_MS),
    cacheWriteWaitMs: r.duration(
      'cacheWriteWait',
      'cacheWriteWaitMs',
      DEFAULTS.cacheWriteWaitMs,
      MAX_TIMER_MS,
    ),
    s3TimeoutMs: r.duration('s3Timeout', 's3TimeoutMs', DEFAULTS.s3TimeoutMs, MAX_TIMER_MS),
    uploadConcurrency: r.int('uploadConcurrency', DEFAULTS.uploadConcurrency, 1, MAX_UPLOAD_CONCURRENCY),
    checksum: r.oneOf<ChecksumMode>('checksum', CHECKSUM_MODES, DEFAULTS.checksum),
    ...(mountpoint !== undefined ? { mountpoint } : {}),
    noFuse,
    allowOther: r.bool('allowOther', DEFAULTS.allowOther),
    ...(nfs !== undefined ? { nfs } : {}),
    nfsPortmap: r.bool('nfsPortmap', DEFAULTS.nfsPortmap),
    nfsSecure: r.bool('nfsSecure', DEFAULTS.nfsSecure),
    nfsClients,
    nfsRoClients,
    nfsSquash,
    nfsAnonUid: r.int('nfsAnonUid', DEFAULTS.nfsAnonUid, 0, MAX_ID),
    nfsAnonGid: r.int('nfsAnonGid', DEFAULTS.nfsAnonGid, 0, MAX_ID),
    readOnly: r.bool('readOnly', DEFAULTS.readOnly),
    uid: r.int('uid', DEFAULTS.uid, 0, MAX_ID),
    gid: r.int('gid', DEFAULTS.gid, 0, MAX_ID),
    fileMode: r.octal('fileMode', DEFAULTS.fileMode),
    dirMode: r.octal('dirMode', DEFAULTS.dirMode),
    logLevel: r.oneOf<LogLevel>('logLevel', LOG_LEVELS, DEFAULTS.logLevel),
    adminSocketDir: r.path('adminDir', 'adminSocketDir') ?? DEFAULTS.adminSocketDir,
  };
  if (cfg.cacheSize <= 0) r.fail('cacheSize', `${q(r.take('cacheSize')?.value)} must be above 0`);
  return cfg;
}

function normaliseOr(p: string): string | undefined {
  try {
    return normalisePrefix(p.replace(/^\/+/, ''), 'prefix', p);
  } catch {
    return undefined;
  }
}

/**
 * Shares that would collide on one host: same name (admin socket, NFS export path), same
 * mountpoint, or same cache directory (one SQLite database each). Throws ConfigError.
 */
export function checkSharesDistinct(shares: readonly ShareConfig[], keyPrefix = 'shares'): void {
  const seen = new Map<string, number>();
  const check = (what: 'name' | 'mountpoint' | 'cacheDir', value: string | undefined, i: number): void => {
    if (value === undefined) return;
    const id = `${what}\0${what === 'name' ? value.toLowerCase() : value}`;
    const j = seen.get(id);
    if (j !== undefined) {
      throw new ConfigError(
        `${keyPrefix}[${i}].${what}`,
        `${q(value)} is already used by ${keyPrefix}[${j}]`,
      );
    }
    seen.set(id, i);
  };
  shares.forEach((s, i) => {
    check('name', s.name, i);
    check('mountpoint', s.mountpoint, i);
    check('cacheDir', s.cacheDir, i);
  });
}

/** The daemon config file, as written (camelCase). */
export interface DaemonInput {
  shares?: ShareInput[];
  logLevel?: string;
  logFormat?: string;
  adminDir?: string;
  adminSocketDir?: string;
  metrics?: string | { host?: string; port?: NumLike };
}

const DAEMON_KEYS = ['shares', 'logLevel', 'logFormat', 'adminDir', 'adminSocketDir', 'metrics'];

/**
 * Validate a whole config file's contents: daemon settings plus every share. The daemon's
 * logLevel and adminDir are each share's defaults. Throws ConfigError (keys like
 * `shares[1].cacheSize`).
 */
export function resolveDaemonConfig(input: DaemonInput, options: { cwd?: string } = {}): DaemonConfig {
  const top = asRecord(input, 'config');
  for (const k of Object.keys(top)) {
    if (DAEMON_KEYS.includes(k)) continue;
    const hint = closest(k, DAEMON_KEYS);
    const inShare = (SHARE_INPUT_KEYS as readonly string[]).includes(k)
      ? ' (a per-share setting: put it in shares[])'
      : '';
    throw new ConfigError(
      k,
      `unknown setting${inShare}${!inShare && hint !== undefined ? ` (did you mean ${hint}?)` : ''}`,
    );
  }
  // Daemon-level settings go through the share resolver (same parsers, same messages).
  const daemonPart: ShareInput = {};
  if (top.logLevel !== undefined) daemonPart.logLevel = top.logLevel as string;
  if (top.adminDir !== undefined) daemonPart.adminDir = top.adminDir as string;
  if (top.adminSocketDir !== undefined) daemonPart.adminSocketDir = top.adminSocketDir as string;
  const r = new Resolver(daemonPart as Record<string, unknown>, {}, options);
  const logLevel = r.oneOf<LogLevel>('logLevel', LOG_LEVELS, DEFAULTS.logLevel);
  const adminSocketDir = r.path('adminDir', 'adminSocketDir') ?? DEFAULTS.adminSocketDir;
  const fmt = new Resolver({ logFormat: top.logFormat }, {}, options);
  const logFormat = fmt.oneOf<LogFormat>('logFormat', LOG_FORMATS, DEFAULTS.logFormat);
  const metrics = new Resolver({ metrics: top.metrics }, {}, options).hostPort('metrics', undefined);

  if (!Array.isArray(top.shares) || top.shares.length === 0) {
    throw new ConfigError('shares', 'must list at least one share');
  }
  const shareDefaults: ShareInput = { logLevel, adminSocketDir };
  const shares = (top.shares as unknown[]).map((s, i) =>
    resolveShare(asRecord(s, `shares[${i}]`) as ShareInput, {
      ...options,
      keyPrefix: `shares[${i}].`,
      defaults: shareDefaults,
    }),
  );
  checkSharesDistinct(shares);
  return { shares, logLevel, logFormat, adminSocketDir, ...(metrics !== undefined ? { metrics } : {}) };
}
