/**
 * State shared by the MOUNT and NFS programs: the exports, handle resolution with the export policy
 * applied, the open-handle cache, the write verifier and a small child → parent map for LOOKUP "..".
 */
import { randomBytes } from 'node:crypto';
import { isFsError } from '../../core/errors.js';
import {
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  ROOT_CRED,
  X_OK,
  type Attr,
  type Cred,
  type Ino,
} from '../../core/types.js';
import type { Fh, Vfs } from '../../vfs/types.js';
import type { Logger } from '../../log/index.js';
import { AuthStat, Nfs3Stat, NFS3_FHSIZE } from './constants.js';
import { NfsStatusError } from './errors.js';
import { checkHandle, dbGenerationDigest, encodeHandle, parseHandle, type HandleKey } from './handle.js';
import { OpenFileCache, type OpenMode } from './openfiles.js';
import { CompiledPolicy, type ClientAccess, type ExportPolicy } from './policy.js';

export interface ExportConfig {
  /** Share name: the export path is `/NAME`. */
  name: string;
  vfs: Vfs;
  policy: ExportPolicy;
  exportId: number;
  /** Changes when the metadata database is recreated (handles from before become stale). */
  dbGeneration: Buffer;
  /** Per-gateway secret that keys the handle MAC (kept with the metadata database). */
  secret: Buffer;
}

export interface Export {
  readonly name: string;
  readonly path: string;
  readonly exportId: number;
  readonly vfs: Vfs;
  readonly policy: CompiledPolicy;
  readonly key: HandleKey;
  readonly dbDigest: Buffer;
  readonly fsid: bigint;
}

/** The caller of one RPC. `cred` undefined = AUTH_NONE. */
export interface Caller {
  addr: string;
  port: number;
  cred: Cred | undefined;
}

/** Thrown when a call must be rejected at the RPC level (AUTH_ERROR with this auth_stat). */
export class AuthReject extends Error {
  readonly authStat: number;
  constructor(authStat: number, message: string) {
    super(message);
    this.name = 'AuthReject';
    this.authStat = authStat;
  }
}

/** A resolved file handle: the export, the squashed credentials and the inode's current attrs. */
export interface Target {
  exp: Export;
  cred: Cred;
  access: ClientAccess;
  ino: Ino;
  attr: Attr;
  /** True when changes are refused (read-only export, read-only client or read-only VFS). */
  readOnly: boolean;
}

const MAX_PARENTS = 200_000;

export class NfsCore {
  readonly exports: ReadonlyMap<number, Export>;
  readonly byPath: ReadonlyMap<string, Export>;
  readonly openFiles: OpenFileCache;
  /** WRITE/COMMIT verifier: changes on every start, so clients resend uncommitted data. */
  writeVerf: Uint8Array = randomBytes(8);
  readonly log: Logger;
  private readonly parents = new Map<string, Ino>();

  constructor(configs: ExportConfig[], log: Logger, idleMs?: number) {
    this.log = log;
    const byId = new Map<number, Export>();
    const byPath = new Map<string, Export>();
    for (const c of configs) {
      if (!/^[A-Za-z0-9._-]+$/.test(c.name)) throw new Error(`invalid export name "${c.name}"`);
      if (!Number.isInteger(c.exportId) || c.exportId < 0 || c.exportId > 0xffffffff) {
        throw new Error(`invalid exportId ${c.exportId} for export ${c.name}`);
      }
      if (c.secret.length < 16)
        throw new Error(`export ${c.name}: the handle secret must be at least 16 bytes`);
      if (byId.has(c.exportId)) throw new Error(`duplicate exportId ${c.exportId}`);
      const path = `/${c.name}`;
      if (byPath.has(path)) throw new Error(`duplicate export ${path}`);
      const exp: Export = {
        name: c.name,
        path,
        exportId: c.exportId,
        vfs: c.vfs,
        policy: new CompiledPolicy(c.policy),
        key: { exportId: c.exportId, dbGeneration: c.dbGeneration, secret: c.secret },
        dbDigest: dbGenerationDigest(c.dbGeneration),
        fsid: BigInt(c.exportId) + 1n,
      };
      byId.set(c.exportId, exp);
      byPath.set(path, exp);
    }
    this.exports = byId;
    this.byPath = byPath;
    this.openFiles = new OpenFileCache({
      log,
      opener: openForIo,
      ...(idleMs !== undefined ? { idleMs } : {}),
    });
  }

  newBoot(): void {
    this.writeVerf = randomBytes(8);
  }

  handleOf(exp: Export, attr: Pick<Attr, 'ino' | 'generation'>): Buffer {
    return encodeHandle(exp.key, attr.ino, attr.generation, exp.dbDigest);
  }

