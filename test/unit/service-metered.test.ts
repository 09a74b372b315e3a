/**
 * The instrumentation decorators and the metrics registry: MeteredVfs (operations, results,
 * latency, bytes, audit events), MeteredObjectStore (requests by op/outcome/status, bytes),
 * DaemonMetrics' scrape-time gauges, MetricsServer over HTTP, and the audit log file.
 */
import { mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsError } from '../../src/core/errors.js';
import { O_RDWR, O_TRUNC, O_WRONLY, ROOT_INO, type Cred, type Ino } from '../../src/core/types.js';
import { AuditLog, type AuditEvent } from '../../src/daemon/audit.js';
import { MeteredObjectStore } from '../../src/daemon/metered-store.js';
import { MeteredVfs } from '../../src/daemon/metered-vfs.js';
import { DaemonMetrics, MetricsServer, type MeteredShareSource } from '../../src/daemon/metrics.js';
import { ObjectStoreError } from '../../src/objectstore/types.js';
import { MemVfs } from '../helpers/mem-vfs.js';
import { MemoryObjectStore } from '../helpers/memory-objectstore.js';

const ALICE: Cred = { uid: 1000, gid: 100, groups: [] };
const BOB: Cred = { uid: 1001, gid: 100, groups: [] };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bg-svc-metered-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Path of an inode of a MemVfs (its private tree, read for the test). */
function memPathOf(vfs: MemVfs): (ino: Ino) => string | undefined {
  const nodes = (vfs as unknown as { nodes: Map<Ino, { parent: Ino; children: Map<string, { ino: Ino }> }> })
    .nodes;
  return (ino) => {
    const parts: string[] = [];
    let cur = ino;
    while (cur !== ROOT_INO) {
      const n = nodes.get(cur);
      if (!n) return undefined;
      const parent = nodes.get(n.parent);
      const name = parent ? [...parent.children.entries()].find(([, s]) => s.ino === cur)?.[0] : undefined;
      if (name === undefined) return undefined;
      parts.unshift(name);
      cur = n.parent;
    }
    return `/${parts.join('/')}`;
  };
}

