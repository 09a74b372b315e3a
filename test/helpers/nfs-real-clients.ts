/** Running Debian's libnfs tools and our compiled libnfs client against a test server. */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command without blocking the event loop (the server lives in this process). */
export function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { timeout: timeoutMs, maxBuffer: 512 * 1024 * 1024, encoding: 'latin1' },
      (err, stdout, stderr) => {
        const code =
          err === null
            ? 0
            : typeof (err as { code?: unknown }).code === 'number'
              ? (err as { code: number }).code
              : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Compile test/helpers/nfs-client.c against libnfs into a temp dir; returns the binary's path. */
export async function buildNfsClient(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bg-nfs-client-'));
  const src = fileURLToPath(new URL('./nfs-client.c', import.meta.url));
  const out = join(dir, 'nfs-client');
  const flags = await run('pkg-config', ['--cflags', '--libs', 'libnfs']);
  if (flags.code !== 0) throw new Error(`pkg-config libnfs failed: ${flags.stderr}`);
  const cc = await run('gcc', [
    '-O1',
    '-o',
    out,
    src,
    ...flags.stdout
      .trim()
      .split(/\s+/)
      .filter((s) => s !== ''),
  ]);
  if (cc.code !== 0) throw new Error(`gcc failed: ${cc.stderr}`);
  return out;
}

/** Start a long-running client; resolves lines of its stdout as they come. */
export function startClient(
  bin: string,
  args: string[],
): {
  child: ChildProcessWithoutNullStreams;
  waitFor(prefix: string, timeoutMs?: number): Promise<string>;
  done: Promise<RunResult>;
} {
  const child = spawn(bin, args);
  let stdout = '';
  let stderr = '';
  const waiters: Array<{ prefix: string; resolve: (l: string) => void }> = [];
  child.stdout.setEncoding('latin1');
  child.stdout.on('data', (d: string) => {
    stdout += d;
    for (const w of [...waiters]) {
      const line = stdout.split('\n').find((l) => l.startsWith(w.prefix));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const done = new Promise<RunResult>((resolve) =>
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr })),
  );
  return {
    child,
    done,
    waitFor(prefix: string, timeoutMs = 20_000) {
      const line = stdout.split('\n').find((l) => l.startsWith(prefix));
      if (line !== undefined) return Promise.resolve(line);
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`timeout waiting for "${prefix}"; stdout=${stdout} stderr=${stderr}`)),
          timeoutMs,
        );
        waiters.push({
          prefix,
          resolve: (l) => {
            clearTimeout(t);
            resolve(l);
          },
        });
      });
    },
  };
}
