/**
 * Protocol numbers of ONC RPC (RFC 5531), NFSv3 (RFC 1813), MOUNT v3 (RFC 1813 appendix I) and
 * portmap/rpcbind (RFC 1833). json-pack declares these as `const enum` in .d.ts files only (its
 * constants.js files are empty), so they cannot be imported at run time: they live here.
 */

export const RPC_VERSION = 2;

export const MsgType = { CALL: 0, REPLY: 1 } as const;

export const AcceptStat = {
  SUCCESS: 0,
  PROG_UNAVAIL: 1,
  PROG_MISMATCH: 2,
  PROC_UNAVAIL: 3,
  GARBAGE_ARGS: 4,
  SYSTEM_ERR: 5,
} as const;

export const RejectStat = { RPC_MISMATCH: 0, AUTH_ERROR: 1 } as const;

export const AuthStat = {
  AUTH_OK: 0,
  AUTH_BADCRED: 1,
  AUTH_REJECTEDCRED: 2,
  AUTH_BADVERF: 3,
  AUTH_REJECTEDVERF: 4,
  AUTH_TOOWEAK: 5,
} as const;

export const AuthFlavor = { AUTH_NONE: 0, AUTH_SYS: 1, AUTH_SHORT: 2, AUTH_DH: 3, RPCSEC_GSS: 6 } as const;

export const PROG_PORTMAP = 100000;
export const PROG_NFS = 100003;
export const PROG_MOUNT = 100005;
export const NFS_VERSION = 3;
export const MOUNT_VERSION = 3;

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export const NfsProc = {
  NULL: 0,
  GETATTR: 1,
  SETATTR: 2,
  LOOKUP: 3,
  ACCESS: 4,
  READLINK: 5,
  READ: 6,
  WRITE: 7,
  CREATE: 8,
  MKDIR: 9,
  SYMLINK: 10,
  MKNOD: 11,
  REMOVE: 12,
  RMDIR: 13,
  RENAME: 14,
  LINK: 15,
  READDIR: 16,
  READDIRPLUS: 17,
  FSSTAT: 18,
  FSINFO: 19,
  PATHCONF: 20,
  COMMIT: 21,
} as const;
export const NFS_PROC_MAX = 21;

export const NFS_PROC_NAMES: readonly string[] = Object.keys(NfsProc);

/** Procedures whose replay after a retransmission would not be harmless: the DRC covers these. */
export const NON_IDEMPOTENT_NFS_PROCS: ReadonlySet<number> = new Set([
  NfsProc.SETATTR,
  NfsProc.CREATE,
  NfsProc.MKDIR,
  NfsProc.SYMLINK,
  NfsProc.MKNOD,
  NfsProc.REMOVE,
  NfsProc.RMDIR,
  NfsProc.RENAME,
  NfsProc.LINK,
]);

export const Nfs3Stat = {
  OK: 0,
  PERM: 1,
  NOENT: 2,
  IO: 5,
  NXIO: 6,
  ACCES: 13,
  EXIST: 17,
  XDEV: 18,
  NODEV: 19,
  NOTDIR: 20,
  ISDIR: 21,
  INVAL: 22,
  FBIG: 27,
  NOSPC: 28,
  ROFS: 30,
  MLINK: 31,
  NAMETOOLONG: 63,
  NOTEMPTY: 66,
  DQUOT: 69,
  STALE: 70,
  REMOTE: 71,
  BADHANDLE: 10001,
  NOT_SYNC: 10002,
  BAD_COOKIE: 10003,
  NOTSUPP: 10004,
  TOOSMALL: 10005,
  SERVERFAULT: 10006,
  BADTYPE: 10007,
  JUKEBOX: 10008,
} as const;
export type Nfs3Status = (typeof Nfs3Stat)[keyof typeof Nfs3Stat];

export const FType = { REG: 1, DIR: 2, BLK: 3, CHR: 4, LNK: 5, SOCK: 6, FIFO: 7 } as const;

export const TimeHow = { DONT_CHANGE: 0, SET_TO_SERVER_TIME: 1, SET_TO_CLIENT_TIME: 2 } as const;

export const StableHow = { UNSTABLE: 0, DATA_SYNC: 1, FILE_SYNC: 2 } as const;

export const CreateMode = { UNCHECKED: 0, GUARDED: 1, EXCLUSIVE: 2 } as const;

export const Access3 = {
  READ: 0x01,
  LOOKUP: 0x02,
  MODIFY: 0x04,
  EXTEND: 0x08,
  DELETE: 0x10,
  EXECUTE: 0x20,
} as const;

export const Fsf3 = { LINK: 0x01, SYMLINK: 0x02, HOMOGENEOUS: 0x08, CANSETTIME: 0x10 } as const;

export const NFS3_FHSIZE = 64;
export const NFS3_COOKIEVERFSIZE = 8;
export const NFS3_WRITEVERFSIZE = 8;

export const MountProc = { NULL: 0, MNT: 1, DUMP: 2, UMNT: 3, UMNTALL: 4, EXPORT: 5 } as const;
export const MOUNT_PROC_MAX = 5;
export const MNTPATHLEN = 1024;

export const MountStat = {
  OK: 0,
  PERM: 1,
  NOENT: 2,
  IO: 5,
  ACCES: 13,
  NOTDIR: 20,
  INVAL: 22,
  NAMETOOLONG: 63,
  NOTSUPP: 10004,
  SERVERFAULT: 10006,
} as const;

export const PmapProc = { NULL: 0, SET: 1, UNSET: 2, GETPORT: 3, DUMP: 4, CALLIT: 5 } as const;
/** rpcbind v3/v4 procedure numbers that we answer (RFC 1833). */
export const RpcbProc = { NULL: 0, SET: 1, UNSET: 2, GETADDR: 3, DUMP: 4 } as const;

/** Transfer sizes announced by FSINFO (libnfs uses rtmax/wtmax as its transfer size). */
export const MAX_IO = 1024 * 1024;
/** Largest record accepted from a client: a 1 MiB WRITE plus generous headers fits easily. */
export const DEFAULT_MAX_RECORD = 4 * 1024 * 1024 + 64 * 1024;
