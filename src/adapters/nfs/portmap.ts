/**
 * A minimal portmapper (RFC 1833): program 100000 version 2 (NULL, SET, UNSET, GETPORT, DUMP) and
 * rpcbind versions 3 and 4 (NULL, SET, UNSET, GETADDR, DUMP, and v4 GETVERSADDR), over TCP only.
 * It answers for the services of this process (NFS v3 and MOUNT v3 on the NFS port); registrations
 * from others are refused.
 */
import type { Reader } from '@jsonjoy.com/buffers/lib/Reader.js';
import { XdrDecoder } from '@jsonjoy.com/json-pack/lib/xdr/XdrDecoder.js';
import { isIPv6 } from 'node:net';
import { IPPROTO_TCP, MOUNT_VERSION, NFS_VERSION, PROG_MOUNT, PROG_NFS, PROG_PORTMAP } from './constants.js';
import type { ReplyWriter } from './codec.js';

export interface Mapping {
  prog: number;
  vers: number;
  prot: number;
  port: number;
}

export const PMAP_GETVERSADDR = 9;

/** The services to announce. */
export function serviceMappings(nfsPort: number, pmapPort: number): Mapping[] {
  return [
    { prog: PROG_PORTMAP, vers: 2, prot: IPPROTO_TCP, port: pmapPort },
    { prog: PROG_PORTMAP, vers: 3, prot: IPPROTO_TCP, port: pmapPort },
    { prog: PROG_PORTMAP, vers: 4, prot: IPPROTO_TCP, port: pmapPort },
    { prog: PROG_NFS, vers: NFS_VERSION, prot: IPPROTO_TCP, port: nfsPort },
    { prog: PROG_MOUNT, vers: MOUNT_VERSION, prot: IPPROTO_TCP, port: nfsPort },
  ];
}

/** Universal address (RFC 5665): `h1.h2.h3.h4.p1.p2` or `ipv6.p1.p2`. */
export function universalAddress(host: string, port: number): string {
  return `${host}.${(port >> 8) & 0xff}.${port & 0xff}`;
}

type Outcome = { kind: 'reply'; bytes: Uint8Array } | { kind: 'garbage' } | { kind: 'proc-unavail' };

export class PortmapProgram {
  private readonly maps: () => Mapping[];

  constructor(maps: () => Mapping[]) {
    this.maps = maps;
  }

  /** `localAddr`: the address the caller reached us on (for universal addresses). */
  call(w: ReplyWriter, xid: number, vers: number, proc: number, params: Reader, localAddr: string): Outcome {
    const xdr = new XdrDecoder(params);
    const ok = (sizeHint: number, body: () => void): Outcome => ({
      kind: 'reply',
      bytes: w.success(xid, sizeHint, body),
    });
    try {
      if (proc === 0) return ok(0, () => undefined);
      if (vers === 2) {
        switch (proc) {
          case 1: // SET
          case 2: // UNSET
            this.mapping(xdr, params);
            return ok(4, () => w.xdr.writeBoolean(false));
          case 3: {
            // GETPORT
            const q = this.mapping(xdr, params);
            const hit = this.maps().find(
              (mp) => mp.prog === q.prog && mp.vers === q.vers && mp.prot === q.prot,
            );
            return ok(4, () => w.xdr.writeUnsignedInt(hit?.port ?? 0));
          }
          case 4: {
            // DUMP
            const all = this.maps();
            return ok(all.length * 20 + 4, () => {
              for (const mp of all) {
                w.xdr.writeBoolean(true);
                w.xdr.writeUnsignedInt(mp.prog);
                w.xdr.writeUnsignedInt(mp.vers);
                w.xdr.writeUnsignedInt(mp.prot);
                w.xdr.writeUnsignedInt(mp.port);
              }
              w.xdr.writeBoolean(false);
            });
          }
          default:
            return { kind: 'proc-unavail' };
        }
      }
      // rpcbind v3 / v4
      switch (proc) {
        case 1:
        case 2:
          this.rpcb(xdr, params);
          return ok(4, () => w.xdr.writeBoolean(false));
        case 3:
        case PMAP_GETVERSADDR: {
          if (proc === PMAP_GETVERSADDR && vers !== 4) return { kind: 'proc-unavail' };
          const q = this.rpcb(xdr, params);
          const netid = q.netid === '' ? (isIPv6(localAddr) ? 'tcp6' : 'tcp') : q.netid;
          let addr = '';
          if (netid === 'tcp' || netid === 'tcp6') {
            const hit = this.maps().find(
              (mp) => mp.prog === q.prog && mp.vers === q.vers && mp.prot === IPPROTO_TCP,
            );
            if (hit !== undefined) addr = universalAddress(localAddr, hit.port);
          }
          return ok(64 + addr.length, () => w.xdr.writeStr(addr));
        }
        case 4: {
          const all = this.maps().filter((mp) => mp.prot === IPPROTO_TCP);
          const netid = isIPv6(localAddr) ? 'tcp6' : 'tcp';
          return ok(all.length * 128 + 4, () => {
            for (const mp of all) {
              w.xdr.writeBoolean(true);
              w.xdr.writeUnsignedInt(mp.prog);
              w.xdr.writeUnsignedInt(mp.vers);
              w.xdr.writeStr(netid);
              w.xdr.writeStr(universalAddress(localAddr, mp.port));
              w.xdr.writeStr('bucketgate');
            }
            w.xdr.writeBoolean(false);
          });
        }
        default:
          return { kind: 'proc-unavail' };
      }
    } catch {
      return { kind: 'garbage' };
    }
  }

  static supports(vers: number): boolean {
    return vers >= 2 && vers <= 4;
  }

  private mapping(xdr: XdrDecoder, params: Reader): Mapping {
    const m = {
      prog: xdr.readUnsignedInt(),
      vers: xdr.readUnsignedInt(),
      prot: xdr.readUnsignedInt(),
      port: xdr.readUnsignedInt(),
    };
    if (params.x > params.end) throw new RangeError('truncated');
    return m;
  }

  private rpcb(xdr: XdrDecoder, params: Reader): { prog: number; vers: number; netid: string } {
    const prog = xdr.readUnsignedInt();
    const vers = xdr.readUnsignedInt();
    const netid = this.str(xdr, params, 64);
    this.str(xdr, params, 256); // r_addr
    this.str(xdr, params, 256); // r_owner
    return { prog, vers, netid };
  }

  private str(xdr: XdrDecoder, params: Reader, max: number): string {
    const len = params.view.getUint32(params.x, false);
    if (len > max) throw new RangeError('string too long');
    const s = xdr.readString();
    if (params.x > params.end) throw new RangeError('truncated');
    return s;
  }
}
