/**
 * The config file of `bucketgate serve --config FILE` (YAML 1.2):
 *
 *   logLevel: info            # error, warn, info, debug
 *   logFormat: text           # text or json
 *   adminDir: /run/bucketgate # admin sockets NAME.sock
 *   cacheRoot: /var/cache/bucketgate   # a share's cacheDir defaults to cacheRoot/NAME
 *   metrics: 127.0.0.1:9464   # Prometheus listener (a bare port means 127.0.0.1:PORT); absent = off
 *   auditLog: /var/log/bucketgate/audit.log   # JSON lines of file operations; absent = off
 *   defaults:                 # per-share settings every share inherits (a share's own value wins)
 *     endpoint: http://127.0.0.1:9000
 *     pathStyle: true
 *   shares:
 *     - url: s3://bucket/prefix
 *       mountpoint: /mnt/data
 *       cacheSize: 20G
 *
 * Per-share keys are the `mount` flags in camelCase (config/schema.ts, SHARE_INPUT_KEYS). Unknown
 * keys are errors. Every error names the key as written (`shares[2].cacheSize: "20X" is not a
 * size ...`) prefixed with `FILE:LINE:`. Relative paths are relative to the file's directory.
 * A file that holds credentials must not be readable or writable by group/others.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseDocument, type Document } from 'yaml';
import { ConfigError } from './errors.js';
import {
  closest,
  DEFAULTS,
  deriveShareName,
  parseS3Url,
  resolveDaemonConfig,
  SHARE_INPUT_KEYS,
  type DaemonConfig,
  type DaemonInput,
} from './schema.js';

/** What `serve` runs: the daemon settings plus the file-only settings. */
export interface ServeConfig extends DaemonConfig {
  /** Absolute path of the file it was read from. */
  file: string;
  /** Default parent of each share's cacheDir (`cacheRoot/NAME`). */
  cacheRoot: string;
  /** Audit log file (JSON lines); absent = off. */
  auditLog?: string;
}

/** Top-level keys of the file (resolveDaemonConfig's plus the file-only ones). */
export const FILE_KEYS: readonly string[] = [
  'shares',
  'defaults',
  'logLevel',
  'logFormat',
  'adminDir',
  'adminSocketDir',
  'cacheRoot',
  'metrics',
  'auditLog',
];

/** Keys that name one share and so cannot be shared through `defaults`. */
const PER_SHARE_ONLY = ['url', 'bucket', 'prefix', 'name', 'cacheDir', 'mountpoint'];

/** A config error located in the file: message `FILE:LINE: KEY: PROBLEM`. */
export class ConfigFileError extends ConfigError {
  readonly file: string;
  readonly line: number | undefined;

  /** `key` '' = a syntax error, located by line and column only. */
  constructor(file: string, key: string, problem: string, line?: number, cause?: unknown, col?: number) {
    super(key, problem, {
      label: `${file}${line !== undefined ? `:${line}` : ''}${col !== undefined ? `:${col}` : ''}${key !== '' ? `: ${key}` : ''}`,
      ...(cause !== undefined ? { cause } : {}),
    });
    this.name = 'ConfigFileError';
    this.file = file;
    this.line = line;
  }
}

