import winston from 'winston';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface Logger {
  error(msg: string, meta?: Record<string, unknown>): void;
  warn(msg: string, meta?: Record<string, unknown>): void;
  info(msg: string, meta?: Record<string, unknown>): void;
  debug(msg: string, meta?: Record<string, unknown>): void;
  child(meta: Record<string, unknown>): Logger;
}

const SECRET_KEYS = /secret|password|passwd|token|credential|authorization|accesskey/i;

/** Replace values of secret-looking keys (recursively) with "[redacted]". */
export function redact(value: unknown, depth = 0): unknown {
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
  for (const k of Object.keys(info)) {
    if (SECRET_KEYS.test(k)) (info as Record<string, unknown>)[k] = '[redacted]';
    else if (typeof info[k] === 'object') (info as Record<string, unknown>)[k] = redact(info[k]);
  }
  return info;
});

/** Error objects in metadata become their message (and code) so one log line carries the cause. */
const errorFormat = winston.format((info) => {
  for (const k of Object.keys(info)) {
    const v = info[k];
    if (v instanceof Error) {
      const code = (v as { code?: unknown }).code;
      (info as Record<string, unknown>)[k] = code !== undefined ? `${v.name}(${String(code)}): ${v.message}` : `${v.name}: ${v.message}`;
    }
  }
  return info;
});

export interface LogOptions {
  level?: LogLevel;
  format?: 'text' | 'json';
  /** Omit timestamps (journald adds its own). */
  timestamps?: boolean;
}

let root: winston.Logger = build({});

function build(opts: LogOptions): winston.Logger {
  const underJournal = process.env.JOURNAL_STREAM !== undefined;
  const timestamps = opts.timestamps ?? !underJournal;
  const fmt =
    opts.format === 'json'
      ? winston.format.combine(errorFormat(), redactFormat(), winston.format.timestamp(), winston.format.json())
      : winston.format.combine(
          errorFormat(),
          redactFormat(),
          ...(timestamps ? [winston.format.timestamp()] : []),
          winston.format.printf((info) => {
            const { level, message, timestamp, ...rest } = info as Record<string, unknown>;
            const extra = Object.entries(rest)
              .filter(([k]) => typeof k === 'string')
              .map(([k, v]) => `${k}=${typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v)}`)
              .join(' ');
            return `${timestamp ? `${String(timestamp)} ` : ''}${String(level)} ${String(message)}${extra ? ` ${extra}` : ''}`;
          }),
        );
  return winston.createLogger({
    level: opts.level ?? (process.env.BUCKETGATE_LOG_LEVEL as LogLevel | undefined) ?? 'info',
    format: fmt,
    // Logs go to stderr: stdout belongs to the CLI's own output.
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
  });
}

export function configureLogging(opts: LogOptions): void {
  root = build(opts);
}

function wrap(getBase: () => winston.Logger, meta: Record<string, unknown>): Logger {
  return {
    error: (msg, m) => getBase().error(msg, { ...meta, ...m }),
    warn: (msg, m) => getBase().warn(msg, { ...meta, ...m }),
    info: (msg, m) => getBase().info(msg, { ...meta, ...m }),
    debug: (msg, m) => getBase().debug(msg, { ...meta, ...m }),
    child: (m) => wrap(getBase, { ...meta, ...m }),
  };
}

/** A logger carrying `meta` on every line (e.g. { component: 'vfs', share: 'demo' }). */
export function getLogger(meta: Record<string, unknown> = {}): Logger {
  return wrap(() => root, meta);
}
