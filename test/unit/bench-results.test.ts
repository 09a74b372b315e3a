import { describe, expect, it } from 'vitest';
import { summarizeProfile, shortUrl, type CpuProfile } from '../../src/bench/cpuprofile.js';
import { paramsFor } from '../../src/bench/options.js';
import { Recorder } from '../../src/bench/recorder.js';
import { BEGIN, END, buildTables, mergeDoc, renderMarkdown, renderText } from '../../src/bench/report.js';
import { RESULTS_SCHEMA, validateResults, type BenchResults, type Row } from '../../src/bench/schema.js';
import { bestPeer, evaluateTargets } from '../../src/bench/targets.js';
import { countSyncCalls, describeProbe, notDurable } from '../../src/bench/fsync-probe.js';
import type { FsyncProbe } from '../../src/bench/schema.js';

const usage = (rss: number, cpu: number): { peakRssMiB: number; cpuSeconds: number } => ({
  peakRssMiB: rss,
  cpuSeconds: cpu,
});

function sampleRows(): Row[] {
  const r = new Recorder();
  const add = (
    sys: Parameters<Recorder['add']>[0],
    w: Parameters<Recorder['add']>[1],
    secs: number[],
    rss = 100,
    cpu = 1,
  ): void => {
    for (const s of secs) r.add(sys, w, { seconds: s, daemon: usage(rss, cpu), s3rver: usage(150, 2) });
  };
  add('sdk', 'sdk-get', [2.0, 2.2, 1.8]);
  add('sdk', 'sdk-put-mp', [5, 5, 5]);
  add('bg-cache', 'cold-read', [1.5, 1.6, 1.7], 250, 3);
  add('bg-cache', 'warm-read', [0.1, 0.1, 0.1], 120, 0.01);
  add('s3fs', 'cold-read', [3, 3, 3]);
  add('rclone-writes', 'cold-read', [2.5, 2.5, 2.5]);
  add('rclone-full', 'cold-read', [2, 2, 2]);
  add('rclone-full', 'warm-read', [0.9, 0.9, 0.9]);
  add('bg-cache', 'write', [1, 1, 1]);
  add('rclone-writes', 'write', [1.1, 1.1, 1.1]);
  add('bg-cache', 'write-in-bucket', [6, 6, 6], 310, 5);
  add('rclone-writes', 'write-in-bucket', [13, 13, 13]);
  add('bg-cache', 'create-small', [0.5]);
  add('rclone-full', 'create-small', [1.2]);
  add('s3fs', 'create-small', [28]);
  add('bg-cache', 'untar', [2]);
  add('rclone-full', 'untar', [4.3]);
  add('rclone-writes', 'untar', [4.2]);
  add('s3fs', 'untar', [27]);
  add('bg-cache', 'ls-warm', [0.04]);
  add('rclone-full', 'ls-warm', [0.15]);
  add('s3fs', 'ls-warm', [0.28]);
  add('bg-cache', 'ls-cold', [1.0]);
  add('s3fs', 'ls-cold', [1.9]);
  add('bg-nfs', 'nfs-cached-read', [0.2]);
  add('ganesha', 'nfs-cached-read', [0.14]);
  r.fail('bg-wt', 'untar', 'tar: boom');
  r.note('bg-cache', 'ls-cold', 'ls showed 1999 entries');
  return r.rows();
}

function doc(rows: Row[]): BenchResults {
  const params = { ...paramsFor(false, 3), treeBytes: 19_000_000 };
  return {
    schema: RESULTS_SCHEMA,
    quick: false,
    command: 'npm run bench',
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:20:00.000Z',
    machine: { nproc: 2, memTotalMiB: 24000, kernel: '6.1', node: 'v20.20.2', os: 'Debian 12', cpu: 'x' },
    params,
    versions: { s3fs: '1.90', rclone: '1.60.1' },
    rows,
    targets: evaluateTargets(rows, params),
    skipped: [{ what: 'ganesha', reason: 'port 111 in use' }],
    notes: ['a note'],
  };
}

