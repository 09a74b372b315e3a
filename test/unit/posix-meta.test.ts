import { describe, expect, it } from 'vitest';
import {
  DIR_CONTENT_TYPE,
  decodePosixMeta,
  encodePosixMeta,
  formatSecondsNs,
  type DecodeContext,
} from '../../src/objectstore/posix-meta.js';

const lastModified = new Date('2024-01-02T03:04:05.678Z');
const ctx = (over: Partial<DecodeContext> = {}): DecodeContext => ({
  defaults: { fileMode: 0o644, dirMode: 0o755, uid: 500, gid: 600 },
  lastModified,
  isDirMarker: false,
  contentType: 'application/octet-stream',
  ...over,
});
const LM_NS = BigInt(lastModified.getTime()) * 1_000_000n;

describe('encodePosixMeta', () => {
  it('writes both families for a file', () => {
    expect(
      encodePosixMeta({ type: 'file', mode: 0o644, uid: 1000, gid: 1001, mtimeNs: 1700000000123456789n }),
    ).toEqual({
      'file-permissions': '0100644',
      'file-owner': '1000',
      'file-group': '1001',
      'file-mtime': '1700000000123456789ns',
      mode: '33188',
      uid: '1000',
      gid: '1001',
      mtime: '1700000000.123456789',
    });
  });

  it('directories, symlinks, special bits, whole seconds, atime', () => {
    const d = encodePosixMeta({
      type: 'dir',
      mode: 0o1777,
      uid: 0,
      gid: 0,
      mtimeNs: 1700000000000000000n,
      atimeNs: 1700000001000000005n,
    });
    expect(d['file-permissions']).toBe('041777');
    expect(d.mode).toBe(String(0o041777));
    expect(d.mtime).toBe('1700000000');
    expect(d['file-atime']).toBe('1700000001000000005ns');
    const l = encodePosixMeta({ type: 'symlink', mode: 0o777, uid: 1, gid: 2, mtimeNs: 5n });
    expect(l['file-permissions']).toBe('0120777');
    expect(l.mode).toBe('41471');
    expect(l.mtime).toBe('0.000000005');
    expect(l['file-atime']).toBeUndefined();
    // Type bits given in mode are replaced by the type's.
    expect(
      encodePosixMeta({ type: 'file', mode: 0o40755, uid: 1, gid: 1, mtimeNs: 0n })['file-permissions'],
    ).toBe('0100755');
  });

  it('formats negative times', () => {
    expect(formatSecondsNs(-1_500_000_000n)).toBe('-1.500000000');
    expect(formatSecondsNs(-2_000_000_000n)).toBe('-2');
  });

  it('round-trips through decode', () => {
    for (const m of [
      {
        type: 'file' as const,
        mode: 0o640,
        uid: 7,
        gid: 8,
        mtimeNs: 1700000000000000001n,
        atimeNs: 1600000000000000000n,
      },
      { type: 'dir' as const, mode: 0o2755, uid: 4294967295, gid: 0, mtimeNs: 0n },
      { type: 'symlink' as const, mode: 0o777, uid: 1, gid: 1, mtimeNs: -1_500_000_000n },
    ]) {
      expect(decodePosixMeta(encodePosixMeta(m), ctx({ isDirMarker: m.type === 'dir' }))).toEqual(m);
    }
  });
});

