import { describe, expect, it } from 'vitest';
import {
  AddressList,
  CompiledPolicy,
  DEFAULT_POLICY,
  normalizeAddress,
} from '../../src/adapters/nfs/policy.js';

describe('export policy', () => {
  it('matches IPs and CIDRs, IPv4-mapped IPv6 and IPv6', () => {
    const l = new AddressList(['10.1.0.0/16', '192.168.1.5', 'fd00::/8']);
    expect(l.has('10.1.200.3')).toBe(true);
    expect(l.has('::ffff:10.1.2.3')).toBe(true);
    expect(l.has('10.2.0.1')).toBe(false);
    expect(l.has('192.168.1.5')).toBe(true);
    expect(l.has('192.168.1.6')).toBe(false);
    expect(l.has('fd12::1')).toBe(true);
    expect(l.has('fe80::1')).toBe(false);
    expect(new AddressList(['*']).has('8.8.8.8')).toBe(true);
    expect(normalizeAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(() => new AddressList(['nonsense'])).toThrow(/invalid client address/);
    expect(() => new AddressList(['10.0.0.0/40'])).toThrow(/prefix/);
  });

  it('read-write wins over read-only; others get nothing', () => {
    const p = new CompiledPolicy({ ...DEFAULT_POLICY, clients: ['10.0.0.1'], roClients: ['10.0.0.0/24'] });
    expect(p.access('10.0.0.1')).toBe('rw');
    expect(p.access('10.0.0.2')).toBe('ro');
    expect(p.access('127.0.0.1')).toBe('none');
  });

  it('squashes credentials', () => {
    const root = { uid: 0, gid: 0, groups: [0, 5] };
    const user = { uid: 1000, gid: 1000, groups: [27] };
    const none = new CompiledPolicy({ ...DEFAULT_POLICY, squash: 'none' });
    expect(none.squash(root)).toEqual(root);
    const rs = new CompiledPolicy({ ...DEFAULT_POLICY, squash: 'root_squash', anonUid: 99, anonGid: 98 });
    expect(rs.squash(root)).toEqual({ uid: 99, gid: 98, groups: [98, 5] });
    expect(rs.squash(user)).toEqual(user);
    expect(rs.squash({ uid: 1000, gid: 0, groups: [] })).toEqual({ uid: 1000, gid: 98, groups: [] });
    for (const mode of ['all_squash', 'all_anonymous'] as const) {
      const all = new CompiledPolicy({ ...DEFAULT_POLICY, squash: mode, anonUid: 99, anonGid: 98 });
      expect(all.squash(user)).toEqual({ uid: 99, gid: 98, groups: [] });
    }
    // AUTH_NONE is anonymous whatever the mode.
    expect(none.squash(undefined)).toEqual({ uid: 65534, gid: 65534, groups: [] });
  });

  it('privileged port requirement', () => {
    const p = new CompiledPolicy({ ...DEFAULT_POLICY, secure: true });
    expect(p.portOk(800)).toBe(true);
    expect(p.portOk(40000)).toBe(false);
    expect(new CompiledPolicy(DEFAULT_POLICY).portOk(40000)).toBe(true);
  });

  it('validates', () => {
    expect(() => new CompiledPolicy({ ...DEFAULT_POLICY, anonUid: -1 })).toThrow();
    expect(() => new CompiledPolicy({ ...DEFAULT_POLICY, squash: 'bogus' as 'none' })).toThrow();
  });
});