/** `shares[2].nfs.port` → ['shares', 2, 'nfs', 'port']. */
function keyPath(key: string): Array<string | number> {
  const out: Array<string | number> = [];
  for (const part of key.split('.')) {
    const m = /^([^[]*)((?:\[\d+\])*)$/.exec(part);
    if (m === null) {
      out.push(part);
      continue;
    }
    if (m[1] !== '') out.push(m[1] ?? '');
    for (const idx of (m[2] ?? '').matchAll(/\[(\d+)\]/g)) out.push(Number(idx[1]));
  }
  return out;
}

/** Line (1-based) of the deepest node of the document on the way to `key`. */
function lineOf(doc: Document, lc: LineCounter, key: string): number | undefined {
  const p = keyPath(key);
  for (let n = p.length; n > 0; n--) {
    const node = doc.getIn(p.slice(0, n), true) as { range?: [number, number, number] } | undefined;
    if (node !== undefined && node !== null && Array.isArray(node.range)) {
      // For a key whose value is a collection, point at the key itself when we can.
      return lc.linePos(node.range[0]).line;
    }
  }
  return undefined;
}

function q(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : (JSON.stringify(v) ?? String(v));
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `metrics: 9464` / `"9464"` / `{port: 9464}` mean loopback; anything else goes to the schema. */
function normaliseMetrics(v: unknown): unknown {
  if (typeof v === 'number') return `127.0.0.1:${v}`;
  if (typeof v === 'string' && /^\s*\d+\s*$/.test(v)) return `127.0.0.1:${v.trim()}`;
  if (isRecord(v) && (v.host === undefined || v.host === null)) return { ...v, host: '127.0.0.1' };
  return v;
}

export interface ParsedConfig {
  config: ServeConfig;
  /** Keys that hold secrets (credentials), e.g. `shares[0].credentials`. */
  secrets: string[];
}

/**
 * Parse and validate the text of a config file. `file` is used in messages and, through its
 * directory, as the base of relative paths. Throws ConfigFileError.
 */
export function parseConfigText(text: string, file: string): ParsedConfig {
  const abs = path.resolve(file);
  const cwd = path.dirname(abs);
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false, merge: true });
  const firstError = doc.errors[0];
  if (firstError !== undefined) {
    const pos = lc.linePos(firstError.pos[0]);
    const msg =
      firstError.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? 'syntax error';
    throw new ConfigFileError(abs, '', `YAML: ${msg}`, pos.line, undefined, pos.col);
  }
  const fail = (key: string, problem: string): never => {
    throw new ConfigFileError(abs, key, problem, lineOf(doc, lc, key));
  };

  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 1000 });
  } catch (e) {
    throw new ConfigFileError(abs, 'config', `YAML: ${(e as Error).message}`, undefined, e);
  }
  if (raw === null || raw === undefined) fail('shares', 'the file is empty: it must list at least one share');
  if (!isRecord(raw)) fail('config', 'the file must be a mapping of settings (shares:, logLevel:, ...)');
  const top = raw as Record<string, unknown>;

  for (const k of Object.keys(top)) {
    if (FILE_KEYS.includes(k)) continue;
    const perShare = (SHARE_INPUT_KEYS as readonly string[]).includes(k);
    const hint = closest(k, FILE_KEYS);
    fail(
      k,
      `unknown setting${perShare ? ' (a per-share setting: put it under shares[] or defaults)' : hint !== undefined ? ` (did you mean ${hint}?)` : ''}`,
    );
  }

  // File-only settings.
  const pathSetting = (key: string): string | undefined => {
    const v = top[key];
    if (v === undefined || v === null || v === false) return undefined;
    if (typeof v !== 'string' || v.trim() === '') fail(key, `${q(v)} is not a path`);
    if ((v as string).includes('\0')) fail(key, 'contains a NUL character');
    return path.resolve(cwd, v as string);
  };
  const cacheRoot = pathSetting('cacheRoot') ?? DEFAULTS.cacheDirBase;
  const auditLog = pathSetting('auditLog');

  let defaults: Record<string, unknown> = {};
  if (top.defaults !== undefined && top.defaults !== null) {
    if (!isRecord(top.defaults)) fail('defaults', 'must be a mapping of per-share settings');
    defaults = top.defaults as Record<string, unknown>;
    for (const k of Object.keys(defaults)) {
      if (PER_SHARE_ONLY.includes(k)) fail(`defaults.${k}`, 'names one share: set it in each share');
      if (!(SHARE_INPUT_KEYS as readonly string[]).includes(k)) {
        const hint = closest(k, SHARE_INPUT_KEYS);
        fail(`defaults.${k}`, `unknown setting${hint !== undefined ? ` (did you mean ${hint}?)` : ''}`);
      }
    }
  }

  const secrets: string[] = [];
  if (defaults.credentials !== undefined) secrets.push('defaults.credentials');

  let shares: unknown = top.shares;
  if (shares === undefined || shares === null) fail('shares', 'must list at least one share');
  if (!Array.isArray(shares)) fail('shares', 'must be a list of shares (- url: s3://...)');
  shares = (shares as unknown[]).map((s, i) => {
    if (!isRecord(s)) fail(`shares[${i}]`, 'must be a mapping of settings (url:, mountpoint:, ...)');
    const own = s as Record<string, unknown>;
    if (own.credentials !== undefined) secrets.push(`shares[${i}].credentials`);
    const merged: Record<string, unknown> = { ...defaults, ...own };
    // cacheDir defaults to cacheRoot/NAME (the schema's own default uses the built-in root).
    if (merged.cacheDir === undefined && cacheRoot !== DEFAULTS.cacheDirBase) {
      const name = shareName(merged);
      if (name !== undefined) merged.cacheDir = path.join(cacheRoot, name);
    }
    return merged;
  });

  const input: Record<string, unknown> = { ...top, shares };
  for (const k of ['defaults', 'cacheRoot', 'auditLog']) delete input[k];
  if (input.metrics === false || input.metrics === null) delete input.metrics;
  else if (input.metrics !== undefined) input.metrics = normaliseMetrics(input.metrics);

  let daemon: DaemonConfig;
  try {
    daemon = resolveDaemonConfig(input as DaemonInput, { cwd });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    let key = e.key;
    // A value inherited from `defaults` is reported where it is written.
    const m = /^shares\[(\d+)\]\.([A-Za-z0-9]+)(.*)$/.exec(key);
    if (m !== null) {
      const own = (top.shares as unknown[])[Number(m[1])];
      const k = m[2] ?? '';
      if (isRecord(own) && own[k] === undefined && defaults[k] !== undefined)
        key = `defaults.${k}${m[3] ?? ''}`;
    }
    throw new ConfigFileError(abs, key, e.problem, lineOf(doc, lc, key), e);
  }
  return {
    config: { ...daemon, file: abs, cacheRoot, ...(auditLog !== undefined ? { auditLog } : {}) },
    secrets,
  };
}