describe('decodePosixMeta', () => {
  it('no metadata: defaults for files, directory markers and x-directory objects', () => {
    expect(decodePosixMeta({}, ctx())).toEqual({
      type: 'file',
      mode: 0o644,
      uid: 500,
      gid: 600,
      mtimeNs: LM_NS,
    });
    expect(decodePosixMeta({}, ctx({ isDirMarker: true }))).toEqual({
      type: 'dir',
      mode: 0o755,
      uid: 500,
      gid: 600,
      mtimeNs: LM_NS,
    });
    expect(decodePosixMeta({}, ctx({ contentType: `${DIR_CONTENT_TYPE}; charset=binary` })).type).toBe('dir');
  });

  it('AWS family alone', () => {
    const m = {
      'file-permissions': '0100600',
      'file-owner': '1000',
      'file-group': '100',
      'file-mtime': '1700000000123456789ns',
      'file-atime': '1700000000000000000ns',
    };
    expect(decodePosixMeta(m, ctx())).toEqual({
      type: 'file',
      mode: 0o600,
      uid: 1000,
      gid: 100,
      mtimeNs: 1700000000123456789n,
      atimeNs: 1700000000000000000n,
    });
  });

  it('s3fs family alone: decimal mode, integer and fractional mtime', () => {
    expect(decodePosixMeta({ mode: '33261', uid: '33', gid: '44', mtime: '1700000000' }, ctx())).toEqual({
      type: 'file',
      mode: 0o755,
      uid: 33,
      gid: 44,
      mtimeNs: 1700000000000000000n,
    });
    expect(decodePosixMeta({ mtime: '1700000000.5' }, ctx()).mtimeNs).toBe(1700000000500000000n);
    expect(decodePosixMeta({ mtime: '1700000000.123456789' }, ctx()).mtimeNs).toBe(1700000000123456789n);
    expect(decodePosixMeta({ mtime: '1700000000.1234567891234' }, ctx()).mtimeNs).toBe(1700000000123456789n);
    expect(decodePosixMeta({ mode: '16877' }, ctx()).type).toBe('dir');
    expect(decodePosixMeta({ mode: '41471' }, ctx())).toMatchObject({ type: 'symlink', mode: 0o777 });
  });

  it('x-amz-meta-mode is octal when it starts with 0', () => {
    expect(decodePosixMeta({ mode: '0100640' }, ctx())).toMatchObject({ type: 'file', mode: 0o640 });
    expect(decodePosixMeta({ mode: '0120777' }, ctx())).toMatchObject({ type: 'symlink', mode: 0o777 });
    expect(decodePosixMeta({ mode: '0755' }, ctx())).toMatchObject({ type: 'file', mode: 0o755 });
    expect(decodePosixMeta({ mode: '0755' }, ctx({ isDirMarker: true }))).toMatchObject({
      type: 'dir',
      mode: 0o755,
    });
    expect(decodePosixMeta({ mode: '420' }, ctx())).toMatchObject({ mode: 0o644 });
  });

  it('AWS family wins over s3fs, field by field', () => {
    const m = {
      'file-permissions': '0100600',
      'file-owner': '1',
      'file-mtime': '1000000000000000000ns',
      mode: '16877',
      uid: '2',
      gid: '3',
      mtime: '2000000000',
    };
    expect(decodePosixMeta(m, ctx())).toEqual({
      type: 'file',
      mode: 0o600,
      uid: 1,
      gid: 3,
      mtimeNs: 1000000000000000000n,
    });
  });

  it('type bits from the s3fs mode when the AWS mode has none', () => {
    expect(decodePosixMeta({ 'file-permissions': '0640', mode: '41471' }, ctx())).toMatchObject({
      type: 'symlink',
      mode: 0o640,
    });
  });

  it('a directory marker is a directory whatever the mode says', () => {
    expect(decodePosixMeta({ 'file-permissions': '0100644' }, ctx({ isDirMarker: true }))).toMatchObject({
      type: 'dir',
      mode: 0o644,
    });
  });

  it('metadata names are matched case-insensitively, with or without x-amz-meta-', () => {
    expect(decodePosixMeta({ 'X-Amz-Meta-File-Owner': '77', UID: '88', ' gid': '1' }, ctx())).toMatchObject({
      uid: 77,
      gid: 600,
    });
  });

  it('malformed values fall back to the next source, never throw', () => {
    const m = {
      'file-permissions': '0100648', // 8 is not octal
      mode: '33188',
      'file-owner': '-1',
      uid: '12',
      'file-group': 'abc',
      gid: '99999999999', // > 2^32-1
      'file-mtime': '17000000001.5ns',
      mtime: '1700000000.25',
      'file-atime': 'yesterday',
    };
    expect(decodePosixMeta(m, ctx())).toEqual({
      type: 'file',
      mode: 0o644,
      uid: 12,
      gid: 600,
      mtimeNs: 1700000000250000000n,
    });
    for (const bad of ['', ' ', '1e9', '0x1ff', '9999999', '12abc', '0o644', '-5', '0200000', '030644']) {
      expect(decodePosixMeta({ mode: bad }, ctx()).mode, bad).toBe(0o644);
      expect(decodePosixMeta({ 'file-permissions': bad }, ctx({ isDirMarker: true })).mode, bad).toBe(0o755);
    }
    for (const bad of ['', 'ns', '1.5', 'abc', '1700000000', '1e18ns']) {
      expect(decodePosixMeta({ 'file-mtime': bad }, ctx()).mtimeNs, bad).toBe(LM_NS);
    }
    for (const bad of ['', '.5', '1.', '1,5', 'NaN', '1e9', '+1']) {
      expect(decodePosixMeta({ mtime: bad }, ctx()).mtimeNs, bad).toBe(LM_NS);
    }
    expect(decodePosixMeta({}, ctx({ lastModified: new Date(NaN) })).mtimeNs).toBe(0n);
  });

  it('fifo/socket/device modes (s3fs can store them) show as files', () => {
    expect(decodePosixMeta({ mode: String(0o010644) }, ctx())).toMatchObject({ type: 'file', mode: 0o644 });
    expect(decodePosixMeta({ mode: String(0o140755) }, ctx())).toMatchObject({ type: 'file', mode: 0o755 });
  });
});
