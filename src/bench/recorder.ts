/**
 * Collects the repetitions of every (system, workload) and folds them into result rows:
 * the median of the wall times, the largest peak RSS and the median CPU time of each process.
 * Pure (unit-tested).
 */
import type { ProcUsage, Row, SystemId, WorkloadId } from './schema.js';
import { SYSTEMS, WORKLOADS } from './schema.js';
import { maxOf, median } from './stats.js';

export interface Sample {
  seconds: number;
  daemon?: { peakRssMiB: number | null; cpuSeconds: number | null } | undefined;
  s3rver?: { peakRssMiB: number | null; cpuSeconds: number | null } | undefined;
}

interface Cell {
  samples: Sample[];
  errors: string[];
  bytes?: number;
  notes: string[];
}

function foldUsage(us: Array<Sample['daemon']>): ProcUsage | undefined {
  const present = us.filter((u): u is NonNullable<Sample['daemon']> => u !== undefined);
  if (present.length === 0) return undefined;
  return {
    peakRssMiB: maxOf(present.map((u) => u.peakRssMiB)),
    cpuSeconds: median(present.map((u) => u.cpuSeconds).filter((x): x is number => x !== null)),
  };
}

/** When a sample was taken, in seconds of the clock given to the Recorder (profiles are sliced by it). */
export interface Mark {
  system: SystemId;
  workload: WorkloadId;
  from: number;
  to: number;
}

export class Recorder {
  private readonly cells = new Map<string, Cell>();
  readonly marks: Mark[] = [];

  /** `clock`: seconds on a monotonic clock; with it, every sample is marked as ending "now". */
  constructor(private readonly clock?: () => number) {}

  private cell(system: SystemId, workload: WorkloadId): Cell {
    const k = `${system}/${workload}`;
    let c = this.cells.get(k);
    if (!c) {
      c = { samples: [], errors: [], notes: [] };
      this.cells.set(k, c);
    }
    return c;
  }

  add(system: SystemId, workload: WorkloadId, sample: Sample, bytes?: number): void {
    const c = this.cell(system, workload);
    c.samples.push(sample);
    if (bytes !== undefined) c.bytes = bytes;
    if (this.clock) {
      const to = this.clock();
      this.marks.push({ system, workload, from: to - sample.seconds, to });
    }
  }

  fail(system: SystemId, workload: WorkloadId, error: string): void {
    const c = this.cell(system, workload);
    if (!c.errors.includes(error)) c.errors.push(error);
  }

  note(system: SystemId, workload: WorkloadId, note: string): void {
    const c = this.cell(system, workload);
    if (!c.notes.includes(note)) c.notes.push(note);
  }

  has(system: SystemId, workload: WorkloadId): boolean {
    return this.cells.has(`${system}/${workload}`);
  }

  /** Rows in table order (systems, then workloads). */
  rows(): Row[] {
    const out: Row[] = [];
    for (const s of SYSTEMS) {
      for (const w of WORKLOADS) {
        const c = this.cells.get(`${s.id}/${w.id}`);
        if (!c) continue;
        const samples = c.samples.map((x) => x.seconds);
        const row: Row = { system: s.id, workload: w.id, samples, median: median(samples) };
        if (c.bytes !== undefined) row.bytes = c.bytes;
        const d = foldUsage(c.samples.map((x) => x.daemon));
        if (d) row.daemon = d;
        const s3 = foldUsage(c.samples.map((x) => x.s3rver));
        if (s3) row.s3rver = s3;
        if (c.errors.length > 0) row.error = c.errors.join('; ').slice(0, 2000);
        if (row.median === null && row.error === undefined) row.error = 'no successful repetition';
        if (c.notes.length > 0) row.note = c.notes.join('; ');
        out.push(row);
      }
    }
    return out;
  }
}
