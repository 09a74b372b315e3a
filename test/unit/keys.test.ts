import { describe, expect, it } from 'vitest';
import { FsError, type Errno } from '../../src/core/errors.js';
import {
  classifyListedKey,
  dirKey,
  keyFor,
  parseShareUrl,
  validateName,
} from '../../src/objectstore/keys.js';

function errno(fn: () => unknown): Errno | 'none' {
  try {
    fn();
    return 'none';
  } catch (e) {
    expect(e).toBeInstanceOf(FsError);
    return (e as FsError).code;
  }
}

describe('parseShareUrl', () => {
  it('parses bucket and prefix, normalising the prefix', () => {
    expect(parseShareUrl('s3://b-1')).toEqual({ bucket: 'b-1', prefix: '' });
    expect(parseShareUrl('s3://bucket/')).toEqual({ bucket: 'bucket', prefix: '' });
    expect(parseShareUrl('s3://b.x/p')).toEqual({ bucket: 'b.x', prefix: 'p/' });
    expect(parseShareUrl('s3://bkt/p/q')).toEqual({ bucket: 'bkt', prefix: 'p/q/' });
    expect(parseShareUrl('s3://bkt/p/q/')).toEqual({ bucket: 'bkt', prefix: 'p/q/' });
    expect(parseShareUrl('s3://bkt/ünï/日本')).toEqual({ bucket: 'bkt', prefix: 'ünï/日本/' });
  });

  it('rejects bad URLs with a clear message', () => {
    for (const bad of [
      'bucket/p',
      'http://bucket/p',
      's3://',
      's3:///p',
      's3://b',
      's3://-bucket',
      's3://bucket-',
      's3://bu..cket',
      's3://bu cket',
      's3://bucket//p',
      's3://bucket/p//q',
      's3://bucket/./p',
      's3://bucket/p/..',
      's3://bucket/p?x=1',
      's3://bucket/p#f',
      `s3://bucket/${'x'.repeat(256)}`,
      `s3://bucket/${Array.from({ length: 5 }, () => 'y'.repeat(250)).join('/')}`,
    ]) {
      expect(() => parseShareUrl(bad), bad).toThrow(/invalid share URL .*expected s3:\/\/BUCKET\[\/PREFIX\]/);
    }
  });
});

describe('validateName', () => {
  it('accepts ordinary and unicode names, returning them as strings', () => {
    expect(validateName('a.txt')).toBe('a.txt');
    expect(validateName('...')).toBe('...');
    expect(validateName('.hidden')).toBe('.hidden');
    expect(validateName('日本語 😀')).toBe('日本語 😀');
    expect(validateName(Buffer.from('ünï', 'utf8'))).toBe('ünï');
    expect(validateName('x'.repeat(255))).toBe('x'.repeat(255));
  });

  it('EINVAL for empty, . and .., names with / or NUL', () => {
    for (const n of ['', '.', '..', 'a/b', '/', 'a\0b'])
      expect(
        errno(() => validateName(n)),
        JSON.stringify(n),
      ).toBe('EINVAL');
    expect(errno(() => validateName(Buffer.from('a/b')))).toBe('EINVAL');
    expect(errno(() => validateName(Buffer.alloc(0)))).toBe('EINVAL');
  });

  it('EILSEQ for invalid UTF-8 buffers and lone surrogates', () => {
    for (const b of [
      Buffer.from([0xff]),
      Buffer.from([0x61, 0xc3]), // truncated sequence
      Buffer.from([0xc0, 0xaf]), // overlong '/'
      Buffer.from([0xed, 0xa0, 0x80]), // encoded surrogate
      Buffer.from([0x66, 0x6f, 0x80, 0x6f]),
    ]) {
      expect(
        errno(() => validateName(b)),
        b.toString('hex'),
      ).toBe('EILSEQ');
    }
    expect(errno(() => validateName('a\uD800b'))).toBe('EILSEQ');
    expect(errno(() => validateName('\uDC00'))).toBe('EILSEQ');
  });

  it('ENAMETOOLONG over 255 bytes (bytes, not characters)', () => {
    expect(errno(() => validateName('x'.repeat(256)))).toBe('ENAMETOOLONG');
    expect(errno(() => validateName('é'.repeat(127)))).toBe('none'); // 254 bytes
    expect(errno(() => validateName('é'.repeat(128)))).toBe('ENAMETOOLONG'); // 256 bytes
    expect(errno(() => validateName('😀'.repeat(64)))).toBe('ENAMETOOLONG'); // 256 bytes
    expect(errno(() => validateName(Buffer.alloc(256, 0x61)))).toBe('ENAMETOOLONG');
  });
});

