/**
 * Admin socket: one unix socket per share (`<dir>/<name>.sock`, mode 0600) speaking JSON lines.
 * Requests: {"cmd":"status"} | {"cmd":"flush","timeoutMs":N} | {"cmd":"refresh","path":P,"recursive":B}.
 * Replies: zero or more {"progress":…} lines, then one {"ok":true,…} or {"ok":false,"error":…}.
 * Next to each socket, `<name>.json` records the share's mountpoint so that admin commands accept
 * either the share name or the mountpoint.
 */
import { chmod, mkdir, readdir, readFile, realpath, unlink, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../log/index.js';

export type AdminRequest =
  | { cmd: 'status' }
  | { cmd: 'flush'; timeoutMs?: number }
  | { cmd: 'refresh'; path?: string; recursive?: boolean }
  | { cmd: 'backup'; dest: string };

export type AdminHandler = (
  req: AdminRequest,
  progress: (p: unknown) => void,
) => Promise<Record<string, unknown>>;

export class AdminServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly dir: string,
    private readonly name: string,
    private readonly mountpoint: string | undefined,
    private readonly handler: AdminHandler,
    private readonly log: Logger,
  ) {}

  get socketPath(): string {
    return join(this.dir, `${this.name}.sock`);
  }

  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o755 });
    // A socket left by a dead daemon is replaced; a live one means the name is taken.
    if (await isListening(this.socketPath)) {
      throw new Error(`share name "${this.name}" is already served on this host (${this.socketPath})`);
    }
    await unlink(this.socketPath).catch(() => undefined);
    const server = createServer((sock) => this.serve(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => resolve());
    });
    server.on('error', (e) => this.log.error('admin socket error', { error: e }));
    await chmod(this.socketPath, 0o600);
    const index = {
      name: this.name,
      mountpoint: this.mountpoint ? await realpath(this.mountpoint) : null,
      pid: process.pid,
    };
    await writeFile(join(this.dir, `${this.name}.json`), JSON.stringify(index) + '\n', { mode: 0o600 });
    this.server = server;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    for (const sock of this.sockets) sock.destroy();
    await new Promise<void>((r) => s.close(() => r()));
    await unlink(this.socketPath).catch(() => undefined);
    await unlink(join(this.dir, `${this.name}.json`)).catch(() => undefined);
  }

  private serve(sock: Socket): void {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => undefined);
    let buf = '';
    sock.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      if (buf.length > 65536) {
        sock.destroy();
        return;
      }
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = '';
      void this.answer(sock, line);
    });
  }

  private async answer(sock: Socket, line: string): Promise<void> {
    const send = (o: unknown): void => {
      if (!sock.destroyed) sock.write(JSON.stringify(o) + '\n');
    };
    let req: AdminRequest;
    try {
      const parsed: unknown = JSON.parse(line);
      if (!parsed || typeof parsed !== 'object' || typeof (parsed as { cmd?: unknown }).cmd !== 'string')
        throw new Error('no cmd');
      req = parsed as AdminRequest;
    } catch {
      send({ ok: false, error: 'malformed request' });
      sock.end();
      return;
    }
    try {
      const result = await this.handler(req, (p) => send({ progress: p }));
      send({ ok: true, ...result });
    } catch (e) {
      send({ ok: false, error: e instanceof Error ? e.message : String(e) });
    }
    sock.end();
  }
}

function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Find the socket of a share given its name or its mountpoint. */
export async function resolveAdminSocket(dir: string, target: string): Promise<string> {
  const direct = join(dir, `${target}.sock`);
  if (!target.includes('/') && (await isListening(direct))) return direct;
  let real: string | undefined;
  try {
    real = await realpath(target);
  } catch {
    real = undefined;
  }
  const names = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.json'));
  for (const f of names) {
    try {
      const idx = JSON.parse(await readFile(join(dir, f), 'utf8')) as {
        name?: string;
        mountpoint?: string | null;
      };
      if (idx.name && (idx.name === target || (real !== undefined && idx.mountpoint === real))) {
        return join(dir, `${idx.name}.sock`);
      }
    } catch {
      continue;
    }
  }
  throw new Error(`no running share named or mounted at "${target}" (admin sockets in ${dir})`);
}

/**
 * Send one request; calls onProgress for progress lines; resolves with the final reply. A daemon
 * that is still starting (socket not yet listening) is retried for a few seconds.
 */
export async function adminCall(
  socketPath: string,
  req: AdminRequest,
  onProgress?: (p: unknown) => void,
): Promise<{ ok: boolean; error?: string } & Record<string, unknown>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await adminCallOnce(socketPath, req, onProgress);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if ((code !== 'ECONNREFUSED' && code !== 'ENOENT') || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

function adminCallOnce(
  socketPath: string,
  req: AdminRequest,
  onProgress?: (p: unknown) => void,
): Promise<{ ok: boolean; error?: string } & Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const s = connect(socketPath);
    let buf = '';
    let done = false;
    s.on('connect', () => s.write(JSON.stringify(req) + '\n'));
    s.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const msg = JSON.parse(line) as Record<string, unknown>;
        if ('progress' in msg) onProgress?.(msg.progress);
        else {
          done = true;
          resolve(msg as { ok: boolean; error?: string });
        }
      }
    });
    s.on('error', (e: NodeJS.ErrnoException) =>
      reject(
        Object.assign(new Error(`cannot reach the daemon at ${socketPath}: ${e.message}`), { code: e.code }),
      ),
    );
    s.on('close', () => {
      if (!done) reject(new Error('the daemon closed the admin connection without an answer'));
    });
  });
}
