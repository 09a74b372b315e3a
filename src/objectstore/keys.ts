/**
 * Path ↔ key mapping for a share `s3://BUCKET[/PREFIX]` (see docs/object-format.md, "Keys").
 *
 * The file `a/b.txt` of the share is the object `PREFIX/a/b.txt`; a directory marker is `PREFIX/a/`.
 * Names are UTF-8; nothing is silently rewritten: invalid names are refused with an FsError, and
 * listed keys that cannot be shown as a path are classified 'skip' (the caller warns once each).
 */
import { FsError } from '../core/errors.js';
import { KEY_MAX, NAME_MAX } from '../core/types.js';

export interface ShareLocation {
  bucket: string;
  /** '' for a whole-bucket share, else the prefix with a trailing '/'. */
  prefix: string;
}

export type ListedKey = { kind: 'file' | 'dirmarker'; segments: string[] } | { kind: 'skip'; reason: string };

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const LONE_SURROGATE = /\p{Surrogate}/u;
// Bucket names: S3 rules (3–63 chars, lower-case letters, digits, '.', '-'), relaxed to also accept
// upper case and '_' as some S3-compatible stores do; must start and end with a letter or digit.
const BUCKET_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$/;

function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function showName(name: string | Buffer): string {
  return typeof name === 'string' ? JSON.stringify(name) : `<${name.toString('hex')}>`;
}

/**
 * Parse `s3://BUCKET[/PREFIX]`. The prefix is returned normalised: '' or ending with '/'.
 * Throws an Error explaining what is wrong for anything else.
 */
export function parseShareUrl(url: string): ShareLocation {
  const bad = (why: string): Error =>
    new Error(`invalid share URL ${JSON.stringify(url)}: ${why} (expected s3://BUCKET[/PREFIX])`);
  if (typeof url !== 'string' || !url.startsWith('s3://')) throw bad('it must start with s3://');
  const rest = url.slice('s3://'.length);
  if (/[?#]/.test(rest)) throw bad('query strings and fragments are not allowed');
  const slash = rest.indexOf('/');
  const bucket = slash === -1 ? rest : rest.slice(0, slash);
  const prefixPart = slash === -1 ? '' : rest.slice(slash + 1);
  if (bucket === '') throw bad('the bucket name is empty');
  if (!BUCKET_RE.test(bucket) || bucket.includes('..'))
    throw bad(`${JSON.stringify(bucket)} is not a valid bucket name`);
  if (prefixPart === '') return { bucket, prefix: '' };
  const trimmed = prefixPart.endsWith('/') ? prefixPart.slice(0, -1) : prefixPart;
  const segments = trimmed.split('/');
  for (const seg of segments) {
    if (seg === '') throw bad('the prefix contains an empty segment (//)');
    try {
      validateName(seg);
    } catch (e) {
      throw bad(
        `prefix segment ${JSON.stringify(seg)} is not a valid name (${e instanceof FsError ? e.code : String(e)})`,
      );
    }
  }
  const prefix = `${segments.join('/')}/`;
  if (byteLength(prefix) >= KEY_MAX) throw bad(`the prefix is longer than ${KEY_MAX - 1} bytes`);
  return { bucket, prefix };
}

/**
 * Check one path component and return it as a string. Throws FsError:
 * EILSEQ not valid UTF-8 (a Buffer that does not decode, or a string with lone surrogates);
 * EINVAL '', '.', '..', or containing '/' or NUL; ENAMETOOLONG over 255 bytes.
 */
export function validateName(name: string | Buffer): string {
  let s: string;
  if (typeof name === 'string') {
    if (LONE_SURROGATE.test(name)) throw new FsError('EILSEQ', 'name', showName(name));
    s = name;
  } else {
    try {
      s = utf8.decode(name);
    } catch (e) {
      throw new FsError('EILSEQ', 'name', showName(name), { cause: e });
    }
  }
  if (s === '' || s === '.' || s === '..' || s.includes('/') || s.includes('\0')) {
    throw new FsError('EINVAL', 'name', showName(s));
  }
  if (byteLength(s) > NAME_MAX) throw new FsError('ENAMETOOLONG', 'name', showName(s));
  return s;
}

function joinKey(prefix: string, segments: readonly string[], trailingSlash: boolean): string {
  for (const seg of segments) validateName(seg);
  const key = prefix + segments.join('/') + (trailingSlash && segments.length > 0 ? '/' : '');
  if (byteLength(key) > KEY_MAX) throw new FsError('ENAMETOOLONG', 'key', segments.join('/'));
  return key;
}

/** Object key of a file (or symlink) at `segments` below the share prefix. */
export function keyFor(prefix: string, segments: readonly string[]): string {
  if (segments.length === 0)
    throw new FsError('EINVAL', 'key', '/', { message: 'key: the share root is not a file' });
  return joinKey(prefix, segments, false);
}

/**
 * Marker key of the directory at `segments` (trailing '/'); this is also the listing prefix of the
 * directory. For the share root (no segments) it is the share prefix itself ('' for a whole-bucket
 * share, which has no marker).
 */
export function dirKey(prefix: string, segments: readonly string[]): string {
  return joinKey(prefix, segments, true);
}

function segmentProblem(seg: string): string | undefined {
  if (seg === '') return 'empty path segment (//)';
  if (seg === '.' || seg === '..') return `path segment ${JSON.stringify(seg)}`;
  if (seg.includes('\0')) return 'NUL in a path segment';
  if (LONE_SURROGATE.test(seg)) return 'not valid UTF-8';
  if (byteLength(seg) > NAME_MAX) return `path segment longer than ${NAME_MAX} bytes`;
  return undefined;
}

/**
 * How a listed key shows in the share: a file, a directory marker (key ending in '/', zero bytes;
 * the share's own `PREFIX/` marker has no segments), or 'skip' with the reason for keys that cannot
 * be shown as a path (`a//b`, `./x`, `../x`, `.`/`..` segments, segments over 255 bytes, `x/` with a
 * body, keys outside the prefix). Never throws.
 */
export function classifyListedKey(prefix: string, key: string, size: number): ListedKey {
  if (!key.startsWith(prefix)) return { kind: 'skip', reason: 'key outside the share prefix' };
  const rel = key.slice(prefix.length);
  if (rel === '') {
    // The share root's own marker (PREFIX/), or an empty key.
    if (prefix === '') return { kind: 'skip', reason: 'empty key' };
    return size === 0
      ? { kind: 'dirmarker', segments: [] }
      : { kind: 'skip', reason: 'directory marker with a body' };
  }
  const isMarker = rel.endsWith('/');
  const segments = (isMarker ? rel.slice(0, -1) : rel).split('/');
  for (const seg of segments) {
    const problem = segmentProblem(seg);
    if (problem !== undefined) return { kind: 'skip', reason: problem };
  }
  if (isMarker && size !== 0) return { kind: 'skip', reason: 'directory marker with a body' };
  return { kind: isMarker ? 'dirmarker' : 'file', segments };
}
