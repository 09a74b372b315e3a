/**
 * NFS version 3 (RFC 1813): the 21 procedures over the Vfs.
 *
 * Every handler resolves its file handle(s) through NfsCore.resolve (handle checks, export policy,
 * squashing, read-only), calls the VFS with the squashed credentials, and answers with the
 * procedure's resok or resfail arm; errors are translated once by nfsStatus(). Pre-operation
 * attributes come from the resolution, before any change, and are sent on errors too.
 */
import type { Reader } from '@jsonjoy.com/buffers/lib/Reader.js';
import { Nfsv3Decoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/Nfsv3Decoder.js';
import type { XdrDecoder } from '@jsonjoy.com/json-pack/lib/xdr/XdrDecoder.js';
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages.js';
import {
  Nfsv3DirList,
  Nfsv3DirListPlus,
  Nfsv3Entry,
  Nfsv3EntryPlus,
  Nfsv3Fh,
  Nfsv3PostOpFh,
  type Nfsv3PostOpAttr,
  type Nfsv3WccData,
} from '@jsonjoy.com/json-pack/lib/nfs/v3/structs.js';
import { isFsError } from '../../core/errors.js';
import {
  NAME_MAX,
  O_CREAT,
  O_EXCL,
  O_RDWR,
  R_OK,
  W_OK,
  X_OK,
  type Attr,
  type DirEntry,
  type FileRange,
  type Ino,
} from '../../core/types.js';
import {
  Access3,
  CreateMode,
  Fsf3,
  MAX_IO,
  Nfs3Stat,
  NFS_PROC_NAMES,
  NfsProc,
  StableHow,
  type Nfs3Status,
} from './constants.js';
import { hasChanges, NO_POST_OP, postOp, sattrToChanges, toFattr, wcc } from './attrs.js';
import { NfsStatusError, nfsStatus } from './errors.js';
import { AuthReject, type Caller, type Export, type NfsCore, type Target } from './core.js';
import { HANDLE_SIZE } from './handle.js';
import type { ReplyWriter } from './codec.js';
import { xdrPad } from './codec.js';

/** A reply: one record, or several buffers forming one record (zero-copy READ). */
export type { Reply } from './connection.js';
import type { Reply } from './connection.js';

/** READ buffers kept for reuse (MAX_IO each): a fresh 1 MiB buffer per READ made V8 collect often. */
const READ_POOL = 16;
/** Smaller READs are copied: a thread-pool round trip for sendfile costs more than the copy. */
const FILE_REPLY_MIN = 32 * 1024;

const NFS_ATTR_BYTES = 84;
const POST_OP_BYTES = 4 + NFS_ATTR_BYTES;
/** READDIR3resok/READDIRPLUS3resok without entries: status, dir attributes, verifier, list end, eof. */
const READDIR_FIXED = 4 + POST_OP_BYTES + 8 + 4 + 4;
const MAX_DIR_ENTRIES = 1024;
const MAX_SYMLINK = 4096;
const MAX_FILE_SIZE = BigInt(Number.MAX_SAFE_INTEGER);
/** Announced by FSINFO: the largest S3 object (the VFS refuses writes past it with EFBIG). */
const MAX_OBJECT_SIZE = 5n * 1024n ** 4n;
const EMPTY = new Uint8Array(0);

function pad4(n: number): number {
  return (n + 3) & ~3;
}

function entrySize(nameBytes: number): number {
  return 4 + 8 + 4 + pad4(nameBytes) + 8;
}

function entryPlusSize(nameBytes: number): number {
  return entrySize(nameBytes) + POST_OP_BYTES + 4 + 4 + HANDLE_SIZE;
}

function verfToBigint(v: Uint8Array): bigint {
  if (v.length < 8) return 0n;
  return new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0, false);
}

function bigintToVerf(v: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, v), false);
  return out;
}

function checkName(name: string, create: boolean): void {
  if (name.length === 0) throw new NfsStatusError(create ? Nfs3Stat.INVAL : Nfs3Stat.NOENT, 'empty name');
  if (Buffer.byteLength(name, 'utf8') > NAME_MAX) throw new NfsStatusError(Nfs3Stat.NAMETOOLONG);
  if (name.includes('/') || name.includes('\0')) throw new NfsStatusError(Nfs3Stat.INVAL, 'bad name');
  if (create && (name === '.' || name === '..')) throw new NfsStatusError(Nfs3Stat.EXIST);
}

function offsetOf(off: bigint): number {
  if (off > MAX_FILE_SIZE) throw new NfsStatusError(Nfs3Stat.FBIG);
  return Number(off);
}

/** Stands for a name that is not valid UTF-8: its NUL makes checkName() answer NFS3ERR_INVAL. */
const INVALID_NAME = '\u0000<invalid utf-8>';
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * json-pack decodes file names leniently (invalid bytes become other characters), which would
 * silently create or find a different name: decode them strictly instead. The method is private
 * in the .d.ts, so the instance gets its own.
 */
function strictNames(dec: Nfsv3Decoder): Nfsv3Decoder {
  const self = dec as unknown as { xdr: XdrDecoder };
  Object.defineProperty(dec, 'readFilename', {
    value: (): string => {
      const bytes = self.xdr.readVarlenOpaque();
      try {
        return strictUtf8.decode(bytes);
      } catch {
        return INVALID_NAME;
      }
    },
  });
  return dec;
}

export class Nfs3Program {
  private readonly decoder = strictNames(new Nfsv3Decoder());
  private readonly core: NfsCore;
  private readonly zeroCopyRead: boolean;
  /**
   * READs of at least FILE_REPLY_MIN bytes that are all in the data cache are answered with a
   * FileReply (the connection sends the cache file's range with sendfile).
   */
  private readonly fileReplies: boolean;
  private readonly readBufs: Buffer[] = [];

  /**
   * @param zeroCopyRead write READ data to the socket as its own buffer instead of copying it into
   *   the reply (measurably faster); off only in tests of the copying path.
   */
  constructor(core: NfsCore, opts: { zeroCopyRead?: boolean; fileReplies?: boolean } = {}) {
    this.core = core;
    this.zeroCopyRead = opts.zeroCopyRead ?? true;
    this.fileReplies = this.zeroCopyRead && (opts.fileReplies ?? false);
  }

