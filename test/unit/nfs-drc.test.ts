import { describe, expect, it } from 'vitest';
import { DuplicateRequestCache } from '../../src/adapters/nfs/drc.js';

const k = (xid: number, args = [1, 2, 3], addr = '10.0.0.1') => ({
  addr,
  xid,
  prog: 100003,
  vers: 3,
  proc: 8,
  args: new Uint8Array(args),
});

describe('duplicate-request cache', () => {
  it('new → in progress (a retransmission waits for the original) → done with the cached reply', async () => {
    const drc = new DuplicateRequestCache();
    expect(drc.begin(k(1))).toEqual({ state: 'new' });
    const dup = drc.begin(k(1));
    expect(dup.state).toBe('in-progress');
    drc.complete(k(1), new Uint8Array([9, 9]));
    expect(dup.state === 'in-progress' && Array.from((await dup.wait)!)).toEqual([9, 9]);
    const hit = drc.begin(k(1));
    expect(hit.state).toBe('done');
    expect(hit.state === 'done' && Array.from(hit.reply)).toEqual([9, 9]);
  });

  it('keys on client address, xid and procedure, and checks the arguments', () => {
    const drc = new DuplicateRequestCache();
    drc.begin(k(1));
    drc.complete(k(1), new Uint8Array([1]));
    expect(drc.begin(k(1, [1, 2, 3], '10.0.0.2')).state).toBe('new');
    expect(drc.begin(k(2)).state).toBe('new');
    expect(drc.begin({ ...k(1), proc: 12 }).state).toBe('new');
    // Same xid, different arguments: a reused xid, not a retransmission.
    expect(drc.begin(k(1, [4])).state).toBe('new');
  });

  it('abort forgets a call; entries expire and the cache is bounded', async () => {
    let now = 0;
    const drc = new DuplicateRequestCache({ maxEntries: 10, ttlMs: 1000, now: () => now });
    drc.begin(k(1));
    const dup = drc.begin(k(1));
    drc.abort(k(1));
    expect(dup.state === 'in-progress' && (await dup.wait)).toBeUndefined();
    expect(drc.begin(k(1)).state).toBe('new');
    drc.complete(k(1), new Uint8Array([1]));
    now = 2000;
    expect(drc.begin(k(1)).state).toBe('new');
    for (let i = 0; i < 100; i++) drc.begin(k(100 + i));
    expect(drc.size).toBeLessThanOrEqual(10);
  });
});
