/**
 * The one translation from VFS errors (FsError codes) to NFSv3 status codes.
 * Anything unexpected becomes NFS3ERR_IO (or SERVERFAULT for non-FsError bugs) and is logged once
 * per (code, operation) pair with its cause.
 */
import { isFsError, type Errno } from '../../core/errors.js';
import type { Logger } from '../../log/index.js';
import { MountStat, Nfs3Stat, type Nfs3Status } from './constants.js';

/** Thrown inside procedure handlers to answer with a given status. */
export class NfsStatusError extends Error {
  readonly status: Nfs3Status;
  constructor(status: Nfs3Status, message?: string) {
    super(message ?? `nfsstat3 ${status}`);
    this.name = 'NfsStatusError';
    this.status = status;
  }
}

const MAP: Partial<Record<Errno, Nfs3Status>> = {
  EPERM: Nfs3Stat.PERM,
  ENOENT: Nfs3Stat.NOENT,
  EIO: Nfs3Stat.IO,
  EACCES: Nfs3Stat.ACCES,
  EEXIST: Nfs3Stat.EXIST,
  EXDEV: Nfs3Stat.XDEV,
  ENODEV: Nfs3Stat.NODEV,
  ENOTDIR: Nfs3Stat.NOTDIR,
  EISDIR: Nfs3Stat.ISDIR,
  EINVAL: Nfs3Stat.INVAL,
  EFBIG: Nfs3Stat.FBIG,
  ENOSPC: Nfs3Stat.NOSPC,
  EROFS: Nfs3Stat.ROFS,
  EMLINK: Nfs3Stat.MLINK,
  ENAMETOOLONG: Nfs3Stat.NAMETOOLONG,
  ENOTEMPTY: Nfs3Stat.NOTEMPTY,
  EDQUOT: Nfs3Stat.DQUOT,
  ESTALE: Nfs3Stat.STALE,
  EILSEQ: Nfs3Stat.INVAL,
  ENOTSUP: Nfs3Stat.NOTSUPP,
  ENOSYS: Nfs3Stat.NOTSUPP,
  EAGAIN: Nfs3Stat.JUKEBOX,
  EBUSY: Nfs3Stat.JUKEBOX,
  ETIMEDOUT: Nfs3Stat.JUKEBOX,
  ELOOP: Nfs3Stat.INVAL,
  EOVERFLOW: Nfs3Stat.FBIG,
  ERANGE: Nfs3Stat.INVAL,
  ENODATA: Nfs3Stat.IO,
  EBADF: Nfs3Stat.STALE,
};

const logged = new Set<string>();

/** Map an error thrown by the VFS (or by our own handlers) to nfsstat3. */
export function nfsStatus(err: unknown, op: string, log?: Logger): Nfs3Status {
  if (err instanceof NfsStatusError) return err.status;
  if (isFsError(err)) {
    const s = MAP[err.code];
    if (s !== undefined && err.code !== 'EIO') return s;
    const key = `${err.code}|${op}`;
    if (!logged.has(key)) {
      logged.add(key);
      log?.warn('nfs: vfs error mapped to NFS3ERR_IO', { op, code: err.code, error: err, cause: err.cause });
    }
    return s ?? Nfs3Stat.IO;
  }
  const key = `bug|${op}|${err instanceof Error ? err.name : typeof err}`;
  if (!logged.has(key)) {
    logged.add(key);
    log?.error('nfs: unexpected error', { op, error: err instanceof Error ? err : String(err) });
  }
  return Nfs3Stat.SERVERFAULT;
}

/** MOUNT3 status for an error met while resolving a mount path. */
export function mountStatus(err: unknown, log?: Logger): number {
  const s = nfsStatus(err, 'mnt', log);
  switch (s) {
    case Nfs3Stat.NOENT:
    case Nfs3Stat.STALE:
      return MountStat.NOENT;
    case Nfs3Stat.ACCES:
      return MountStat.ACCES;
    case Nfs3Stat.PERM:
      return MountStat.PERM;
    case Nfs3Stat.NOTDIR:
      return MountStat.NOTDIR;
    case Nfs3Stat.INVAL:
      return MountStat.INVAL;
    case Nfs3Stat.NAMETOOLONG:
      return MountStat.NAMETOOLONG;
    case Nfs3Stat.NOTSUPP:
      return MountStat.NOTSUPP;
    case Nfs3Stat.SERVERFAULT:
      return MountStat.SERVERFAULT;
    default:
      return MountStat.IO;
  }
}
