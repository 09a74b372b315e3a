/**
 * Peak RSS and CPU time of processes during a workload, from /proc: VmHWM (reset at the start of
 * each workload through /proc/PID/clear_refs, value 5) and utime + stime of /proc/PID/stat.
 * If the peak cannot be reset, VmRSS is sampled every 100 ms instead.
 */
import { readFile, writeFile } from 'node:fs/promises';

export const CLK_TCK = 100;

/** utime + stime (clock ticks) from the text of /proc/PID/stat. */
export function parseStatTicks(stat: string): number | null {
  // The command name may contain spaces and parentheses: fields start after the last ')'.
  const close = stat.lastIndexOf(')');
  if (close < 0) return null;
  const f = stat
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  // After ')' come: state(3) ppid(4) ... utime(14) stime(15): indexes 11 and 12 here.
  const ut = Number(f[11]);
  const st = Number(f[12]);
  if (!Number.isFinite(ut) || !Number.isFinite(st)) return null;
  return ut + st;
}

/** A `Vm...:  1234 kB` field of /proc/PID/status, in KiB. */
export function parseStatusKiB(status: string, field: 'VmHWM' | 'VmRSS'): number | null {
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
  return m ? Number(m[1]) : null;
}

export interface Snapshot {
  cpuTicks: number;
  hwmKiB: number;
  rssKiB: number;
}

export async function snapshot(pid: number): Promise<Snapshot | null> {
  try {
    const [stat, status] = await Promise.all([
      readFile(`/proc/${pid}/stat`, 'utf8'),
      readFile(`/proc/${pid}/status`, 'utf8'),
    ]);
    const cpuTicks = parseStatTicks(stat);
    const hwmKiB = parseStatusKiB(status, 'VmHWM');
    const rssKiB = parseStatusKiB(status, 'VmRSS');
    if (cpuTicks === null || hwmKiB === null || rssKiB === null) return null;
    return { cpuTicks, hwmKiB, rssKiB };
  } catch {
    return null;
  }
}

/** Reset the peak RSS of a process (needs root or the same user). */
export async function resetPeak(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

export interface Usage {
  peakRssMiB: number | null;
  cpuSeconds: number | null;
}

/** Measures named processes from start() to each read(). */
export class UsageWindow {
  private readonly start0 = new Map<
    string,
    { pid: number; snap: Snapshot | null; reset: boolean; maxRss: number }
  >();
  private timer: NodeJS.Timeout | undefined;

  static async open(pids: Record<string, number | undefined>): Promise<UsageWindow> {
    const w = new UsageWindow();
    for (const [name, pid] of Object.entries(pids)) {
      if (pid === undefined) continue;
      const reset = await resetPeak(pid);
      const snap = await snapshot(pid);
      w.start0.set(name, { pid, snap, reset, maxRss: snap?.rssKiB ?? 0 });
    }
    if ([...w.start0.values()].some((s) => !s.reset)) {
      w.timer = setInterval(() => {
        for (const s of w.start0.values()) {
          void snapshot(s.pid).then((n) => {
            if (n) s.maxRss = Math.max(s.maxRss, n.rssKiB);
          });
        }
      }, 100);
      w.timer.unref();
    }
    return w;
  }

  /** Usage of each process since open(); the window stays open. */
  async read(): Promise<Record<string, Usage>> {
    const out: Record<string, Usage> = {};
    for (const [name, s] of this.start0) {
      const now = await snapshot(s.pid);
      if (!now || !s.snap) {
        out[name] = { peakRssMiB: null, cpuSeconds: null };
        continue;
      }
      s.maxRss = Math.max(s.maxRss, now.rssKiB);
      const peakKiB = s.reset ? now.hwmKiB : s.maxRss;
      out[name] = { peakRssMiB: peakKiB / 1024, cpuSeconds: (now.cpuTicks - s.snap.cpuTicks) / CLK_TCK };
    }
    return out;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

/**
 * Wait until a process is idle: at most `maxTicks` of CPU in each `windowMs` (default: 2 ticks
 * in 500 ms), giving up after `timeoutMs`. Used after a write has landed so that work the daemon
 * still does (verification, journal cleanup) is not charged to the next workload.
 */
export async function waitIdle(
  pid: number | undefined,
  timeoutMs = 15_000,
  windowMs = 500,
  maxTicks = 2,
): Promise<void> {
  if (pid === undefined) return;
  const deadline = Date.now() + timeoutMs;
  let prev = await snapshot(pid);
  while (prev && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, windowMs));
    const cur = await snapshot(pid);
    if (!cur || cur.cpuTicks - prev.cpuTicks <= maxTicks) return;
    prev = cur;
  }
}
