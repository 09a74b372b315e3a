/**
 * RPC layer of the NFS server: reply codes, credentials, pipelining with out-of-order replies,
 * back-pressure, the duplicate-request cache, multi-fragment calls, malformed input, the export
 * policy at the RPC and procedure level, and the portmapper.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages.js';
import { Nfsv3CreateHow, Nfsv3SattrGuard } from '@jsonjoy.com/json-pack/lib/nfs/v3/structs.js';
import { XdrDecoder } from '@jsonjoy.com/json-pack/lib/xdr/XdrDecoder.js';
import {
  AcceptStat,
  Access3,
  AuthStat,
  MountStat,
  Nfs3Stat,
  NfsProc,
  PROG_MOUNT,
  PROG_NFS,
  PROG_PORTMAP,
  StableHow,
} from '../../src/adapters/nfs/constants.js';
import { rmHeader } from '../../src/adapters/nfs/record.js';
import { ioAddon, type IoAddon } from '../../src/adapters/nfs/sendfile.js';
import { FakeVfs } from '../helpers/nfs-fake-vfs.js';
import { dirop, fh, sattr, startNfs, testExport, type Running } from '../helpers/nfs-fixture.js';
import { RpcTestClient } from '../helpers/nfs-rpc-client.js';

const MiB = 1024 * 1024;

function frame(payload: Uint8Array, sizes?: number[]): Buffer {
  const parts: Buffer[] = [];
  const list = sizes ?? [payload.length];
  let off = 0;
  list.forEach((s, i) => {
    const h = Buffer.alloc(4);
    h.writeUInt32BE(rmHeader(s, i === list.length - 1));
    parts.push(h, Buffer.from(payload.subarray(off, off + s)));
    off += s;
  });
  return Buffer.concat(parts);
}

/** Mount `share` and look up `name` in its root: the root's and the file's handles. */
async function lookupIn(
  cl: RpcTestClient,
  share: string,
  name: string,
): Promise<{ root: Uint8Array; h: Uint8Array }> {
  const root = (await cl.mnt(share)).fh!;
  const l = await cl.nfs<m.Nfsv3LookupResponse>(NfsProc.LOOKUP, new m.Nfsv3LookupRequest(dirop(root, name)));
  return { root, h: l.resok!.object.data };
}

