/**
 * The systemd units: `systemd-analyze verify` accepts them without a warning, and they keep the
 * properties the daemon relies on (Type=notify, restart policy, stop timeout, limits, FUSE
 * access, and no option that would give the service a private mount namespace, which would hide
 * its FUSE mounts from the host).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/daemon.js';

const pexec = promisify(execFile);
const UNITS = ['bucketgate.service', 'bucketgate@.service'];
const ANALYZE = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));

/** Options that make systemd set up a mount namespace for the service. */
const NAMESPACING = [
  'ProtectSystem',
  'ProtectHome',
  'PrivateTmp',
  'PrivateDevices',
  'PrivateMounts',
  'ReadWritePaths',
  'ReadOnlyPaths',
  'InaccessiblePaths',
  'TemporaryFileSystem',
  'BindPaths',
  'BindReadOnlyPaths',
  'ProtectKernelTunables',
  'ProtectKernelModules',
  'ProtectKernelLogs',
  'ProtectControlGroups',
  'ProtectProc',
  'ProcSubset',
  'RootDirectory',
  'RootImage',
  'PrivateUsers',
  'MountFlags',
  'DynamicUser',
  'MemoryDenyWriteExecute', // not a namespace, but breaks V8's JIT
];

function settings(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('[')) continue;
    const eq = line.indexOf('=');
    const k = line.slice(0, eq);
    m.set(k, [...(m.get(k) ?? []), line.slice(eq + 1)]);
  }
  return m;
}

function seconds(v: string): number {
  const m = /^(\d+)(min|s|h)?$/.exec(v);
  if (!m) throw new Error(`duration ${v}`);
  return Number(m[1]) * (m[2] === 'min' ? 60 : m[2] === 'h' ? 3600 : 1);
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bg-svc-systemd-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('systemd units', () => {
  it.each(UNITS)('%s keeps what the daemon needs and nothing that hides its mounts', async (unit) => {
    const s = settings(await readFile(join(ROOT, 'systemd', unit), 'utf8'));
    const one = (k: string): string => s.get(k)?.at(-1) ?? '';
    expect(one('Type')).toBe('notify');
    expect(one('NotifyAccess')).toBe('main');
    expect(one('ExecStart')).toMatch(
      /^\/usr\/local\/bin\/bucketgate serve --config \/etc\/bucketgate\/(bucketgate|%i)\.yaml$/,
    );
    expect(s.get('ExecReload')?.at(-1)).toBe('/bin/kill -HUP $MAINPID');
    expect(one('Restart')).toBe('on-failure');
    expect(one('RestartPreventExitStatus')).toBe('2');
    expect(seconds(one('TimeoutStopSec'))).toBeGreaterThanOrEqual(300);
    expect(Number(one('LimitNOFILE'))).toBeGreaterThanOrEqual(65536);
    expect(one('KillMode')).toBe('mixed');
    expect(one('DeviceAllow')).toBe('/dev/fuse rw');
    expect(one('CapabilityBoundingSet').split(' ')).toEqual(
      expect.arrayContaining(['CAP_SYS_ADMIN', 'CAP_NET_BIND_SERVICE']),
    );
    expect(one('NoNewPrivileges')).toBe('yes');
    for (const k of NAMESPACING) expect(s.has(k), `${unit} must not set ${k}`).toBe(false);
  });

  it.skipIf(ANALYZE === undefined)(
    ANALYZE !== undefined
      ? 'systemd-analyze verify accepts both units without a warning'
      : 'systemd-analyze verify: SKIPPED, systemd-analyze is not installed (Debian package "systemd")',
    async () => {
      // verify checks that ExecStart's binary exists: point it at this checkout's bin/bucketgate
      // (the units name the installed /usr/local/bin/bucketgate). The template is verified as an
      // instance.
      const files: string[] = [];
      for (const unit of UNITS) {
        const text = (await readFile(join(ROOT, 'systemd', unit), 'utf8')).replaceAll(
          '/usr/local/bin/bucketgate',
          join(ROOT, 'bin', 'bucketgate'),
        );
        const f = join(dir, unit.replace('@.service', '@test.service'));
        await writeFile(f, text);
        files.push(f);
      }
      const r = await pexec(ANALYZE ?? 'systemd-analyze', ['verify', ...files], { timeout: 60_000 }).then(
        (x) => ({ code: 0, out: x.stdout + x.stderr }),
        (e: { code?: number; stdout?: string; stderr?: string }) => ({
          code: e.code ?? 1,
          out: `${e.stdout ?? ''}${e.stderr ?? ''}`,
        }),
      );
      expect(r.out.trim()).toBe('');
      expect(r.code).toBe(0);
    },
  );
});
