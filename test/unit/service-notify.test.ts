/**
 * Readiness notifications: sd_notify messages reach a (fake) NOTIFY_SOCKET with this process's
 * pid as the sender (so systemd attributes them to the main process), and the fstab helper's
 * readiness descriptor gets one line and is closed.
 */
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notifyFailed, notifyReady, notifyReloading, notifyStopping } from '../../src/daemon/notify.js';
import { startNotifySocket, type NotifySocket } from '../helpers/notify-socket.js';

let dir: string;
let sock: NotifySocket;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bg-svc-notify-'));
  sock = await startNotifySocket(dir);
});
afterAll(async () => {
  delete process.env.NOTIFY_SOCKET;
  await sock?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('systemd notifications', () => {
  it('READY, RELOADING and STOPPING arrive in order, sent as this process', async () => {
    process.env.NOTIFY_SOCKET = sock.path;
    await notifyReady('serving 1 share: a (/mnt/a)');
    await notifyReloading();
    await notifyReady('serving 2 shares');
    await notifyStopping();
    const stop = await sock.waitFor((m) => m.fields.STOPPING === '1', 10_000);
    expect(sock.messages.map((m) => Object.keys(m.fields)[0])).toEqual([
      'READY',
      'RELOADING',
      'READY',
      'STOPPING',
    ]);
    expect(sock.messages[0]?.fields).toEqual({ READY: '1', STATUS: 'serving 1 share: a (/mnt/a)' });
    for (const m of sock.messages) expect(m.pid).toBe(process.pid);
    expect(stop.fields.STATUS).toMatch(/stopping/);
  });

  it('without NOTIFY_SOCKET nothing is sent', async () => {
    delete process.env.NOTIFY_SOCKET;
    const before = sock.messages.length;
    await notifyReady('x');
    expect(sock.messages.length).toBe(before);
  });
});

describe('the fstab helper readiness descriptor', () => {
  it('gets READY=1 once and is closed', () => {
    const file = join(dir, 'ready');
    const fd = openSync(file, 'w');
    process.env.BUCKETGATE_READY_FD = String(fd);
    void notifyReady('up');
    expect(process.env.BUCKETGATE_READY_FD).toBeUndefined();
    expect(() => fstatSync(fd)).toThrow(/EBADF/);
    expect(readFileSync(file, 'utf8')).toBe('READY=1\n');
  });

  it('gets ERROR=<message> (one line) when the start fails', () => {
    const file = join(dir, 'err');
    const fd = openSync(file, 'w');
    process.env.BUCKETGATE_READY_FD = String(fd);
    notifyFailed('bucket "x" does not exist\nat http://127.0.0.1:1');
    expect(readFileSync(file, 'utf8')).toBe('ERROR=bucket "x" does not exist at http://127.0.0.1:1\n');
    expect(() => closeSync(fd)).toThrow(/EBADF/);
  });
});
