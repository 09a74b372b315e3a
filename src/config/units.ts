/**
 * Durations and sizes as written in flags, fstab options and the config file.
 *
 * Durations: `500ms`, `30s`, `5m`, `1h`, `2d`, compounds such as `1h30m`, decimals such as `1.5s`;
 * `0` alone needs no unit. Units are case-insensitive. A bare non-zero number is refused (it is
 * ambiguous: seconds or milliseconds?).
 *
 * Sizes are binary (K = 1024): `4096`, `512B`, `10K`, `512M`, `20G`, `1T`, `1P`, with an optional
 * `B` or `iB` after the unit (`20GB`, `20GiB`), case-insensitive; decimals (`1.5G`) are rounded to
 * whole bytes.
 *
 * Every parse error is a ConfigError naming the key and quoting the bad value.
 */
import { ConfigError } from './errors.js';

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  k: 2 ** 10,
  m: 2 ** 20,
  g: 2 ** 30,
  t: 2 ** 40,
  p: 2 ** 50,
};

const DURATION_HINT = 'e.g. 500ms, 30s, 5m, 1h';
const SIZE_HINT = 'e.g. 4096, 512M, 20G, 1T';

const NUMBER = String.raw`(?:\d+(?:\.\d*)?|\.\d+)`;
const DURATION_PART = new RegExp(String.raw`(${NUMBER})(ms|s|m|h|d)`, 'iy');
const SIZE_RE = new RegExp(String.raw`^(${NUMBER})\s*(?:([kmgtp])(?:i?b)?|b)?$`, 'i');

function quote(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

/** Milliseconds in a duration string (or the number 0). */
export function parseDuration(value: string | number, key = 'duration'): number {
  if (typeof value === 'number') {
    if (value === 0) return 0;
    throw new ConfigError(key, `${quote(value)} is not a duration: give it a unit (${DURATION_HINT})`);
  }
  if (typeof value !== 'string') {
    throw new ConfigError(key, `${quote(value)} is not a duration (${DURATION_HINT})`);
  }
  const s = value.trim();
  if (/^0+(?:\.0*)?$/.test(s)) return 0;
  if (/^\d+(?:\.\d*)?$/.test(s)) {
    throw new ConfigError(key, `${quote(value)} is not a duration: give it a unit (${DURATION_HINT})`);
  }
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    DURATION_PART.lastIndex = pos;
    const m = DURATION_PART.exec(s);
    if (m === null) throw new ConfigError(key, `${quote(value)} is not a duration (${DURATION_HINT})`);
    const unit = DURATION_UNITS[(m[2] ?? '').toLowerCase()];
    if (unit === undefined)
      throw new ConfigError(key, `${quote(value)} is not a duration (${DURATION_HINT})`);
    total += Number(m[1]) * unit;
    pos = DURATION_PART.lastIndex;
  }
  if (s.length === 0) throw new ConfigError(key, `${quote(value)} is not a duration (${DURATION_HINT})`);
  const ms = Math.round(total);
  if (!Number.isSafeInteger(ms)) throw new ConfigError(key, `${quote(value)} is too long a duration`);
  return ms;
}

/** Bytes in a size string (binary units), or a non-negative whole number of bytes. */
export function parseSize(value: string | number, key = 'size'): number {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value >= 0) return value;
    throw new ConfigError(key, `${quote(value)} is not a size (${SIZE_HINT})`);
  }
  if (typeof value !== 'string') throw new ConfigError(key, `${quote(value)} is not a size (${SIZE_HINT})`);
  const m = SIZE_RE.exec(value.trim());
  if (m === null) throw new ConfigError(key, `${quote(value)} is not a size (${SIZE_HINT})`);
  const mult = SIZE_UNITS[(m[2] ?? '').toLowerCase()] ?? 1;
  const exact = Number(m[1]) * mult;
  if (mult === 1 && !Number.isInteger(exact)) {
    throw new ConfigError(key, `${quote(value)} is not a whole number of bytes`);
  }
  const bytes = Math.round(exact);
  if (!Number.isSafeInteger(bytes)) throw new ConfigError(key, `${quote(value)} is too large a size`);
  return bytes;
}

const SIZE_LETTERS = ['B', 'K', 'M', 'G', 'T', 'P'] as const;

/**
 * Human-readable size in the same notation parseSize reads: exact multiples print exactly
 * (`10G`, `512M`, `1536B` → `1.5K`), others with one decimal (`1.2G`); below 1K: `512B`.
 */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  if (bytes < 0) return `-${formatSize(-bytes)}`;
  let i = 0;
  while (i < SIZE_LETTERS.length - 1 && bytes >= 1024 ** (i + 1)) i++;
  if (i === 0) return `${Math.round(bytes)}B`;
  let v = bytes / 1024 ** i;
  if (Number.isInteger(v)) return `${v}${SIZE_LETTERS[i] ?? ''}`;
  v = Math.round(v * 10) / 10;
  if (v >= 1024 && i < SIZE_LETTERS.length - 1) {
    i++;
    v = 1;
  }
  return `${v}${SIZE_LETTERS[i] ?? ''}`;
}

/**
 * A duration in the notation parseDuration reads: `0s`, `500ms`, `30s`, `1.5s`, `5m`, `1h30m`,
 * `25h0m1s` (no days; hours grow).
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 0) return `-${formatDuration(-ms)}`;
  ms = Math.round(ms);
  if (ms === 0) return '0s';
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const sMs = ms % 60_000;
  let out = '';
  if (h > 0) out += `${h}h`;
  if (m > 0 || (h > 0 && sMs > 0)) out += `${m}m`;
  if (sMs > 0) out += `${sMs / 1000}s`;
  return out;
}
