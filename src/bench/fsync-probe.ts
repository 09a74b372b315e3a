/**
 * What a system's fsync guarantees, observed outside the timed runs: `dd bs=1M count=8
 * conv=fsync` into the mount while `strace` counts the daemon's sync calls (fsync, fdatasync,
 * sync_file_range, syncfs, sync, msync), then a HEAD of the object at once. A fsync that made no
 * sync call and left no object in the bucket returned before the data was durable anywhere: a
 * crash of the machine right after it can lose what it acknowledged. The write workload's
 * figures are only comparable between systems whose fsync does the same work.
 *
 * Pure helpers (unit-tested); the probe itself runs in workloads.ts.
 */
import type { FsyncProbe } from './schema.js';

export const PROBE_BYTES = 8 * 1024 * 1024;
export const SYNC_CALLS = ['fsync', 'fdatasync', 'sync_file_range', 'syncfs', 'sync', 'msync'] as const;

/**
 * Sync calls in `strace -f` output: one per call, whether strace printed it whole or split into
 * "<unfinished ...>" and "<... resumed>" lines (only the first half is counted).
 */
export function countSyncCalls(trace: string): number {
  const call = new RegExp(`(?:^|\\s)(?:${SYNC_CALLS.join('|')})\\(`);
  let n = 0;
  for (const line of trace.split('\n')) if (call.test(line) && !line.includes('resumed>')) n++;
  return n;
}

/** In words, for notes and target texts. */
export function describeProbe(p: FsyncProbe): string {
  if (p.error !== undefined) return `fsync probe failed: ${p.error}`;
  const calls = p.syncCalls === null ? 'sync calls not counted' : `${p.syncCalls} sync call(s) by the daemon`;
  const bucket =
    p.inBucket === null
      ? 'bucket not checked'
      : p.inBucket
        ? 'object in the bucket'
        : 'object not in the bucket';
  const verdict = notDurable(p) ? ': its fsync returned before the data was durable' : '';
  return `fsync of ${PROBE_BYTES / 1024 / 1024} MiB: ${calls}, ${bucket} when it returned${verdict}`;
}

/** The probe showed a fsync that made the data durable neither on a local disk nor in the bucket. */
export function notDurable(p: FsyncProbe | undefined): boolean {
  return p !== undefined && p.error === undefined && p.syncCalls === 0 && p.inBucket === false;
}
