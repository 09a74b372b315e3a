/** Human-readable output of admin commands. */
import { formatSize } from '../config/index.js';
import type { ShareStatus } from '../daemon/share.js';

export function formatStatus(raw: unknown): string {
  const s = raw as ShareStatus;
  const d = (raw as Partial<ShareStatus>).daemon;
  const lines = [
    `share        ${s.name}  (${s.url}, mode ${s.mode})`,
    `mountpoint   ${s.mountpoint ?? '-'}`,
    // A daemon started before an upgrade may be older than this command and not report itself.
    d !== undefined
      ? `daemon       bucketgate ${d.version}, Node ${d.node}, pid ${d.pid}, share started ${d.startedAt}`
      : 'daemon       an older bucketgate that does not report its version (restart the share to update it)',
    `cache        ${formatSize(s.cache.usedBytes)} used of ${formatSize(s.cache.limitBytes)}` +
      (s.cache.hitRatio !== null ? `, hit ratio ${(s.cache.hitRatio * 100).toFixed(1)} %` : ''),
    `dirty        ${s.cache.dirtyFiles} files, ${formatSize(s.cache.dirtyBytes)}`,
    `uploads      ${s.uploads.queued} queued, ${s.uploads.inflight} in flight; ${s.uploads.uploadedFiles} files (${formatSize(s.uploads.uploadedBytes)}) uploaded since start` +
      (s.uploads.deferring === true ? '; waiting while files are being written' : ''),
  ];
  if (s.failing.length > 0) {
    lines.push(`failing      ${s.failing.length}`);
    for (const f of s.failing.slice(0, 20))
      lines.push(`  ${f.path}  (${f.attempts} attempts): ${f.lastError ?? ''}`);
  }
  return lines.join('\n') + '\n';
}
