/**
 * The benchmark's result document (`.bench/results.json`): what was measured, on what, and the
 * target verdicts. `validateResults` checks a parsed document against this shape (it is the
 * contract for anything that reads the JSON, and is unit-tested).
 */

export const RESULTS_SCHEMA = 'bucketgate-bench/1' as const;

/** Everything the benchmark compares, in table order. */
export const SYSTEMS = [
  { id: 'sdk', label: 'SDK (limit)' },
  { id: 'local', label: 'local dir' },
  { id: 'bg-cache', label: 'bucketgate cache' },
  { id: 'bg-wt', label: 'bucketgate w-through' },
  { id: 's3fs', label: 's3fs' },
  { id: 'rclone-writes', label: 'rclone writes' },
  { id: 'rclone-full', label: 'rclone full' },
  { id: 'bg-nfs', label: 'bucketgate NFS' },
  { id: 'ganesha', label: 'ganesha (local dir)' },
] as const;
export type SystemId = (typeof SYSTEMS)[number]['id'];

/** Peers of bucketgate over FUSE (the "best peer" is the fastest of these). */
export const FUSE_PEERS: readonly SystemId[] = ['s3fs', 'rclone-writes', 'rclone-full'];
/** bucketgate's own daemons (the RSS target applies to each). */
export const BUCKETGATE_SYSTEMS: readonly SystemId[] = ['bg-cache', 'bg-wt', 'bg-nfs'];

/** Every workload, in table order; `bytes` is filled in from the parameters at run time. */
export const WORKLOADS = [
  // limits through the SDK
  { id: 'sdk-put', label: 'PUT big, single stream' },
  { id: 'sdk-put-mp', label: 'PUT big, multipart 16 MiB x 8' },
  { id: 'sdk-get', label: 'GET big, single stream' },
  { id: 'sdk-get-ranged', label: 'GET big, 8 parallel 8 MiB ranges' },
  { id: 'sdk-put-small', label: 'PUT N x 4 KiB, concurrency 32' },
  { id: 'sdk-get-small', label: 'GET N x 4 KiB, concurrency 32' },
  // file systems
  { id: 'write', label: 'dd write big, conv=fsync' },
  { id: 'write-in-bucket', label: '  ... until in the bucket' },
  { id: 'cold-read', label: 'cold read big' },
  { id: 'warm-read', label: 'warm read big' },
  { id: 'reread', label: '  ... and a third read' },
  { id: 'random-read', label: 'random 4 KiB reads (cold)' },
  { id: 'create-small', label: 'create N x 4 KiB files' },
  { id: 'create-small-in-bucket', label: '  ... until in the bucket' },
  { id: 'rename-dir', label: 'rename dir of N files' },
  { id: 'ls-cold', label: 'ls -l N files, cold' },
  { id: 'ls-warm', label: 'ls -l N files, warm' },
  { id: 'untar', label: 'untar tree' },
  { id: 'untar-in-bucket', label: '  ... until in the bucket' },
  // NFS
  { id: 'nfs-write', label: 'nfs-cp write' },
  { id: 'nfs-write-in-bucket', label: '  ... until in the bucket' },
  { id: 'nfs-cold-read', label: 'nfs-cat read, cold' },
  { id: 'nfs-cached-read', label: 'nfs-cat read, cached' },
] as const;
export type WorkloadId = (typeof WORKLOADS)[number]['id'];

/** Peak RSS and CPU time of one process during one workload. */
export interface ProcUsage {
  /** Largest peak RSS over the repetitions (MiB). */
  peakRssMiB: number | null;
  /** Median CPU seconds (user + system) over the repetitions. */
  cpuSeconds: number | null;
}

export interface Row {
  system: SystemId;
  workload: WorkloadId;
  /** Wall seconds of each repetition. */
  samples: number[];
  /** Median of `samples`; null when the workload failed or was skipped. */
  median: number | null;
  /** Bytes moved (throughput rows). */
  bytes?: number;
  /** The system's daemon (bucketgate's node, s3fs, rclone, ganesha); absent for SDK/local. */
  daemon?: ProcUsage;
  /** s3rver during the same workload. */
  s3rver?: ProcUsage;
  /** Why the row has no figure, or what went wrong in some repetition. */
  error?: string;
  note?: string;
}

