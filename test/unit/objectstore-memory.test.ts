import { describe, expect, it } from 'vitest';
import { ObjectStoreError } from '../../src/objectstore/types.js';
import { CONTRACT_PART_SIZE, objectStoreContract } from '../contract/objectstore-contract.js';
import { MemoryObjectStore } from '../helpers/memory-objectstore.js';

objectStoreContract('MemoryObjectStore', async () => {
  const opts = { multipartThreshold: CONTRACT_PART_SIZE, partSize: CONTRACT_PART_SIZE };
  const store = new MemoryObjectStore(opts);
  return {
    store,
    missingBucket: new MemoryObjectStore({ ...opts, bucketMissing: true }),
    badCredentials: new MemoryObjectStore({ ...opts, denied: true }),
    rawGet: (key) => Promise.resolve(store.read(key) ?? null),
    cleanup: () => Promise.resolve(),
  };
});

describe('MemoryObjectStore test hooks', () => {
  it('failNext injects errors per op, per key, a number of times', async () => {
    const s = new MemoryObjectStore();
    s.seed('a', 'A');
    s.seed('b', 'B');
    s.failNext('getRange', 'transient', { times: 2 });
    await expect(s.getRange('a', 0, 1)).rejects.toMatchObject({ kind: 'transient' });
    await expect(s.getRange('a', 0, 1)).rejects.toMatchObject({ kind: 'transient' });
    expect((await s.getRange('a', 0, 1)).toString()).toBe('A');

    const custom = new ObjectStoreError('integrity', 'put', 'b', 'custom');
    s.failNext('*', custom, { key: 'b' });
    expect((await s.head('a'))?.size).toBe(1);
    await expect(s.put('b', Buffer.from('x'), { metadata: {} })).rejects.toBe(custom);
    expect(s.read('b')?.toString()).toBe('B');
    s.failNext('list', 'denied');
    s.clearFaults();
    expect((await s.list('')).objects.map((o) => o.key)).toEqual(['a', 'b']);
    expect(s.callCount('getRange')).toBe(3);
    expect(s.callCount('put')).toBe(1);
  });

  it('beforeOp can delay or abort operations; signals are honoured', async () => {
    const s = new MemoryObjectStore();
    const seen: string[] = [];
    s.beforeOp = (op, key) => {
      seen.push(`${op}:${key}`);
    };
    await s.put('k', Buffer.from('v'), { metadata: {} });
    const ac = new AbortController();
    ac.abort();
    await expect(s.head('k', ac.signal)).rejects.toMatchObject({ kind: 'aborted' });
    expect(seen).toEqual(['put:k', 'head:k']);
  });

  it('lists in UTF-8 byte order with prefixes counted against maxKeys', async () => {
    const s = new MemoryObjectStore();
    for (const k of ['\u{1F600}', '\uFFFD', 'a/1', 'a/2', 'b', 'c/1']) s.seed(k, 'x');
    // UTF-16 order would put U+1F600 (a surrogate pair) before U+FFFD; S3 orders by UTF-8 bytes.
    expect((await s.list('')).objects.map((o) => o.key)).toEqual([
      'a/1',
      'a/2',
      'b',
      'c/1',
      '\uFFFD',
      '\u{1F600}',
    ]);
    const p1 = await s.list('', { delimiter: '/', maxKeys: 2 });
    expect(p1.prefixes).toEqual(['a/']);
    expect(p1.objects.map((o) => o.key)).toEqual(['b']);
    const p2 = await s.list('', { delimiter: '/', maxKeys: 2, token: p1.nextToken as string });
    expect(p2.prefixes).toEqual(['c/']);
    expect(p2.objects.map((o) => o.key)).toEqual(['\uFFFD']);
    const p3 = await s.list('', { delimiter: '/', maxKeys: 2, token: p2.nextToken as string });
    expect(p3.objects.map((o) => o.key)).toEqual(['\u{1F600}']);
    expect(p3.nextToken).toBeUndefined();
  });
});
