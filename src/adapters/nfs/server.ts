/**
 * NfsServer: NFS v3 and MOUNT v3 on one TCP port, optionally a portmapper on another.
 *
 * RPC-level checks, in order: RPC version (RPC_MISMATCH), credentials (AUTH_SYS parsed, AUTH_NONE =
 * anonymous, other flavours AUTH_BADCRED), program (PROG_UNAVAIL), version (PROG_MISMATCH),
 * procedure (PROC_UNAVAIL), arguments (GARBAGE_ARGS); then the duplicate-request cache for
 * non-idempotent NFS procedures, then the procedure. Per-export checks (allow-lists, privileged
 * port, squash, read-only) happen when a file handle or mount path names the export.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { getLogger, type Logger } from '../../log/index.js';
import {
  AcceptStat,
  AuthFlavor,
  AuthStat,
  DEFAULT_MAX_RECORD,
  MOUNT_PROC_MAX,
  MOUNT_VERSION,
  NFS_PROC_MAX,
  NFS_VERSION,
  NfsProc,
  NON_IDEMPOTENT_NFS_PROCS,
  PROG_MOUNT,
  PROG_NFS,
  PROG_PORTMAP,
  RPC_VERSION,
} from './constants.js';
import { RpcConnection, type ConnInfo, type Reply } from './connection.js';
import { AuthReject, NfsCore, type Caller, type ExportConfig } from './core.js';
import { DuplicateRequestCache } from './drc.js';
import { MountProgram } from './mount.js';
import { Nfs3Program } from './nfs3.js';
import { PortmapProgram, serviceMappings } from './portmap.js';
import { ioAddon, type IoAddon } from './sendfile.js';
import { decodeRecord, parseAuthSys, type RpcCall } from './rpc.js';
import type { Cred } from '../../core/types.js';

export type { ExportConfig } from './core.js';
export type { ExportPolicy, SquashMode } from './policy.js';

export interface NfsServerOptions {
  exports: ExportConfig[];
  /** Address to listen on (e.g. `127.0.0.1`, `0.0.0.0`). */
  host: string;
  /** TCP port for NFS and MOUNT; 0 = ephemeral. */
  port: number;
  /** Also run a portmapper (production: port 111). */
  portmap?: { host: string; port: number };
  logger?: Logger;
  /** Release cached VFS handles idle for this long (default 5 s). */
  handleIdleMs?: number;
  /** Largest RPC record accepted (default 4 MiB + 64 KiB). */
  maxRecord?: number;
  /** Calls in flight per connection before reading pauses (default 32). */
  maxInflight?: number;
  /** Most concurrent connections (default 512). */
  maxConnections?: number;
  /** Zero-copy READ replies (default true). */
  zeroCopyRead?: boolean;
  /**
   * READ replies of cached data sent from the cache file with sendfile(2) (default: when the
   * bucketgate_io addon is built and zeroCopyRead is on).
   */
  sendFile?: boolean;
  /** The sendfile implementation (tests wrap the addon's to watch it); default the addon. */
  io?: IoAddon;
  /** Close a connection whose incomplete record gets no byte for this long (default 60 s). */
  partialRecordTimeoutMs?: number;
  /** Called after every NFS/MOUNT call (metrics): program, procedure name, seconds, failed. */
  onCall?: (program: string, procedure: string, seconds: number, failed: boolean) => void;
}

const NFS_PROC_NAMES = [
  'null',
  'getattr',
  'setattr',
  'lookup',
  'access',
  'readlink',
  'read',
  'write',
  'create',
  'mkdir',
  'symlink',
  'mknod',
  'remove',
  'rmdir',
  'rename',
  'link',
  'readdir',
  'readdirplus',
  'fsstat',
  'fsinfo',
  'pathconf',
  'commit',
];
const MOUNT_PROC_NAMES = ['null', 'mnt', 'dump', 'umnt', 'umntall', 'export'];

const WRITE_HIGH_WATER = 8 * 1024 * 1024;

export class NfsServer {
  private readonly opts: NfsServerOptions;
  private readonly log: Logger;
  private readonly core: NfsCore;
  private readonly io: IoAddon | undefined;
  private sentFromFileDone = 0;
  private readonly nfs: Nfs3Program;
  private readonly mount: MountProgram;
  private readonly portmap: PortmapProgram;
  private readonly drc = new DuplicateRequestCache();
  private server: Server | undefined;
  private pmServer: Server | undefined;
  private readonly conns = new Set<RpcConnection>();
  private nfsPort = 0;
  private pmPort = 0;

  private readonly onCall: NfsServerOptions['onCall'];

  constructor(opts: NfsServerOptions) {
    this.onCall = opts.onCall;
    this.opts = opts;
    this.log = opts.logger ?? getLogger({ component: 'nfs' });
    this.core = new NfsCore(opts.exports, this.log, opts.handleIdleMs);
    const zeroCopyRead = opts.zeroCopyRead ?? true;
    this.io = zeroCopyRead && (opts.sendFile ?? true) ? (opts.io ?? ioAddon()) : undefined;
    this.nfs = new Nfs3Program(this.core, { zeroCopyRead, fileReplies: this.io !== undefined });
    this.mount = new MountProgram(this.core);
    this.portmap = new PortmapProgram(() => serviceMappings(this.nfsPort, this.pmPort));
  }

