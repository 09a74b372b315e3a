/**
 * Logging (winston): one line per event on stderr, `text` or `json`.
 *
 * - Under systemd (JOURNAL_STREAM set, or BUCKETGATE_LOG_JOURNAL=1 when started through
 *   `systemd-cat` by the fstab helper) timestamps are left out (journald stamps each line) and
 *   each line starts with its syslog priority (`<3>` error, `<4>` warn, `<6>` info, `<7>` debug),
 *   which journald turns into the PRIORITY field (`journalctl -p warning` works).
 * - Secrets never reach a line: values of secret-looking keys become "[redacted]", values
 *   registered with registerSecrets() (the config file's credentials) are replaced wherever they
 *   appear, and signatures/tokens in URLs and `user:password@` in URLs are masked.
 * - A message or value containing newlines is escaped, so an event is always one line.
 * - Levels: configureLogging() sets the process-wide level; a child logger may carry its own
 *   (`log.child({ share }, { level: 'debug' })`), so one share can log more than the others.
 */
import winston from 'winston';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface Logger {
  error(msg: string, meta?: Record<string, unknown>): void;
  warn(msg: string, meta?: Record<string, unknown>): void;
  info(msg: string, meta?: Record<string, unknown>): void;
  debug(msg: string, meta?: Record<string, unknown>): void;
  /**
   * A logger adding `meta` to every line; `opts.level` overrides the process-wide level (a
   * function is asked at every line, so a reload can change it).
   */
  child(meta: Record<string, unknown>, opts?: { level?: LevelSetting }): Logger;
}

/** A fixed level, or a function returning the level in force. */
export type LevelSetting = LogLevel | (() => LogLevel);

const RANK: Readonly<Record<LogLevel, number>> = { error: 0, warn: 1, info: 2, debug: 3 };
const SYSLOG_PRIORITY: Readonly<Record<string, number>> = { error: 3, warn: 4, info: 6, debug: 7 };

const SECRET_KEYS = /secret|password|passwd|token|credential|authorization|accesskey/i;

/** Literal secret values to mask in every string (longest first). */
let secretValues: string[] = [];

/** Mask these values (e.g. secret access keys from the config file) wherever they appear. */
export function registerSecrets(values: readonly string[]): void {
  const all = new Set([...secretValues, ...values.filter((v) => typeof v === 'string' && v.length >= 4)]);
  secretValues = [...all].sort((a, b) => b.length - a.length);
}

const URL_SECRETS =
  /((?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|AWSAccessKeyId|x-oss-signature|q-signature)=)[^&\s"']+/gi;
const URL_USERINFO = /(\b[a-z][a-z0-9+.-]*:\/\/)[^/\s:@]+:[^/\s@]+@/gi;
const AUTH_HEADER = /(AWS4-HMAC-SHA256\s+Credential=)[^\s,]+(.*?Signature=)[0-9a-f]+/gi;

/** Mask secrets inside a string. */
export function scrub(s: string): string {
  let out = s;
  for (const v of secretValues) if (out.includes(v)) out = out.split(v).join('[redacted]');
  if (out.includes('=') || out.includes('@')) {
    out = out.replace(AUTH_HEADER, '$1[redacted]$2[redacted]');
    out = out.replace(URL_SECRETS, '$1[redacted]');
    out = out.replace(URL_USERINFO, '$1[redacted]@');
  }
  return out;
}

/** Replace values of secret-looking keys (recursively) with "[redacted]"; scrub strings. */
export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return scrub(value);
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = SECRET_KEYS.test(k) ? '[redacted]' : redact(v, depth + 1);
  }
  return out;
}

const redactFormat = winston.format((info) => {
  const rec = info as Record<string, unknown>;
  for (const k of Object.keys(info)) {
    if (k === 'level') continue;
    if (SECRET_KEYS.test(k)) rec[k] = '[redacted]';
    else rec[k] = redact(rec[k]);
  }
  return info;
});

