/** Conversions between VFS attributes and NFSv3 structures. */
import {
  Nfsv3Fattr,
  Nfsv3PostOpAttr,
  Nfsv3PreOpAttr,
  Nfsv3SpecData,
  Nfsv3Time,
  Nfsv3WccAttr,
  Nfsv3WccData,
  type Nfsv3Sattr,
} from '@jsonjoy.com/json-pack/lib/nfs/v3/structs.js';
import type { Attr, SetAttrChanges } from '../../core/types.js';
import { FType, Nfs3Stat, TimeHow } from './constants.js';
import { NfsStatusError } from './errors.js';

const NS = 1_000_000_000n;
const U32 = 0xffffffffn;

export function toNfsTime(ns: bigint): Nfsv3Time {
  if (ns < 0n) return new Nfsv3Time(0, 0);
  const sec = ns / NS;
  return new Nfsv3Time(Number(sec > U32 ? U32 : sec), Number(ns % NS));
}

export function fromNfsTime(t: Nfsv3Time): bigint {
  if (t.nseconds >= 1_000_000_000) throw new NfsStatusError(Nfs3Stat.INVAL, 'nseconds out of range');
  return BigInt(t.seconds >>> 0) * NS + BigInt(t.nseconds >>> 0);
}

export function ftype(a: Pick<Attr, 'type'>): number {
  return a.type === 'dir' ? FType.DIR : a.type === 'symlink' ? FType.LNK : FType.REG;
}

const NO_RDEV = new Nfsv3SpecData(0, 0);
const BLOCK = 4096n;

export function toFattr(a: Attr, fsid: bigint): Nfsv3Fattr {
  const size = BigInt(Math.max(0, a.size));
  return new Nfsv3Fattr(
    ftype(a),
    a.mode & 0o7777,
    a.nlink >>> 0,
    a.uid >>> 0,
    a.gid >>> 0,
    size,
    ((size + BLOCK - 1n) / BLOCK) * BLOCK,
    NO_RDEV,
    fsid,
    BigInt(a.ino),
    toNfsTime(a.atimeNs),
    toNfsTime(a.mtimeNs),
    toNfsTime(a.ctimeNs),
  );
}

export const NO_POST_OP = new Nfsv3PostOpAttr(false);
export const NO_PRE_OP = new Nfsv3PreOpAttr(false);
export const EMPTY_WCC = new Nfsv3WccData(NO_PRE_OP, NO_POST_OP);

export function postOp(a: Attr | undefined, fsid: bigint): Nfsv3PostOpAttr {
  return a === undefined ? NO_POST_OP : new Nfsv3PostOpAttr(true, toFattr(a, fsid));
}

export function preOp(a: Attr | undefined): Nfsv3PreOpAttr {
  if (a === undefined) return NO_PRE_OP;
  return new Nfsv3PreOpAttr(
    true,
    new Nfsv3WccAttr(BigInt(Math.max(0, a.size)), toNfsTime(a.mtimeNs), toNfsTime(a.ctimeNs)),
  );
}

export function wcc(before: Attr | undefined, after: Attr | undefined, fsid: bigint): Nfsv3WccData {
  return new Nfsv3WccData(preOp(before), postOp(after, fsid));
}

/** sattr3 → SetAttrChanges (undefined fields are left alone). */
export function sattrToChanges(s: Nfsv3Sattr): SetAttrChanges {
  const c: SetAttrChanges = {};
  if (s.mode.set && s.mode.mode !== undefined) c.mode = s.mode.mode & 0o7777;
  if (s.uid.set && s.uid.uid !== undefined) c.uid = s.uid.uid >>> 0;
  if (s.gid.set && s.gid.gid !== undefined) c.gid = s.gid.gid >>> 0;
  if (s.size.set && s.size.size !== undefined) {
    if (s.size.size > BigInt(Number.MAX_SAFE_INTEGER)) throw new NfsStatusError(Nfs3Stat.FBIG);
    c.size = Number(s.size.size);
  }
  if (s.atime.how === TimeHow.SET_TO_SERVER_TIME) c.atimeNs = 'now';
  else if (s.atime.how === TimeHow.SET_TO_CLIENT_TIME && s.atime.atime)
    c.atimeNs = fromNfsTime(s.atime.atime);
  else if (s.atime.how !== TimeHow.DONT_CHANGE) throw new NfsStatusError(Nfs3Stat.INVAL, 'bad time_how');
  if (s.mtime.how === TimeHow.SET_TO_SERVER_TIME) c.mtimeNs = 'now';
  else if (s.mtime.how === TimeHow.SET_TO_CLIENT_TIME && s.mtime.mtime)
    c.mtimeNs = fromNfsTime(s.mtime.mtime);
  else if (s.mtime.how !== TimeHow.DONT_CHANGE) throw new NfsStatusError(Nfs3Stat.INVAL, 'bad time_how');
  return c;
}

export function hasChanges(c: SetAttrChanges): boolean {
  return (
    c.mode !== undefined ||
    c.uid !== undefined ||
    c.gid !== undefined ||
    c.size !== undefined ||
    c.atimeNs !== undefined ||
    c.mtimeNs !== undefined
  );
}
