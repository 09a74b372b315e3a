/**
 * An S3-compatible server for the demo: s3rver in a child process (so its CPU work does not
 * compete with the FUSE/NFS event loop), storing under a directory, on a loopback port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export interface EmbeddedS3 {
  endpoint: string;
  port: number;
  accessKeyId: string;
  secretAccessKey: string;
  stop(): Promise<void>;
}

export async function startEmbeddedS3(opts: {
  directory: string;
  buckets: string[];
  port?: number;
}): Promise<EmbeddedS3> {
  await mkdir(opts.directory, { recursive: true });
  const require = createRequire(import.meta.url);
  const bin = join(dirname(require.resolve('s3rver/package.json')), 'bin', 's3rver.js');
  // s3rver encrypts listing continuation tokens with DES, which OpenSSL 3 only offers through
  // its legacy provider: without it every paged listing fails with HTTP 500.
  const args = [
    '--openssl-legacy-provider',
    bin,
    '-d',
    opts.directory,
    '-a',
    '127.0.0.1',
    '-p',
    String(opts.port ?? 0),
    '-s',
  ];
  for (const b of opts.buckets) args.push('--configure-bucket', b);
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`s3rver did not start: ${stderr}`)), 15_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on [^\s:]+:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited with code ${code}: ${stderr}`));
    });
  });
  child.stdout?.resume();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }),
  };
}