describe('Recorder', () => {
  it('folds repetitions: median time, max peak RSS, median CPU', () => {
    const r = new Recorder();
    r.add('bg-cache', 'cold-read', { seconds: 3, daemon: usage(100, 1) }, 512);
    r.add('bg-cache', 'cold-read', { seconds: 1, daemon: usage(300, 3) });
    r.add('bg-cache', 'cold-read', { seconds: 2, daemon: usage(200, 2) });
    const [row] = r.rows();
    expect(row).toMatchObject({
      system: 'bg-cache',
      workload: 'cold-read',
      samples: [3, 1, 2],
      median: 2,
      bytes: 512,
    });
    expect(row?.daemon).toEqual({ peakRssMiB: 300, cpuSeconds: 2 });
    expect(row?.s3rver).toBeUndefined();
  });
  it('a workload with only failures has a null median and the error', () => {
    const r = new Recorder();
    r.fail('s3fs', 'untar', 'x');
    r.fail('s3fs', 'untar', 'x');
    r.fail('s3fs', 'untar', 'y');
    expect(r.rows()).toEqual([
      { system: 's3fs', workload: 'untar', samples: [], median: null, error: 'x; y' },
    ]);
  });
  it('marks each sample with its time window when given a clock', () => {
    let t = 100;
    const r = new Recorder(() => t);
    r.add('bg-cache', 'write', { seconds: 2 });
    t = 150;
    r.add('bg-cache', 'untar', { seconds: 5 });
    expect(r.marks).toEqual([
      { system: 'bg-cache', workload: 'write', from: 98, to: 100 },
      { system: 'bg-cache', workload: 'untar', from: 145, to: 150 },
    ]);
    expect(new Recorder().marks).toEqual([]);
  });
  it('orders rows by system then workload', () => {
    const r = new Recorder();
    r.add('s3fs', 'write', { seconds: 1 });
    r.add('bg-cache', 'untar', { seconds: 1 });
    r.add('bg-cache', 'write', { seconds: 1 });
    expect(r.rows().map((x) => `${x.system}/${x.workload}`)).toEqual([
      'bg-cache/write',
      'bg-cache/untar',
      's3fs/write',
    ]);
  });
});

describe('result document schema', () => {
  it('a document built from recorded rows is valid', () => {
    const d = doc(sampleRows());
    expect(validateResults(d)).toEqual([]);
    expect(validateResults(JSON.parse(JSON.stringify(d)))).toEqual([]);
  });
  it('reports what is wrong', () => {
    const d = doc(sampleRows()) as unknown as Record<string, unknown>;
    expect(validateResults(null)).toEqual(['document: not an object']);
    expect(validateResults({ ...d, schema: 'x' })).toContain(`schema: expected ${RESULTS_SCHEMA}`);
    expect(validateResults({ ...d, startedAt: 'yesterday' })).toContain('startedAt: not a date');
    const rows = [...(d.rows as Row[])];
    rows.push({ ...rows[0]! });
    expect(validateResults({ ...d, rows }).some((e) => e.includes('duplicate'))).toBe(true);
    expect(
      validateResults({ ...d, rows: [{ system: 'zfs', workload: 'write', samples: [1], median: 1 }] }),
    ).toContain('rows[0].system: unknown zfs');
    expect(
      validateResults({ ...d, rows: [{ system: 'local', workload: 'write', samples: [-1], median: null }] }),
    ).toEqual(
      expect.arrayContaining([
        'rows[0].samples: not an array of non-negative numbers',
        'rows[0]: no median and no error',
      ]),
    );
    expect(
      validateResults({ ...d, targets: [{ id: 'x', description: 'y', measured: 'z', met: 'yes' }] }),
    ).toContain('targets[0].met: not a boolean or null');
    expect(validateResults({ ...d, params: { ...(d.params as object), bigBytes: 1.5 } })).toContain(
      'params.bigBytes: not a non-negative integer',
    );
  });
});

