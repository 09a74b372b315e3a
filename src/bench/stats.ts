/**
 * Pure helpers of the benchmark: medians, ratios, number formatting and plain-text / Markdown
 * tables. No I/O here (unit-tested in test/unit/bench-stats.test.ts).
 */

/** Median of the finite numbers in `xs`; null when there are none. */
export function median(xs: readonly number[]): number | null {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** Largest finite value; null when there is none. */
export function maxOf(xs: readonly (number | null | undefined)[]): number | null {
  let m: number | null = null;
  for (const x of xs) if (typeof x === 'number' && Number.isFinite(x) && (m === null || x > m)) m = x;
  return m;
}

/** Smallest finite value; null when there is none. */
export function minOf(xs: readonly (number | null | undefined)[]): number | null {
  let m: number | null = null;
  for (const x of xs) if (typeof x === 'number' && Number.isFinite(x) && (m === null || x < m)) m = x;
  return m;
}

/**
 * `a / b`, or null when either is missing or b is not positive. For times, `ratio(peer, ours)`
 * is how many times faster we are.
 */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (typeof a !== 'number' || typeof b !== 'number' || !Number.isFinite(a) || !Number.isFinite(b))
    return null;
  if (b <= 0) return null;
  return a / b;
}

/** Seconds with 3 significant digits (at least 2 decimals below 1 s, 1 below 100 s). */
export function fmtSeconds(s: number | null | undefined): string {
  if (typeof s !== 'number' || !Number.isFinite(s)) return '—';
  if (s < 0.01) return s.toFixed(4);
  if (s < 1) return s.toFixed(3);
  if (s < 10) return s.toFixed(2);
  if (s < 100) return s.toFixed(1);
  return s.toFixed(0);
}

/** A ratio as `2.35x`. */
export function fmtRatio(r: number | null | undefined): string {
  if (typeof r !== 'number' || !Number.isFinite(r)) return '—';
  if (r >= 100) return `${r.toFixed(0)}x`;
  if (r >= 10) return `${r.toFixed(1)}x`;
  return `${r.toFixed(2)}x`;
}

/** MiB/s of `bytes` moved in `seconds`, rounded. */
export function fmtRate(bytes: number | null | undefined, seconds: number | null | undefined): string {
  if (typeof bytes !== 'number' || typeof seconds !== 'number' || !(seconds > 0)) return '—';
  return `${Math.round(bytes / 2 ** 20 / seconds)}`;
}

/** MiB with no decimals (RSS). */
export function fmtMiB(m: number | null | undefined): string {
  if (typeof m !== 'number' || !Number.isFinite(m)) return '—';
  return m.toFixed(0);
}

export type Align = 'l' | 'r';

/** A plain-text table with aligned columns, for the terminal. */
export function renderTextTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  align?: readonly Align[],
): string {
  const n = headers.length;
  const width = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const cell = (s: string, i: number): string => {
    const a = align?.[i] ?? (i === 0 ? 'l' : 'r');
    return a === 'l' ? s.padEnd(width[i]!) : s.padStart(width[i]!);
  };
  const line = (r: readonly string[]): string =>
    Array.from({ length: n }, (_, i) => cell(r[i] ?? '', i))
      .join('  ')
      .trimEnd();
  const sep = width.map((w) => '-'.repeat(w)).join('  ');
  return [line(headers), sep, ...rows.map(line)].join('\n');
}

/** A GitHub Markdown table; `|` in cells is escaped. */
export function renderMarkdownTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  align?: readonly Align[],
): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  const n = headers.length;
  const head = `| ${headers.map(esc).join(' | ')} |`;
  const sep = `|${Array.from({ length: n }, (_, i) => ((align?.[i] ?? (i === 0 ? 'l' : 'r')) === 'r' ? '---:' : '---')).join('|')}|`;
  const body = rows.map((r) => `| ${Array.from({ length: n }, (_, i) => esc(r[i] ?? '')).join(' | ')} |`);
  return [head, sep, ...body].join('\n');
}

/** Deterministic PRNG (mulberry32) for reproducible workloads. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
