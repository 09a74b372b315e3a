/**
 * Typed file-system errors. Modules throw FsError (or a module-specific error that the VFS maps
 * to one); each adapter translates FsError.code into its protocol's error exactly once.
 */

/** Linux errno numbers for the codes the gateway produces. */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  EFBIG: 27,
  ENOSPC: 28,
  EROFS: 30,
  EMLINK: 31,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  EOVERFLOW: 75,
  EILSEQ: 84,
  ENOTSUP: 95,
  ETIMEDOUT: 110,
  ESTALE: 116,
  EDQUOT: 122,
} as const;

export type Errno = keyof typeof ERRNO;

export class FsError extends Error {
  readonly code: Errno;
  readonly op: string;
  readonly path: string | undefined;

  constructor(code: Errno, op: string, path?: string, options?: { cause?: unknown; message?: string }) {
    super(
      options?.message ?? `${op}${path !== undefined ? ` ${path}` : ''}: ${code}`,
      options?.cause !== undefined ? { cause: options.cause } : undefined,
    );
    this.name = 'FsError';
    this.code = code;
    this.op = op;
    this.path = path;
  }

  get errno(): number {
    return ERRNO[this.code];
  }
}

export function isFsError(e: unknown): e is FsError {
  return e instanceof FsError;
}

/** Any error that is not an FsError becomes EIO (the caller logs it once with its cause). */
export function toFsError(e: unknown, op: string, path?: string): FsError {
  if (e instanceof FsError) return e;
  return new FsError('EIO', op, path, {
    cause: e,
    message: `${op}${path ? ` ${path}` : ''}: ${errMessage(e)}`,
  });
}

export function errMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