describe('targets', () => {
  const rows = sampleRows();
  const targets = evaluateTargets(rows, doc(rows).params);
  const byId = (id: string): { met: boolean | null; measured: string } => {
    const t = targets.find((x) => x.id === id);
    if (!t) throw new Error(`no target ${id}`);
    return t;
  };
  it('best peer is the fastest peer with a figure', () => {
    expect(bestPeer(rows, 'cold-read')).toEqual({ system: 'rclone-full', seconds: 2 });
    expect(bestPeer(rows, 'random-read')).toBeNull();
  });
  it('judges each target on the medians', () => {
    expect(byId('cold-read-vs-sdk').met).toBe(true); // 2.0 / 1.6
    expect(byId('cold-read-vs-sdk').measured).toContain('1.25x');
    expect(byId('cold-read-vs-peers').met).toBe(true);
    expect(byId('warm-read-vs-rclone-full').met).toBe(true);
    expect(byId('warm-read-page-cache').met).toBe(true); // 0.01 s of CPU
    expect(byId('write-vs-rclone-writes').met).toBe(true);
    expect(byId('write-in-bucket-vs-sdk').met).toBe(true); // 6 <= 1 + 1.2 * 5
    expect(byId('write-in-bucket-vs-rclone').met).toBe(true); // 13 / 6 >= 2
    expect(byId('small-files-vs-rclone-full').met).toBe(true); // 1.2 / 0.5
    expect(byId('small-files-vs-s3fs').met).toBe(true); // 28 / 0.5
    expect(byId('untar-vs-best-peer').met).toBe(true); // 4.2 / 2
    expect(byId('ls-warm-vs-best-peer').met).toBe(true); // 0.15 / 0.04
    expect(byId('ls-cold-vs-s3fs').met).toBe(true);
    expect(byId('nfs-cached-read-vs-ganesha').met).toBe(false); // 0.2 / 0.14 = 1.43
    expect(byId('rss').met).toBe(false); // 310 MiB in write-in-bucket
    expect(byId('rss').measured).toContain('310');
  });
  it('is n/a (null) when a figure is missing', () => {
    const t = evaluateTargets([], doc([]).params);
    expect(t.every((x) => x.met === null)).toBe(true);
    expect(t.map((x) => x.id)).toContain('rss');
  });
});

describe('report', () => {
  const d = doc(sampleRows());
  it('builds the limits, file-system, NFS and daemon tables', () => {
    const titles = buildTables(d).map((t) => t.title);
    expect(titles.some((t) => t.startsWith('Limits'))).toBe(true);
    expect(titles.some((t) => t.startsWith('File systems'))).toBe(true);
    expect(titles.some((t) => t.startsWith('NFSv3'))).toBe(true);
    expect(titles.some((t) => t.startsWith('Daemons'))).toBe(true);
    const fsTable = buildTables(d).find((t) => t.title.startsWith('File systems'))!;
    const cold = fsTable.rows.find((r) => r[0] === 'cold read 512 MiB')!;
    expect(cold).toBeDefined();
    expect(cold[cold.length - 1]).toBe('1.25x'); // rclone full 2.0 / bucketgate 1.6
    const untar = fsTable.rows.find((r) => r[0]?.startsWith('untar 2000 files'))!;
    expect(untar).toContain('failed'); // write-through untar failed
  });
  it('text and markdown show verdicts, skips and notes', () => {
    const text = renderText(d);
    expect(text).toContain('MISSED');
    expect(text).toContain('skipped ganesha: port 111 in use');
    expect(text).toContain('ls showed 1999 entries');
    const md = renderMarkdown(d);
    expect(md.startsWith(BEGIN)).toBe(true);
    expect(md.endsWith(END)).toBe(true);
    expect(md).toContain('❌ missed');
    expect(md).toContain('✅ met');
    expect(md).toContain('2 cores');
    expect(md).toContain('`npm run bench`');
  });
  it('mergeDoc replaces only the generated block', () => {
    const old = `# T\n\nintro\n\n${BEGIN}\nold figures\n${END}\n\n## Findings\nkeep me\n`;
    const merged = mergeDoc(old, `${BEGIN}\nnew\n${END}`, 'pre', 'post');
    expect(merged).toBe(`# T\n\nintro\n\n${BEGIN}\nnew\n${END}\n\n## Findings\nkeep me\n`);
    expect(mergeDoc(undefined, 'G', '# P', 'E')).toBe('# P\n\nG\n\nE');
  });
});