  async start(): Promise<{ port: number; portmapPort?: number }> {
    if (this.server !== undefined) throw new Error('NFS server already started');
    this.core.newBoot();
    const server = this.makeServer((conn, rec) => this.onNfsRecord(conn, rec));
    this.nfsPort = await listen(server, this.opts.host, this.opts.port);
    this.server = server;
    if (this.opts.portmap !== undefined) {
      const pm = this.makeServer((conn, rec) => this.onPortmapRecord(conn, rec));
      try {
        this.pmPort = await listen(pm, this.opts.portmap.host, this.opts.portmap.port);
      } catch (e) {
        await this.stop();
        throw e;
      }
      this.pmServer = pm;
    }
    this.log.info('nfs: listening', {
      host: this.opts.host,
      port: this.nfsPort,
      exports: this.opts.exports.map((e) => `/${e.name}`),
      ...(this.pmServer ? { portmap: this.pmPort } : {}),
    });
    return this.pmServer ? { port: this.nfsPort, portmapPort: this.pmPort } : { port: this.nfsPort };
  }

  /** Stop listening, close connections, wait for calls in flight, release cached VFS handles. */
  /** READ data bytes sent from cache files with sendfile(2) since the start. */
  get sentFromFile(): number {
    let n = this.sentFromFileDone;
    for (const c of this.conns) n += c.sentFromFile;
    return n;
  }

  async stop(): Promise<void> {
    const servers = [this.server, this.pmServer].filter((s): s is Server => s !== undefined);
    this.server = undefined;
    this.pmServer = undefined;
    const closing = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    const conns = [...this.conns];
    for (const c of conns) c.close();
    const settled = Promise.all(conns.map((c) => c.settled()));
    await Promise.race([settled, new Promise((r) => setTimeout(r, 10_000).unref())]);
    await Promise.all(closing);
    await this.core.openFiles.closeAll();
  }

