/**
 * Cache mode against a misbehaving backend: a fault-injecting proxy sits between the daemon and
 * s3rver (503s, bodies cut short, slow and hung responses, a full outage of a minute). Nothing
 * acknowledged is lost, cached reads keep working, errors appear only where no copy exists; and
 * writing three times the cache size stays within the limit, with back-pressure and ENOSPC when
 * the backend is dead.
 */
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { adminCall, resolveAdminSocket } from '../../src/daemon/admin.js';
import type { ShareStatus } from '../../src/daemon/share.js';
import { cli, sh, startDaemon, type Daemon } from '../helpers/daemon.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { e2eEnv } from '../helpers/e2e-env.js';

const E = e2eEnv('bg-faults-');
const proxies: FaultProxy[] = [];
afterAll(async () => {
  for (const p of proxies) await p.stop().catch(() => undefined);
});

const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

async function bucketMd5(key: string): Promise<string | undefined> {
  try {
    const g = await E.client.send(new GetObjectCommand({ Bucket: 'test', Key: key }));
    return md5(Buffer.from(await g.Body!.transformToByteArray()));
  } catch {
    return undefined;
  }
}

async function mountVia(
  proxy: FaultProxy,
  name: string,
  extra: string[],
): Promise<{ d: Daemon; mnt: string; admin: string }> {
  const mnt = join(E.work, `mnt-${name}`);
  const admin = join(E.work, 'run');
  await mkdir(mnt, { recursive: true });
  const d = await startDaemon(
    [
      'mount',
      `s3://test/${name}`,
      mnt,
      '--endpoint',
      proxy.endpoint,
      '--path-style',
      '--cache-dir',
      join(E.work, `cache-${name}`),
      '--admin-dir',
      admin,
      '--mode',
      'cache',
      '--upload-delay',
      '100ms',
      '--refresh-interval',
      '0',
      '--log-level',
      'error',
      '--s3-timeout',
      '2s',
      ...extra,
    ],
    E.env,
    mnt,
  );
  E.daemons.push(d);
  return { d, mnt, admin };
}

async function status(admin: string, name: string): Promise<ShareStatus> {
  const r = await adminCall(await resolveAdminSocket(admin, name), { cmd: 'status' });
  return r.status as ShareStatus;
}

