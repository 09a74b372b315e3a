/**
 * POSIX attributes as S3 user metadata (see docs/object-format.md, "POSIX metadata").
 *
 * Every object the gateway writes carries two families of user metadata so that both ecosystems
 * read them (names here are lower-case, without the `x-amz-meta-` prefix):
 *
 * | what        | AWS family (DataSync / FSx / File Gateway)  | s3fs family                       |
 * |-------------|---------------------------------------------|-----------------------------------|
 * | type + mode | `file-permissions: 0100644` (octal, type)   | `mode: 33188` (decimal st_mode)   |
 * | owner       | `file-owner: 1000`                          | `uid: 1000`                       |
 * | group       | `file-group: 1000`                          | `gid: 1000`                       |
 * | mtime       | `file-mtime: 1700000000123456789ns`         | `mtime: 1700000000[.NNNNNNNNN]`   |
 * | atime       | `file-atime: …ns` (optional)                | —                                 |
 *
 * Reading: for each attribute the AWS family wins, then the s3fs family, then the defaults (share
 * config modes/owner, mtime = LastModified). A malformed value is ignored (the next source is used);
 * decoding never throws.
 */
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type FileType } from '../core/types.js';

/** Content-Type of a directory marker object (`dir/`, zero bytes). */
export const DIR_CONTENT_TYPE = 'application/x-directory';

/** Metadata names (lower-case, without `x-amz-meta-`). */
export const META = {
  awsMode: 'file-permissions',
  awsUid: 'file-owner',
  awsGid: 'file-group',
  awsMtime: 'file-mtime',
  awsAtime: 'file-atime',
  s3fsMode: 'mode',
  s3fsUid: 'uid',
  s3fsGid: 'gid',
  s3fsMtime: 'mtime',
  /** Not written; read as a last resort for atime (newer s3fs versions write it). */
  s3fsAtime: 'atime',
} as const;

/** POSIX attributes carried by an object. `mode` holds the permission bits only (07777). */
export interface PosixMeta {
  type: FileType;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  atimeNs?: bigint;
}

export interface PosixMetaDefaults {
  /** Permission bits for files (and symlinks) without metadata, e.g. 0o644. */
  fileMode: number;
  /** Permission bits for directories without metadata, e.g. 0o755. */
  dirMode: number;
  uid: number;
  gid: number;
}

export interface DecodeContext {
  defaults: PosixMetaDefaults;
  /** The object's LastModified: the mtime when no metadata carries one. */
  lastModified: Date;
  /** True for a `dir/` marker key: the node is a directory whatever the metadata says. */
  isDirMarker: boolean;
  contentType?: string | undefined;
}

const UINT32_MAX = 0xffff_ffff;
const NS_PER_SEC = 1_000_000_000n;
const KNOWN_OTHER_TYPES = new Set([0o010000, 0o020000, 0o060000, 0o140000]); // fifo, chr, blk, sock

function typeBitsOf(t: FileType): number {
  return t === 'dir' ? S_IFDIR : t === 'symlink' ? S_IFLNK : S_IFREG;
}

/** Seconds (and 9 fraction digits when ns ≠ 0) for `x-amz-meta-mtime`. */
export function formatSecondsNs(ns: bigint): string {
  const neg = ns < 0n;
  const abs = neg ? -ns : ns;
  const sec = abs / NS_PER_SEC;
  const frac = abs % NS_PER_SEC;
  const body = frac === 0n ? sec.toString() : `${sec.toString()}.${frac.toString().padStart(9, '0')}`;
  return neg ? `-${body}` : body;
}

/** Both metadata families for the given attributes. */
export function encodePosixMeta(m: PosixMeta): Record<string, string> {
  const st = (typeBitsOf(m.type) | (m.mode & 0o7777)) >>> 0;
  const out: Record<string, string> = {
    [META.awsMode]: `0${st.toString(8)}`,
    [META.awsUid]: String(m.uid),
    [META.awsGid]: String(m.gid),
    [META.awsMtime]: `${m.mtimeNs.toString()}ns`,
    [META.s3fsMode]: String(st),
    [META.s3fsUid]: String(m.uid),
    [META.s3fsGid]: String(m.gid),
    [META.s3fsMtime]: formatSecondsNs(m.mtimeNs),
  };
  if (m.atimeNs !== undefined) out[META.awsAtime] = `${m.atimeNs.toString()}ns`;
  return out;
}

interface ParsedMode {
  perm: number;
  /** Type from the type bits, or undefined when the value carries none. */
  type: FileType | undefined;
}

