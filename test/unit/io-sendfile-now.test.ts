/**
 * The bucketgate_io addon's sendFileNow: a READ reply whose file range is all in the page cache is
 * sent at once on the JavaScript thread; a range that would need the disk is left to the thread
 * pool (undefined); a full socket stops the send without waiting.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ioAddon, socketFd } from '../../src/adapters/nfs/sendfile.js';

const io = ioAddon();
const KiB = 1024;

describe('sendFileNow (cached ranges sent on the calling thread)', () => {
  let dir: string;
  let server: Server;
  let sender: Socket;
  let receiver: Socket;
  const got: Buffer[] = [];

  beforeAll(async () => {
    if (io?.sendFileNow === undefined) throw new Error('bucketgate_io addon not built (npm ci builds it)');
    dir = mkdtempSync(join(tmpdir(), 'bg-sendfile-now-'));
    server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const accepted = new Promise<Socket>((r) => server.once('connection', r));
    const port = (server.address() as { port: number }).port;
    receiver = connect(port, '127.0.0.1');
    receiver.on('data', (d: Buffer) => got.push(d));
    sender = await accepted;
  });

  afterAll(async () => {
    receiver.destroy();
    sender.destroy();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const received = async (n: number): Promise<Buffer> => {
    for (let i = 0; i < 200 && got.reduce((s, b) => s + b.length, 0) < n; i++)
      await new Promise((r) => setTimeout(r, 5));
    const all = Buffer.concat(got.splice(0));
    return all;
  };

  it('sends head, the cached range and the zero tail at once', async () => {
    const data = randomBytes(300 * KiB);
    const path = join(dir, 'cached.bin');
    writeFileSync(path, data); // just written: every page is in the page cache
    const fd = openSync(path, 'r');
    try {
      const head = Buffer.from('HEAD');
      const r = io!.sendFileNow!(socketFd(sender)!, head, fd, 4096 + 1, 100 * KiB, 3);
      expect(r).toEqual([0, 4 + 100 * KiB + 3, false]);
      const all = await received(4 + 100 * KiB + 3);
      expect(all.subarray(0, 4).toString()).toBe('HEAD');
      expect(all.subarray(4, 4 + 100 * KiB).equals(data.subarray(4097, 4097 + 100 * KiB))).toBe(true);
      expect([...all.subarray(4 + 100 * KiB)]).toEqual([0, 0, 0]);
    } finally {
      closeSync(fd);
    }
  });

  it('leaves a range that is not in the page cache to the thread pool (undefined, nothing sent)', async () => {
    const path = join(dir, 'uncached.bin');
    // Written with O_DIRECT: the file's data never enters the page cache.
    execFileSync('dd', ['if=/dev/urandom', `of=${path}`, 'bs=64K', 'count=4', 'oflag=direct', 'status=none']);
    const fd = openSync(path, 'r');
    try {
      expect(io!.sendFileNow!(socketFd(sender)!, Buffer.from('X'), fd, 0, 256 * KiB, 0)).toBeUndefined();
      await new Promise((r) => setTimeout(r, 50));
      expect(Buffer.concat(got.splice(0)).length).toBe(0);
    } finally {
      closeSync(fd);
    }
  });

  it('stops at a full socket without waiting and says how far it got', async () => {
    const data = randomBytes(16 * 1024 * KiB);
    const path = join(dir, 'big.bin');
    writeFileSync(path, data);
    const fd = openSync(path, 'r');
    receiver.pause();
    try {
      const t0 = process.hrtime.bigint();
      const r = io!.sendFileNow!(socketFd(sender)!, Buffer.alloc(0), fd, 0, data.length, 0);
      expect(Number(process.hrtime.bigint() - t0) / 1e6).toBeLessThan(2000);
      expect(r).toBeDefined();
      const [errno, sent, eof] = r!;
      expect(errno).toBe(0);
      expect(eof).toBe(false);
      expect(sent).toBeGreaterThan(0);
      expect(sent).toBeLessThan(data.length);
      receiver.resume();
      const all = await received(sent);
      expect(all.equals(data.subarray(0, sent))).toBe(true);
    } finally {
      receiver.resume();
      closeSync(fd);
    }
  });
});
