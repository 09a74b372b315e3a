import { describe, expect, it } from 'vitest';
import {
  checkHandle,
  dbGenerationDigest,
  encodeHandle,
  HANDLE_SIZE,
  parseHandle,
} from '../../src/adapters/nfs/handle.js';

const key = { exportId: 7, dbGeneration: Buffer.from('db-1'), secret: Buffer.alloc(32, 1) };
const digest = dbGenerationDigest(key.dbGeneration);

describe('NFS file handles', () => {
  it('round-trips export id, 64-bit inode id and generation in ≤ 64 bytes', () => {
    const h = encodeHandle(key, 2 ** 40 + 5, 0xfffffffe);
    expect(h.length).toBe(HANDLE_SIZE);
    expect(h.length).toBeLessThanOrEqual(64);
    expect(parseHandle(h)).toMatchObject({ exportId: 7, ino: 2 ** 40 + 5, generation: 0xfffffffe });
    expect(checkHandle(h, key, digest)).toEqual({ ok: true, ino: 2 ** 40 + 5, generation: 0xfffffffe });
  });

  it('is deterministic (handles survive restarts)', () => {
    expect(encodeHandle(key, 42, 3).equals(encodeHandle({ ...key }, 42, 3))).toBe(true);
  });

  it('rejects wrong shapes as badhandle', () => {
    const h = encodeHandle(key, 42, 3);
    for (const bad of [
      new Uint8Array(0),
      h.subarray(0, 43),
      Buffer.concat([h, Buffer.alloc(1)]),
      Buffer.alloc(44),
    ]) {
      expect(checkHandle(bad, key, digest)).toEqual({ ok: false, why: 'badhandle' });
    }
    const v = Buffer.from(h);
    v[2] = 9; // unknown version
    expect(checkHandle(v, key, digest).ok).toBe(false);
  });

  it('detects any forged bit (MAC) and handles moved into another export', () => {
    const h = encodeHandle(key, 42, 3);
    for (let i = 4; i < h.length; i++) {
      const f = Buffer.from(h);
      f[i]! ^= 0x01;
      // Bytes 8..15 name the database incarnation: another one is stale (its inodes are gone).
      expect(checkHandle(f, key, digest)).toEqual({
        ok: false,
        why: i >= 8 && i < 16 ? 'stale' : 'badhandle',
      });
    }
    // Same secret, other export: the export id is covered by the MAC.
    const other = { ...key, exportId: 8 };
    const moved = Buffer.from(h);
    moved.writeUInt32BE(8, 4);
    expect(checkHandle(moved, other, digest)).toEqual({ ok: false, why: 'badhandle' });
    expect(checkHandle(h, other, digest)).toEqual({ ok: false, why: 'badhandle' });
    // Another gateway's secret.
    expect(checkHandle(h, { ...key, secret: Buffer.alloc(32, 2) }, digest)).toEqual({
      ok: false,
      why: 'badhandle',
    });
  });

  it('a handle from a recreated metadata database (new generation and secret) is stale', () => {
    const h = encodeHandle(key, 42, 3);
    expect(checkHandle(h, key, dbGenerationDigest(Buffer.from('db-2')))).toEqual({ ok: false, why: 'stale' });
    const recreated = { ...key, dbGeneration: Buffer.from('db-2'), secret: Buffer.alloc(32, 9) };
    expect(checkHandle(h, recreated, dbGenerationDigest(recreated.dbGeneration))).toEqual({
      ok: false,
      why: 'stale',
    });
  });
});
