/**
 * Malformed input against the NFS export over the real VFS, while a real client (nfs-cat, our libnfs
 * client) keeps working: random bytes, truncated records, absurd record lengths, bad XDR and forged
 * handles. The connection is closed or the call answered with an error; the daemon neither crashes
 * nor hangs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages.js';
import { O_CREAT, O_EXCL, O_RDWR, ROOT_CRED } from '../../src/core/types.js';
import { AcceptStat, Nfs3Stat, NfsProc, PROG_MOUNT, PROG_NFS } from '../../src/adapters/nfs/constants.js';
import { rmHeader } from '../../src/adapters/nfs/record.js';
import { createTestVfs, type TestVfs } from '../helpers/vfs-fixture.js';
import { dirop, fh, startNfs, testExport, type Running } from '../helpers/nfs-fixture.js';
import { buildNfsClient, run } from '../helpers/nfs-real-clients.js';

let t: TestVfs;
let srv: Running;
let client: string;
const content = randomBytes(2 * 1024 * 1024);

/** Open a raw connection, send bytes, and report whether the server closed it (within `ms`). */
function sendRaw(port: number, bytes: Buffer, end = false, ms = 3000): Promise<'closed' | 'open'> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.on('error', () => undefined);
    const timer = setTimeout(() => {
      s.destroy();
      resolve('open');
    }, ms);
    s.on('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
    s.on('connect', () => {
      s.write(bytes);
      if (end) s.end();
    });
  });
}

beforeAll(async () => {
  [t, client] = await Promise.all([createTestVfs(), buildNfsClient()]);
  const { fh: h } = await t.vfs.create(ROOT_CRED, 1, 'data.bin', 0o644, O_RDWR | O_CREAT | O_EXCL);
  await t.vfs.write(h, 0, content);
  await t.vfs.release(h);
  srv = await startNfs([testExport('share', t.vfs)], { partialRecordTimeoutMs: 1000 });
});

afterAll(async () => {
  await srv?.stop();
  await t?.close({ remove: true });
  if (client) await rm(dirname(client), { recursive: true, force: true });
});

describe('malformed input while a real client keeps working', () => {
  it('random bytes, truncated records, absurd lengths, bad XDR and forged handles', async () => {
    // A real client reading in a loop for the whole test.
    let stop = false;
    let reads = 0;
    const reader = (async () => {
      while (!stop) {
        const r = await run('nfs-cat', [srv.url('/share/data.bin')], 20_000);
        expect(r.code).toBe(0);
        expect(Buffer.from(r.stdout, 'latin1').equals(content)).toBe(true);
        reads++;
      }
    })();

    try {
      const port = srv.port;
      const results: Array<'closed' | 'open'> = [];
      // Random garbage (record headers and all): closed at once, or after the partial-record timeout.
      for (let i = 0; i < 10; i++) results.push(await sendRaw(port, randomBytes(1 + i * 300)));
      // Absurd record lengths.
      results.push(await sendRaw(port, Buffer.from([0xff, 0xff, 0xff, 0xff])));
      results.push(await sendRaw(port, Buffer.from([0x7f, 0xff, 0xff, 0xff, 0, 0])));
      // A record with a valid length but an undecodable RPC header.
      const hdr = Buffer.alloc(4);
      hdr.writeUInt32BE(rmHeader(12));
      results.push(await sendRaw(port, Buffer.concat([hdr, randomBytes(12)])));
      expect(results.every((r) => r === 'closed')).toBe(true);
      // A truncated record and a half-closed socket: dropped, connection closed.
      const trunc = Buffer.alloc(4);
      trunc.writeUInt32BE(rmHeader(1000));
      expect(await sendRaw(port, Buffer.concat([trunc, randomBytes(100)]), true)).toBe('closed');
      // A truncated record left open: the server waits for the rest like for any slow client, then
      // gives up after the partial-record timeout.
      expect(await sendRaw(port, Buffer.concat([trunc, randomBytes(100)]), false, 500)).toBe('open');
      expect(await sendRaw(port, Buffer.concat([trunc, randomBytes(100)]), false, 3000)).toBe('closed');

      // Bad XDR inside well-formed calls, and forged handles: answered, connection stays up.
      const c = await srv.client();
      const root = (await c.mnt('/share')).fh!;
      for (let i = 0; i < 200; i++) {
        const args = randomBytes(i % 150);
        const r = await c.call(
          i % 2 === 0 ? PROG_NFS : PROG_MOUNT,
          3,
          i % 2 === 0 ? 1 + (i % 21) : 1 + (i % 5),
          (w) => w.writer.buf(args, args.length),
        );
        expect(r.accepted).toBe(true);
        expect([AcceptStat.SUCCESS, AcceptStat.GARBAGE_ARGS]).toContain(r.acceptStat);
      }
      const l = await c.nfs<m.Nfsv3LookupResponse>(
        NfsProc.LOOKUP,
        new m.Nfsv3LookupRequest(dirop(root, 'data.bin')),
      );
      const good = l.resok!.object.data;
      for (let i = 0; i < good.length; i++) {
        const forged = Uint8Array.from(good);
        forged[i]! ^= 0x80;
        const r = await c.nfs<m.Nfsv3ReadResponse>(NfsProc.READ, new m.Nfsv3ReadRequest(fh(forged), 0n, 16));
        // Bytes 8..15 name the metadata database's incarnation: another one's handles are stale.
        expect(r.status).toBe(i >= 8 && i < 16 ? Nfs3Stat.STALE : Nfs3Stat.BADHANDLE);
      }
      for (const len of [0, 1, 43, 45, 64, 65, 1000]) {
        const r = await c.call(PROG_NFS, 3, NfsProc.GETATTR, (w) =>
          w.xdr.writeVarlenOpaque(randomBytes(len)),
        );
        expect(r.accepted).toBe(true);
      }
      // Our libnfs client is served normally afterwards.
      const ok = await run(client, [srv.url('/share'), 'stat', '/data.bin']);
      expect(ok.stdout).toContain(`size=${content.length}`);
    } finally {
      stop = true;
      await reader;
    }
    expect(reads).toBeGreaterThan(0);
  });
});
