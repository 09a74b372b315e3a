/**
 * Daemon-wide flags of `bucketgate mount` that are not share settings (so not in
 * config/args.ts): `--metrics HOST:PORT` (a bare port means 127.0.0.1), `--audit-log FILE`,
 * `--log-format text|json`. They are taken out of the argument list before the share's options
 * are parsed. The fstab helper passes them as `metrics=`, `audit-log=`, `log-format=`.
 */
import path from 'node:path';
import {
  ConfigError,
  LOG_FORMATS,
  parseHostPort,
  UsageError,
  type HostPort,
  type LogFormat,
} from '../config/index.js';

export interface ServiceFlags {
  metrics?: HostPort;
  auditLog?: string;
  logFormat?: LogFormat;
}

/** `9464`, `127.0.0.1:9464`, `[::1]:9464`, `0.0.0.0:9464`. Throws ConfigError naming `key`. */
export function parseMetricsListen(value: string, key = 'metrics'): HostPort {
  const v = value.trim();
  return parseHostPort(/^\d+$/.test(v) ? `127.0.0.1:${v}` : v, key);
}

function take(args: string[], flag: string): string | undefined {
  const i = args.findIndex((a) => a === flag || a.startsWith(`${flag}=`));
  if (i < 0) return undefined;
  const a = args[i] ?? '';
  const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : args[i + 1];
  if (v === undefined || v === '') throw new UsageError(`${flag} needs a value`);
  args.splice(i, a.includes('=') ? 1 : 2);
  return v;
}

/** Remove the daemon-wide flags from `args` (in place) and return them. Throws UsageError. */
export function takeServiceFlags(args: string[], cwd = process.cwd()): ServiceFlags {
  const out: ServiceFlags = {};
  try {
    const m = take(args, '--metrics');
    if (m !== undefined) out.metrics = parseMetricsListen(m, '--metrics');
    const a = take(args, '--audit-log');
    if (a !== undefined) out.auditLog = path.resolve(cwd, a);
    const f = take(args, '--log-format');
    if (f !== undefined) {
      if (!(LOG_FORMATS as readonly string[]).includes(f)) {
        throw new UsageError(`--log-format: ${JSON.stringify(f)} is not one of ${LOG_FORMATS.join(', ')}`);
      }
      out.logFormat = f as LogFormat;
    }
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message, { key: e.key, cause: e });
    throw e;
  }
  return out;
}
