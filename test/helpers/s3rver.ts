/**
 * A real s3rver for integration and end-to-end tests, in a child process (s3rver-child.mjs) so
 * that its CPU-heavy work does not share the test's event loop (FUSE tests would deadlock when
 * the kernel waits on a mount served by the same loop). Listens on a free 127.0.0.1 port,
 * stores under a fresh temporary directory, logs nothing, and has the requested buckets.
 *
 *   const s3 = await startS3rver();            // bucket 'test'
 *   const store = new S3ObjectStore({ bucket: s3.bucket, endpoint: s3.endpoint, checksum: 'md5',
 *     credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
 *   ...
 *   await s3.stop();
 *
 * s3rver quirks (see docs/fuse-and-s3-notes.md): clients must disable the SDK's streaming
 * checksums (client() does), If-Match on GET/PUT and Content-MD5 are ignored, a key whose last
 * segment exceeds ~240 bytes fails with HTTP 500, multipart ETags are whole-object MD5s, V4
 * signatures are not verified (only the access key id is: a wrong secret is accepted), a Range GET
 * of a zero-byte object cuts the connection, AbortMultipartUpload / UploadPartCopy are not
 * implemented, listings are in directory-walk order (not strictly lexicographic for keys like
 * `a` vs `a-b/x`), a common prefix may repeat on the next page, and paging needs the OpenSSL
 * legacy provider (DES continuation tokens; the child is started with it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';

export interface S3rverHandle {
  /** e.g. http://127.0.0.1:40123 */
  endpoint: string;
  port: number;
  /** The first bucket. */
  bucket: string;
  buckets: string[];
  /** Where s3rver stores objects (removed by stop() unless it was passed in). */
  directory: string;
  accessKeyId: 'S3RVER';
  secretAccessKey: 'S3RVER';
  region: 'us-east-1';
  /** Stop the server (idempotent) and remove its directory. */
  stop(): Promise<void>;
  /**
   * A new SDK client for this server (path style, S3RVER credentials, SDK checksums only when
   * required so that uploads are not stored with aws-chunked framing). Destroyed by stop().
   */
  client(): S3Client;
}

export interface StartS3rverOptions {
  /** Buckets to create (default ['test']). */
  buckets?: string[];
  /** Store here instead of a fresh temporary directory (kept on stop). */
  directory?: string;
  /** Milliseconds to wait for the server to answer (default 30000). */
  timeoutMs?: number;
}

const CHILD_SCRIPT = fileURLToPath(new URL('./s3rver-child.mjs', import.meta.url));
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  // The test runner's loaders and debugger flags must not leak into the plain-node child.
  delete env.NODE_OPTIONS;
  delete env.VITEST_WORKER_ID;
  return env;
}

export async function startS3rver(opts: StartS3rverOptions = {}): Promise<S3rverHandle> {
  const buckets = opts.buckets ?? ['test'];
  const firstBucket = buckets[0];
  if (firstBucket === undefined) throw new Error('startS3rver: at least one bucket is needed');
  const ownDirectory = opts.directory === undefined;
  const directory = opts.directory ?? (await mkdtemp(join(tmpdir(), 'bucketgate-s3rver-')));
  const timeoutMs = opts.timeoutMs ?? 30_000;
  installExitHook();

  // s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only offers in
  // its legacy provider: without it every truncated listing is an HTTP 500.
  const args = [
    '--openssl-legacy-provider',
    CHILD_SCRIPT,
    JSON.stringify({ directory, buckets, address: '127.0.0.1' }),
  ];
  const child = spawn(process.execPath, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: childEnv(),
  });
  live.add(child);
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    stderr = (stderr + d).slice(-16_384);
  });
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    child.once('exit', () => {
      live.delete(child);
      resolve();
    });
  });

  const clients: S3Client[] = [];
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    for (const c of clients) c.destroy();
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    child.stdin?.destroy();
    if (ownDirectory) await rm(directory, { recursive: true, force: true });
  };

  try {
    const port = await readPort(child, timeoutMs, () => stderr);
    const endpoint = `http://127.0.0.1:${port}`;
    const makeClient = (): S3Client => {
      const c = new S3Client({
        endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      });
      clients.push(c);
      return c;
    };
    await waitUntilAnswering(makeClient(), buckets, timeoutMs, () => stderr);
    return {
      endpoint,
      port,
      bucket: firstBucket,
      buckets,
      directory,
      accessKeyId: 'S3RVER',
      secretAccessKey: 'S3RVER',
      region: 'us-east-1',
      stop,
      client: makeClient,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

function readPort(child: ChildProcess, timeoutMs: number, stderr: () => string): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = '';
    const fail = (why: string): void => {
      cleanup();
      reject(
        new Error(`s3rver did not start: ${why}${stderr() !== '' ? `\n--- stderr ---\n${stderr()}` : ''}`),
      );
    };
    const onData = (d: string): void => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl === -1) return;
      try {
        const msg: unknown = JSON.parse(out.slice(0, nl));
        const port =
          typeof msg === 'object' && msg !== null ? (msg as Record<string, unknown>).port : undefined;
        if (typeof port !== 'number') throw new Error(`no port in ${out.slice(0, nl)}`);
        cleanup();
        resolve(port);
      } catch (e) {
        fail(e instanceof Error ? e.message : String(e));
      }
    };
    const onExit = (code: number | null, signal: string | null): void =>
      fail(`exited with ${code ?? signal ?? '?'}`);
    const onError = (e: Error): void => fail(e.message);
    const timer = setTimeout(() => fail(`no port after ${timeoutMs} ms`), timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
    };
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

/** Signed ListObjectsV2 on every bucket until all answer (anonymous listing returns 500 on s3rver). */
async function waitUntilAnswering(
  client: S3Client,
  buckets: string[],
  timeoutMs: number,
  stderr: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (const bucket of buckets) {
    for (;;) {
      try {
        await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1 }));
        break;
      } catch (e) {
        last = e;
        if (Date.now() > deadline) {
          throw new Error(
            `s3rver does not answer for bucket ${bucket}: ${e instanceof Error ? e.message : String(last)}\n${stderr()}`,
          );
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
}
