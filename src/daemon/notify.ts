/**
 * Tell whoever started the daemon that it is ready (every mount and export is up), reloading,
 * or stopping:
 *
 * - systemd (`Type=notify`): when NOTIFY_SOCKET is set, the sd_notify(3) messages `READY=1`,
 *   `RELOADING=1`, `STOPPING=1` and `STATUS=...` go to that unix datagram socket. Node cannot send
 *   datagrams on unix sockets, so a short-lived helper sends them: `systemd-notify` (Debian
 *   package `systemd`), which as root sends with its parent's pid — ours — in SCM_CREDENTIALS, so
 *   systemd attributes the message to the main process (NotifyAccess=main works; no race with
 *   the helper's exit). Without systemd-notify, python3 does the same. Without either, a warning.
 * - the fstab mount helper (`mount.fuse.bucketgate`): when BUCKETGATE_READY_FD is set, one line
 *   `READY=1` or `ERROR=<message>` is written to that descriptor, which is then closed.
 *
 * Messages are sent in order; failures are logged, never thrown.
 */
import { execFile } from 'node:child_process';
import { closeSync, writeSync } from 'node:fs';
import { getLogger } from '../log/index.js';

const log = getLogger({ component: 'notify' });
const TIMEOUT_MS = 5000;

const PYTHON_SENDER = `
import os, socket, struct, sys
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\\0" + addr[1:]
msg = sys.argv[1].encode()
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
cred = struct.pack("iII", os.getppid(), os.getuid(), os.getgid())
try:
    s.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, cred)], 0, addr)
except PermissionError:
    s.sendto(msg, addr)
`;

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: TIMEOUT_MS, env: process.env }, (err, _stdout, stderr) => {
      if (err) reject(Object.assign(err, { stderr }));
      else resolve();
    });
  });
}

let chain: Promise<void> = Promise.resolve();
let senderMissing = false;

/** Send sd_notify assignments (e.g. ['READY=1', 'STATUS=serving 2 shares']) when under systemd. */
export function sdNotify(assignments: string[]): Promise<void> {
  if (process.env.NOTIFY_SOCKET === undefined || process.env.NOTIFY_SOCKET === '' || senderMissing) {
    return chain;
  }
  const clean = assignments.map((a) => a.replace(/\n/g, ' '));
  chain = chain.then(async () => {
    try {
      await run('systemd-notify', clean);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        log.warn('systemd-notify failed', { error: e, stderr: (e as { stderr?: string }).stderr?.trim() });
        return;
      }
    }
    try {
      await run('python3', ['-c', PYTHON_SENDER, clean.join('\n')]);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        senderMissing = true;
        log.warn(
          'NOTIFY_SOCKET is set but neither systemd-notify nor python3 is installed: systemd is not told that the daemon is ready (install the "systemd" package, or use Type=simple)',
        );
      } else {
        log.warn('notifying systemd failed', { error: e });
      }
    }
  });
  return chain;
}

/** Write one line to the mount helper's readiness descriptor, then close it. */
function readyFd(line: string): void {
  const v = process.env.BUCKETGATE_READY_FD;
  if (v === undefined) return;
  delete process.env.BUCKETGATE_READY_FD;
  const fd = Number(v);
  if (!Number.isInteger(fd) || fd < 3) return;
  try {
    writeSync(fd, `${line.replace(/\n/g, ' ')}\n`);
  } catch {
    // The helper is gone: nobody to tell.
  }
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/** Every mount and export is up. */
export function notifyReady(status: string): Promise<void> {
  readyFd('READY=1');
  return sdNotify(['READY=1', `STATUS=${status}`]);
}

export function notifyReloading(): Promise<void> {
  return sdNotify(['RELOADING=1', 'STATUS=reloading the configuration']);
}

export function notifyStatus(status: string): Promise<void> {
  return sdNotify([`STATUS=${status}`]);
}

export function notifyStopping(): Promise<void> {
  return sdNotify(['STOPPING=1', 'STATUS=stopping: finishing requests in flight']);
}

/** The daemon failed to start: the mount helper prints this message. */
export function notifyFailed(message: string): void {
  readyFd(`ERROR=${message}`);
}
