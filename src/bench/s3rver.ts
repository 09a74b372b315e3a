/**
 * s3rver on a loopback port for the benchmark, in its own process (so its CPU and memory can be
 * measured): `node --openssl-legacy-provider node_modules/s3rver/bin/s3rver.js` (the legacy
 * provider is needed for paged listings), silent, path-style only.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import http from 'node:http';
import { S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { startDaemon, type Daemon } from './util.js';

export interface BenchS3 {
  endpoint: string;
  port: number;
  pid: number;
  version: string;
  daemon: Daemon;
  stop(): Promise<void>;
}

export const S3_KEY = 'S3RVER';
export const S3_SECRET = 'S3RVER';

export async function startS3rver(directory: string, buckets: string[]): Promise<BenchS3> {
  const require = createRequire(import.meta.url);
  const pkgPath = require.resolve('s3rver/package.json');
  const version = String((require(pkgPath) as { version?: string }).version ?? '?');
  const bin = join(dirname(pkgPath), 'bin', 's3rver.js');
  const args = [
    '--openssl-legacy-provider',
    bin,
    '-d',
    directory,
    '-a',
    '127.0.0.1',
    '-p',
    '0',
    '-s',
    '--no-vhost-buckets',
  ];
  for (const b of buckets) args.push('--configure-bucket', b);
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const daemon = startDaemon('s3rver', process.execPath, args, { env });
  const deadline = Date.now() + 30_000;
  let port: number | undefined;
  while (port === undefined) {
    const m = /listening on [^\s:]+:(\d+)/.exec(daemon.output());
    if (m) port = Number(m[1]);
    else {
      if (!daemon.running()) throw new Error(`s3rver exited: ${daemon.output()}`);
      if (Date.now() > deadline) {
        await daemon.stop('SIGKILL');
        throw new Error(`s3rver did not start: ${daemon.output()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    pid: daemon.pid,
    version,
    daemon,
    stop: () => daemon.stop('SIGTERM', 5000),
  };
}

/** An SDK client for s3rver: path style, keep-alive, 64 sockets, checksums only when required. */
export function s3Client(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: S3_KEY, secretAccessKey: S3_SECRET },
    requestHandler: new NodeHttpHandler({ httpAgent: new http.Agent({ keepAlive: true, maxSockets: 64 }) }),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
  });
}