function modeFromNumber(v: number): ParsedMode | undefined {
  if (!Number.isSafeInteger(v) || v < 0 || v > 0o177777) return undefined;
  const fmt = v & S_IFMT;
  const perm = v & 0o7777;
  if (fmt === 0) return { perm, type: undefined };
  if (fmt === S_IFREG) return { perm, type: 'file' };
  if (fmt === S_IFDIR) return { perm, type: 'dir' };
  if (fmt === S_IFLNK) return { perm, type: 'symlink' };
  // fifo/char/block/socket (s3fs can store them): not representable here, shown as files.
  if (KNOWN_OTHER_TYPES.has(fmt)) return { perm, type: 'file' };
  return undefined;
}

/** `file-permissions`: always octal (leading 0 optional). */
function parseAwsMode(s: string | undefined): ParsedMode | undefined {
  if (s === undefined || !/^[0-7]{1,7}$/.test(s)) return undefined;
  return modeFromNumber(parseInt(s, 8));
}

/** `mode`: octal when it starts with 0, decimal otherwise. */
function parseS3fsMode(s: string | undefined): ParsedMode | undefined {
  if (s === undefined) return undefined;
  if (/^0[0-7]{0,6}$/.test(s)) return modeFromNumber(parseInt(s, 8));
  if (/^[1-9][0-9]{0,5}$/.test(s)) return modeFromNumber(parseInt(s, 10));
  return undefined;
}

function parseId(s: string | undefined): number | undefined {
  if (s === undefined || !/^[0-9]{1,10}$/.test(s)) return undefined;
  const v = Number(s);
  return v <= UINT32_MAX ? v : undefined;
}

/** `<integer>ns`. */
function parseNsTime(s: string | undefined): bigint | undefined {
  if (s === undefined) return undefined;
  const m = /^(-?[0-9]{1,30})ns$/.exec(s);
  return m?.[1] !== undefined ? BigInt(m[1]) : undefined;
}

/** Decimal seconds with an optional fraction (s3fs: integer; rclone: 9 digits). */
function parseSecTime(s: string | undefined): bigint | undefined {
  if (s === undefined) return undefined;
  const m = /^(-?)([0-9]{1,20})(?:\.([0-9]{1,30}))?$/.exec(s);
  if (m === null || m[2] === undefined) return undefined;
  const frac = (m[3] ?? '').slice(0, 9).padEnd(9, '0');
  const ns = BigInt(m[2]) * NS_PER_SEC + BigInt(frac);
  return m[1] === '-' ? -ns : ns;
}

/** Lower-case names, `x-amz-meta-` stripped, values trimmed. */
function normalise(metadata: Record<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') continue;
    let name = k.toLowerCase();
    if (name.startsWith('x-amz-meta-')) name = name.slice('x-amz-meta-'.length);
    out.set(name, v.trim());
  }
  return out;
}

/**
 * POSIX attributes of an object from its user metadata. Per attribute: AWS family, then s3fs family,
 * then defaults. The type comes from the mode's type bits when a mode source carries them; otherwise
 * a directory marker (or `application/x-directory` content type) is a directory and anything else
 * is a file. A `dir/` marker key is always a directory. A non-marker object whose mode says S_IFDIR
 * is reported as 'dir' (the caller decides what to do with such legacy objects).
 */
export function decodePosixMeta(metadata: Record<string, string>, ctx: DecodeContext): PosixMeta {
  const md = normalise(metadata);
  const modes = [parseAwsMode(md.get(META.awsMode)), parseS3fsMode(md.get(META.s3fsMode))];
  const permSource = modes.find((m) => m !== undefined);
  const typed = modes.find((m) => m?.type !== undefined)?.type;

  const contentTypeDir =
    ctx.contentType !== undefined && ctx.contentType.split(';')[0]?.trim().toLowerCase() === DIR_CONTENT_TYPE;
  let type: FileType;
  if (ctx.isDirMarker) type = 'dir';
  else if (typed !== undefined) type = typed;
  else type = contentTypeDir ? 'dir' : 'file';

  const mode = permSource?.perm ?? (type === 'dir' ? ctx.defaults.dirMode : ctx.defaults.fileMode) & 0o7777;
  const uid = parseId(md.get(META.awsUid)) ?? parseId(md.get(META.s3fsUid)) ?? ctx.defaults.uid;
  const gid = parseId(md.get(META.awsGid)) ?? parseId(md.get(META.s3fsGid)) ?? ctx.defaults.gid;
  const lastModMs = ctx.lastModified.getTime();
  const lastModNs = Number.isFinite(lastModMs) ? BigInt(Math.trunc(lastModMs)) * 1_000_000n : 0n;
  const mtimeNs = parseNsTime(md.get(META.awsMtime)) ?? parseSecTime(md.get(META.s3fsMtime)) ?? lastModNs;
  const atimeNs = parseNsTime(md.get(META.awsAtime)) ?? parseSecTime(md.get(META.s3fsAtime));

  const out: PosixMeta = { type, mode, uid, gid, mtimeNs };
  if (atimeNs !== undefined) out.atimeNs = atimeNs;
  return out;
}
