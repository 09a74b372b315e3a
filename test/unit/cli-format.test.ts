import { describe, expect, it } from 'vitest';
import { formatStatus } from '../../src/cli/format.js';

const base = {
  name: 'media',
  url: 's3://media/videos',
  mode: 'cache',
  mountpoint: '/srv/videos',
  cache: { usedBytes: 3 << 20, limitBytes: 1 << 30, dirtyBytes: 0, dirtyFiles: 0, hitRatio: 0.5 },
  uploads: { queued: 0, inflight: 0, deferring: false, uploadedFiles: 2, uploadedBytes: 2048 },
  failing: [],
  lastRefresh: null,
};

describe('formatStatus', () => {
  it('names the daemon serving the share, and copes with an older daemon that does not', () => {
    const now = formatStatus({
      ...base,
      daemon: { version: '0.1.0', node: 'v22.23.5', pid: 4711, startedAt: '2026-12-08T01:04:39.429Z' },
    });
    expect(now).toContain(
      'daemon       bucketgate 0.1.0, Node v22.23.5, pid 4711, share started 2026-12-08T01:04:39.429Z\n',
    );
    expect(now).toContain('cache        3M used of 1G, hit ratio 50.0 %\n');
    // A share started before an upgrade answers without `daemon`: say so instead of failing.
    const old = formatStatus(base);
    expect(old).toContain('daemon       an older bucketgate that does not report its version');
    expect(old).toContain('uploads      0 queued');
  });
});
