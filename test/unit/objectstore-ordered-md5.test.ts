/**
 * The in-order whole-object MD5 of a multipart upload (parts arrive out of order; an uploader
 * waits in hashed(i) before reusing part i's buffer).
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { OrderedMd5 } from '../../src/objectstore/s3.js';

const part = (n: number, size = 3 << 20): Buffer => Buffer.alloc(size, n);

describe('OrderedMd5', () => {
  it('hashes parts in index order whatever order they arrive in', async () => {
    const parts = [part(1), part(2), part(3, 1000)];
    const h = new OrderedMd5();
    h.add(2, parts[2]!);
    h.add(0, parts[0]!);
    const waiting = h.hashed(2);
    h.add(1, parts[1]!);
    await waiting;
    expect(await h.digest(3)).toBe(createHash('md5').update(Buffer.concat(parts)).digest('hex'));
  });

  it('has no digest while a part is missing', async () => {
    const h = new OrderedMd5();
    h.add(0, part(1));
    h.add(2, part(3));
    expect(await h.digest(3)).toBeUndefined();
  });

  it('abandon() releases a part waiting for an earlier one that will never come (a failed read)', async () => {
    const h = new OrderedMd5();
    h.add(1, part(2)); // part 0's read failed: never added
    let released = false;
    const waiting = h.hashed(1).then(() => (released = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(released).toBe(false);
    h.abandon();
    await waiting;
    expect(released).toBe(true);
    await h.hashed(5); // later waits do not block either
    expect(await h.digest(2)).toBeUndefined();
  });
});
