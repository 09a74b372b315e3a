/**
 * Summary of a V8 `.cpuprofile` (written by `node --cpu-prof`): self time per function, the
 * hottest first. Pure (unit-tested); the benchmark's `--profile` option runs bucketgate's
 * daemons with `--cpu-prof` and prints these summaries.
 */

export interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
  hitCount?: number;
  children?: number[];
}

export interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface HotFunction {
  /** `name (file:line)`, file shortened to the part after the last `/src/`, `/dist/` or `node_modules/`. */
  name: string;
  selfMs: number;
  /** Share of the busy (non-idle) time, in percent. */
  pct: number;
}

export interface ProfileSummary {
  totalMs: number;
  /** Time not spent idle (samples outside `(idle)`). */
  busyMs: number;
  top: HotFunction[];
  /** Inclusive time of the `own` functions (selfMs holds the total here), when asked for. */
  ownTotal?: HotFunction[];
}

/** Shorten a script URL to something readable in a table. */
export function shortUrl(url: string): string {
  if (url === '') return '';
  let u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) return u.slice(nm + 'node_modules/'.length);
  for (const marker of ['/dist/', '/src/']) {
    const i = u.lastIndexOf(marker);
    if (i >= 0) {
      u = u.slice(i + 1);
      return u;
    }
  }
  return u;
}

export function isCpuProfile(x: unknown): x is CpuProfile {
  if (typeof x !== 'object' || x === null) return false;
  const p = x as Record<string, unknown>;
  return Array.isArray(p.nodes) && typeof p.startTime === 'number' && typeof p.endTime === 'number';
}

export interface SummaryOptions {
  topN?: number;
  /** Only samples taken in [fromUs, toUs] (the profile's own microsecond clock). */
  fromUs?: number;
  toUs?: number;
  /** Scripts whose functions get an inclusive ("total") time as well (default: none). */
  own?: (url: string) => boolean;
}

/**
 * Self time per function (and total time of the `own` functions). With `samples`/`timeDeltas`
 * each sample gets the time delta that follows it (the interval it stood for); otherwise
 * `hitCount` times the mean interval (no time window then).
 */
export function summarizeProfile(p: CpuProfile, opts: SummaryOptions | number = {}): ProfileSummary {
  const o: SummaryOptions = typeof opts === 'number' ? { topN: opts } : opts;
  const topN = o.topN ?? 15;
  const totalUs = Math.max(0, p.endTime - p.startTime);
  const selfUs = new Map<number, number>();
  const sampled: Array<{ id: number; us: number }> = [];
  if (p.samples && p.timeDeltas && p.samples.length > 0 && p.timeDeltas.length === p.samples.length) {
    let t = p.startTime;
    for (let i = 0; i < p.samples.length; i++) {
      t += p.timeDeltas[i]!;
      if ((o.fromUs !== undefined && t < o.fromUs) || (o.toUs !== undefined && t > o.toUs)) continue;
      const next = i + 1 < p.timeDeltas.length ? p.timeDeltas[i + 1]! : 0;
      const id = p.samples[i]!;
      const us = Math.max(0, next);
      selfUs.set(id, (selfUs.get(id) ?? 0) + us);
      sampled.push({ id, us });
    }
  } else {
    const hits = p.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0);
    const per = hits > 0 ? totalUs / hits : 0;
    for (const n of p.nodes) {
      if (n.hitCount) {
        selfUs.set(n.id, n.hitCount * per);
        sampled.push({ id: n.id, us: n.hitCount * per });
      }
    }
  }
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const nameOf = (n: CpuProfileNode): string => {
    const f = n.callFrame;
    const file = shortUrl(f.url);
    return `${f.functionName || '(anonymous)'}${file ? ` (${file}:${f.lineNumber + 1})` : ''}`;
  };
  const byFn = new Map<string, number>();
  let idleUs = 0;
  let sumUs = 0;
  for (const n of p.nodes) {
    const us = selfUs.get(n.id) ?? 0;
    if (us === 0) continue;
    sumUs += us;
    if (n.callFrame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const name = nameOf(n);
    byFn.set(name, (byFn.get(name) ?? 0) + us);
  }
  const busyUs = Math.max(0, sumUs - idleUs);
  const pct = (us: number): number => (busyUs > 0 ? (100 * us) / busyUs : 0);
  const top = [...byFn.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, topN)
    .map(([name, us]) => ({ name, selfMs: us / 1000, pct: pct(us) }));
  const summary: ProfileSummary = {
    totalMs: (sumUs > 0 ? sumUs : totalUs) / 1000,
    busyMs: busyUs / 1000,
    top,
  };
  if (o.own) {
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const totals = new Map<string, number>();
    for (const { id, us } of sampled) {
      if (us === 0) continue;
      const seen = new Set<string>();
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const n = byId.get(cur);
        if (!n || !o.own(n.callFrame.url)) continue;
        const name = nameOf(n);
        if (seen.has(name)) continue;
        seen.add(name);
        totals.set(name, (totals.get(name) ?? 0) + us);
      }
    }
    summary.ownTotal = [...totals.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, topN)
      .map(([name, us]) => ({ name, selfMs: us / 1000, pct: pct(us) }));
  }
  return summary;
}
