/**
 * A minimal ONC RPC client over TCP for the NFS adapter's tests: pipelined calls matched by XID,
 * raw byte injection for malformed-input tests, and NFS/MOUNT helpers built on json-pack's codecs.
 */
import { connect, type Socket } from 'node:net';
import { Reader } from '@jsonjoy.com/buffers/lib/Reader.js';
import { RpcMessageDecoder } from '@jsonjoy.com/json-pack/lib/rpc/RpcMessageDecoder.js';
import {
  RpcAcceptedReplyMessage,
  RpcOpaqueAuth,
  RpcRejectedReplyMessage,
} from '@jsonjoy.com/json-pack/lib/rpc/messages.js';
import { Nfsv3Decoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/Nfsv3Decoder.js';
import { MountDecoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/mount/MountDecoder.js';
import type * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages.js';
import type * as mm from '@jsonjoy.com/json-pack/lib/nfs/v3/mount/messages.js';
import { ReplyWriter } from '../../src/adapters/nfs/codec.js';
import { RecordDecoder } from '../../src/adapters/nfs/record.js';
import { encodeAuthSys } from '../../src/adapters/nfs/rpc.js';
import { MountProc, PROG_MOUNT, PROG_NFS } from '../../src/adapters/nfs/constants.js';

export interface RpcReply {
  xid: number;
  accepted: boolean;
  acceptStat?: number;
  rejectStat?: number;
  authStat?: number;
  mismatch?: { low: number; high: number };
  body: Reader;
  bytes: Uint8Array;
}

export type TestCred =
  { uid: number; gid: number; gids?: number[] } | 'none' | { flavor: number; body: Uint8Array };

export function credAuth(c: TestCred | undefined): RpcOpaqueAuth {
  if (c === undefined || c === 'none') return new RpcOpaqueAuth(0, new Reader(new Uint8Array(0)));
  if ('flavor' in c) return new RpcOpaqueAuth(c.flavor, new Reader(c.body));
  return new RpcOpaqueAuth(
    1,
    new Reader(encodeAuthSys({ stamp: 1, machinename: 'test', uid: c.uid, gid: c.gid, gids: c.gids ?? [] })),
  );
}

const NONE = new RpcOpaqueAuth(0, new Reader(new Uint8Array(0)));

export class RpcTestClient {
  private readonly socket: Socket;
  private readonly dec = new RecordDecoder({ maxRecord: 64 * 1024 * 1024 });
  private readonly w = new ReplyWriter();
  private readonly waiting = new Map<number, (r: RpcReply) => void>();
  private nextXid = Math.floor(Math.random() * 0x7fffffff);
  readonly closed: Promise<void>;
  isClosed = false;
  /** Every reply received, in arrival order. */
  readonly arrivals: number[] = [];
  defaultCred: TestCred = { uid: 0, gid: 0 };

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.dec.push(chunk);
      for (;;) {
        const rec = this.dec.next();
        if (rec === undefined) break;
        this.onRecord(rec);
      }
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.isClosed = true;
        resolve();
      });
    });
    socket.on('error', () => undefined);
  }

  static connect(port: number, host = '127.0.0.1', localPort?: number): Promise<RpcTestClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host, ...(localPort !== undefined ? { localPort } : {}) });
      s.once('connect', () => resolve(new RpcTestClient(s)));
      s.once('error', reject);
    });
  }

  private onRecord(rec: Uint8Array): void {
    const msg = new RpcMessageDecoder().decodeMessage(new Reader(rec));
    if (msg === undefined) return;
    const xid = msg.xid;
    this.arrivals.push(xid);
    let reply: RpcReply;
    if (msg instanceof RpcAcceptedReplyMessage) {
      reply = {
        xid,
        accepted: true,
        acceptStat: msg.stat,
        ...(msg.mismatchInfo ? { mismatch: { low: msg.mismatchInfo.low, high: msg.mismatchInfo.high } } : {}),
        body: msg.results ?? new Reader(new Uint8Array(0)),
        bytes: rec,
      };
    } else if (msg instanceof RpcRejectedReplyMessage) {
      reply = {
        xid,
        accepted: false,
        rejectStat: msg.stat,
        ...(msg.authStat !== undefined ? { authStat: msg.authStat } : {}),
        ...(msg.mismatchInfo ? { mismatch: { low: msg.mismatchInfo.low, high: msg.mismatchInfo.high } } : {}),
        body: new Reader(new Uint8Array(0)),
        bytes: rec,
      };
    } else {
      return;
    }
    const cb = this.waiting.get(xid);
    if (cb) {
      this.waiting.delete(xid);
      cb(reply);
    }
  }

  /** Stop / restart reading replies from the socket (the server then sees back-pressure). */
  pauseReading(): void {
    this.socket.pause();
  }
  resumeReading(): void {
    this.socket.resume();
  }

  sendRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Encode one call record (record header included). */
  encodeCall(
    xid: number,
    prog: number,
    vers: number,
    proc: number,
    args: (w: ReplyWriter) => void,
    cred?: TestCred,
  ): Uint8Array {
    return this.w.record(1024, () => {
      this.w.rpc.writeCall(xid, prog, vers, proc, credAuth(cred ?? this.defaultCred), NONE);
      args(this.w);
    });
  }

  newXid(): number {
    this.nextXid = (this.nextXid + 1) >>> 0;
    return this.nextXid;
  }

  /** Wait for the reply to `xid` (after sending its call yourself). */
  expect(xid: number, timeoutMs = 10_000): Promise<RpcReply> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiting.delete(xid);
        reject(new Error(`no reply to xid ${xid}`));
      }, timeoutMs);
      this.waiting.set(xid, (r) => {
        clearTimeout(t);
        resolve(r);
      });
      void this.closed.then(() => {
        if (this.waiting.has(xid)) {
          clearTimeout(t);
          this.waiting.delete(xid);
          reject(new Error(`connection closed before the reply to xid ${xid}`));
        }
      });
    });
  }

  call(
    prog: number,
    vers: number,
    proc: number,
    args: (w: ReplyWriter) => void = () => undefined,
    opts: { cred?: TestCred; xid?: number } = {},
  ): Promise<RpcReply> {
    const xid = opts.xid ?? this.newXid();
    const p = this.expect(xid);
    this.sendRaw(this.encodeCall(xid, prog, vers, proc, args, opts.cred));
    return p;
  }

  async nfs<T extends m.Nfsv3Response>(
    proc: number,
    req: m.Nfsv3Request | undefined,
    opts: { cred?: TestCred; xid?: number } = {},
  ): Promise<T> {
    const r = await this.call(
      PROG_NFS,
      3,
      proc,
      (w) => (req ? w.nfs.writeMessage(req, proc, true) : undefined),
      opts,
    );
    if (!r.accepted || r.acceptStat !== 0) {
      throw new Error(
        `NFS call ${proc} failed at RPC level: ${JSON.stringify({ ...r, body: undefined, bytes: undefined })}`,
      );
    }
    if (proc === 0) return undefined as unknown as T;
    return new Nfsv3Decoder().decodeMessage(r.body, proc, false) as T;
  }

  async mount<T extends mm.MountResponse | undefined>(
    proc: number,
    req?: mm.MountRequest,
    opts: { cred?: TestCred } = {},
  ): Promise<T> {
    const r = await this.call(
      PROG_MOUNT,
      3,
      proc,
      (w) => (req ? w.mount.writeMessage(req, proc, true) : undefined),
      opts,
    );
    if (!r.accepted || r.acceptStat !== 0) throw new Error(`MOUNT call ${proc} failed at RPC level`);
    return new MountDecoder().decodeMessage(r.body, proc, false) as T;
  }

  async mnt(path: string, cred?: TestCred): Promise<{ status: number; fh?: Uint8Array }> {
    const { MountMntRequest } = await import('@jsonjoy.com/json-pack/lib/nfs/v3/mount/messages.js');
    const res = await this.mount<mm.MountMntResponse>(
      MountProc.MNT,
      new MountMntRequest(path),
      cred ? { cred } : {},
    );
    if (res.status !== 0 || !res.mountinfo) return { status: res.status };
    const r = res.mountinfo.fhandle.data;
    return { status: 0, fh: Uint8Array.from(r.subarray(0, r.size())) };
  }

  close(): Promise<void> {
    this.socket.destroy();
    return this.closed;
  }
}