  /** Decode the arguments of `proc` (1..21); undefined on bad XDR (→ GARBAGE_ARGS). */
  decodeArgs(proc: number, params: Reader): m.Nfsv3Request | undefined {
    let req: m.Nfsv3Request | undefined;
    try {
      req = this.decoder.decodeMessage(params, proc, true) as m.Nfsv3Request | undefined;
    } catch {
      return undefined;
    }
    // json-pack's Reader does not stop at its end for opaque data (subarray clamps): check.
    if (req === undefined || params.x > params.end) return undefined;
    return req;
  }

  /** Run one call; resolves with the reply to send (never rejects except with AuthReject). */
  async call(caller: Caller, w: ReplyWriter, xid: number, proc: number, req: m.Nfsv3Request): Promise<Reply> {
    const reply = (res: m.Nfsv3Response, hint = 512): Uint8Array => w.nfsReply(xid, proc, res, hint);
    switch (proc) {
      case NfsProc.GETATTR:
        return reply(await this.getattr(caller, req as m.Nfsv3GetattrRequest));
      case NfsProc.SETATTR:
        return reply(await this.setattr(caller, req as m.Nfsv3SetattrRequest));
      case NfsProc.LOOKUP:
        return reply(await this.lookup(caller, req as m.Nfsv3LookupRequest));
      case NfsProc.ACCESS:
        return reply(await this.access(caller, req as m.Nfsv3AccessRequest));
      case NfsProc.READLINK:
        return reply(await this.readlink(caller, req as m.Nfsv3ReadlinkRequest), 4096 + 256);
      case NfsProc.READ:
        return await this.read(caller, w, xid, req as m.Nfsv3ReadRequest);
      case NfsProc.WRITE:
        return reply(await this.write(caller, req as m.Nfsv3WriteRequest));
      case NfsProc.CREATE:
        return reply(await this.create(caller, req as m.Nfsv3CreateRequest));
      case NfsProc.MKDIR:
        return reply(await this.mkdir(caller, req as m.Nfsv3MkdirRequest));
      case NfsProc.SYMLINK:
        return reply(await this.symlink(caller, req as m.Nfsv3SymlinkRequest));
      case NfsProc.MKNOD:
        return reply(await this.mknod(caller, req as m.Nfsv3MknodRequest));
      case NfsProc.REMOVE:
        return reply(await this.remove(caller, req as m.Nfsv3RemoveRequest, false));
      case NfsProc.RMDIR:
        return reply(await this.remove(caller, req as m.Nfsv3RmdirRequest, true));
      case NfsProc.RENAME:
        return reply(await this.rename(caller, req as m.Nfsv3RenameRequest));
      case NfsProc.LINK:
        return reply(await this.link(caller, req as m.Nfsv3LinkRequest));
      case NfsProc.READDIR: {
        const r = req as m.Nfsv3ReaddirRequest;
        return reply(await this.readdir(caller, r), Math.min(r.count, MAX_IO) + 1024);
      }
      case NfsProc.READDIRPLUS: {
        const r = req as m.Nfsv3ReaddirplusRequest;
        return reply(await this.readdirplus(caller, r), Math.min(r.maxcount, MAX_IO) + 1024);
      }
      case NfsProc.FSSTAT:
        return reply(await this.fsstat(caller, req as m.Nfsv3FsstatRequest));
      case NfsProc.FSINFO:
        return reply(await this.fsinfo(caller, req as m.Nfsv3FsinfoRequest));
      case NfsProc.PATHCONF:
        return reply(await this.pathconf(caller, req as m.Nfsv3PathconfRequest));
      case NfsProc.COMMIT:
        return reply(await this.commit(caller, req as m.Nfsv3CommitRequest));
      default:
        throw new Error(`unexpected NFS procedure ${proc}`);
    }
  }

  private status(e: unknown, proc: number): Nfs3Status {
    if (e instanceof AuthReject) throw e;
    return nfsStatus(e, NFS_PROC_NAMES[proc] ?? String(proc), this.core.log);
  }

  private post(t: Target | undefined, attr: Attr | undefined): Nfsv3PostOpAttr {
    return t === undefined ? NO_POST_OP : postOp(attr, t.exp.fsid);
  }

  private fh(exp: Export, attr: Attr): Nfsv3Fh {
    return new Nfsv3Fh(this.core.handleOf(exp, attr));
  }

  private async after(t: Target, ino: Ino = t.ino): Promise<Attr | undefined> {
    return this.core.attrsOrUndefined(t.exp, t.cred, ino);
  }

  private wccOf(t: Target | undefined, after: Attr | undefined): Nfsv3WccData {
    return t === undefined ? wcc(undefined, undefined, 0n) : wcc(t.attr, after, t.exp.fsid);
  }

  // ------------------------------------------------------------------------------------ GETATTR
  private async getattr(caller: Caller, req: m.Nfsv3GetattrRequest): Promise<m.Nfsv3GetattrResponse> {
    try {
      const t = await this.core.resolve(req.object.data, caller);
      return new m.Nfsv3GetattrResponse(Nfs3Stat.OK, new m.Nfsv3GetattrResOk(toFattr(t.attr, t.exp.fsid)));
    } catch (e) {
      return new m.Nfsv3GetattrResponse(this.status(e, NfsProc.GETATTR));
    }
  }