describe('RPC layer', () => {
  let vfs: FakeVfs;
  let run: Running;
  let c: RpcTestClient;
  let root: Uint8Array;
  let bigH: Uint8Array;

  beforeAll(async () => {
    vfs = new FakeVfs();
    vfs.putFile(1, 'big.bin', randomBytes(2 * MiB));
    run = await startNfs([testExport('share', vfs)], { maxInflight: 8 });
    c = await run.client();
    ({ root, h: bigH } = await lookupIn(c, '/share', 'big.bin'));
  });

  afterAll(async () => {
    await run.stop();
  });

  it('answers PROG_UNAVAIL, PROG_MISMATCH, PROC_UNAVAIL, GARBAGE_ARGS, RPC_MISMATCH', async () => {
    expect((await c.call(100099, 1, 0)).acceptStat).toBe(AcceptStat.PROG_UNAVAIL);
    const mis = await c.call(PROG_NFS, 4, 0);
    expect(mis.acceptStat).toBe(AcceptStat.PROG_MISMATCH);
    expect(mis.mismatch).toEqual({ low: 3, high: 3 });
    expect((await c.call(PROG_MOUNT, 1, 0)).acceptStat).toBe(AcceptStat.PROG_MISMATCH);
    expect((await c.call(PROG_NFS, 3, 22)).acceptStat).toBe(AcceptStat.PROC_UNAVAIL);
    expect((await c.call(PROG_MOUNT, 3, 6)).acceptStat).toBe(AcceptStat.PROC_UNAVAIL);
    // GETATTR whose handle length says 64 but carries 2 bytes.
    const garbage = await c.call(PROG_NFS, 3, NfsProc.GETATTR, (w) => {
      w.xdr.writeUnsignedInt(64);
      w.xdr.writeUnsignedInt(0);
    });
    expect(garbage.acceptStat).toBe(AcceptStat.GARBAGE_ARGS);
    // WRITE announcing more data than it carries.
    const shortWrite = await c.call(PROG_NFS, 3, NfsProc.WRITE, (w) => {
      w.xdr.writeVarlenOpaque(bigH);
      w.xdr.writeUnsignedHyper(0n);
      w.xdr.writeUnsignedInt(100);
      w.xdr.writeUnsignedInt(0);
      w.xdr.writeUnsignedInt(100);
      w.xdr.writeUnsignedInt(0);
    });
    expect(shortWrite.acceptStat).toBe(AcceptStat.GARBAGE_ARGS);
    expect((await c.call(PROG_NFS, 3, NfsProc.LOOKUP)).acceptStat).toBe(AcceptStat.GARBAGE_ARGS);
    expect((await c.call(PROG_MOUNT, 3, 1)).acceptStat).toBe(AcceptStat.GARBAGE_ARGS);
    // rpcvers 3
    const xid = c.newXid();
    const p = c.expect(xid);
    const rec = c.encodeCall(xid, PROG_NFS, 3, 0, () => undefined);
    new DataView(rec.buffer, rec.byteOffset).setUint32(12, 3);
    c.sendRaw(rec);
    const r = await p;
    expect(r.accepted).toBe(false);
    expect(r.rejectStat).toBe(0);
    expect(r.mismatch).toEqual({ low: 2, high: 2 });
  });

  it('AUTH_SYS is parsed, AUTH_NONE is anonymous, bad credentials are refused', async () => {
    const cr = await c.nfs<m.Nfsv3CreateResponse>(
      NfsProc.CREATE,
      new m.Nfsv3CreateRequest(dirop(root, 'by-1234'), new Nfsv3CreateHow(0, sattr({ mode: 0o644 }))),
      { cred: { uid: 1234, gid: 5678, gids: [1, 2] } },
    );
    expect(cr.resok!.objAttributes.attributes).toMatchObject({ uid: 1234, gid: 5678 });
    const anon = await c.nfs<m.Nfsv3CreateResponse>(
      NfsProc.CREATE,
      new m.Nfsv3CreateRequest(dirop(root, 'by-anon'), new Nfsv3CreateHow(0, sattr())),
      { cred: 'none' },
    );
    expect(anon.resok!.objAttributes.attributes).toMatchObject({ uid: 65534, gid: 65534 });
    const badBody = await c.call(PROG_NFS, 3, 0, () => undefined, {
      cred: { flavor: 1, body: new Uint8Array([0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]) },
    });
    expect(badBody).toMatchObject({ accepted: false, rejectStat: 1, authStat: AuthStat.AUTH_BADCRED });
    const tooManyGroups = await c.call(PROG_NFS, 3, 0, () => undefined, {
      cred: { uid: 1, gid: 1, gids: new Array(17).fill(1) },
    });
    expect(tooManyGroups.authStat).toBe(AuthStat.AUTH_BADCRED);
    const gss = await c.call(PROG_NFS, 3, 0, () => undefined, {
      cred: { flavor: 6, body: new Uint8Array(8) },
    });
    expect(gss.authStat).toBe(AuthStat.AUTH_BADCRED);
  });

  it('pipelines calls and replies out of order', async () => {
    vfs.readDelayMs = 200;
    try {
      const slowXid = c.newXid();
      const fastXid = c.newXid();
      const slow = c.expect(slowXid);
      const fast = c.expect(fastXid);
      c.sendRaw(
        Buffer.concat([
          c.encodeCall(slowXid, PROG_NFS, 3, NfsProc.READ, (w) =>
            w.nfs.writeMessage(new m.Nfsv3ReadRequest(fh(bigH), 0n, 10), NfsProc.READ, true),
          ),
          c.encodeCall(fastXid, PROG_NFS, 3, NfsProc.GETATTR, (w) =>
            w.nfs.writeMessage(new m.Nfsv3GetattrRequest(fh(root)), NfsProc.GETATTR, true),
          ),
        ]),
      );
      await Promise.all([slow, fast]);
      const order = c.arrivals.slice(-2);
      expect(order).toEqual([fastXid, slowXid]);
    } finally {
      vfs.readDelayMs = 0;
    }
  });

  it('two consecutive 1 MiB READ replies on one connection are intact', async () => {
    const all = vfs.content(vfs.resolvePath('big.bin').ino);
    const [a, b] = await Promise.all([
      c.nfs<m.Nfsv3ReadResponse>(NfsProc.READ, new m.Nfsv3ReadRequest(fh(bigH), 0n, MiB)),
      c.nfs<m.Nfsv3ReadResponse>(NfsProc.READ, new m.Nfsv3ReadRequest(fh(bigH), BigInt(MiB), MiB)),
    ]);
    expect(Buffer.from(a.resok!.data).equals(all.subarray(0, MiB))).toBe(true);
    expect(Buffer.from(b.resok!.data).equals(all.subarray(MiB))).toBe(true);
    expect(b.resok!.eof).toBe(true);
  });

  it('READ replies stay intact when the client reads slowly (pooled read buffers)', async () => {
    // 40 pipelined 256 KiB READs at different offsets while the client does not read: the
    // server's socket buffer fills, so replies wait in it; a read buffer reused before its
    // reply was written would show up as another offset's bytes.
    const all = vfs.content(vfs.resolvePath('big.bin').ino);
    const size = 256 * 1024;
    const offsets = Array.from({ length: 40 }, (_, i) => ((i * 7) % 8) * size);
    c.pauseReading();
    const replies = offsets.map((o) =>
      c.nfs<m.Nfsv3ReadResponse>(NfsProc.READ, new m.Nfsv3ReadRequest(fh(bigH), BigInt(o), size)),
    );
    await new Promise((r) => setTimeout(r, 300));
    c.resumeReading();
    const got = await Promise.all(replies);
    got.forEach((r, i) => {
      const o = offsets[i]!;
      expect(Buffer.from(r.resok!.data).equals(all.subarray(o, o + size))).toBe(true);
    });
  });

  it('accepts calls split into several fragments', async () => {
    const xid = c.newXid();
    const p = c.expect(xid);
    const rec = c.encodeCall(xid, PROG_NFS, 3, NfsProc.GETATTR, (w) =>
      w.nfs.writeMessage(new m.Nfsv3GetattrRequest(fh(root)), NfsProc.GETATTR, true),
    );
    const payload = rec.subarray(4);
    c.sendRaw(frame(payload, [5, 0, 11, payload.length - 16]));
    const r = await p;
    expect(r.acceptStat).toBe(0);
  });

  it('applies back-pressure to a client that does not read its replies', async () => {
    const slow = await run.client();
    // Pause reading on the client side: the server's socket buffer fills up.
    const sock = (slow as unknown as { socket: import('node:net').Socket }).socket;
    sock.pause();
    const n = 64;
    const before = vfs.counters.read;
    const xids: number[] = [];
    const calls: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const xid = slow.newXid();
      xids.push(xid);
      calls.push(
        Buffer.from(
          slow.encodeCall(xid, PROG_NFS, 3, NfsProc.READ, (w) =>
            w.nfs.writeMessage(new m.Nfsv3ReadRequest(fh(bigH), 0n, MiB), NfsProc.READ, true),
          ),
        ),
      );
    }
    const replies = xids.map((x) => slow.expect(x, 30_000));
    slow.sendRaw(Buffer.concat(calls));
    await new Promise((r) => setTimeout(r, 500));
    const served = vfs.counters.read - before;
    expect(served).toBeLessThan(n);
    // Another client is still served meanwhile.
    const ga = await c.nfs<m.Nfsv3GetattrResponse>(NfsProc.GETATTR, new m.Nfsv3GetattrRequest(fh(root)));
    expect(ga.status).toBe(0);
    sock.resume();
    const all = await Promise.all(replies);
    expect(all.every((r) => r.acceptStat === 0)).toBe(true);
    expect(vfs.counters.read - before).toBe(n);
  });

  it('replays non-idempotent calls from the duplicate-request cache, also after a reconnect', async () => {
    await c.nfs(NfsProc.CREATE, new m.Nfsv3CreateRequest(dirop(root, 'dup'), new Nfsv3CreateHow(0, sattr())));
    const xid = c.newXid();
    const req = new m.Nfsv3RemoveRequest(dirop(root, 'dup'));
    const first = await c.nfs<m.Nfsv3RemoveResponse>(NfsProc.REMOVE, req, { xid });
    expect(first.status).toBe(0);
    const again = await c.nfs<m.Nfsv3RemoveResponse>(NfsProc.REMOVE, req, { xid });
    expect(again.status).toBe(0);
    const other = await run.client();
    const afterReconnect = await other.nfs<m.Nfsv3RemoveResponse>(NfsProc.REMOVE, req, { xid });
    expect(afterReconnect.status).toBe(0);
    // A new xid is a new call.
    const fresh = await c.nfs<m.Nfsv3RemoveResponse>(NfsProc.REMOVE, req);
    expect(fresh.status).toBe(Nfs3Stat.NOENT);
  });

  it('a retransmission on a new connection while the original still runs gets the original reply', async () => {
    await c.nfs(
      NfsProc.CREATE,
      new m.Nfsv3CreateRequest(dirop(root, 'slow-rm'), new Nfsv3CreateHow(0, sattr())),
    );
    vfs.unlinkDelayMs = 300;
    try {
      const first = await run.client();
      const xid = first.newXid();
      const req = new m.Nfsv3RemoveRequest(dirop(root, 'slow-rm'));
      first.sendRaw(
        first.encodeCall(xid, PROG_NFS, 3, NfsProc.REMOVE, (w) =>
          w.nfs.writeMessage(req, NfsProc.REMOVE, true),
        ),
      );
      await new Promise((r) => setTimeout(r, 50));
      await first.close(); // the client lost its connection and reconnects
      const second = await run.client();
      const again = await second.nfs<m.Nfsv3RemoveResponse>(NfsProc.REMOVE, req, { xid });
      expect(again.status).toBe(0);
    } finally {
      vfs.unlinkDelayMs = 0;
    }
  });

  describe('malformed input never takes the server down', () => {
    async function expectClosed(bytes: Uint8Array, thenEnd = false): Promise<void> {
      const bad = await run.client();
      bad.sendRaw(bytes);
      if (thenEnd) (bad as unknown as { socket: import('node:net').Socket }).socket.end();
      await Promise.race([
        bad.closed,
        new Promise((_, rej) => setTimeout(() => rej(new Error('not closed')), 5000)),
      ]);
      const ok = await c.nfs<m.Nfsv3GetattrResponse>(NfsProc.GETATTR, new m.Nfsv3GetattrRequest(fh(root)));
      expect(ok.status).toBe(0);
    }

    it('absurd record lengths close the connection at once', async () => {
      await expectClosed(Buffer.from([0xff, 0xff, 0xff, 0xff]));
      await expectClosed(Buffer.from([0x7f, 0xff, 0xff, 0xf0, 1, 2, 3]));
      // Non-final fragments adding up past the cap (4 MiB + 64 KiB).
      const h1 = Buffer.alloc(4);
      h1.writeUInt32BE(rmHeader(3 * MiB, false));
      const h2 = Buffer.alloc(4);
      h2.writeUInt32BE(rmHeader(2 * MiB, false));
      await expectClosed(Buffer.concat([h1, Buffer.alloc(3 * MiB), h2]));
    });

    it('random bytes, empty records, undecodable headers and replies close the connection', async () => {
      for (let i = 0; i < 5; i++) {
        const junk = randomBytes(200 + i * 50);
        junk[0] = 0x80;
        junk[1] = 0;
        junk.writeUInt16BE(196 + i * 50, 2);
        await expectClosed(junk);
      }
      await expectClosed(Buffer.from([0x80, 0, 0, 0]));
      await expectClosed(frame(Buffer.from([0, 0, 0, 1, 0, 0, 0, 7])));
      await expectClosed(frame(Buffer.from([0, 0, 0, 1, 0, 0, 0, 0, 0, 0])));
      // An auth body longer than RFC 5531 allows.
      const w = Buffer.alloc(40);
      w.writeUInt32BE(1, 0);
      w.writeUInt32BE(0, 4);
      w.writeUInt32BE(2, 8);
      w.writeUInt32BE(PROG_NFS, 12);
      w.writeUInt32BE(3, 16);
      w.writeUInt32BE(0, 20);
      w.writeUInt32BE(1, 24);
      w.writeUInt32BE(100000, 28);
      await expectClosed(frame(w));
    });

    it('a truncated record followed by end of stream is dropped', async () => {
      await expectClosed(Buffer.from([0x80, 0, 1, 0, 1, 2, 3]), true);
    });

    it('random arguments answer GARBAGE_ARGS or an NFS error and the connection stays usable', async () => {
      const fuzz = await run.client();
      for (let i = 0; i < 300; i++) {
        const proc = 1 + (i % 21);
        const args = randomBytes(i % 97);
        const r = await fuzz.call(PROG_NFS, 3, proc, (w) => w.writer.buf(args, args.length));
        expect(r.accepted).toBe(true);
        expect([AcceptStat.SUCCESS, AcceptStat.GARBAGE_ARGS]).toContain(r.acceptStat);
      }
      const ok = await fuzz.nfs<m.Nfsv3GetattrResponse>(NfsProc.GETATTR, new m.Nfsv3GetattrRequest(fh(root)));
      expect(ok.status).toBe(0);
    });
  });
});