export interface TargetResult {
  id: string;
  description: string;
  /** The measured figure the verdict is based on, in words (e.g. "1.31x the SDK GET"). */
  measured: string;
  /** true met, false missed, null not measurable in this run. */
  met: boolean | null;
}

/** What a system's fsync did (fsync-probe.ts), outside the timed runs. */
export interface FsyncProbe {
  system: SystemId;
  /** Sync calls (fsync, fdatasync, ...) the daemon made for the probe's `dd conv=fsync`. */
  syncCalls: number | null;
  /** The object was in the bucket, whole, as soon as the fsync returned. */
  inBucket: boolean | null;
  error?: string;
}

export interface Machine {
  nproc: number;
  memTotalMiB: number;
  kernel: string;
  node: string;
  os: string;
  cpu: string;
}

export interface Params {
  repetitions: number;
  bigBytes: number;
  nfsBytes: number;
  smallFiles: number;
  sdkSmallObjects: number;
  lsFiles: number;
  treeFiles: number;
  treeBytes: number;
  randomReads: number;
  uploadDelayMs: number;
}

export interface BenchResults {
  schema: typeof RESULTS_SCHEMA;
  quick: boolean;
  command: string;
  startedAt: string;
  finishedAt: string;
  machine: Machine;
  params: Params;
  /** Versions of the things compared (`s3fs`: "1.90", ...). */
  versions: Record<string, string>;
  rows: Row[];
  targets: TargetResult[];
  /** Systems or workloads left out, and why. */
  skipped: Array<{ what: string; reason: string }>;
  notes: string[];
  /** One per FUSE system (absent in results of older versions). */
  fsyncProbes?: FsyncProbe[];
}

const SYSTEM_IDS = new Set<string>(SYSTEMS.map((s) => s.id));
const WORKLOAD_IDS = new Set<string>(WORKLOADS.map((w) => w.id));

export function systemLabel(id: SystemId): string {
  return SYSTEMS.find((s) => s.id === id)?.label ?? id;
}

export function workloadLabel(id: WorkloadId): string {
  return WORKLOADS.find((w) => w.id === id)?.label ?? id;
}

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
const isNumOrNull = (x: unknown): boolean => x === null || (typeof x === 'number' && Number.isFinite(x));

function checkUsage(u: unknown, where: string, errs: string[]): void {
  if (u === undefined) return;
  if (!isObj(u)) {
    errs.push(`${where}: not an object`);
    return;
  }
  if (!isNumOrNull(u.peakRssMiB)) errs.push(`${where}.peakRssMiB: not a number or null`);
  if (!isNumOrNull(u.cpuSeconds)) errs.push(`${where}.cpuSeconds: not a number or null`);
}