  // ------------------------------------------------------------------------------------ SETATTR
  private async setattr(caller: Caller, req: m.Nfsv3SetattrRequest): Promise<m.Nfsv3SetattrResponse> {
    let t: Target | undefined;
    try {
      t = await this.core.resolve(req.object.data, caller, true);
      const changes = sattrToChanges(req.newAttributes);
      if (req.guard.check && req.guard.objCtime) {
        const g = req.guard.objCtime;
        const cur = toFattr(t.attr, t.exp.fsid).ctime;
        if (cur.seconds !== g.seconds || cur.nseconds !== g.nseconds)
          throw new NfsStatusError(Nfs3Stat.NOT_SYNC);
      }
      let after: Attr = t.attr;
      if (hasChanges(changes)) {
        try {
          after = await t.exp.vfs.setattr(t.cred, t.ino, changes);
        } catch (e) {
          // A truncation by the owner through an open handle (knfsd's owner override, see openForIo).
          if (!(isFsError(e) && e.code === 'EACCES' && changes.size !== undefined && t.attr.type === 'file'))
            throw e;
          if (t.attr.uid !== t.cred.uid) throw e;
          const lease = await this.core.openFiles.acquire(t.exp.vfs, t.exp.exportId, t.ino, 'w', t.cred);
          try {
            after = await t.exp.vfs.setattr(t.cred, t.ino, changes, lease.fh);
          } finally {
            lease.release();
          }
        }
      }
      return new m.Nfsv3SetattrResponse(Nfs3Stat.OK, new m.Nfsv3SetattrResOk(this.wccOf(t, after)));
    } catch (e) {
      const st = this.status(e, NfsProc.SETATTR);
      const after = t === undefined ? undefined : await this.after(t);
      return new m.Nfsv3SetattrResponse(st, undefined, new m.Nfsv3SetattrResFail(this.wccOf(t, after)));
    }
  }

  // ------------------------------------------------------------------------------------- LOOKUP
  private async lookup(caller: Caller, req: m.Nfsv3LookupRequest): Promise<m.Nfsv3LookupResponse> {
    let t: Target | undefined;
    try {
      t = await this.core.resolve(req.what.dir.data, caller);
      const name = req.what.name;
      if (t.attr.type !== 'dir') throw new NfsStatusError(Nfs3Stat.NOTDIR);
      let child: Attr;
      if (name === '.') {
        child = t.attr;
      } else if (name === '..') {
        child = await this.parent(t);
      } else {
        checkName(name, false);
        child = await t.exp.vfs.lookup(t.cred, t.ino, name);
        this.core.noteParent(t.exp, child, t.ino);
      }
      return new m.Nfsv3LookupResponse(
        Nfs3Stat.OK,
        new m.Nfsv3LookupResOk(this.fh(t.exp, child), postOp(child, t.exp.fsid), postOp(t.attr, t.exp.fsid)),
      );
    } catch (e) {
      const st = this.status(e, NfsProc.LOOKUP);
      return new m.Nfsv3LookupResponse(st, undefined, new m.Nfsv3LookupResFail(this.post(t, t?.attr)));
    }
  }

  private async parent(t: Target): Promise<Attr> {
    const vfs = t.exp.vfs;
    if (t.ino === 1) return t.attr; // the share root is its own parent (the export does not go above it)
    const p = this.core.parentOf(t.exp, t.ino);
    if (p !== undefined) return vfs.getattr(t.cred, p);
    return vfs.lookup(t.cred, t.ino, '..');
  }

  // ------------------------------------------------------------------------------------- ACCESS
  private async access(caller: Caller, req: m.Nfsv3AccessRequest): Promise<m.Nfsv3AccessResponse> {
    let t: Target | undefined;
    try {
      t = await this.core.resolve(req.object.data, caller);
      const want = req.access;
      const type = t.attr.type;
      let applicable: number;
      if (type === 'dir') {
        applicable = Access3.READ | Access3.LOOKUP | Access3.MODIFY | Access3.EXTEND | Access3.DELETE;
      } else if (type === 'file') {
        applicable = Access3.READ | Access3.MODIFY | Access3.EXTEND | Access3.EXECUTE;
      } else {
        applicable = Access3.READ;
      }
      if (t.readOnly) applicable &= ~(Access3.MODIFY | Access3.EXTEND | Access3.DELETE);
      const asked = want & applicable;
      const cache = new Map<number, boolean>();
      const may = async (mask: number): Promise<boolean> => {
        const hit = cache.get(mask);
        if (hit !== undefined) return hit;
        let ok: boolean;
        try {
          await t!.exp.vfs.access(t!.cred, t!.ino, mask);
          ok = true;
        } catch (e) {
          if (!isFsError(e) || (e.code !== 'EACCES' && e.code !== 'EPERM' && e.code !== 'EROFS')) throw e;
          ok = false;
        }
        cache.set(mask, ok);
        return ok;
      };
      let granted = 0;
      if (asked & Access3.READ && (await may(R_OK))) granted |= Access3.READ;
      if (asked & Access3.LOOKUP && (await may(X_OK))) granted |= Access3.LOOKUP;
      if (asked & Access3.EXECUTE && (await may(X_OK))) granted |= Access3.EXECUTE;
      for (const bit of [Access3.MODIFY, Access3.EXTEND, Access3.DELETE]) {
        if (asked & bit && (await may(W_OK))) granted |= bit;
      }
      return new m.Nfsv3AccessResponse(
        Nfs3Stat.OK,
        new m.Nfsv3AccessResOk(postOp(t.attr, t.exp.fsid), granted),
      );
    } catch (e) {
      const st = this.status(e, NfsProc.ACCESS);
      return new m.Nfsv3AccessResponse(st, undefined, new m.Nfsv3AccessResFail(this.post(t, t?.attr)));
    }
  }

  // ----------------------------------------------------------------------------------- READLINK
  private async readlink(caller: Caller, req: m.Nfsv3ReadlinkRequest): Promise<m.Nfsv3ReadlinkResponse> {
    let t: Target | undefined;
    try {
      t = await this.core.resolve(req.symlink.data, caller);
      if (t.attr.type !== 'symlink') throw new NfsStatusError(Nfs3Stat.INVAL);
      const target = await t.exp.vfs.readlink(t.cred, t.ino);
      return new m.Nfsv3ReadlinkResponse(
        Nfs3Stat.OK,
        new m.Nfsv3ReadlinkResOk(postOp(t.attr, t.exp.fsid), target),
      );
    } catch (e) {
      const st = this.status(e, NfsProc.READLINK);
      return new m.Nfsv3ReadlinkResponse(st, undefined, new m.Nfsv3ReadlinkResFail(this.post(t, t?.attr)));
    }
  }