describe('cache mode with a faulty backend', () => {
  it(
    '503s, cut bodies, slow and hung responses: no loss, every file reads back, flush completes',
    { timeout: 240_000 },
    async () => {
      const remote = new Map<string, Buffer>();
      for (let i = 0; i < 10; i++) {
        const body = randomBytes(50_000 + i * 40_000);
        remote.set(`r${i}.bin`, body);
        await E.client.send(
          new PutObjectCommand({ Bucket: 'test', Key: `flaky/remote/r${i}.bin`, Body: body }),
        );
      }
      const proxy = await startFaultProxy({ host: '127.0.0.1', port: E.s3.port }, 7);
      proxies.push(proxy);
      const { d, mnt, admin } = await mountVia(proxy, 'flaky', []);
      proxy.set({ error503: 0.1, cutBody: 0.05, slow: 0.05, slowMs: 1000, hang: 0.02, hangMs: 15_000 });

      const written = new Map<string, string>();
      for (let i = 0; i < 30; i++) {
        const out = await sh(`head -c ${20_000 + i * 9_000} /dev/urandom | tee '${mnt}/w${i}.bin' | md5sum`);
        written.set(`w${i}.bin`, out.split(' ')[0]!);
      }
      for (const [name, body] of remote) {
        const got = (await sh(`md5sum < '${mnt}/remote/${name}'`)).split(' ')[0];
        expect(got, name).toBe(md5(body));
      }
      const f = await cli(['flush', mnt, '--admin-dir', admin, '--timeout', '180s']);
      expect(f.code, f.stderr).toBe(0);
      for (const [name, sum] of written) expect(await bucketMd5(`flaky/${name}`), name).toBe(sum);
      expect(proxy.stats.injected).toBeGreaterThan(5);
      expect((await status(admin, 'test-flaky')).failing).toEqual([]);
      expect(await d.stop()).toBe(0);
    },
  );

  it(
    'a full outage of a minute: writes and cached reads continue, uncached reads fail with EIO, all uploads land after',
    { timeout: 240_000 },
    async () => {
      await E.client.send(
        new PutObjectCommand({ Bucket: 'test', Key: 'outage/cold.bin', Body: randomBytes(100_000) }),
      );
      const proxy = await startFaultProxy({ host: '127.0.0.1', port: E.s3.port }, 3);
      proxies.push(proxy);
      const { d, mnt, admin } = await mountVia(proxy, 'outage', []);
      const before = (await sh(`head -c 300000 /dev/urandom | tee '${mnt}/before.bin' | md5sum`)).split(
        ' ',
      )[0]!;
      await sh(`ls -l '${mnt}' > /dev/null`); // lists the directory, including cold.bin (not read)

      await proxy.outage();
      const t0 = Date.now();
      const during: Record<string, string> = {};
      for (let i = 0; i < 5; i++)
        during[`during${i}.bin`] = (
          await sh(`head -c 200000 /dev/urandom | tee '${mnt}/during${i}.bin' | md5sum`)
        ).split(' ')[0]!;
      expect((await sh(`md5sum < '${mnt}/before.bin'`)).split(' ')[0]).toBe(before);
      expect(await sh(`ls '${mnt}'`)).toContain('cold.bin');
      const cold = await sh(
        `cat '${mnt}/cold.bin' > /dev/null 2>&1 && echo read || echo "failed: $(cat '${mnt}/cold.bin' 2>&1 >/dev/null)"`,
      );
      expect(cold).toMatch(/Input\/output error/);
      await sh(`mkdir '${mnt}/newdir' 2>&1 || true`); // namespace changes need the bucket: EIO, daemon keeps serving
      const st = await status(admin, 'test-outage');
      expect(st.uploads.queued).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, Math.max(0, 60_000 - (Date.now() - t0))));
      expect((await sh(`md5sum < '${mnt}/during0.bin'`)).split(' ')[0]).toBe(during['during0.bin']);
      await proxy.restore();

      const f = await cli(['flush', mnt, '--admin-dir', admin, '--timeout', '120s']);
      expect(f.code, f.stderr).toBe(0);
      expect(await bucketMd5('outage/before.bin')).toBe(before);
      for (const [name, sum] of Object.entries(during))
        expect(await bucketMd5(`outage/${name}`), name).toBe(sum);
      expect(await sh(`cat '${mnt}/cold.bin' | wc -c`)).toBe('100000\n');
      expect(await d.stop()).toBe(0);
    },
  );

  it(
    'three times the cache size through a small cache: within the limit, all reads correct; dead backend → ENOSPC',
    { timeout: 240_000 },
    async () => {
      const proxy = await startFaultProxy({ host: '127.0.0.1', port: E.s3.port }, 5);
      proxies.push(proxy);
      const LIMIT = 16 * 1024 * 1024;
      const { d, mnt, admin } = await mountVia(proxy, 'small', [
        '--cache-size',
        '16M',
        '--cache-write-wait',
        '3s',
      ]);
      let maxUsed = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          maxUsed = Math.max(maxUsed, (await status(admin, 'test-small')).cache.usedBytes);
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      const sums: Record<string, string> = {};
      for (let i = 0; i < 12; i++)
        sums[`f${i}`] = (await sh(`head -c 4194304 /dev/urandom | tee '${mnt}/f${i}' | md5sum`)).split(
          ' ',
        )[0]!;
      for (let i = 0; i < 12; i++)
        expect((await sh(`md5sum < '${mnt}/f${i}'`)).split(' ')[0], `f${i}`).toBe(sums[`f${i}`]);
      sampling = false;
      await sampler;
      expect(maxUsed).toBeGreaterThan(LIMIT / 2);
      expect(maxUsed).toBeLessThanOrEqual(LIMIT);

      // Dead backend: dirty data cannot drain, so writers wait, then get ENOSPC; nothing is corrupted.
      const f0 = await cli(['flush', mnt, '--admin-dir', admin, '--timeout', '60s']);
      expect(f0.code).toBe(0);
      await proxy.outage();
      const t0 = Date.now();
      const out = await sh(`dd if=/dev/urandom of='${mnt}/toobig' bs=1M count=32 2>&1 || true`);
      expect(out).toMatch(/No space left on device/);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(2500);
      expect((await status(admin, 'test-small')).cache.usedBytes).toBeLessThanOrEqual(LIMIT);
      await proxy.restore();
      await sh(`rm -f '${mnt}/toobig'`);
      for (let i = 0; i < 12; i++) expect(await bucketMd5(`small/f${i}`), `f${i}`).toBe(sums[`f${i}`]);
      expect(await d.stop()).toBe(0);
    },
  );
});