/** Problems of a parsed results document; empty when it is valid. */
export function validateResults(doc: unknown): string[] {
  const errs: string[] = [];
  if (!isObj(doc)) return ['document: not an object'];
  if (doc.schema !== RESULTS_SCHEMA) errs.push(`schema: expected ${RESULTS_SCHEMA}`);
  if (typeof doc.quick !== 'boolean') errs.push('quick: not a boolean');
  for (const k of ['command', 'startedAt', 'finishedAt'] as const) {
    if (typeof doc[k] !== 'string') errs.push(`${k}: not a string`);
  }
  for (const k of ['startedAt', 'finishedAt'] as const) {
    if (typeof doc[k] === 'string' && Number.isNaN(Date.parse(doc[k]))) errs.push(`${k}: not a date`);
  }
  const m = doc.machine;
  if (!isObj(m)) errs.push('machine: not an object');
  else {
    for (const k of ['nproc', 'memTotalMiB'] as const)
      if (typeof m[k] !== 'number') errs.push(`machine.${k}: not a number`);
    for (const k of ['kernel', 'node', 'os', 'cpu'] as const)
      if (typeof m[k] !== 'string') errs.push(`machine.${k}: not a string`);
  }
  const p = doc.params;
  if (!isObj(p)) errs.push('params: not an object');
  else {
    for (const k of [
      'repetitions',
      'bigBytes',
      'nfsBytes',
      'smallFiles',
      'sdkSmallObjects',
      'lsFiles',
      'treeFiles',
      'treeBytes',
      'randomReads',
      'uploadDelayMs',
    ] as const) {
      if (typeof p[k] !== 'number' || !Number.isInteger(p[k]) || (p[k] as number) < 0)
        errs.push(`params.${k}: not a non-negative integer`);
    }
  }
  if (!isObj(doc.versions) || Object.values(doc.versions).some((v) => typeof v !== 'string')) {
    errs.push('versions: not a map of strings');
  }
  if (!Array.isArray(doc.rows)) errs.push('rows: not an array');
  else {
    const seen = new Set<string>();
    doc.rows.forEach((r: unknown, i: number) => {
      const w = `rows[${i}]`;
      if (!isObj(r)) {
        errs.push(`${w}: not an object`);
        return;
      }
      if (typeof r.system !== 'string' || !SYSTEM_IDS.has(r.system))
        errs.push(`${w}.system: unknown ${String(r.system)}`);
      if (typeof r.workload !== 'string' || !WORKLOAD_IDS.has(r.workload))
        errs.push(`${w}.workload: unknown ${String(r.workload)}`);
      const key = `${String(r.system)}/${String(r.workload)}`;
      if (seen.has(key)) errs.push(`${w}: duplicate ${key}`);
      seen.add(key);
      if (
        !Array.isArray(r.samples) ||
        r.samples.some((s) => typeof s !== 'number' || !Number.isFinite(s) || s < 0)
      ) {
        errs.push(`${w}.samples: not an array of non-negative numbers`);
      }
      if (!isNumOrNull(r.median)) errs.push(`${w}.median: not a number or null`);
      if (r.median === null && r.error === undefined) errs.push(`${w}: no median and no error`);
      if (r.bytes !== undefined && (typeof r.bytes !== 'number' || r.bytes < 0))
        errs.push(`${w}.bytes: not a non-negative number`);
      checkUsage(r.daemon, `${w}.daemon`, errs);
      checkUsage(r.s3rver, `${w}.s3rver`, errs);
      if (r.error !== undefined && typeof r.error !== 'string') errs.push(`${w}.error: not a string`);
      if (r.note !== undefined && typeof r.note !== 'string') errs.push(`${w}.note: not a string`);
    });
  }
  if (!Array.isArray(doc.targets)) errs.push('targets: not an array');
  else {
    doc.targets.forEach((t: unknown, i: number) => {
      if (!isObj(t)) return void errs.push(`targets[${i}]: not an object`);
      for (const k of ['id', 'description', 'measured'] as const)
        if (typeof t[k] !== 'string') errs.push(`targets[${i}].${k}: not a string`);
      if (!(t.met === null || typeof t.met === 'boolean'))
        errs.push(`targets[${i}].met: not a boolean or null`);
    });
  }
  if (
    !Array.isArray(doc.skipped) ||
    doc.skipped.some((s) => !isObj(s) || typeof s.what !== 'string' || typeof s.reason !== 'string')
  ) {
    errs.push('skipped: not an array of {what, reason}');
  }
  if (!Array.isArray(doc.notes) || doc.notes.some((n) => typeof n !== 'string'))
    errs.push('notes: not an array of strings');
  if (doc.fsyncProbes !== undefined) {
    if (!Array.isArray(doc.fsyncProbes)) errs.push('fsyncProbes: not an array');
    else {
      doc.fsyncProbes.forEach((p: unknown, i: number) => {
        const w = `fsyncProbes[${i}]`;
        if (!isObj(p)) return void errs.push(`${w}: not an object`);
        if (typeof p.system !== 'string' || !SYSTEM_IDS.has(p.system)) errs.push(`${w}.system: unknown`);
        if (!(p.syncCalls === null || (typeof p.syncCalls === 'number' && p.syncCalls >= 0)))
          errs.push(`${w}.syncCalls: not a non-negative number or null`);
        if (!(p.inBucket === null || typeof p.inBucket === 'boolean'))
          errs.push(`${w}.inBucket: not a boolean or null`);
        if (p.error !== undefined && typeof p.error !== 'string') errs.push(`${w}.error: not a string`);
      });
    }
  }
  return errs;
}