/** The share's name as resolveShare will derive it, or undefined when the input is invalid. */
function shareName(s: Record<string, unknown>): string | undefined {
  if (typeof s.name === 'string' && s.name.trim() !== '') return s.name.trim();
  try {
    if (typeof s.url === 'string') {
      const { bucket, prefix } = parseS3Url(s.url);
      return deriveShareName(bucket, prefix);
    }
    if (typeof s.bucket === 'string') {
      const prefix = typeof s.prefix === 'string' ? s.prefix.replace(/^\/+/, '').replace(/\/+$/, '') : '';
      return deriveShareName(s.bucket.trim(), prefix === '' ? '' : `${prefix}/`);
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/** Largest config file read (a bigger one is surely a mistake). */
const MAX_FILE_BYTES = 4 * 2 ** 20;

/**
 * Read, parse and validate a config file. A file holding credentials must not be readable or
 * writable by group/others (mode 0600 or 0400). Throws ConfigFileError.
 */
export async function loadConfigFile(file: string): Promise<ServeConfig> {
  const abs = path.resolve(file);
  let text: string;
  let mode: number;
  try {
    const st = await stat(abs);
    if (!st.isFile()) throw new ConfigFileError(abs, 'config', 'is not a regular file');
    if (st.size > MAX_FILE_BYTES) throw new ConfigFileError(abs, 'config', `is too large (${st.size} bytes)`);
    mode = st.mode & 0o7777;
    text = await readFile(abs, 'utf8');
  } catch (e) {
    if (e instanceof ConfigFileError) throw e;
    throw new ConfigFileError(abs, 'config', `cannot be read: ${(e as Error).message}`, undefined, e);
  }
  const { config, secrets } = parseConfigText(text, abs);
  if (secrets.length > 0 && (mode & 0o066) !== 0) {
    throw new ConfigFileError(
      abs,
      secrets[0] ?? 'credentials',
      `the file holds credentials but is readable or writable by group/others (mode ${mode.toString(8).padStart(4, '0')}): ` +
        `run "chmod 600 ${abs}", or remove the credentials and use the AWS credential chain (environment, profile, instance role)`,
    );
  }
  return config;
}