  /** Policy gate of one export for one caller: credentials mapped, or a rejection. */
  admit(exp: Export, caller: Caller): { cred: Cred; access: ClientAccess } {
    if (!exp.policy.portOk(caller.port)) {
      throw new AuthReject(AuthStat.AUTH_TOOWEAK, `source port ${caller.port} is not privileged`);
    }
    const access = exp.policy.access(caller.addr);
    if (access === 'none') throw new NfsStatusError(Nfs3Stat.ACCES, `client ${caller.addr} not allowed`);
    return { cred: exp.policy.squash(caller.cred), access };
  }

  isReadOnly(exp: Export, access: ClientAccess): boolean {
    return access !== 'rw' || exp.policy.policy.readOnly || exp.vfs.readOnly;
  }

  /**
   * Resolve a file handle: shape, export, MAC and database generation (→ BADHANDLE / STALE), the
   * export policy (→ AUTH_TOOWEAK / ACCES / ROFS when `write`), then the inode (→ STALE when gone or
   * reused).
   */
  async resolve(data: Uint8Array, caller: Caller, write = false): Promise<Target> {
    if (data.length > NFS3_FHSIZE) throw new NfsStatusError(Nfs3Stat.BADHANDLE, 'handle too long');
    const fields = parseHandle(data);
    if (fields === undefined) throw new NfsStatusError(Nfs3Stat.BADHANDLE, 'malformed handle');
    const exp = this.exports.get(fields.exportId);
    if (exp === undefined) throw new NfsStatusError(Nfs3Stat.BADHANDLE, 'unknown export');
    const check = checkHandle(data, exp.key, exp.dbDigest);
    if (!check.ok) {
      throw new NfsStatusError(
        check.why === 'stale' ? Nfs3Stat.STALE : Nfs3Stat.BADHANDLE,
        `handle: ${check.why}`,
      );
    }
    const { cred, access } = this.admit(exp, caller);
    const readOnly = this.isReadOnly(exp, access);
    if (write && readOnly) throw new NfsStatusError(Nfs3Stat.ROFS);
    let attr: Attr;
    try {
      attr = await exp.vfs.getattr(cred, check.ino);
    } catch (e) {
      if (isFsError(e) && (e.code === 'ENOENT' || e.code === 'ESTALE'))
        throw new NfsStatusError(Nfs3Stat.STALE);
      throw e;
    }
    if (attr.generation >>> 0 !== check.generation)
      throw new NfsStatusError(Nfs3Stat.STALE, 'generation changed');
    return { exp, cred, access, ino: check.ino, attr, readOnly };
  }

  /** Attributes after an operation, or undefined (post-op attributes are optional). */
  async attrsOrUndefined(exp: Export, cred: Cred, ino: Ino): Promise<Attr | undefined> {
    try {
      return await exp.vfs.getattr(cred, ino);
    } catch {
      return undefined;
    }
  }

  noteParent(exp: Export, child: Attr, parent: Ino): void {
    if (child.type !== 'dir') return;
    const k = `${exp.exportId}:${child.ino}`;
    this.parents.delete(k);
    this.parents.set(k, parent);
    if (this.parents.size > MAX_PARENTS) {
      const first = this.parents.keys().next();
      if (first.done !== true) this.parents.delete(first.value);
    }
  }

  parentOf(exp: Export, ino: Ino): Ino | undefined {
    return this.parents.get(`${exp.exportId}:${ino}`);
  }
}

function isEacces(e: unknown): boolean {
  return isFsError(e) && e.code === 'EACCES';
}

/**
 * Open for NFS I/O. Like knfsd, the owner of a file may read and write it whatever its mode (a
 * client creates a file 0444 and then writes to it), and a file that may be executed may be read
 * (the client needs its bytes to execute it); the VFS checks everything else.
 */
export async function openForIo(vfs: Vfs, cred: Cred, ino: Ino, mode: OpenMode): Promise<Fh> {
  const flags = mode === 'w' ? O_RDWR : O_RDONLY;
  try {
    return await vfs.open(cred, ino, flags);
  } catch (e) {
    if (!isEacces(e)) throw e;
    if (mode === 'w') {
      try {
        return await vfs.open(cred, ino, O_WRONLY);
      } catch (e2) {
        if (!isEacces(e2)) throw e2;
      }
    }
    const attr = await vfs.getattr(cred, ino);
    if (attr.type === 'file' && attr.uid === cred.uid) return await vfs.open(ROOT_CRED, ino, flags);
    if (mode === 'r' && attr.type === 'file') {
      let mayExec = false;
      try {
        await vfs.access(cred, ino, X_OK);
        mayExec = true;
      } catch {
        mayExec = false;
      }
      if (mayExec) return await vfs.open(ROOT_CRED, ino, O_RDONLY);
    }
    throw e;
  }
}
