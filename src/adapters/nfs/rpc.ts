/**
 * ONC RPC call decoding (RFC 5531) and AUTH_SYS credentials (RFC 5531 appendix A).
 * json-pack has no AUTH_SYS parser; its RpcMessageDecoder does the call header.
 */
import { Reader } from '@jsonjoy.com/buffers/lib/Reader.js';
import { RpcMessageDecoder } from '@jsonjoy.com/json-pack/lib/rpc/RpcMessageDecoder.js';
import { RpcCallMessage } from '@jsonjoy.com/json-pack/lib/rpc/messages.js';
import { AuthFlavor } from './constants.js';

export interface RpcCall {
  xid: number;
  rpcvers: number;
  prog: number;
  vers: number;
  proc: number;
  credFlavor: number;
  credBody: Uint8Array;
  /** Procedure arguments: a Reader bounded by the record (reads past its end throw RangeError). */
  params: Reader;
  /** The whole record (for the duplicate-request cache's argument digest). */
  record: Uint8Array;
}

const decoder = new RpcMessageDecoder();

export type DecodedRecord =
  { kind: 'call'; call: RpcCall } | { kind: 'reply' } | { kind: 'garbage'; xid?: number };

/** Decode one record; never throws. */
export function decodeRecord(record: Uint8Array): DecodedRecord {
  const xid =
    record.length >= 4 ? new DataView(record.buffer, record.byteOffset, 4).getUint32(0, false) : undefined;
  let msg;
  try {
    msg = decoder.decodeMessage(new Reader(record));
  } catch {
    return xid === undefined ? { kind: 'garbage' } : { kind: 'garbage', xid };
  }
  if (msg === undefined) return xid === undefined ? { kind: 'garbage' } : { kind: 'garbage', xid };
  if (!(msg instanceof RpcCallMessage)) return { kind: 'reply' };
  const params = msg.params ?? new Reader(new Uint8Array(0));
  const credBody = msg.cred.body.subarray(0, msg.cred.body.size());
  return {
    kind: 'call',
    call: {
      xid: msg.xid,
      rpcvers: msg.rpcvers,
      prog: msg.prog,
      vers: msg.vers,
      proc: msg.proc,
      credFlavor: msg.cred.flavor,
      credBody,
      params,
      record,
    },
  };
}

export interface AuthSys {
  stamp: number;
  machinename: string;
  uid: number;
  gid: number;
  gids: number[];
}

export const AUTH_SYS_MAX_GIDS = 16;
export const AUTH_SYS_MAX_MACHINENAME = 255;

/** Parse an AUTH_SYS credential body; undefined when malformed (→ AUTH_BADCRED). */
export function parseAuthSys(body: Uint8Array): AuthSys | undefined {
  const view = new DataView(body.buffer, body.byteOffset, body.length);
  let x = 0;
  const u32 = (): number | undefined => {
    if (x + 4 > body.length) return undefined;
    const v = view.getUint32(x, false);
    x += 4;
    return v;
  };
  const stamp = u32();
  const nameLen = u32();
  if (stamp === undefined || nameLen === undefined || nameLen > AUTH_SYS_MAX_MACHINENAME) return undefined;
  const padded = (nameLen + 3) & ~3;
  if (x + padded > body.length) return undefined;
  const machinename = Buffer.from(body.buffer, body.byteOffset + x, nameLen).toString('latin1');
  x += padded;
  const uid = u32();
  const gid = u32();
  const n = u32();
  if (uid === undefined || gid === undefined || n === undefined || n > AUTH_SYS_MAX_GIDS) return undefined;
  const gids: number[] = [];
  for (let i = 0; i < n; i++) {
    const g = u32();
    if (g === undefined) return undefined;
    gids.push(g);
  }
  if (x !== body.length) return undefined;
  return { stamp, machinename, uid, gid, gids };
}

/** Encode an AUTH_SYS body (used by tests and the portmapper's self-test). */
export function encodeAuthSys(a: AuthSys): Uint8Array {
  const name = Buffer.from(a.machinename, 'latin1');
  const padded = (name.length + 3) & ~3;
  const buf = Buffer.alloc(4 + 4 + padded + 4 + 4 + 4 + 4 * a.gids.length);
  let x = 0;
  buf.writeUInt32BE(a.stamp >>> 0, x);
  x += 4;
  buf.writeUInt32BE(name.length, x);
  x += 4;
  name.copy(buf, x);
  x += padded;
  buf.writeUInt32BE(a.uid >>> 0, x);
  x += 4;
  buf.writeUInt32BE(a.gid >>> 0, x);
  x += 4;
  buf.writeUInt32BE(a.gids.length, x);
  x += 4;
  for (const g of a.gids) {
    buf.writeUInt32BE(g >>> 0, x);
    x += 4;
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

export { AuthFlavor };
