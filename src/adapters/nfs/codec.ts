/**
 * Reply encoding on json-pack 18.28.0, with workarounds for its defects:
 *
 * 1. `XdrEncoder.writeStr` reserves the 4-byte length without checking capacity and the short-string
 *    UTF-8 path writes without a bounds check, so a string crossing the end of the Writer's buffer is
 *    silently truncated (READDIR names!). Longer strings may make the Writer grow after the length
 *    offset was taken, which then points into the old buffer. `SafeXdrEncoder.writeStr` ensures room
 *    for the worst case first, and every encoder we use is built on it.
 * 2. Record-marking headers remember an absolute offset (`RmRecordEncoder.startRecord`); when the
 *    Writer grows after an earlier `flush()`, data moves and the offset is stale (the second 1 MiB
 *    READ reply came out with length 0). `ReplyWriter` reserves capacity before each reply, reserves
 *    4 bytes, encodes, flushes, and patches the header at the start of what it flushed.
 * 4. Fields typed `Reader` (MountFhandle3.data, RPC results) are written from the start of their
 *    backing buffer, ignoring the Reader's offset and end: `mountHandle()` wraps an exact copy.
 * 6. The encoders validate nothing (handle size, name length, resfail on errors): callers do.
 */
import { Reader } from '@jsonjoy.com/buffers/lib/Reader.js';
import { Writer } from '@jsonjoy.com/buffers/lib/Writer.js';
import { XdrEncoder } from '@jsonjoy.com/json-pack/lib/xdr/XdrEncoder.js';
import { Nfsv3Encoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/Nfsv3Encoder.js';
import { MountEncoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/mount/MountEncoder.js';
import { MountFhandle3 } from '@jsonjoy.com/json-pack/lib/nfs/v3/mount/structs.js';
import { RpcMessageEncoder } from '@jsonjoy.com/json-pack/lib/rpc/RpcMessageEncoder.js';
import { RpcOpaqueAuth } from '@jsonjoy.com/json-pack/lib/rpc/messages.js';
import type { Nfsv3Message } from '@jsonjoy.com/json-pack/lib/nfs/v3/messages.js';
import type { MountMessage } from '@jsonjoy.com/json-pack/lib/nfs/v3/mount/messages.js';
import { AcceptStat, AuthFlavor, RejectStat } from './constants.js';
import { rmHeader } from './record.js';

/** XdrEncoder whose writeStr cannot write past the end of the buffer (defect 1). */
export class SafeXdrEncoder extends XdrEncoder {
  override writeStr(str: string): void {
    // Each UTF-16 unit is at most 3 UTF-8 bytes, but Writer.utf8 asks for 4 per unit on long strings:
    // reserve that up front so the Writer cannot grow (and move) between the length and the bytes.
    this.writer.ensureCapacity(4 + str.length * 4 + 4);
    super.writeStr(str);
  }
}

function withSafeXdr(target: object, writer: Writer): void {
  Object.defineProperty(target, 'xdr', {
    value: new SafeXdrEncoder(writer),
    writable: false,
    configurable: true,
  });
}

export class SafeNfsv3Encoder extends Nfsv3Encoder<Writer> {
  constructor(writer: Writer) {
    super(writer);
    withSafeXdr(this, writer);
  }
}

export class SafeMountEncoder extends MountEncoder<Writer> {
  constructor(writer: Writer) {
    super(writer);
    withSafeXdr(this, writer);
  }
}

const EMPTY = new Uint8Array(0);
export const AUTH_NONE_VERF = new RpcOpaqueAuth(AuthFlavor.AUTH_NONE, new Reader(EMPTY));

/** A Reader whose backing buffer is exactly `bytes` (defect 4: Reader fields are written whole). */
export function exactReader(bytes: Uint8Array): Reader {
  return new Reader(Uint8Array.from(bytes));
}

export function mountHandle(bytes: Uint8Array): MountFhandle3 {
  return new MountFhandle3(exactReader(bytes));
}

export interface VersionRange {
  low: number;
  high: number;
}

/**
 * Encodes complete RPC reply records (record-marking header included) for one connection.
 * Every method returns a Uint8Array that later encodes never overwrite (the Writer only appends
 * and, when it grows, copies to a fresh buffer), so it can be handed to socket.write() as is.
 */
export class ReplyWriter {
  readonly writer: Writer;
  readonly rpc: RpcMessageEncoder<Writer>;
  readonly nfs: SafeNfsv3Encoder;
  readonly mount: SafeMountEncoder;
  readonly xdr: SafeXdrEncoder;

  constructor(allocSize = 64 * 1024) {
    this.writer = new Writer(allocSize);
    this.rpc = new RpcMessageEncoder(this.writer);
    this.nfs = new SafeNfsv3Encoder(this.writer);
    this.mount = new SafeMountEncoder(this.writer);
    this.xdr = new SafeXdrEncoder(this.writer);
  }

  /**
   * One record: reserve capacity (`sizeHint` = expected body size), reserve the 4-byte header,
   * encode, flush, then patch the header at the start of the flushed bytes (defect 2).
   */
  record(sizeHint: number, encode: () => void): Uint8Array {
    const w = this.writer;
    w.ensureCapacity(sizeHint + 256);
    w.reset(); // x0 = x: the record starts here
    w.x += 4;
    try {
      encode();
    } catch (e) {
      w.x = w.x0;
      throw e;
    }
    const out = w.flush();
    new DataView(out.buffer, out.byteOffset, 4).setUint32(0, rmHeader(out.length - 4), false);
    return out;
  }

  /** Accepted reply with SUCCESS and a body written by `body` (with the library encoders). */
  success(xid: number, sizeHint: number, body?: () => void): Uint8Array {
    return this.record(sizeHint, () => {
      this.rpc.writeAcceptedReply(xid, AUTH_NONE_VERF, AcceptStat.SUCCESS);
      body?.();
    });
  }

  nfsReply(xid: number, proc: number, res: Nfsv3Message, sizeHint = 512): Uint8Array {
    return this.success(xid, sizeHint, () => this.nfs.writeMessage(res, proc, false));
  }

  mountReply(xid: number, proc: number, res: MountMessage | undefined, sizeHint = 512): Uint8Array {
    return this.success(xid, sizeHint, () => {
      if (res !== undefined) this.mount.writeMessage(res, proc, false);
    });
  }

  /** PROG_UNAVAIL, PROC_UNAVAIL, GARBAGE_ARGS, SYSTEM_ERR, or PROG_MISMATCH with the versions. */
  acceptError(xid: number, stat: number, mismatch?: VersionRange): Uint8Array {
    return this.record(64, () => this.rpc.writeAcceptedReply(xid, AUTH_NONE_VERF, stat, mismatch));
  }

  authError(xid: number, authStat: number): Uint8Array {
    return this.record(64, () =>
      this.rpc.writeRejectedReply(xid, RejectStat.AUTH_ERROR, undefined, authStat),
    );
  }

  rpcMismatch(xid: number): Uint8Array {
    return this.record(64, () =>
      this.rpc.writeRejectedReply(xid, RejectStat.RPC_MISMATCH, { low: 2, high: 2 }),
    );
  }

  /**
   * Zero-copy READ: the record header, RPC header and READ3resok up to the data's length word.
   * The encoded response must carry an empty `data`; we patch its length to `dataLen` and the
   * record length to cover the data and its XDR padding, which the caller writes after this.
   */
  readReplyHead(xid: number, proc: number, res: Nfsv3Message, dataLen: number): Uint8Array {
    const out = this.nfsReply(xid, proc, res, 256);
    const view = new DataView(out.buffer, out.byteOffset, out.length);
    const pad = (4 - (dataLen % 4)) % 4;
    view.setUint32(out.length - 4, dataLen, false);
    view.setUint32(0, rmHeader(out.length - 4 + dataLen + pad), false);
    return out;
  }
}

export const XDR_PAD = [EMPTY, new Uint8Array(3), new Uint8Array(2), new Uint8Array(1)] as const;

/** Zero bytes that pad `len` bytes of opaque data to a multiple of 4. */
export function xdrPad(len: number): Uint8Array {
  return XDR_PAD[len % 4] ?? EMPTY;
}