  // --------------------------------------------------------------------------------------- READ
  private async read(caller: Caller, w: ReplyWriter, xid: number, req: m.Nfsv3ReadRequest): Promise<Reply> {
    let t: Target | undefined;
    try {
      t = await this.core.resolve(req.file.data, caller);
      if (t.attr.type === 'dir') throw new NfsStatusError(Nfs3Stat.ISDIR);
      if (t.attr.type !== 'file') throw new NfsStatusError(Nfs3Stat.INVAL);
      const count = Math.min(req.count >>> 0, MAX_IO);
      const size = t.attr.size;
      let data: Uint8Array = new Uint8Array(0);
      let range: FileRange | undefined;
      let eof: boolean;
      // Zero-copy replies read into a pooled buffer that goes back once the socket has it.
      let buf: Buffer | undefined;
      const giveBack = (): void => {
        if (buf !== undefined && this.readBufs.length < READ_POOL) this.readBufs.push(buf);
        buf = undefined;
      };
      try {
        if (req.offset >= BigInt(size) || count === 0) {
          eof = req.offset >= BigInt(size);
        } else {
          const offset = Number(req.offset);
          const lease = await this.core.openFiles.acquire(t.exp.vfs, t.exp.exportId, t.ino, 'r', t.cred);
          try {
            if (this.zeroCopyRead) buf = this.readBufs.pop() ?? Buffer.allocUnsafeSlow(MAX_IO);
            const want = Math.min(count, size - offset);
            const vfs = t.exp.vfs;
            if (this.fileReplies && want >= FILE_REPLY_MIN && vfs.readLocal) {
              const got = await vfs.readLocal(lease.fh, offset, want, buf);
              if (got instanceof Uint8Array) data = got;
              else range = got;
            } else {
              data = await vfs.read(lease.fh, offset, want, buf);
            }
          } finally {
            lease.release();
          }
          if (data.length > count) data = data.subarray(0, count);
          eof = offset + (range?.length ?? data.length) >= size;
        }
        if (range !== undefined) {
          // The range is the connection's to release from here on.
          const res = new m.Nfsv3ReadResponse(
            Nfs3Stat.OK,
            new m.Nfsv3ReadResOk(postOp(t.attr, t.exp.fsid), range.length, eof, EMPTY),
          );
          try {
            return {
              head: w.readReplyHead(xid, NfsProc.READ, res, range.length),
              range,
              pad: xdrPad(range.length).length,
            };
          } catch (e) {
            range.release();
            throw e;
          }
        }
        const res = new m.Nfsv3ReadResponse(
          Nfs3Stat.OK,
          new m.Nfsv3ReadResOk(postOp(t.attr, t.exp.fsid), data.length, eof, EMPTY),
        );
        if (!this.zeroCopyRead) {
          const full = new m.Nfsv3ReadResponse(
            Nfs3Stat.OK,
            new m.Nfsv3ReadResOk(postOp(t.attr, t.exp.fsid), data.length, eof, data),
          );
          return w.nfsReply(xid, NfsProc.READ, full, data.length + 256);
        }
        const head = w.readReplyHead(xid, NfsProc.READ, res, data.length);
        if (data.length === 0) return head;
        const pad = xdrPad(data.length);
        const parts = pad.length > 0 ? [head, data, pad] : [head, data];
        if (buf === undefined) return parts;
        const pooled = buf;
        buf = undefined;
        return {
          parts,
          release: () => {
            if (this.readBufs.length < READ_POOL) this.readBufs.push(pooled);
          },
        };
      } finally {
        giveBack();
      }
    } catch (e) {
      const st = this.status(e, NfsProc.READ);
      const res = new m.Nfsv3ReadResponse(st, undefined, new m.Nfsv3ReadResFail(this.post(t, t?.attr)));
      return w.nfsReply(xid, NfsProc.READ, res);
    }
  }

  // -------------------------------------------------------------------------------------- WRITE
  private async write(caller: Caller, req: m.Nfsv3WriteRequest): Promise<m.Nfsv3WriteResponse> {
    let t: Target | undefined;
    try {
      t = await this.core.resolve(req.file.data, caller, true);
      if (t.attr.type === 'dir') throw new NfsStatusError(Nfs3Stat.ISDIR);
      if (t.attr.type !== 'file') throw new NfsStatusError(Nfs3Stat.INVAL);
      const count = req.count >>> 0;
      if (req.data.length < count) throw new NfsStatusError(Nfs3Stat.INVAL, 'short write data');
      const offset = offsetOf(req.offset);
      if (offset + count > Number.MAX_SAFE_INTEGER) throw new NfsStatusError(Nfs3Stat.FBIG);
      if (
        req.stable !== StableHow.UNSTABLE &&
        req.stable !== StableHow.DATA_SYNC &&
        req.stable !== StableHow.FILE_SYNC
      ) {
        throw new NfsStatusError(Nfs3Stat.INVAL, 'bad stable_how');
      }
      // A view of the record (which is never reused, see record.ts): vfs.write does not keep it.
      const data = Buffer.from(req.data.buffer, req.data.byteOffset, count);
      const lease = await this.core.openFiles.acquire(t.exp.vfs, t.exp.exportId, t.ino, 'w', t.cred);
      let n: number;
      try {
        n = count === 0 ? 0 : await t.exp.vfs.write(lease.fh, offset, data);
        lease.markDirty();
        if (req.stable !== StableHow.UNSTABLE)
          await t.exp.vfs.fsync(lease.fh, req.stable === StableHow.DATA_SYNC);
      } finally {
        lease.release();
      }
      const committed = req.stable === StableHow.UNSTABLE ? StableHow.UNSTABLE : StableHow.FILE_SYNC;
      const after = await this.after(t);
      return new m.Nfsv3WriteResponse(
        Nfs3Stat.OK,
        new m.Nfsv3WriteResOk(this.wccOf(t, after), n, committed, this.core.writeVerf),
      );
    } catch (e) {
      const st = this.status(e, NfsProc.WRITE);
      const after = t === undefined ? undefined : await this.after(t);
      return new m.Nfsv3WriteResponse(st, undefined, new m.Nfsv3WriteResFail(this.wccOf(t, after)));
    }
  }