describe('READ replies sent from a file with sendfile(2)', () => {
  const io = ioAddon();
  let dir: string;
  let vfs: FakeVfs;
  let run: Running;
  let c: RpcTestClient;
  let bigH: Uint8Array;
  let all: Buffer;
  /** Calls of the addon's sendFile, and those that stopped early (socket full). */
  const calls = { total: 0, partial: 0, bytes: 0 };

  beforeAll(async () => {
    if (io === undefined) throw new Error('bucketgate_io addon not built (npm ci builds it)');
    dir = await mkdtemp(join(tmpdir(), 'bg-nfs-sendfile-'));
    vfs = new FakeVfs();
    vfs.rangeDir = dir;
    // The last 1 MiB READ gets 64 KiB + 3 bytes: sent from the file too, with one byte of XDR padding.
    all = randomBytes(4 * MiB + 65539);
    vfs.putFile(1, 'big.bin', all);
    const watched: IoAddon = {
      sendFile(sock, head, fd, offset, length, tail, cb) {
        calls.total++;
        io.sendFile(sock, head, fd, offset, length, tail, (errno, sent, eof) => {
          if (sent < head.length + length + tail) calls.partial++;
          calls.bytes += Math.max(0, Math.min(length, sent - head.length));
          cb(errno, sent, eof);
        });
      },
    };
    run = await startNfs([testExport('share', vfs)], { maxInflight: 16, io: watched });
    c = await run.client();
    bigH = (await lookupIn(c, '/share', 'big.bin')).h;
  });

  afterAll(async () => {
    await run.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const read = (cl: RpcTestClient, off: number, count: number): Promise<m.Nfsv3ReadResponse> =>
    cl.nfs<m.Nfsv3ReadResponse>(NfsProc.READ, new m.Nfsv3ReadRequest(fh(bigH), BigInt(off), count));

  it('sequential 1 MiB READs: the bytes come from the file, the odd tail is padded', async () => {
    const before = { ...calls };
    for (let off = 0; off < all.length; off += MiB) {
      const r = await read(c, off, MiB);
      expect(r.status).toBe(0);
      const want = all.subarray(off, Math.min(all.length, off + MiB));
      expect(Buffer.from(r.resok!.data).equals(want)).toBe(true);
      expect(r.resok!.eof).toBe(off + MiB >= all.length);
    }
    expect(calls.total - before.total).toBe(5);
    // The client may see the last bytes before the server's thread-pool callback has run.
    for (let i = 0; i < 50 && calls.bytes - before.bytes < all.length; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(calls.bytes - before.bytes).toBe(all.length);
    // Small READs are copied, not sent from the file.
    const small = await read(c, 100, 1000);
    expect(Buffer.from(small.resok!.data).equals(all.subarray(100, 1100))).toBe(true);
    expect(calls.total - before.total).toBe(5);
    expect(vfs.lent.released).toBe(vfs.lent.lent);
  });

  it('a client that does not read: sends stop at a full socket and the rest is written; order kept', async () => {
    const before = { ...calls };
    const slow = await run.client();
    slow.pauseReading();
    // 24 pipelined 1 MiB READs at scattered offsets, with GETATTRs between them.
    const offsets = Array.from({ length: 24 }, (_, i) => ((i * 5) % 4) * MiB + (i % 3) * 4096);
    const reads = offsets.map((o) => read(slow, o, MiB));
    const attrs = offsets.map(() =>
      slow.nfs<m.Nfsv3GetattrResponse>(NfsProc.GETATTR, new m.Nfsv3GetattrRequest(fh(bigH))),
    );
    await new Promise((r) => setTimeout(r, 300));
    slow.resumeReading();
    const got = await Promise.all(reads);
    got.forEach((r, i) => {
      const o = offsets[i]!;
      expect(Buffer.from(r.resok!.data).equals(all.subarray(o, Math.min(all.length, o + MiB)))).toBe(true);
    });
    expect((await Promise.all(attrs)).every((a) => a.status === 0)).toBe(true);
    expect(calls.partial - before.partial).toBeGreaterThan(0);
    // After a full socket, a 64 KiB slice goes through the event loop and sendfile resumes:
    // most of the data is still sent from the file.
    const sentBytes = got.reduce((n, r) => n + r.resok!.data.length, 0);
    for (let i = 0; i < 50 && calls.bytes - before.bytes < sentBytes / 2; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(calls.bytes - before.bytes).toBeGreaterThan(sentBytes / 2);
    await new Promise((r) => setTimeout(r, 50));
    expect(vfs.lent.released).toBe(vfs.lent.lent);
  });

  it('after a full socket a slice is written and sendfile resumes (most bytes still sent from the file)', async () => {
    // The addon is made to stop after 256 KiB per call, as it does when the socket is full.
    const capped = { bytes: 0, calls: 0 };
    const srv = await startNfs([testExport('share', vfs)], {
      io: {
        sendFile(sock, head, fd, offset, length, tail, cb) {
          capped.calls++;
          const cut = length > 256 * 1024;
          io!.sendFile(
            sock,
            head,
            fd,
            offset,
            cut ? 256 * 1024 : length,
            cut ? 0 : tail,
            (errno, sent, eof) => {
              capped.bytes += Math.max(0, sent - head.length);
              cb(errno, sent, eof);
            },
          );
        },
      },
    });
    try {
      const cl = await srv.client();
      const { h } = await lookupIn(cl, '/share', 'big.bin');
      for (let off = 0; off < 4 * MiB; off += MiB) {
        const r = await cl.nfs<m.Nfsv3ReadResponse>(
          NfsProc.READ,
          new m.Nfsv3ReadRequest(fh(h), BigInt(off), MiB),
        );
        expect(Buffer.from(r.resok!.data).equals(all.subarray(off, off + MiB))).toBe(true);
      }
      for (let i = 0; i < 50 && capped.bytes < 3 * MiB; i++) await new Promise((r) => setTimeout(r, 10));
      // Per 1 MiB: 256 KiB by sendfile, a 64 KiB slice written, and so on: 4 of every 5 bytes.
      expect(capped.calls).toBeGreaterThanOrEqual(16);
      expect(capped.bytes).toBeGreaterThan(3 * MiB);
    } finally {
      await srv.stop();
    }
  });

  it('ranges in the page cache are sent at once (sendFileNow); others go through the thread pool', async () => {
    const seen = { now: 0, nowSent: 0, pool: 0, uncached: false };
    const srv = await startNfs([testExport('share', vfs)], {
      io: {
        sendFile(sock, head, fd, offset, length, tail, cb) {
          seen.pool++;
          io!.sendFile(sock, head, fd, offset, length, tail, cb);
        },
        sendFileNow(sock, head, fd, offset, length, tail) {
          // The test's file is in the page cache; `uncached` makes it look as if it were not.
          const r = seen.uncached ? undefined : io!.sendFileNow!(sock, head, fd, offset, length, tail);
          if (r !== undefined) {
            seen.now++;
            seen.nowSent += r[1];
          }
          return r;
        },
      },
    });
    try {
      const cl = await srv.client();
      const { h } = await lookupIn(cl, '/share', 'big.bin');
      const readAll = async (): Promise<void> => {
        for (let off = 0; off < all.length; off += MiB) {
          const r = await cl.nfs<m.Nfsv3ReadResponse>(
            NfsProc.READ,
            new m.Nfsv3ReadRequest(fh(h), BigInt(off), MiB),
          );
          const want = all.subarray(off, Math.min(all.length, off + MiB));
          expect(Buffer.from(r.resok!.data).equals(want)).toBe(true);
        }
      };
      await readAll();
      expect(seen.now).toBe(5);
      expect(seen.pool).toBe(0);
      expect(seen.nowSent).toBeGreaterThan(all.length);
      seen.uncached = true;
      await readAll();
      expect(seen.now).toBe(5);
      expect(seen.pool).toBe(5);
      await new Promise((r) => setTimeout(r, 50));
      expect(vfs.lent.released).toBe(vfs.lent.lent);
    } finally {
      await srv.stop();
    }
  });

  it('a file cut short while its range is sent closes the connection; the server goes on', async () => {
    const cl = await run.client();
    vfs.truncateAfterLend = true;
    try {
      await expect(read(cl, MiB, MiB)).rejects.toThrow(/closed/);
      await cl.closed;
    } finally {
      vfs.truncateAfterLend = false;
    }
    const r = await read(c, MiB, MiB);
    expect(Buffer.from(r.resok!.data).equals(all.subarray(MiB, 2 * MiB))).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(vfs.lent.released).toBe(vfs.lent.lent);
  });

  it('ranges waiting behind a send are released when the client goes away', async () => {
    const cl = await run.client();
    cl.pauseReading();
    const pending = Array.from({ length: 16 }, (_, i) => read(cl, (i % 4) * MiB, MiB).catch(() => undefined));
    await new Promise((r) => setTimeout(r, 300));
    expect(vfs.lent.lent).toBeGreaterThan(vfs.lent.released);
    await cl.close();
    await Promise.all(pending);
    for (let i = 0; i < 50 && vfs.lent.released < vfs.lent.lent; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(vfs.lent.released).toBe(vfs.lent.lent);
  });
});

describe('export policy', () => {
  let vfs: FakeVfs;
  let ro: FakeVfs;
  let run: Running;
  let c: RpcTestClient;

  beforeAll(async () => {
    vfs = new FakeVfs();
    ro = new FakeVfs();
    ro.putFile(1, 'f', 'data');
    run = await startNfs([
      testExport('squash', vfs, { squash: 'root_squash', anonUid: 4321, anonGid: 8765 }, 1),
      testExport('ro', ro, { readOnly: true }, 2),
      testExport('closed', new FakeVfs(), { clients: ['10.9.0.0/16'], roClients: ['10.8.0.1'] }, 3),
      testExport('rocli', new FakeVfs(), { clients: [], roClients: ['127.0.0.0/8'] }, 4),
      testExport('secure', new FakeVfs(), { secure: true }, 5),
      testExport('allsquash', new FakeVfs(), { squash: 'all_squash', anonUid: 77, anonGid: 78 }, 6),
    ]);
    c = await run.client();
  });

  afterAll(async () => {
    await run.stop();
  });

  it('root_squash: root creates files owned by the anonymous ids; other users keep theirs', async () => {
    const root = (await c.mnt('/squash')).fh!;
    const mk = async (name: string, cred: { uid: number; gid: number }) =>
      (
        await c.nfs<m.Nfsv3CreateResponse>(
          NfsProc.CREATE,
          new m.Nfsv3CreateRequest(dirop(root, name), new Nfsv3CreateHow(0, sattr())),
          { cred },
        )
      ).resok!.objAttributes.attributes!;
    expect(await mk('by-root', { uid: 0, gid: 0 })).toMatchObject({ uid: 4321, gid: 8765 });
    expect(await mk('by-user', { uid: 1000, gid: 100 })).toMatchObject({ uid: 1000, gid: 100 });
    const all = (await c.mnt('/allsquash')).fh!;
    const cr = await c.nfs<m.Nfsv3CreateResponse>(
      NfsProc.CREATE,
      new m.Nfsv3CreateRequest(dirop(all, 'x'), new Nfsv3CreateHow(0, sattr())),
      {
        cred: { uid: 1000, gid: 100 },
      },
    );
    expect(cr.resok!.objAttributes.attributes).toMatchObject({ uid: 77, gid: 78 });
  });

  it('read-only export: ROFS on every modifying procedure, ACCESS without write bits', async () => {
    const root = (await c.mnt('/ro')).fh!;
    const f = (await c.nfs<m.Nfsv3LookupResponse>(NfsProc.LOOKUP, new m.Nfsv3LookupRequest(dirop(root, 'f'))))
      .resok!.object.data;
    const st = async (proc: number, req: m.Nfsv3Request) => (await c.nfs<m.Nfsv3Response>(proc, req)).status;
    expect(
      await st(
        NfsProc.SETATTR,
        new m.Nfsv3SetattrRequest(fh(f), sattr({ mode: 0o600 }), new Nfsv3SattrGuard(false)),
      ),
    ).toBe(Nfs3Stat.ROFS);
    expect(
      await st(NfsProc.WRITE, new m.Nfsv3WriteRequest(fh(f), 0n, 1, StableHow.FILE_SYNC, Buffer.from('x'))),
    ).toBe(Nfs3Stat.ROFS);
    expect(
      await st(NfsProc.CREATE, new m.Nfsv3CreateRequest(dirop(root, 'n'), new Nfsv3CreateHow(0, sattr()))),
    ).toBe(Nfs3Stat.ROFS);
    expect(await st(NfsProc.MKDIR, new m.Nfsv3MkdirRequest(dirop(root, 'd'), sattr()))).toBe(Nfs3Stat.ROFS);
    expect(await st(NfsProc.SYMLINK, new m.Nfsv3SymlinkRequest(dirop(root, 's'), sattr(), 't'))).toBe(
      Nfs3Stat.ROFS,
    );
    expect(await st(NfsProc.REMOVE, new m.Nfsv3RemoveRequest(dirop(root, 'f')))).toBe(Nfs3Stat.ROFS);
    expect(await st(NfsProc.RMDIR, new m.Nfsv3RmdirRequest(dirop(root, 'f')))).toBe(Nfs3Stat.ROFS);
    expect(await st(NfsProc.RENAME, new m.Nfsv3RenameRequest(dirop(root, 'f'), dirop(root, 'g')))).toBe(
      Nfs3Stat.ROFS,
    );
    expect(await st(NfsProc.LINK, new m.Nfsv3LinkRequest(fh(f), dirop(root, 'h')))).toBe(Nfs3Stat.ROFS);
    const acc = await c.nfs<m.Nfsv3AccessResponse>(NfsProc.ACCESS, new m.Nfsv3AccessRequest(fh(f), 0x3f));
    expect(acc.resok!.access).toBe(Access3.READ);
    const rd = await c.nfs<m.Nfsv3ReadResponse>(NfsProc.READ, new m.Nfsv3ReadRequest(fh(f), 0n, 10));
    expect(Buffer.from(rd.resok!.data).toString()).toBe('data');
    expect(ro.content(ro.resolvePath('f').ino).toString()).toBe('data');
  });

  it('read-only client list', async () => {
    const root = (await c.mnt('/rocli')).fh!;
    const cr = await c.nfs<m.Nfsv3CreateResponse>(
      NfsProc.CREATE,
      new m.Nfsv3CreateRequest(dirop(root, 'n'), new Nfsv3CreateHow(0, sattr())),
    );
    expect(cr.status).toBe(Nfs3Stat.ROFS);
  });

  it('a client outside the allow-lists: MNT3ERR_ACCES, and NFS3ERR_ACCES with a handle from elsewhere', async () => {
    expect((await c.mnt('/closed')).status).toBe(MountStat.ACCES);
    // Forge nothing: build a valid handle for export 3 the way the server would (same secret).
    const { encodeHandle } = await import('../../src/adapters/nfs/handle.js');
    const h = encodeHandle(
      { exportId: 3, dbGeneration: Buffer.from('db-generation-1'), secret: Buffer.alloc(32, 0x5a) },
      1,
      1,
    );
    const ga = await c.nfs<m.Nfsv3GetattrResponse>(NfsProc.GETATTR, new m.Nfsv3GetattrRequest(fh(h)));
    expect(ga.status).toBe(Nfs3Stat.ACCES);
  });

  it('secure export: unprivileged source ports get MNT3ERR_ACCES and AUTH_TOOWEAK', async () => {
    expect((await c.mnt('/secure')).status).toBe(MountStat.ACCES);
    const { encodeHandle } = await import('../../src/adapters/nfs/handle.js');
    const h = encodeHandle(
      { exportId: 5, dbGeneration: Buffer.from('db-generation-1'), secret: Buffer.alloc(32, 0x5a) },
      1,
      1,
    );
    const r = await c.call(PROG_NFS, 3, NfsProc.GETATTR, (w) =>
      w.nfs.writeMessage(new m.Nfsv3GetattrRequest(fh(h)), NfsProc.GETATTR, true),
    );
    expect(r).toMatchObject({ accepted: false, rejectStat: 1, authStat: AuthStat.AUTH_TOOWEAK });
    // From a privileged port (the tests run as root where binding one is allowed).
    let priv: RpcTestClient | undefined;
    for (let port = 600 + Math.floor(Math.random() * 300); port < 1024 && priv === undefined; port++) {
      priv = await run.client(port).catch(() => undefined);
    }
    if (priv === undefined) return; // cannot bind a privileged port here
    expect((await priv.mnt('/secure')).status).toBe(MountStat.OK);
    const ok = await priv.nfs<m.Nfsv3GetattrResponse>(NfsProc.GETATTR, new m.Nfsv3GetattrRequest(fh(h)));
    expect(ok.status).toBe(Nfs3Stat.OK);
  });

  it('handles do not cross exports', async () => {
    const sq = (await c.mnt('/squash')).fh!;
    const moved = Uint8Array.from(sq);
    new DataView(moved.buffer).setUint32(4, 2);
    const ga = await c.nfs<m.Nfsv3GetattrResponse>(NfsProc.GETATTR, new m.Nfsv3GetattrRequest(fh(moved)));
    expect(ga.status).toBe(Nfs3Stat.BADHANDLE);
  });
});

describe('portmapper', () => {
  let run: Running;

  beforeAll(async () => {
    run = await startNfs([testExport('share', new FakeVfs())], { portmap: { host: '127.0.0.1', port: 0 } });
  });

  afterAll(async () => {
    await run.stop();
  });

  it('answers GETPORT, DUMP (v2) and GETADDR (rpcbind v3/v4) for NFS and MOUNT', async () => {
    const pm = await RpcTestClient.connect(run.portmapPort!);
    try {
      const getport = async (prog: number, vers: number, prot = 6) => {
        const r = await pm.call(PROG_PORTMAP, 2, 3, (w) => {
          for (const v of [prog, vers, prot, 0]) w.xdr.writeUnsignedInt(v);
        });
        return new XdrDecoder(r.body).readUnsignedInt();
      };
      expect(await getport(PROG_NFS, 3)).toBe(run.port);
      expect(await getport(PROG_MOUNT, 3)).toBe(run.port);
      expect(await getport(PROG_NFS, 4)).toBe(0);
      expect(await getport(PROG_NFS, 3, 17)).toBe(0);
      const dump = await pm.call(PROG_PORTMAP, 2, 4);
      const d = new XdrDecoder(dump.body);
      const entries: number[][] = [];
      while (d.readBoolean())
        entries.push([d.readUnsignedInt(), d.readUnsignedInt(), d.readUnsignedInt(), d.readUnsignedInt()]);
      expect(entries).toContainEqual([PROG_NFS, 3, 6, run.port]);
      for (const vers of [3, 4]) {
        const r = await pm.call(PROG_PORTMAP, vers, 3, (w) => {
          w.xdr.writeUnsignedInt(PROG_MOUNT);
          w.xdr.writeUnsignedInt(3);
          w.xdr.writeStr('tcp');
          w.xdr.writeStr('');
          w.xdr.writeStr('');
        });
        expect(new XdrDecoder(r.body).readString()).toBe(`127.0.0.1.${run.port >> 8}.${run.port & 0xff}`);
      }
      const set = await pm.call(PROG_PORTMAP, 2, 1, (w) => {
        for (const v of [123, 1, 6, 999]) w.xdr.writeUnsignedInt(v);
      });
      expect(new XdrDecoder(set.body).readBoolean()).toBe(false);
      expect((await pm.call(PROG_PORTMAP, 2, 0)).acceptStat).toBe(0);
      expect((await pm.call(PROG_PORTMAP, 5, 0)).acceptStat).toBe(AcceptStat.PROG_MISMATCH);
      expect((await pm.call(PROG_NFS, 3, 0)).acceptStat).toBe(AcceptStat.PROG_UNAVAIL);
      expect((await pm.call(PROG_PORTMAP, 2, 3)).acceptStat).toBe(AcceptStat.GARBAGE_ARGS);
      expect((await pm.call(PROG_PORTMAP, 2, 5)).acceptStat).toBe(AcceptStat.PROC_UNAVAIL);
    } finally {
      await pm.close();
    }
  });
});
