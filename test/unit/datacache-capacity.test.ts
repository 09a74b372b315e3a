import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FsError } from '../../src/core/errors.js';
import { DiskDataCache } from '../../src/datacache/disk-cache.js';
import { MemoryCacheIndex } from '../helpers/memory-cache-index.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function cache(limit: number, writeWaitMs: number): Promise<DiskDataCache> {
  const dir = await mkdtemp(join(tmpdir(), 'bg-cap-'));
  dirs.push(dir);
  return DiskDataCache.open({ dir, limitBytes: limit, index: new MemoryCacheIndex(), writeWaitMs });
}

describe('DiskDataCache capacity at write time', () => {
  it('evicts clean data to make room and never exceeds the limit', async () => {
    const c = await cache(100_000, 1000);
    for (let ino = 1; ino <= 10; ino++) {
      c.ensure(ino, 0);
      await c.write(ino, 0, Buffer.alloc(30_000, ino));
      c.markClean(ino, c.version(ino));
      expect(c.usage().usedBytes).toBeLessThanOrEqual(100_000);
    }
    expect(c.usage().entries).toBeLessThan(10);
    await c.close();
  });

  it('a writer waits while dirty data fills the cache and continues when it is uploaded', async () => {
    const c = await cache(100_000, 10_000);
    c.ensure(1, 0);
    await c.write(1, 0, Buffer.alloc(90_000, 1));
    c.ensure(2, 0);
    let done = false;
    const p = c.write(2, 0, Buffer.alloc(20_000, 2)).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 150));
    expect(done).toBe(false); // back-pressure
    c.markClean(1, c.version(1)); // "uploaded": now evictable
    await p;
    expect(done).toBe(true);
    expect(c.usage().usedBytes).toBeLessThanOrEqual(100_000);
    expect((await c.read(2, 0, 20_000)).every((b) => b === 2)).toBe(true);
    await c.close();
  });

  it('fails with ENOSPC after the timeout when nothing can be freed (dead backend)', async () => {
    const c = await cache(100_000, 300);
    c.ensure(1, 0);
    await c.write(1, 0, Buffer.alloc(95_000, 1));
    c.ensure(2, 0);
    const t0 = Date.now();
    const err = await c.write(2, 0, Buffer.alloc(10_000)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FsError);
    expect((err as FsError).code).toBe('ENOSPC');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    // nothing was corrupted
    expect((await c.read(1, 0, 95_000)).every((b) => b === 1)).toBe(true);
    expect(c.usage().usedBytes).toBe(95_000);
    await c.close();
  });
});