  // ------------------------------------------------------------------------------------- CREATE
  private async create(caller: Caller, req: m.Nfsv3CreateRequest): Promise<m.Nfsv3CreateResponse> {
    let t: Target | undefined;
    try {
      t = await this.core.resolve(req.where.dir.data, caller, true);
      if (t.attr.type !== 'dir') throw new NfsStatusError(Nfs3Stat.NOTDIR);
      const name = req.where.name;
      checkName(name, true);
      const how = req.how;
      const vfs = t.exp.vfs;
      let changes = how.objAttributes ? sattrToChanges(how.objAttributes) : {};
      let verf: { mtime: bigint; atime: bigint } | undefined;
      if (how.mode === CreateMode.EXCLUSIVE) {
        const v = how.verf;
        if (v === undefined || v.length !== 8) throw new NfsStatusError(Nfs3Stat.INVAL);
        const dv = new DataView(v.buffer, v.byteOffset, 8);
        // As Linux knfsd: the verifier is kept in mtime/atime seconds until the client's SETATTR.
        verf = {
          mtime: BigInt(dv.getUint32(0, false) & 0x7fffffff) * 1_000_000_000n,
          atime: BigInt(dv.getUint32(4, false) & 0x7fffffff) * 1_000_000_000n,
        };
        changes = {};
      } else if (how.mode !== CreateMode.UNCHECKED && how.mode !== CreateMode.GUARDED) {
        throw new NfsStatusError(Nfs3Stat.INVAL, 'bad createmode');
      }
      const existing = await this.lookupOrUndefined(t, name);
      let obj: Attr;
      if (existing !== undefined) {
        obj = await this.createExisting(t, existing, how.mode, changes, verf);
      } else {
        const mode = changes.mode ?? 0o644;
        let created: { attr: Attr; fh: number } | undefined;
        try {
          created = await vfs.create(t.cred, t.ino, name, mode, O_RDWR | O_CREAT | O_EXCL);
        } catch (e) {
          if (!(isFsError(e) && e.code === 'EEXIST')) throw e;
          // Lost a race with another creator: judge the file that won.
          const now = await vfs.lookup(t.cred, t.ino, name);
          obj = await this.createExisting(t, now, how.mode, changes, verf);
        }
        if (created !== undefined) {
          obj = created.attr;
          const rest: typeof changes = { ...changes };
          delete rest.mode;
          if (verf !== undefined) {
            rest.atimeNs = verf.atime;
            rest.mtimeNs = verf.mtime;
          }
          if (rest.size === 0) delete rest.size; // a new file is empty
          try {
            if (hasChanges(rest)) obj = await vfs.setattr(t.cred, obj.ino, rest, created.fh);
          } finally {
            this.core.openFiles.adopt(vfs, t.exp.exportId, obj.ino, 'w', t.cred, created.fh);
          }
        }
      }
      const dirAfter = await this.after(t);
      return new m.Nfsv3CreateResponse(
        Nfs3Stat.OK,
        new m.Nfsv3CreateResOk(
          new Nfsv3PostOpFh(true, this.fh(t.exp, obj!)),
          postOp(obj!, t.exp.fsid),
          this.wccOf(t, dirAfter),
        ),
      );
    } catch (e) {
      const st = this.status(e, NfsProc.CREATE);
      const after = t === undefined ? undefined : await this.after(t);
      return new m.Nfsv3CreateResponse(st, undefined, new m.Nfsv3CreateResFail(this.wccOf(t, after)));
    }
  }

  private async lookupOrUndefined(t: Target, name: string): Promise<Attr | undefined> {
    try {
      return await t.exp.vfs.lookup(t.cred, t.ino, name);
    } catch (e) {
      if (isFsError(e) && e.code === 'ENOENT') return undefined;
      throw e;
    }
  }

  private async createExisting(
    t: Target,
    existing: Attr,
    mode: number,
    changes: ReturnType<typeof sattrToChanges>,
    verf: { mtime: bigint; atime: bigint } | undefined,
  ): Promise<Attr> {
    if (mode === CreateMode.GUARDED) throw new NfsStatusError(Nfs3Stat.EXIST);
    if (existing.type !== 'file') throw new NfsStatusError(Nfs3Stat.EXIST);
    if (mode === CreateMode.EXCLUSIVE) {
      // A retransmission of our own EXCLUSIVE create succeeds; anything else is EXIST.
      const sec = (ns: bigint): bigint => ns / 1_000_000_000n;
      if (
        verf !== undefined &&
        sec(existing.mtimeNs) === sec(verf.mtime) &&
        sec(existing.atimeNs) === sec(verf.atime)
      ) {
        return existing;
      }
      throw new NfsStatusError(Nfs3Stat.EXIST);
    }
    // UNCHECKED on an existing file: apply the attributes (a size of 0 truncates), as knfsd does.
    const rest = { ...changes };
    delete rest.mode;
    if (!hasChanges(rest)) return existing;
    return t.exp.vfs.setattr(t.cred, existing.ino, rest);
  }

  // -------------------------------------------------------------------------------------- MKDIR
  private async mkdir(caller: Caller, req: m.Nfsv3MkdirRequest): Promise<m.Nfsv3MkdirResponse> {
    let t: Target | undefined;
    try {
      t = await this.core.resolve(req.where.dir.data, caller, true);
      if (t.attr.type !== 'dir') throw new NfsStatusError(Nfs3Stat.NOTDIR);
      checkName(req.where.name, true);
      const changes = sattrToChanges(req.attributes);
      let obj = await t.exp.vfs.mkdir(t.cred, t.ino, req.where.name, changes.mode ?? 0o755);
      this.core.noteParent(t.exp, obj, t.ino);
      const rest = { ...changes };
      delete rest.mode;
      delete rest.size;
      if (hasChanges(rest)) obj = await t.exp.vfs.setattr(t.cred, obj.ino, rest);
      const dirAfter = await this.after(t);
      return new m.Nfsv3MkdirResponse(
        Nfs3Stat.OK,
        new m.Nfsv3MkdirResOk(
          new Nfsv3PostOpFh(true, this.fh(t.exp, obj)),
          postOp(obj, t.exp.fsid),
          this.wccOf(t, dirAfter),
        ),
      );
    } catch (e) {
      const st = this.status(e, NfsProc.MKDIR);
      const after = t === undefined ? undefined : await this.after(t);
      return new m.Nfsv3MkdirResponse(st, undefined, new m.Nfsv3MkdirResFail(this.wccOf(t, after)));
    }
  }