  private makeServer(
    handler: (conn: ConnInfo, rec: Uint8Array) => Promise<Reply | undefined | 'close'>,
  ): Server {
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket: Socket) => {
      if (this.conns.size >= (this.opts.maxConnections ?? 512)) {
        this.log.warn('nfs: too many connections, refusing one', { client: socket.remoteAddress });
        socket.destroy();
        return;
      }
      const conn = new RpcConnection(
        socket,
        handler,
        {
          maxRecord: this.opts.maxRecord ?? DEFAULT_MAX_RECORD,
          maxInflight: this.opts.maxInflight ?? 32,
          writeHighWater: WRITE_HIGH_WATER,
          partialRecordTimeoutMs: this.opts.partialRecordTimeoutMs ?? 60_000,
          ...(this.io ? { io: this.io } : {}),
        },
        this.log,
        (c) => {
          if (this.conns.delete(c)) this.sentFromFileDone += c.sentFromFile;
        },
      );
      this.conns.add(conn);
    });
    server.on('error', (err) => this.log.error('nfs: server error', { error: err }));
    return server;
  }

  /** Credentials of a call, or an auth_stat to reject it with. */
  private credOf(call: RpcCall): { cred: Cred | undefined } | { reject: number } {
    if (call.credFlavor === AuthFlavor.AUTH_NONE) return { cred: undefined };
    if (call.credFlavor === AuthFlavor.AUTH_SYS) {
      const a = parseAuthSys(call.credBody);
      if (a === undefined) return { reject: AuthStat.AUTH_BADCRED };
      return { cred: { uid: a.uid, gid: a.gid, groups: a.gids } };
    }
    return { reject: AuthStat.AUTH_BADCRED };
  }

  private async onNfsRecord(conn: ConnInfo, rec: Uint8Array): Promise<Reply | undefined | 'close'> {
    const d = decodeRecord(rec);
    if (d.kind === 'garbage') return 'close';
    if (d.kind === 'reply') return undefined;
    const call = d.call;
    if (!this.onCall) return this.dispatch(conn, call);
    const t0 = process.hrtime.bigint();
    let failed = false;
    try {
      const r = await this.dispatch(conn, call);
      failed = r === 'close';
      return r;
    } catch (e) {
      failed = true;
      throw e;
    } finally {
      const program = call.prog === PROG_NFS ? 'nfs' : call.prog === PROG_MOUNT ? 'mount' : String(call.prog);
      const names =
        call.prog === PROG_NFS ? NFS_PROC_NAMES : call.prog === PROG_MOUNT ? MOUNT_PROC_NAMES : [];
      this.onCall(
        program,
        names[call.proc] ?? String(call.proc),
        Number(process.hrtime.bigint() - t0) / 1e9,
        failed,
      );
    }
  }

  private async dispatch(conn: ConnInfo, call: RpcCall): Promise<Reply | undefined | 'close'> {
    const w = conn.w;
    if (call.rpcvers !== RPC_VERSION) return w.rpcMismatch(call.xid);
    const c = this.credOf(call);
    if ('reject' in c) return w.authError(call.xid, c.reject);
    const caller: Caller = { addr: conn.addr, port: conn.port, cred: c.cred };
    try {
      if (call.prog === PROG_NFS) {
        if (call.vers !== NFS_VERSION)
          return w.acceptError(call.xid, AcceptStat.PROG_MISMATCH, { low: 3, high: 3 });
        if (call.proc > NFS_PROC_MAX) return w.acceptError(call.xid, AcceptStat.PROC_UNAVAIL);
        if (call.proc === NfsProc.NULL) return w.success(call.xid, 0);
        const req = this.nfs.decodeArgs(call.proc, call.params);
        if (req === undefined) return w.acceptError(call.xid, AcceptStat.GARBAGE_ARGS);
        if (!NON_IDEMPOTENT_NFS_PROCS.has(call.proc))
          return await this.nfs.call(caller, w, call.xid, call.proc, req);
        return await this.withDrc(conn, call, () => this.nfs.call(caller, w, call.xid, call.proc, req));
      }
      if (call.prog === PROG_MOUNT) {
        if (call.vers !== MOUNT_VERSION) {
          return w.acceptError(call.xid, AcceptStat.PROG_MISMATCH, {
            low: MOUNT_VERSION,
            high: MOUNT_VERSION,
          });
        }
        if (call.proc > MOUNT_PROC_MAX) return w.acceptError(call.xid, AcceptStat.PROC_UNAVAIL);
        const req = this.mount.decodeArgs(call.proc, call.params);
        if (req === 'garbage') return w.acceptError(call.xid, AcceptStat.GARBAGE_ARGS);
        return await this.mount.call(caller, w, call.xid, call.proc, req);
      }
      return w.acceptError(call.xid, AcceptStat.PROG_UNAVAIL);
    } catch (e) {
      if (e instanceof AuthReject) {
        this.log.info('nfs: call rejected', { client: `${conn.addr}:${conn.port}`, reason: e.message });
        return w.authError(call.xid, e.authStat);
      }
      this.log.error('nfs: call failed', {
        prog: call.prog,
        proc: call.proc,
        error: e instanceof Error ? e : String(e),
      });
      return w.acceptError(call.xid, AcceptStat.SYSTEM_ERR);
    }
  }

  private async withDrc(
    conn: ConnInfo,
    call: RpcCall,
    run: () => Promise<Reply>,
  ): Promise<Reply | undefined> {
    const key = {
      addr: conn.addr,
      xid: call.xid,
      prog: call.prog,
      vers: call.vers,
      proc: call.proc,
      args: call.params.subarray(),
    };
    const hit = this.drc.begin(key);
    if (hit.state === 'in-progress') {
      // The original is still running (perhaps for a connection that is gone): answer with its reply.
      const reply = await hit.wait;
      if (reply !== undefined)
        this.log.debug('nfs: duplicate request answered after the original', {
          xid: call.xid,
          proc: call.proc,
        });
      return reply;
    }
    if (hit.state === 'done') {
      this.log.debug('nfs: duplicate request answered from cache', { xid: call.xid, proc: call.proc });
      return hit.reply;
    }
    try {
      const reply = await run();
      if (reply instanceof Uint8Array) this.drc.complete(key, reply);
      else this.drc.abort(key);
      return reply;
    } catch (e) {
      this.drc.abort(key);
      throw e;
    }
  }

  private async onPortmapRecord(conn: ConnInfo, rec: Uint8Array): Promise<Reply | undefined | 'close'> {
    const d = decodeRecord(rec);
    if (d.kind === 'garbage') return 'close';
    if (d.kind === 'reply') return undefined;
    const call = d.call;
    const w = conn.w;
    if (call.rpcvers !== RPC_VERSION) return w.rpcMismatch(call.xid);
    const c = this.credOf(call);
    if ('reject' in c) return w.authError(call.xid, c.reject);
    if (call.prog !== PROG_PORTMAP) return w.acceptError(call.xid, AcceptStat.PROG_UNAVAIL);
    if (!PortmapProgram.supports(call.vers))
      return w.acceptError(call.xid, AcceptStat.PROG_MISMATCH, { low: 2, high: 4 });
    const host = this.opts.host === '0.0.0.0' || this.opts.host === '::' ? conn.localAddr : this.opts.host;
    const out = this.portmap.call(w, call.xid, call.vers, call.proc, call.params, host);
    if (out.kind === 'reply') return out.bytes;
    if (out.kind === 'garbage') return w.acceptError(call.xid, AcceptStat.GARBAGE_ARGS);
    return w.acceptError(call.xid, AcceptStat.PROC_UNAVAIL);
  }
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      const a = server.address();
      resolve(typeof a === 'object' && a !== null ? a.port : port);
    });
  });
}
