/**
 * NFSv3 file handles (opaque to clients, at most 64 bytes; ours are 44):
 *
 *   off len
 *     0   2  magic "BG"
 *     2   1  format version (1)
 *     3   1  reserved (0)
 *     4   4  export id (u32 BE)
 *     8   8  database generation digest (first 8 bytes of SHA-256 of the daemon's db generation)
 *    16   8  inode id (u64 BE)
 *    24   4  inode generation (u32 BE)
 *    28  16  HMAC-SHA256(secret, bytes 0..27), truncated
 *
 * Inode ids and generations come from the metadata database, so a handle survives a restart. The
 * MAC (keyed by a per-gateway secret kept with that database) makes handles unforgeable, including
 * into another export (the export id is covered by the MAC).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const HANDLE_MAGIC_0 = 0x42; // 'B'
export const HANDLE_MAGIC_1 = 0x47; // 'G'
export const HANDLE_VERSION = 1;
export const HANDLE_SIZE = 44;
const BODY_SIZE = 28;
const MAC_SIZE = 16;

export interface HandleKey {
  exportId: number;
  dbGeneration: Buffer;
  secret: Buffer;
}

export interface HandleFields {
  exportId: number;
  dbDigest: Buffer;
  ino: number;
  generation: number;
}

export function dbGenerationDigest(dbGeneration: Buffer): Buffer {
  return createHash('sha256').update(dbGeneration).digest().subarray(0, 8);
}

function mac(secret: Buffer, body: Uint8Array): Buffer {
  return createHmac('sha256', secret).update(body).digest().subarray(0, MAC_SIZE);
}

export function encodeHandle(key: HandleKey, ino: number, generation: number, dbDigest?: Buffer): Buffer {
  if (!Number.isSafeInteger(ino) || ino < 0) throw new RangeError(`bad inode id ${ino}`);
  const buf = Buffer.alloc(HANDLE_SIZE);
  buf[0] = HANDLE_MAGIC_0;
  buf[1] = HANDLE_MAGIC_1;
  buf[2] = HANDLE_VERSION;
  buf[3] = 0;
  buf.writeUInt32BE(key.exportId >>> 0, 4);
  (dbDigest ?? dbGenerationDigest(key.dbGeneration)).copy(buf, 8, 0, 8);
  buf.writeBigUInt64BE(BigInt(ino), 16);
  buf.writeUInt32BE(generation >>> 0, 24);
  mac(key.secret, buf.subarray(0, BODY_SIZE)).copy(buf, BODY_SIZE);
  return buf;
}

/** Parse the unauthenticated fields; undefined when the shape is wrong (→ BADHANDLE). */
export function parseHandle(data: Uint8Array): HandleFields | undefined {
  if (data.length !== HANDLE_SIZE) return undefined;
  if (
    data[0] !== HANDLE_MAGIC_0 ||
    data[1] !== HANDLE_MAGIC_1 ||
    data[2] !== HANDLE_VERSION ||
    data[3] !== 0
  ) {
    return undefined;
  }
  const b = Buffer.from(data.buffer, data.byteOffset, data.length);
  const ino = b.readBigUInt64BE(16);
  if (ino > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return {
    exportId: b.readUInt32BE(4),
    dbDigest: Buffer.from(b.subarray(8, 16)),
    ino: Number(ino),
    generation: b.readUInt32BE(24),
  };
}

/** True when the MAC of `data` verifies under `secret`. */
export function verifyHandleMac(data: Uint8Array, secret: Buffer): boolean {
  if (data.length !== HANDLE_SIZE) return false;
  const expected = mac(secret, data.subarray(0, BODY_SIZE));
  return timingSafeEqual(expected, data.subarray(BODY_SIZE));
}

export type HandleCheck =
  { ok: true; ino: number; generation: number } | { ok: false; why: 'badhandle' | 'stale' };

/**
 * Check a handle against one export's key: wrong shape or wrong export → badhandle. A handle minted
 * for another incarnation of the metadata database (other generation digest) → stale: its MAC was
 * made with that database's secret and cannot be checked, and the inodes it names are gone. For the
 * current database, a bad MAC → badhandle. The inode generation is checked by the caller.
 */
export function checkHandle(data: Uint8Array, key: HandleKey, dbDigest: Buffer): HandleCheck {
  const f = parseHandle(data);
  if (f === undefined || f.exportId !== key.exportId >>> 0) return { ok: false, why: 'badhandle' };
  if (!f.dbDigest.equals(dbDigest)) return { ok: false, why: 'stale' };
  if (!verifyHandleMac(data, key.secret)) return { ok: false, why: 'badhandle' };
  return { ok: true, ino: f.ino, generation: f.generation };
}