  // ------------------------------------------------------------------------------------ SYMLINK
  private async symlink(caller: Caller, req: m.Nfsv3SymlinkRequest): Promise<m.Nfsv3SymlinkResponse> {
    let t: Target | undefined;
    try {
      t = await this.core.resolve(req.where.dir.data, caller, true);
      if (t.attr.type !== 'dir') throw new NfsStatusError(Nfs3Stat.NOTDIR);
      checkName(req.where.name, true);
      const target = req.symlinkData;
      if (target.length === 0 || target.includes('\0')) throw new NfsStatusError(Nfs3Stat.INVAL);
      if (Buffer.byteLength(target, 'utf8') > MAX_SYMLINK) throw new NfsStatusError(Nfs3Stat.NAMETOOLONG);
      const obj = await t.exp.vfs.symlink(t.cred, t.ino, req.where.name, target);
      const dirAfter = await this.after(t);
      return new m.Nfsv3SymlinkResponse(
        Nfs3Stat.OK,
        new m.Nfsv3SymlinkResOk(
          new Nfsv3PostOpFh(true, this.fh(t.exp, obj)),
          postOp(obj, t.exp.fsid),
          this.wccOf(t, dirAfter),
        ),
      );
    } catch (e) {
      const st = this.status(e, NfsProc.SYMLINK);
      const after = t === undefined ? undefined : await this.after(t);
      return new m.Nfsv3SymlinkResponse(st, undefined, new m.Nfsv3SymlinkResFail(this.wccOf(t, after)));
    }
  }

  // -------------------------------------------------------------------------------------- MKNOD
  private async mknod(caller: Caller, req: m.Nfsv3MknodRequest): Promise<m.Nfsv3MknodResponse> {
    let t: Target | undefined;
    try {
      t = await this.core.resolve(req.where.dir.data, caller, true);
      if (t.attr.type !== 'dir') throw new NfsStatusError(Nfs3Stat.NOTDIR);
      checkName(req.where.name, true);
      if (req.what.type < 3 || req.what.type > 7 || req.what.type === 5)
        throw new NfsStatusError(Nfs3Stat.BADTYPE);
      if ((await this.lookupOrUndefined(t, req.where.name)) !== undefined)
        throw new NfsStatusError(Nfs3Stat.EXIST);
      // Devices, sockets and FIFOs cannot be stored as objects.
      throw new NfsStatusError(Nfs3Stat.NOTSUPP);
    } catch (e) {
      const st = this.status(e, NfsProc.MKNOD);
      return new m.Nfsv3MknodResponse(st, undefined, new m.Nfsv3MknodResFail(this.wccOf(t, t?.attr)));
    }
  }

  // ------------------------------------------------------------------------------ REMOVE, RMDIR
  private async remove(
    caller: Caller,
    req: m.Nfsv3RemoveRequest | m.Nfsv3RmdirRequest,
    dir: boolean,
  ): Promise<m.Nfsv3RemoveResponse | m.Nfsv3RmdirResponse> {
    let t: Target | undefined;
    const proc = dir ? NfsProc.RMDIR : NfsProc.REMOVE;
    try {
      t = await this.core.resolve(req.object.dir.data, caller, true);
      if (t.attr.type !== 'dir') throw new NfsStatusError(Nfs3Stat.NOTDIR);
      const name = req.object.name;
      if (name === '.' || name === '..')
        throw new NfsStatusError(dir && name === '..' ? Nfs3Stat.NOTEMPTY : Nfs3Stat.INVAL);
      checkName(name, false);
      if (dir) await t.exp.vfs.rmdir(t.cred, t.ino, name);
      else await t.exp.vfs.unlink(t.cred, t.ino, name);
      const w = this.wccOf(t, await this.after(t));
      return dir
        ? new m.Nfsv3RmdirResponse(Nfs3Stat.OK, new m.Nfsv3RmdirResOk(w))
        : new m.Nfsv3RemoveResponse(Nfs3Stat.OK, new m.Nfsv3RemoveResOk(w));
    } catch (e) {
      const st = this.status(e, proc);
      const w = this.wccOf(t, t === undefined ? undefined : await this.after(t));
      return dir
        ? new m.Nfsv3RmdirResponse(st, undefined, new m.Nfsv3RmdirResFail(w))
        : new m.Nfsv3RemoveResponse(st, undefined, new m.Nfsv3RemoveResFail(w));
    }
  }

  // ------------------------------------------------------------------------------------- RENAME
  private async rename(caller: Caller, req: m.Nfsv3RenameRequest): Promise<m.Nfsv3RenameResponse> {
    let from: Target | undefined;
    let to: Target | undefined;
    try {
      from = await this.core.resolve(req.from.dir.data, caller, true);
      to = await this.core.resolve(req.to.dir.data, caller, true);
      if (from.exp !== to.exp) throw new NfsStatusError(Nfs3Stat.XDEV);
      if (from.attr.type !== 'dir' || to.attr.type !== 'dir') throw new NfsStatusError(Nfs3Stat.NOTDIR);
      for (const n of [req.from.name, req.to.name]) {
        if (n === '.' || n === '..') throw new NfsStatusError(Nfs3Stat.INVAL);
        checkName(n, false);
      }
      await from.exp.vfs.rename(from.cred, from.ino, req.from.name, to.ino, req.to.name);
      if (from.ino !== to.ino) {
        // Keep the parent map right for LOOKUP ".." of a moved directory.
        const moved = await from.exp.vfs.lookup(to.cred, to.ino, req.to.name).catch(() => undefined);
        if (moved !== undefined) this.core.noteParent(to.exp, moved, to.ino);
      }
      const fromAfter = await this.after(from);
      const toAfter = from.ino === to.ino ? fromAfter : await this.after(to);
      return new m.Nfsv3RenameResponse(
        Nfs3Stat.OK,
        new m.Nfsv3RenameResOk(this.wccOf(from, fromAfter), this.wccOf(to, toAfter)),
      );
    } catch (e) {
      const st = this.status(e, NfsProc.RENAME);
      const fromAfter = from === undefined ? undefined : await this.after(from);
      const toAfter = to === undefined ? undefined : await this.after(to);
      return new m.Nfsv3RenameResponse(
        st,
        undefined,
        new m.Nfsv3RenameResFail(this.wccOf(from, fromAfter), this.wccOf(to, toAfter)),
      );
    }
  }

