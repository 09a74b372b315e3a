/**
 * A fake systemd notification socket (what systemd passes as NOTIFY_SOCKET to a Type=notify
 * service): a unix datagram socket bound by a small python3 process that records every message
 * with the sender's pid from SCM_CREDENTIALS (as systemd uses it to attribute the message).
 * The BARRIER=1 messages systemd-notify sends after each notification are not recorded.
 *
 *   const n = await startNotifySocket(dir);
 *   spawn(..., { env: { NOTIFY_SOCKET: n.path } });
 *   const ready = await n.waitFor((m) => m.fields.READY === '1');
 *   await n.close();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

export interface NotifyMessage {
  /** Sender pid from SCM_CREDENTIALS (0 when none came). */
  pid: number;
  text: string;
  fields: Record<string, string>;
  at: number;
}

export interface NotifySocket {
  path: string;
  messages: NotifyMessage[];
  waitFor(pred: (m: NotifyMessage) => boolean, timeoutMs?: number): Promise<NotifyMessage>;
  close(): Promise<void>;
}

const RECEIVER = `
import json, os, socket, struct, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({"bound": True}), flush=True)
while True:
    msg, anc, flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(12))
    pid = 0
    for lvl, typ, data in anc:
        if lvl == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", data[:12])[0]
    print(json.dumps({"pid": pid, "text": msg.decode("utf-8", "replace")}), flush=True)
`;

export async function startNotifySocket(dir: string): Promise<NotifySocket> {
  const path = join(dir, 'notify.sock');
  const proc: ChildProcess = spawn('python3', ['-u', '-c', RECEIVER, path], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const messages: NotifyMessage[] = [];
  const waiters = new Set<() => void>();
  let buf = '';
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const bound = new Promise<void>((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`notify receiver exited (${code}): ${stderr}`)));
    proc.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const o = JSON.parse(line) as { bound?: boolean; pid?: number; text?: string };
        if (o.bound) {
          resolve();
          continue;
        }
        const text = o.text ?? '';
        // systemd-notify follows each message with a BARRIER=1 synchronisation message.
        if (text === 'BARRIER=1') continue;
        const fields: Record<string, string> = {};
        for (const l of text.split('\n')) {
          const eq = l.indexOf('=');
          if (eq > 0) fields[l.slice(0, eq)] = l.slice(eq + 1);
        }
        messages.push({ pid: o.pid ?? 0, text, fields, at: Date.now() });
        for (const w of waiters) w();
      }
    });
  });
  await bound;
  return {
    path,
    messages,
    waitFor(pred, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const m = messages.find(pred);
          if (m) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(m);
            return true;
          }
          return false;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `no matching notification in ${timeoutMs} ms; got ${JSON.stringify(messages.map((m) => m.text))}`,
            ),
          );
        }, timeoutMs);
        if (!check()) waiters.add(check);
      });
    },
    async close() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const gone = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await gone;
      }
    },
  };
}