/** Value of one series in exposition text, e.g. series(text, 'x_total', {op: 'read'}). */
function series(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^([^{ ]+)(?:\{(.*)\})? (.+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('MeteredVfs', () => {
  it('counts operations by result, times them, counts bytes and audits changes with uid/gid', async () => {
    const inner = new MemVfs();
    await inner.setattr({ uid: 0, gid: 0, groups: [] }, ROOT_INO, { mode: 0o777 });
    const metrics = new DaemonMetrics({ defaultMetrics: false });
    const events: AuditEvent[] = [];
    let auditOn = true;
    const vfs = new MeteredVfs(inner, {
      share: 's1',
      protocol: 'fuse',
      metrics,
      audit: () => (auditOn ? { record: (e) => events.push(e) } : undefined),
      pathOf: memPathOf(inner),
    });
    expect(vfs.readOnly).toBe(false);

    const d = await vfs.mkdir(ALICE, ROOT_INO, 'docs', 0o755);
    const { attr, fh } = await vfs.create(ALICE, d.ino, 'a.txt', 0o644, O_WRONLY);
    expect(await vfs.write(fh, 0, Buffer.from('hello '))).toBe(6);
    expect(await vfs.write(fh, 6, Buffer.from('world'))).toBe(5);
    await vfs.flush(fh);
    await vfs.release(fh);
    const rfh = await vfs.open(BOB, attr.ino, 0);
    expect((await vfs.read(rfh, 0, 100)).toString()).toBe('hello world');
    await vfs.flush(rfh); // a reader's close is no write-close
    await vfs.release(rfh);
    const tfh = await vfs.open(ALICE, attr.ino, O_RDWR | O_TRUNC);
    await vfs.release(tfh); // truncation without a write is a change
    await vfs.setattr(ALICE, attr.ino, { mode: 0o600, mtimeNs: 1_700_000_000_123_456_789n });
    await vfs.rename(ALICE, d.ino, 'a.txt', ROOT_INO, 'b.txt');
    await expect(vfs.unlink(BOB, ROOT_INO, 'missing')).rejects.toThrow(FsError);
    await expect(vfs.lookup(ALICE, ROOT_INO, 'nope')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(vfs.create(BOB, d.ino, 'evil', 0o644, O_WRONLY)).rejects.toMatchObject({ code: 'EACCES' });
    await vfs.symlink(ALICE, ROOT_INO, 'l', 'b.txt');
    await vfs.unlink(ALICE, ROOT_INO, 'b.txt');
    await vfs.rmdir(ALICE, ROOT_INO, 'docs');
    auditOn = false;
    await vfs.mkdir(ALICE, ROOT_INO, 'unaudited', 0o755);

    const brief = events.map((e) => [e.op, e.uid, e.path, e.newPath ?? '', e.result]);
    expect(brief).toEqual([
      ['mkdir', 1000, '/docs', '', 'ok'],
      ['create', 1000, '/docs/a.txt', '', 'ok'],
      ['write-close', 1000, '/docs/a.txt', '', 'ok'],
      ['write-close', 1000, '/docs/a.txt', '', 'ok'],
      ['setattr', 1000, '/docs/a.txt', '', 'ok'],
      ['rename', 1000, '/docs/a.txt', '/b.txt', 'ok'],
      ['unlink', 1001, '/missing', '', 'ENOENT'],
      ['create', 1001, '/docs/evil', '', 'EACCES'],
      ['symlink', 1000, '/l', '', 'ok'],
      ['unlink', 1000, '/b.txt', '', 'ok'],
      ['rmdir', 1000, '/docs', '', 'ok'],
    ]);
    expect(events[2]).toMatchObject({ share: 's1', protocol: 'fuse', gid: 100, bytes: 11 });
    expect(events[3]).toMatchObject({ bytes: 0 });
    expect(events[1]).toMatchObject({ mode: '0644' });
    expect(events[4]).toMatchObject({ changes: { mode: '0600', mtime: '2023-11-14T22:13:20.123456789Z' } });
    expect(events[8]).toMatchObject({ target: 'b.txt' });

    const text = await metrics.text();
    const ops = (op: string, result = 'ok'): number | undefined =>
      series(text, 'bucketgate_vfs_operations_total', { share: 's1', protocol: 'fuse', op, result });
    expect(ops('mkdir')).toBe(2);
    expect(ops('write')).toBe(2);
    expect(ops('create')).toBe(1);
    expect(ops('read')).toBe(1);
    expect(ops('lookup', 'ENOENT')).toBe(1);
    expect(ops('unlink', 'ENOENT')).toBe(1);
    expect(ops('create', 'EACCES')).toBe(1);
    expect(series(text, 'bucketgate_vfs_bytes_total', { share: 's1', direction: 'write' })).toBe(11);
    expect(series(text, 'bucketgate_vfs_bytes_total', { share: 's1', direction: 'read' })).toBe(11);
    expect(series(text, 'bucketgate_vfs_operation_duration_seconds_count', { op: 'write' })).toBe(2);
    expect(
      series(text, 'bucketgate_vfs_operation_duration_seconds_bucket', { op: 'write', le: '+Inf' }),
    ).toBe(2);
    expect(inner.openHandles).toBe(0);
  });

  it('without metrics and audit it only forwards', async () => {
    const inner = new MemVfs();
    const vfs = new MeteredVfs(inner, { share: 's', protocol: 'nfs', pathOf: () => undefined });
    const a = await vfs.mkdir({ uid: 0, gid: 0, groups: [] }, ROOT_INO, 'x', 0o700);
    expect((await vfs.getattr({ uid: 0, gid: 0, groups: [] }, a.ino)).mode).toBe(0o700);
    const seen: unknown[] = [];
    const off = vfs.onInvalidate((ev) => seen.push(ev));
    off();
  });
});

describe('MeteredObjectStore', () => {
  it('counts requests by op, outcome and status, with latency and bytes', async () => {
    const inner = new MemoryObjectStore();
    const metrics = new DaemonMetrics({ defaultMetrics: false });
    const store = new MeteredObjectStore(inner, metrics, 's1');
    await store.put('k1', Buffer.from('0123456789'), { metadata: {} });
    await store.put('k2', { path: '/dev/null', size: 0 }, { metadata: {} }).catch(() => undefined);
    expect(await store.head('missing')).toBeNull();
    expect((await store.head('k1'))?.size).toBe(10);
    expect((await store.getRange('k1', 2, 6)).toString()).toBe('2345');
    const chunks: Buffer[] = [];
    for await (const c of await store.getStream('k1')) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('0123456789');
    await store.copy('k1', 'k3', { size: 10 });
    await store.list('', { maxKeys: 10 });
    inner.failNext(
      'getRange',
      new ObjectStoreError('transient', 'getRange', 'k1', 'slow down', { status: 503 }),
    );
    await expect(store.getRange('k1', 0, 1)).rejects.toThrow(/slow down/);
    inner.failNext('delete', 'denied');
    await expect(store.delete(['k1'])).rejects.toThrow();
    await store.delete(['k1', 'k3']);

    const text = await metrics.text();
    const req = (op: string, outcome: string, status: string): number | undefined =>
      series(text, 'bucketgate_s3_requests_total', { share: 's1', op, outcome, status });
    expect(req('head', 'not-found', '404')).toBe(1);
    expect(req('head', 'ok', '2xx')).toBe(1);
    expect(req('getRange', 'ok', '2xx')).toBe(1);
    expect(req('getRange', 'transient', '503')).toBe(1);
    expect(req('getStream', 'ok', '2xx')).toBe(1);
    expect(req('copy', 'ok', '2xx')).toBe(1);
    expect(req('list', 'ok', '2xx')).toBe(1);
    expect(req('delete', 'ok', '2xx')).toBe(1);
    expect(series(text, 'bucketgate_s3_requests_total', { op: 'delete', outcome: 'denied' })).toBe(1);
    expect(series(text, 'bucketgate_s3_bytes_total', { share: 's1', direction: 'download' })).toBe(14);
    expect(
      series(text, 'bucketgate_s3_bytes_total', { share: 's1', direction: 'upload' }),
    ).toBeGreaterThanOrEqual(10);
    expect(series(text, 'bucketgate_s3_request_duration_seconds_count', { op: 'head' })).toBe(2);
  });
});

describe('DaemonMetrics state gauges and the HTTP endpoint', () => {
  it('reads cache, upload queue, oldest dirty age and failures at scrape time', async () => {
    const metrics = new DaemonMetrics();
    let hits = 3;
    const src: MeteredShareSource = {
      config: { name: 'web', url: 's3://b/web', mode: 'cache', mountpoint: '/mnt/web' },
      status: () => ({
        cache: { usedBytes: 5000, limitBytes: 10_000, dirtyBytes: 1200, dirtyFiles: 2, hitRatio: 0.75 },
        uploads: { queued: 2, inflight: 1, uploadedFiles: 7, uploadedBytes: 7000 },
        failing: [{ path: '/x' }],
      }),
      cacheLookups: () => ({ hits, misses: 1 }),
      oldestUploadMs: () => Date.now() - 90_000,
    };
    metrics.addShare(src);
    metrics.observeRefresh('web', 'interval', 0.2, {
      added: 2,
      changed: 1,
      removed: 0,
      conflicts: 0,
      directories: 3,
    });
    metrics.observeRefresh('web', 'manual', 0.1, undefined, new Error('boom'));
    let text = await metrics.text();
    const v = (name: string, labels: Record<string, string> = {}): number | undefined =>
      series(text, name, { share: 'web', ...labels });
    expect(v('bucketgate_share_info', { url: 's3://b/web', mountpoint: '/mnt/web' })).toBe(1);
    expect(v('bucketgate_cache_used_bytes')).toBe(5000);
    expect(v('bucketgate_cache_limit_bytes')).toBe(10_000);
    expect(v('bucketgate_cache_dirty_bytes')).toBe(1200);
    expect(v('bucketgate_cache_dirty_files')).toBe(2);
    expect(v('bucketgate_cache_hit_ratio')).toBe(0.75);
    expect(v('bucketgate_cache_lookups_total', { result: 'hit' })).toBe(3);
    expect(v('bucketgate_upload_queue_length')).toBe(2);
    expect(v('bucketgate_uploads_inflight')).toBe(1);
    expect(v('bucketgate_uploads_failing')).toBe(1);
    expect(v('bucketgate_uploaded_files_total')).toBe(7);
    expect(v('bucketgate_upload_oldest_dirty_age_seconds')).toBeGreaterThanOrEqual(89);
    expect(v('bucketgate_refresh_runs_total', { trigger: 'interval', result: 'ok' })).toBe(1);
    expect(v('bucketgate_refresh_runs_total', { trigger: 'manual', result: 'error' })).toBe(1);
    expect(v('bucketgate_refresh_changes_total', { change: 'added' })).toBe(2);
    expect(v('bucketgate_refresh_changes_total', { change: 'changed' })).toBe(1);
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);

    // Counters grow by the difference; a stopped share's gauges disappear.
    hits = 5;
    text = await metrics.text();
    expect(v('bucketgate_cache_lookups_total', { result: 'hit' })).toBe(5);
    metrics.removeShare(src);
    text = await metrics.text();
    expect(v('bucketgate_cache_used_bytes')).toBeUndefined();
    expect(v('bucketgate_cache_lookups_total', { result: 'hit' })).toBe(5);

    const server = new MetricsServer(metrics, { host: '127.0.0.1', port: 0 });
    await server.start();
    const port = server.address?.port ?? 0;
    expect(port).toBeGreaterThan(0);
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    expect(await res.text()).toMatch(/bucketgate_refresh_runs_total\{share="web"/);
    expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status).toBe(405);
    const busy = new MetricsServer(metrics, { host: '127.0.0.1', port });
    await expect(busy.start()).rejects.toThrow(
      `metrics: cannot listen on 127.0.0.1:${port}: the address is in use`,
    );
    await server.stop();
  });
});

describe('AuditLog', () => {
  it('appends one JSON object per line and reopens after rotation', async () => {
    const file = join(dir, 'audit', 'audit.log');
    const log = new AuditLog(file);
    await log.open();
    const ev: AuditEvent = {
      share: 's',
      protocol: 'nfs',
      op: 'unlink',
      uid: 7,
      gid: 8,
      path: '/a\nb',
      result: 'ok',
    };
    log.record(ev);
    await rename(file, `${file}.1`);
    await log.reopen();
    log.record({ ...ev, op: 'rename', newPath: '/c' });
    await log.close();
    const first = (await readFile(`${file}.1`, 'utf8')).trim().split('\n');
    const second = (await readFile(file, 'utf8')).trim().split('\n');
    expect(first).toHaveLength(1);
    expect(second).toHaveLength(1);
    expect(JSON.parse(first[0] ?? '')).toMatchObject({
      share: 's',
      protocol: 'nfs',
      op: 'unlink',
      uid: 7,
      gid: 8,
      path: '/a\nb',
      result: 'ok',
    });
    expect(JSON.parse(second[0] ?? '')).toMatchObject({ op: 'rename', newPath: '/c' });
    expect(typeof JSON.parse(second[0] ?? '').time).toBe('string');
  });
});
