/**
 * MOUNT version 3 (RFC 1813 appendix I), served on the NFS port: NULL, MNT, DUMP, UMNT, UMNTALL,
 * EXPORT. MNT accepts the export path `/NAME` and any directory below it (`/NAME/a/b`, resolved
 * with vfs.lookup as the squashed caller): nfs-cat and nfs-cp mount a file's parent directory.
 */
import type { Reader } from '@jsonjoy.com/buffers/lib/Reader.js';
import { MountDecoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/mount/MountDecoder.js';
import * as mm from '@jsonjoy.com/json-pack/lib/nfs/v3/mount/messages.js';
import {
  MountBody,
  MountExportNode,
  MountGroupNode,
} from '@jsonjoy.com/json-pack/lib/nfs/v3/mount/structs.js';
import { NAME_MAX, ROOT_INO, type Attr, type Cred } from '../../core/types.js';
import { AuthFlavor, MNTPATHLEN, MountProc, MountStat, Nfs3Stat } from './constants.js';
import { mountHandle, type ReplyWriter } from './codec.js';
import { AuthReject, type Caller, type Export, type NfsCore } from './core.js';
import { mountStatus, NfsStatusError } from './errors.js';

const MAX_MOUNT_ENTRIES = 10_000;

export class MountProgram {
  private readonly decoder = new MountDecoder();
  private readonly core: NfsCore;
  /** (client address, path) pairs for DUMP, as rpc.mountd keeps them (advisory). */
  private readonly mounts = new Map<string, { host: string; path: string }>();

  constructor(core: NfsCore) {
    this.core = core;
  }

  decodeArgs(proc: number, params: Reader): mm.MountRequest | undefined | 'garbage' {
    try {
      const req = this.decoder.decodeMessage(params, proc, true) as mm.MountRequest | undefined;
      if (params.x > params.end) return 'garbage';
      if ((proc === MountProc.MNT || proc === MountProc.UMNT) && req === undefined) return 'garbage';
      return req;
    } catch {
      return 'garbage';
    }
  }

  async call(
    caller: Caller,
    w: ReplyWriter,
    xid: number,
    proc: number,
    req: mm.MountRequest | undefined,
  ): Promise<Uint8Array> {
    switch (proc) {
      case MountProc.NULL:
        return w.mountReply(xid, proc, undefined);
      case MountProc.MNT:
        return w.mountReply(xid, proc, await this.mnt(caller, (req as mm.MountMntRequest).dirpath));
      case MountProc.DUMP:
        return w.mountReply(xid, proc, this.dump(), 64 + this.mounts.size * (MNTPATHLEN + 300));
      case MountProc.UMNT:
        this.mounts.delete(`${caller.addr}\u0000${normalize((req as mm.MountUmntRequest).dirpath)}`);
        return w.mountReply(xid, proc, undefined);
      case MountProc.UMNTALL:
        for (const [k, v] of this.mounts) if (v.host === caller.addr) this.mounts.delete(k);
        return w.mountReply(xid, proc, undefined);
      case MountProc.EXPORT: {
        const res = this.exportList();
        return w.mountReply(xid, proc, res, 4096 + this.core.exports.size * 2048);
      }
      default:
        throw new Error(`unexpected MOUNT procedure ${proc}`);
    }
  }

  private async mnt(caller: Caller, dirpath: string): Promise<mm.MountMntResponse> {
    if (Buffer.byteLength(dirpath, 'utf8') > MNTPATHLEN)
      return new mm.MountMntResponse(MountStat.NAMETOOLONG);
    const path = normalize(dirpath);
    const parts = path.split('/').filter((p) => p !== '');
    const exp = parts.length > 0 ? this.core.byPath.get(`/${parts[0]}`) : undefined;
    if (exp === undefined) return new mm.MountMntResponse(MountStat.NOENT);
    let cred;
    try {
      cred = this.core.admit(exp, caller).cred;
    } catch (e) {
      if (e instanceof AuthReject || e instanceof NfsStatusError) {
        this.core.log.info('nfs: MNT refused', {
          export: exp.name,
          client: caller.addr,
          port: caller.port,
          reason: e.message,
        });
        return new mm.MountMntResponse(MountStat.ACCES);
      }
      throw e;
    }
    let attr: Attr;
    try {
      attr = await this.walk(exp, cred, parts.slice(1));
    } catch (e) {
      return new mm.MountMntResponse(mountStatus(e, this.core.log));
    }
    if (attr.type !== 'dir') return new mm.MountMntResponse(MountStat.NOTDIR);
    if (this.mounts.size < MAX_MOUNT_ENTRIES)
      this.mounts.set(`${caller.addr}\u0000${path}`, { host: caller.addr, path });
    const fh = this.core.handleOf(exp, attr);
    return new mm.MountMntResponse(
      MountStat.OK,
      new mm.MountMntResOk(mountHandle(fh), [AuthFlavor.AUTH_SYS, AuthFlavor.AUTH_NONE]),
    );
  }

  private async walk(exp: Export, cred: Cred, parts: string[]): Promise<Attr> {
    let attr = await exp.vfs.getattr(cred, ROOT_INO);
    for (const name of parts) {
      if (name === '..') throw new NfsStatusError(Nfs3Stat.INVAL, 'no ".." in mount paths');
      if (Buffer.byteLength(name, 'utf8') > NAME_MAX) throw new NfsStatusError(Nfs3Stat.NAMETOOLONG);
      const child = await exp.vfs.lookup(cred, attr.ino, name);
      this.core.noteParent(exp, child, attr.ino);
      attr = child;
    }
    return attr;
  }

  private dump(): mm.MountDumpResponse {
    let list: MountBody | undefined;
    for (const { host, path } of this.mounts.values()) list = new MountBody(host, path, list);
    return new mm.MountDumpResponse(list);
  }

  private exportList(): mm.MountExportResponse {
    let list: MountExportNode | undefined;
    const exps = [...this.core.exports.values()].reverse();
    for (const exp of exps) {
      let groups: MountGroupNode | undefined;
      const names = [...exp.policy.policy.clients, ...exp.policy.policy.roClients].reverse();
      for (const g of names) groups = new MountGroupNode(g, groups);
      list = new MountExportNode(exp.path, groups, list);
    }
    return new mm.MountExportResponse(list);
  }
}

/** `/a//b/` → `/a/b`. */
function normalize(p: string): string {
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  return `/${parts.join('/')}`;
}
