/**
 * Audit log of file operations (`auditLog: FILE` in the config file, `--audit-log FILE` for
 * `mount`): one JSON object per line, appended, like the AWS file gateway's audit logs:
 *
 *   {"time":"2025-01-02T03:04:05.678Z","share":"data","protocol":"fuse","op":"rename",
 *    "uid":1000,"gid":1000,"path":"/a.txt","newPath":"/b.txt","result":"ok"}
 *
 * Operations: create, mkdir, symlink, write-close (the close/release after writes, with the
 * bytes written), rename, unlink, rmdir, setattr (with the changes). `result` is `ok` or the
 * errno name (`EACCES`, ...): refused attempts are audited too. uid/gid are the caller's as the
 * gateway saw them (after NFS squashing). Paths are relative to the share root.
 *
 * reopen() (on SIGHUP) reopens the file for log rotation. Write errors are logged (at most once
 * a minute) and never fail a file operation.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { getLogger } from '../log/index.js';

export type AuditOp =
  'create' | 'mkdir' | 'symlink' | 'write-close' | 'rename' | 'unlink' | 'rmdir' | 'setattr';

export interface AuditEvent {
  share: string;
  protocol: 'fuse' | 'nfs';
  op: AuditOp;
  uid: number;
  gid: number;
  path: string;
  newPath?: string;
  /** Extra fields: mode (octal string), size, bytes, target, changes. */
  [extra: string]: unknown;
  result: string;
}

/** Where audit events go. */
export interface AuditSink {
  record(ev: AuditEvent): void;
}

const log = getLogger({ component: 'audit' });

export class AuditLog implements AuditSink {
  private stream: WriteStream | undefined;
  private lastErrorMs = 0;

  constructor(readonly file: string) {}

  /** Open (creating the directory and the file, mode 0640). Throws when the file cannot be opened. */
  async open(): Promise<void> {
    mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o750 });
    const s = createWriteStream(this.file, { flags: 'a', mode: 0o640 });
    await new Promise<void>((resolve, reject) => {
      s.once('open', () => resolve());
      s.once('error', reject);
    });
    s.on('error', (e) => this.writeError(e));
    this.stream = s;
  }

  /** Close and open again (after logrotate moved the file). */
  async reopen(): Promise<void> {
    const old = this.stream;
    this.stream = undefined;
    try {
      await this.open();
    } finally {
      if (old) old.end();
    }
  }

  record(ev: AuditEvent): void {
    const s = this.stream;
    if (!s) return;
    const { share, protocol, op, uid, gid, path: p, result, ...rest } = ev;
    s.write(
      `${JSON.stringify({ time: new Date().toISOString(), share, protocol, op, uid, gid, path: p, ...rest, result })}\n`,
    );
  }

  async close(): Promise<void> {
    const s = this.stream;
    this.stream = undefined;
    if (s) await new Promise<void>((resolve) => s.end(() => resolve()));
  }

  private writeError(e: Error): void {
    const now = Date.now();
    if (now - this.lastErrorMs < 60_000) return;
    this.lastErrorMs = now;
    log.error('cannot write the audit log', { file: this.file, error: e });
  }
}