/** Error objects in metadata become their message (and code) so one log line carries the cause. */
const errorFormat = winston.format((info) => {
  for (const k of Object.keys(info)) {
    const v = info[k];
    if (v instanceof Error) {
      const code = (v as { code?: unknown }).code;
      (info as Record<string, unknown>)[k] =
        code !== undefined ? `${v.name}(${String(code)}): ${v.message}` : `${v.name}: ${v.message}`;
    }
  }
  return info;
});

/** bigint values (inode times) are not JSON: print them as strings. */
function jsonValue(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) ?? String(v);
}

export interface LogOptions {
  level?: LogLevel;
  format?: 'text' | 'json';
  /** Omit timestamps (journald adds its own). Default: omitted under systemd's journal. */
  timestamps?: boolean;
}

let defaultLevel: LogLevel = envLevel() ?? 'info';
let root: winston.Logger = build({});

function envLevel(): LogLevel | undefined {
  const v = process.env.BUCKETGATE_LOG_LEVEL;
  return v !== undefined && v in RANK ? (v as LogLevel) : undefined;
}

function build(opts: LogOptions): winston.Logger {
  const underJournal =
    (process.env.JOURNAL_STREAM !== undefined && process.env.JOURNAL_STREAM !== '') ||
    process.env.BUCKETGATE_LOG_JOURNAL === '1';
  const timestamps = opts.timestamps ?? !underJournal;
  const prefix = (level: unknown): string => (underJournal ? `<${SYSLOG_PRIORITY[String(level)] ?? 6}>` : '');
  const fmt =
    opts.format === 'json'
      ? winston.format.combine(
          errorFormat(),
          redactFormat(),
          ...(timestamps ? [winston.format.timestamp()] : []),
          winston.format.printf((info) => {
            const { level, message, timestamp, ...rest } = info as Record<string, unknown>;
            return `${prefix(level)}${jsonValue({ level, message, ...(timestamp !== undefined ? { timestamp } : {}), ...rest })}`;
          }),
        )
      : winston.format.combine(
          errorFormat(),
          redactFormat(),
          ...(timestamps ? [winston.format.timestamp()] : []),
          winston.format.printf((info) => {
            const { level, message, timestamp, ...rest } = info as Record<string, unknown>;
            const extra = Object.entries(rest)
              .map(([k, v]) => `${k}=${jsonValue(v)}`)
              .join(' ');
            const msg = String(message).replace(/\r?\n/g, '\\n');
            return `${prefix(level)}${timestamp ? `${String(timestamp)} ` : ''}${String(level)} ${msg}${extra ? ` ${extra}` : ''}`;
          }),
        );
  return winston.createLogger({
    // Filtering happens per logger (wrap), so the transport takes everything.
    level: 'debug',
    format: fmt,
    // Logs go to stderr: stdout belongs to the CLI's own output.
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
  });
}

export function configureLogging(opts: LogOptions): void {
  if (opts.level !== undefined) defaultLevel = opts.level;
  root = build(opts);
}

/** The process-wide level (configureLogging). */
export function logLevel(): LogLevel {
  return defaultLevel;
}

function wrap(getBase: () => winston.Logger, meta: Record<string, unknown>, level?: LevelSetting): Logger {
  const threshold = (): LogLevel =>
    level === undefined ? defaultLevel : typeof level === 'function' ? level() : level;
  const emit = (l: LogLevel, msg: string, m: Record<string, unknown> | undefined): void => {
    if (RANK[l] <= RANK[threshold()]) getBase().log(l, msg, { ...meta, ...m });
  };
  return {
    error: (msg, m) => emit('error', msg, m),
    warn: (msg, m) => emit('warn', msg, m),
    info: (msg, m) => emit('info', msg, m),
    debug: (msg, m) => emit('debug', msg, m),
    child: (m, opts) => wrap(getBase, { ...meta, ...m }, opts?.level ?? level),
  };
}

/** A logger carrying `meta` on every line (e.g. { component: 'vfs', share: 'demo' }). */
export function getLogger(meta: Record<string, unknown> = {}, opts: { level?: LevelSetting } = {}): Logger {
  return wrap(() => root, meta, opts.level);
}