describe('keyFor / dirKey', () => {
  it('joins the prefix and segments', () => {
    expect(keyFor('', ['a', 'b.txt'])).toBe('a/b.txt');
    expect(keyFor('p/q/', ['a'])).toBe('p/q/a');
    expect(dirKey('p/', ['a', 'b'])).toBe('p/a/b/');
    expect(dirKey('p/', [])).toBe('p/');
    expect(dirKey('', [])).toBe('');
    expect(errno(() => keyFor('p/', []))).toBe('EINVAL');
  });

  it('validates every segment', () => {
    expect(errno(() => keyFor('', ['a', '..']))).toBe('EINVAL');
    expect(errno(() => keyFor('', ['a', 'b/c']))).toBe('EINVAL');
    expect(errno(() => dirKey('', ['x'.repeat(256)]))).toBe('ENAMETOOLONG');
    expect(errno(() => keyFor('', ['bad\uD800']))).toBe('EILSEQ');
  });

  it('ENAMETOOLONG for keys over 1024 bytes', () => {
    const seg = 'x'.repeat(255);
    const four = [seg, seg, seg, seg]; // 1020 + 3 slashes = 1023 bytes
    expect(keyFor('', four).length).toBe(1023);
    expect(keyFor('a', four).length).toBe(1024);
    expect(errno(() => keyFor('ab', four))).toBe('ENAMETOOLONG');
    expect(errno(() => dirKey('a', four))).toBe('ENAMETOOLONG'); // 1025 with the trailing slash
    expect(dirKey('', four).length).toBe(1024);
    expect(errno(() => keyFor('', [...four, 'y']))).toBe('ENAMETOOLONG');
    // Multi-byte characters count in bytes.
    expect(
      errno(() =>
        keyFor('', ['é'.repeat(127), 'é'.repeat(127), 'é'.repeat(127), 'é'.repeat(127), 'abcdefghij']),
      ),
    ).toBe('ENAMETOOLONG');
  });
});

describe('classifyListedKey', () => {
  it('files and directory markers', () => {
    expect(classifyListedKey('p/', 'p/a/b.txt', 10)).toEqual({ kind: 'file', segments: ['a', 'b.txt'] });
    expect(classifyListedKey('', 'top', 0)).toEqual({ kind: 'file', segments: ['top'] });
    expect(classifyListedKey('p/', 'p/a/', 0)).toEqual({ kind: 'dirmarker', segments: ['a'] });
    expect(classifyListedKey('p/', 'p/', 0)).toEqual({ kind: 'dirmarker', segments: [] });
    expect(classifyListedKey('', '...', 3)).toEqual({ kind: 'file', segments: ['...'] });
    expect(classifyListedKey('', '.hidden/x', 3)).toEqual({ kind: 'file', segments: ['.hidden', 'x'] });
    expect(classifyListedKey('', 'x'.repeat(255), 1)).toEqual({ kind: 'file', segments: ['x'.repeat(255)] });
  });

  it.each([
    ['', 'a//b', 1, /empty path segment/],
    ['', '//x', 1, /empty path segment/],
    ['', '/x', 1, /empty path segment/],
    ['', 'a//', 0, /empty path segment/],
    ['', './x', 1, /"\."/],
    ['', '../x', 1, /"\.\."/],
    ['', 'a/./b', 1, /"\."/],
    ['', 'a/../b', 1, /"\.\."/],
    ['', 'a/..', 1, /"\.\."/],
    ['', '.', 1, /"\."/],
    ['', '..', 1, /"\.\."/],
    ['', '../', 0, /"\.\."/],
    ['', `d/${'y'.repeat(256)}`, 1, /longer than 255 bytes/],
    ['', `${'é'.repeat(128)}/`, 0, /longer than 255 bytes/],
    ['', 'x/', 5, /directory marker with a body/],
    ['p/', 'p/', 5, /directory marker with a body/],
    ['', 'a\0b', 1, /NUL/],
    ['', 'bad\uD800', 1, /UTF-8/],
    ['p/', 'q/x', 1, /outside the share prefix/],
    ['p/', 'p', 0, /outside the share prefix/],
    ['', '', 0, /empty key/],
  ])('skips %j %j (size %d)', (prefix, key, size, reason) => {
    const c = classifyListedKey(prefix, key, size);
    expect(c.kind).toBe('skip');
    if (c.kind === 'skip') expect(c.reason).toMatch(reason);
  });
});