describe('cpuprofile summary', () => {
  const profile: CpuProfile = {
    startTime: 0,
    endTime: 10_000,
    nodes: [
      { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 }, children: [2, 3, 4] },
      { id: 2, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } },
      { id: 3, callFrame: { functionName: 'hot', url: 'file:///work/main/dist/vfs/core.js', lineNumber: 9 } },
      { id: 4, callFrame: { functionName: '', url: 'file:///x/node_modules/pkg/a.js', lineNumber: 0 } },
    ],
    samples: [3, 3, 2, 4, 3],
    timeDeltas: [0, 1000, 2000, 3000, 1000],
  };
  it('attributes to each sample the interval that follows it and drops idle time', () => {
    const s = summarizeProfile(profile);
    // sample 0 (hot) gets 1000, 1 (hot) 2000, 2 (idle) 3000, 3 (pkg) 1000, 4 (hot) 0
    expect(s.busyMs).toBe(4);
    expect(s.top[0]).toEqual({ name: 'hot (dist/vfs/core.js:10)', selfMs: 3, pct: 75 });
    expect(s.top[1]?.name).toBe('(anonymous) (pkg/a.js:1)');
  });
  it('restricts to a time window and gives inclusive times of own code', () => {
    const p: CpuProfile = {
      startTime: 1000,
      endTime: 2000,
      nodes: [
        { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 }, children: [2] },
        {
          id: 2,
          callFrame: { functionName: 'outer', url: 'file:///r/dist/a.js', lineNumber: 0 },
          children: [3, 4],
        },
        { id: 3, callFrame: { functionName: 'inner', url: 'file:///r/dist/b.js', lineNumber: 4 } },
        { id: 4, callFrame: { functionName: 'lib', url: 'file:///r/node_modules/x/c.js', lineNumber: 0 } },
      ],
      // samples at t = 1100 (inner), 1200 (lib), 1300 (outer), 1400 (inner)
      samples: [3, 4, 2, 3],
      timeDeltas: [100, 100, 100, 100],
    };
    const own = (url: string): boolean => url.includes('/dist/');
    const all = summarizeProfile(p, { own });
    expect(all.ownTotal?.[0]).toMatchObject({ name: 'outer (dist/a.js:1)', selfMs: 0.3 });
    const w = summarizeProfile(p, { fromUs: 1150, toUs: 1350, own });
    // only the samples at 1200 (lib, 100 us) and 1300 (outer, 100 us)
    expect(w.busyMs).toBeCloseTo(0.2);
    expect(w.top.map((h) => h.name).sort()).toEqual(['lib (x/c.js:1)', 'outer (dist/a.js:1)']);
    expect(w.ownTotal?.map((h) => [h.name, h.selfMs])).toEqual([['outer (dist/a.js:1)', 0.2]]);
  });
  it('falls back to hit counts', () => {
    const s = summarizeProfile({
      startTime: 0,
      endTime: 4000,
      nodes: [
        { id: 1, callFrame: { functionName: 'a', url: '', lineNumber: 0 }, hitCount: 3 },
        { id: 2, callFrame: { functionName: 'b', url: '', lineNumber: 0 }, hitCount: 1 },
      ],
    });
    expect(s.top.map((h) => [h.name, h.selfMs])).toEqual([
      ['a', 3],
      ['b', 1],
    ]);
  });
  it('shortens URLs', () => {
    expect(shortUrl('file:///a/b/node_modules/@x/y/z.js')).toBe('@x/y/z.js');
    expect(shortUrl('file:///work/main/src/vfs/core.ts')).toBe('src/vfs/core.ts');
    expect(shortUrl('node:internal/fs')).toBe('node:internal/fs');
  });
});