  // --------------------------------------------------------------------------------------- LINK
  private async link(caller: Caller, req: m.Nfsv3LinkRequest): Promise<m.Nfsv3LinkResponse> {
    let file: Target | undefined;
    let dir: Target | undefined;
    try {
      file = await this.core.resolve(req.file.data, caller);
      dir = await this.core.resolve(req.link.dir.data, caller, true);
      if (file.exp !== dir.exp) throw new NfsStatusError(Nfs3Stat.XDEV);
      if (dir.attr.type !== 'dir') throw new NfsStatusError(Nfs3Stat.NOTDIR);
      checkName(req.link.name, true);
      // Hard links are not supported: the VFS answers EPERM (→ NFS3ERR_PERM), FSINFO does not
      // announce FSF3_LINK and PATHCONF reports linkmax 1.
      await dir.exp.vfs.link(dir.cred, file.ino, dir.ino, req.link.name);
      const fileAfter = await this.after(file);
      return new m.Nfsv3LinkResponse(
        Nfs3Stat.OK,
        new m.Nfsv3LinkResOk(this.post(file, fileAfter), this.wccOf(dir, await this.after(dir))),
      );
    } catch (e) {
      const st = this.status(e, NfsProc.LINK);
      return new m.Nfsv3LinkResponse(
        st,
        undefined,
        new m.Nfsv3LinkResFail(this.post(file, file?.attr), this.wccOf(dir, dir?.attr)),
      );
    }
  }

  // ------------------------------------------------------------------------- READDIR(PLUS)
  private async listDir(
    t: Target,
    cookie: bigint,
    reqVerf: Uint8Array,
    limit: number,
  ): Promise<{ entries: DirEntry[]; eof: boolean; verifier: bigint }> {
    if (t.attr.type !== 'dir') throw new NfsStatusError(Nfs3Stat.NOTDIR);
    let res;
    try {
      res = await t.exp.vfs.readdir(t.cred, t.ino, cookie, limit);
    } catch (e) {
      if (cookie !== 0n && isFsError(e) && e.code === 'EINVAL') throw new NfsStatusError(Nfs3Stat.BAD_COOKIE);
      throw e;
    }
    const want = verfToBigint(reqVerf);
    if (cookie !== 0n && want !== 0n && want !== BigInt.asUintN(64, res.verifier)) {
      throw new NfsStatusError(Nfs3Stat.BAD_COOKIE);
    }
    return res;
  }

  private async readdir(caller: Caller, req: m.Nfsv3ReaddirRequest): Promise<m.Nfsv3ReaddirResponse> {
    let t: Target | undefined;
    try {
      t = await this.core.resolve(req.dir.data, caller);
      const count = Math.min(req.count >>> 0, MAX_IO);
      const budget = count - READDIR_FIXED - 32; // the RPC reply header counts on the wire
      if (budget < entrySize(1)) throw new NfsStatusError(Nfs3Stat.TOOSMALL);
      const limit = Math.max(1, Math.min(MAX_DIR_ENTRIES, Math.floor(budget / entrySize(1))));
      const res = await this.listDir(t, req.cookie, req.cookieverf, limit);
      let used = 0;
      const fit: DirEntry[] = [];
      for (const e of res.entries) {
        const sz = entrySize(Buffer.byteLength(e.name, 'utf8'));
        if (used + sz > budget) break;
        used += sz;
        fit.push(e);
      }
      if (fit.length === 0 && res.entries.length > 0) throw new NfsStatusError(Nfs3Stat.TOOSMALL);
      const eof = res.eof && fit.length === res.entries.length;
      let list: Nfsv3Entry | undefined;
      for (let i = fit.length - 1; i >= 0; i--) {
        const e = fit[i]!;
        list = new Nfsv3Entry(BigInt(e.attr.ino), e.name, e.cookie, list);
      }
      return new m.Nfsv3ReaddirResponse(
        Nfs3Stat.OK,
        new m.Nfsv3ReaddirResOk(
          postOp(t.attr, t.exp.fsid),
          bigintToVerf(res.verifier),
          new Nfsv3DirList(eof, list),
        ),
      );
    } catch (e) {
      const st = this.status(e, NfsProc.READDIR);
      return new m.Nfsv3ReaddirResponse(st, undefined, new m.Nfsv3ReaddirResFail(this.post(t, t?.attr)));
    }
  }

