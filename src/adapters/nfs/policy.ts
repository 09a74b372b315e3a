/**
 * Export policy: which clients may use an export (read-write or read-only), credential squashing,
 * read-only exports and the privileged-source-port requirement.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { Cred } from '../../core/types.js';

export type SquashMode = 'none' | 'root_squash' | 'all_squash' | 'all_anonymous';

export interface ExportPolicy {
  /** IPs / CIDRs allowed read-write (`*` = anyone). */
  clients: string[];
  /** IPs / CIDRs allowed read-only. A client in both lists is read-write. */
  roClients: string[];
  squash: SquashMode;
  anonUid: number;
  anonGid: number;
  /** Refuse every change (NFS3ERR_ROFS). */
  readOnly: boolean;
  /** Require a privileged source port (< 1024). */
  secure: boolean;
}

export const DEFAULT_POLICY: ExportPolicy = {
  clients: ['127.0.0.1/32'],
  roClients: [],
  squash: 'root_squash',
  anonUid: 65534,
  anonGid: 65534,
  readOnly: false,
  secure: false,
};

export type ClientAccess = 'rw' | 'ro' | 'none';

/** Strip an IPv4-mapped IPv6 prefix (`::ffff:1.2.3.4` → `1.2.3.4`). */
export function normalizeAddress(addr: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  return m?.[1] ?? addr;
}

export class AddressList {
  private readonly list = new BlockList();
  private any = false;
  readonly entries: readonly string[];

  constructor(entries: readonly string[]) {
    this.entries = entries;
    for (const raw of entries) {
      const e = raw.trim();
      if (e === '') continue;
      if (e === '*' || e === '0.0.0.0/0' || e === '::/0') {
        this.any = true;
        continue;
      }
      const slash = e.indexOf('/');
      const ip = normalizeAddress(slash >= 0 ? e.slice(0, slash) : e);
      const family = isIPv4(ip) ? 'ipv4' : isIPv6(ip) ? 'ipv6' : undefined;
      if (family === undefined) throw new Error(`invalid client address "${raw}" (expected an IP or CIDR)`);
      if (slash >= 0) {
        const bits = Number(e.slice(slash + 1));
        const max = family === 'ipv4' ? 32 : 128;
        if (!Number.isInteger(bits) || bits < 0 || bits > max)
          throw new Error(`invalid prefix length in "${raw}"`);
        this.list.addSubnet(ip, bits, family);
      } else {
        this.list.addAddress(ip, family);
      }
    }
  }

  has(addr: string): boolean {
    if (this.any) return true;
    const ip = normalizeAddress(addr);
    if (isIPv4(ip)) return this.list.check(ip, 'ipv4');
    if (isIPv6(ip)) return this.list.check(ip, 'ipv6');
    return false;
  }
}

/** A validated policy with compiled address lists. */
export class CompiledPolicy {
  readonly policy: ExportPolicy;
  private readonly rw: AddressList;
  private readonly ro: AddressList;

  constructor(policy: ExportPolicy) {
    for (const [k, v] of [
      ['anonUid', policy.anonUid],
      ['anonGid', policy.anonGid],
    ] as const) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`invalid ${k} ${v}`);
    }
    if (!['none', 'root_squash', 'all_squash', 'all_anonymous'].includes(policy.squash)) {
      throw new Error(`invalid squash mode "${String(policy.squash)}"`);
    }
    this.policy = policy;
    this.rw = new AddressList(policy.clients);
    this.ro = new AddressList(policy.roClients);
  }

  access(addr: string): ClientAccess {
    if (this.rw.has(addr)) return 'rw';
    if (this.ro.has(addr)) return 'ro';
    return 'none';
  }

  /** True when the source port satisfies the `secure` option. */
  portOk(port: number): boolean {
    return !this.policy.secure || port < 1024;
  }

  anonymous(): Cred {
    return { uid: this.policy.anonUid, gid: this.policy.anonGid, groups: [] };
  }

  /** Map the caller's credentials; `cred` undefined means AUTH_NONE (always anonymous). */
  squash(cred: Cred | undefined): Cred {
    if (cred === undefined) return this.anonymous();
    const { anonUid, anonGid } = this.policy;
    switch (this.policy.squash) {
      case 'none':
        return cred;
      case 'root_squash':
        // As knfsd: uid 0 → anon uid, gid 0 → anon gid, group 0 → anon gid.
        if (cred.uid !== 0 && cred.gid !== 0 && !cred.groups.includes(0)) return cred;
        return {
          uid: cred.uid === 0 ? anonUid : cred.uid,
          gid: cred.gid === 0 ? anonGid : cred.gid,
          groups: cred.groups.map((g) => (g === 0 ? anonGid : g)),
        };
      case 'all_squash':
      case 'all_anonymous':
        return this.anonymous();
    }
  }
}