describe('fsync probe', () => {
  const probes: FsyncProbe[] = [
    { system: 'bg-cache', syncCalls: 2, inBucket: false },
    { system: 'bg-wt', syncCalls: 0, inBucket: true },
    { system: 'rclone-writes', syncCalls: 0, inBucket: false },
    { system: 's3fs', syncCalls: null, inBucket: null, error: 'strace ended' },
  ];
  it('counts sync calls in strace -f output, split calls once', () => {
    const trace = [
      '4711  fdatasync(23)                     = 0',
      '4712  fsync(24 <unfinished ...>',
      '4711  sync_file_range(23, 0, 8388608, SYNC_FILE_RANGE_WRITE) = 0',
      '4712  <... fsync resumed>)              = 0',
      '4713  syncfs(5)                          = 0',
      '4713  msync(0x7f00, 4096, MS_SYNC)       = 0',
      '4714  +++ exited with 0 +++',
      '4715  my_fsync_wrapper_not_a_call',
    ].join('\n');
    expect(countSyncCalls(trace)).toBe(5);
    expect(countSyncCalls('')).toBe(0);
  });
  it('a fsync is not durable only with no sync call and no object', () => {
    expect(probes.map((p) => notDurable(p))).toEqual([false, false, true, false]);
    expect(notDurable(undefined)).toBe(false);
    expect(describeProbe(probes[2]!)).toContain('returned before the data was durable');
    expect(describeProbe(probes[0]!)).toContain('2 sync call(s)');
    expect(describeProbe(probes[3]!)).toContain('probe failed: strace ended');
  });
  it('the write target says when the comparison is not like for like', () => {
    const rows = sampleRows();
    const withProbes = evaluateTargets(rows, doc(rows).params, probes).find(
      (t) => t.id === 'write-vs-rclone-writes',
    )!;
    expect(withProbes.measured).toContain("not like for like: rclone writes' fsync made no sync call");
    expect(withProbes.met).toBe(true); // the verdict stays the rule
    const without = evaluateTargets(rows, doc(rows).params).find((t) => t.id === 'write-vs-rclone-writes')!;
    expect(without.measured).not.toContain('like for like');
    const durable = probes.map((p) => (p.system === 'rclone-writes' ? { ...p, syncCalls: 1 } : p));
    expect(
      evaluateTargets(rows, doc(rows).params, durable).find((t) => t.id === 'write-vs-rclone-writes')!
        .measured,
    ).not.toContain('like for like');
  });
  it('is in the document, validated, and in both reports', () => {
    const d = { ...doc(sampleRows()), fsyncProbes: probes };
    expect(validateResults(JSON.parse(JSON.stringify(d)))).toEqual([]);
    expect(validateResults({ ...d, fsyncProbes: [{ system: 'zfs', syncCalls: -1, inBucket: 'x' }] })).toEqual(
      expect.arrayContaining([
        'fsyncProbes[0].system: unknown',
        'fsyncProbes[0].syncCalls: not a non-negative number or null',
        'fsyncProbes[0].inBucket: not a boolean or null',
      ]),
    );
    for (const out of [renderText(d), renderMarkdown(d)]) {
      expect(out).toContain('fsync probe');
      expect(out).toMatch(/rclone[^\n]*writes[^\n]*\bNO\b/);
      expect(out).toContain('probe failed: strace ended');
    }
    expect(renderText(doc(sampleRows()))).not.toContain('fsync probe');
  });
});