  private async readdirplus(
    caller: Caller,
    req: m.Nfsv3ReaddirplusRequest,
  ): Promise<m.Nfsv3ReaddirplusResponse> {
    let t: Target | undefined;
    try {
      t = await this.core.resolve(req.dir.data, caller);
      const maxcount = Math.min(req.maxcount >>> 0, MAX_IO);
      const dircount = req.dircount >>> 0;
      const budget = maxcount - READDIR_FIXED - 32;
      if (budget < entryPlusSize(1)) throw new NfsStatusError(Nfs3Stat.TOOSMALL);
      const limit = Math.max(1, Math.min(MAX_DIR_ENTRIES, Math.floor(budget / entryPlusSize(1))));
      const res = await this.listDir(t, req.cookie, req.cookieverf, limit);
      let used = 0;
      let dirUsed = 0;
      const fit: DirEntry[] = [];
      for (const e of res.entries) {
        const nb = Buffer.byteLength(e.name, 'utf8');
        const sz = entryPlusSize(nb);
        const dsz = entrySize(nb);
        if (used + sz > budget) break;
        // dircount bounds the directory part (fileid, name, cookie); at least one entry goes out.
        if (fit.length > 0 && dircount > 0 && dirUsed + dsz > dircount) break;
        used += sz;
        dirUsed += dsz;
        fit.push(e);
      }
      if (fit.length === 0 && res.entries.length > 0) throw new NfsStatusError(Nfs3Stat.TOOSMALL);
      const eof = res.eof && fit.length === res.entries.length;
      let list: Nfsv3EntryPlus | undefined;
      for (let i = fit.length - 1; i >= 0; i--) {
        const e = fit[i]!;
        this.core.noteParent(t.exp, e.attr, t.ino);
        list = new Nfsv3EntryPlus(
          BigInt(e.attr.ino),
          e.name,
          e.cookie,
          postOp(e.attr, t.exp.fsid),
          new Nfsv3PostOpFh(true, this.fh(t.exp, e.attr)),
          list,
        );
      }
      return new m.Nfsv3ReaddirplusResponse(
        Nfs3Stat.OK,
        new m.Nfsv3ReaddirplusResOk(
          postOp(t.attr, t.exp.fsid),
          bigintToVerf(res.verifier),
          new Nfsv3DirListPlus(eof, list),
        ),
      );
    } catch (e) {
      const st = this.status(e, NfsProc.READDIRPLUS);
      return new m.Nfsv3ReaddirplusResponse(
        st,
        undefined,
        new m.Nfsv3ReaddirplusResFail(this.post(t, t?.attr)),
      );
    }
  }

  // ------------------------------------------------------------------- FSSTAT, FSINFO, PATHCONF
  private async fsstat(caller: Caller, req: m.Nfsv3FsstatRequest): Promise<m.Nfsv3FsstatResponse> {
    let t: Target | undefined;
    try {
      t = await this.core.resolve(req.fsroot.data, caller);
      const s = await t.exp.vfs.statfs(t.cred);
      const unit = BigInt(s.frsize > 0 ? s.frsize : s.bsize);
      const big = (n: number): bigint => BigInt(Math.max(0, Math.floor(n)));
      return new m.Nfsv3FsstatResponse(
        Nfs3Stat.OK,
        new m.Nfsv3FsstatResOk(
          postOp(t.attr, t.exp.fsid),
          big(s.blocks) * unit,
          big(s.bfree) * unit,
          big(s.bavail) * unit,
          big(s.files),
          big(s.ffree),
          big(s.ffree),
          0,
        ),
      );
    } catch (e) {
      const st = this.status(e, NfsProc.FSSTAT);
      return new m.Nfsv3FsstatResponse(st, undefined, new m.Nfsv3FsstatResFail(this.post(t, t?.attr)));
    }
  }

  private async fsinfo(caller: Caller, req: m.Nfsv3FsinfoRequest): Promise<m.Nfsv3FsinfoResponse> {
    let t: Target | undefined;
    try {
      t = await this.core.resolve(req.fsroot.data, caller);
      return new m.Nfsv3FsinfoResponse(
        Nfs3Stat.OK,
        new m.Nfsv3FsinfoResOk(
          postOp(t.attr, t.exp.fsid),
          MAX_IO, // rtmax
          MAX_IO, // rtpref
          4096, // rtmult
          MAX_IO, // wtmax
          MAX_IO, // wtpref
          4096, // wtmult
          64 * 1024, // dtpref
          MAX_OBJECT_SIZE,
          { seconds: 0, nseconds: 1 },
          Fsf3.SYMLINK | Fsf3.HOMOGENEOUS | Fsf3.CANSETTIME,
        ),
      );
    } catch (e) {
      const st = this.status(e, NfsProc.FSINFO);
      return new m.Nfsv3FsinfoResponse(st, undefined, new m.Nfsv3FsinfoResFail(this.post(t, t?.attr)));
    }
  }

  private async pathconf(caller: Caller, req: m.Nfsv3PathconfRequest): Promise<m.Nfsv3PathconfResponse> {
    let t: Target | undefined;
    try {
      t = await this.core.resolve(req.object.data, caller);
      return new m.Nfsv3PathconfResponse(
        Nfs3Stat.OK,
        new m.Nfsv3PathconfResOk(postOp(t.attr, t.exp.fsid), 1, NAME_MAX, true, true, false, true),
      );
    } catch (e) {
      const st = this.status(e, NfsProc.PATHCONF);
      return new m.Nfsv3PathconfResponse(st, undefined, new m.Nfsv3PathconfResFail(this.post(t, t?.attr)));
    }
  }

  // ------------------------------------------------------------------------------------- COMMIT
  private async commit(caller: Caller, req: m.Nfsv3CommitRequest): Promise<m.Nfsv3CommitResponse> {
    let t: Target | undefined;
    try {
      t = await this.core.resolve(req.file.data, caller);
      if (t.attr.type === 'dir') throw new NfsStatusError(Nfs3Stat.ISDIR);
      if (t.attr.type !== 'file') throw new NfsStatusError(Nfs3Stat.INVAL);
      if (!t.readOnly) {
        // Through the handles the WRITEs used while they are still open, else the inode itself.
        const leases = await this.core.openFiles.leaseDirtyWriters(t.exp.exportId, t.ino);
        try {
          for (const h of leases) await h.vfs.fsync(h.fh, false);
        } finally {
          for (const h of leases) h.release();
        }
        if (leases.length === 0) await t.exp.vfs.commit(t.cred, t.ino);
        await this.core.openFiles.closeCommitted(t.exp.exportId, t.ino);
      }
      const after = await this.after(t);
      return new m.Nfsv3CommitResponse(
        Nfs3Stat.OK,
        new m.Nfsv3CommitResOk(this.wccOf(t, after), this.core.writeVerf),
      );
    } catch (e) {
      const st = this.status(e, NfsProc.COMMIT);
      return new m.Nfsv3CommitResponse(st, undefined, new m.Nfsv3CommitResFail(this.wccOf(t, t?.attr)));
    }
  }
}
