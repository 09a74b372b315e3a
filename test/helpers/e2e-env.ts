/**
 * Shared setup of end-to-end test files: an s3rver (bucket `test`), an SDK client for it, a work
 * directory, daemon credentials, and cleanup of every daemon and mount the file started.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { sh, type Daemon, type DaemonEnv } from './daemon.js';
import { startS3rver, type S3rverHandle } from './s3rver.js';

export interface E2E {
  s3: S3rverHandle;
  client: S3Client;
  work: string;
  env: DaemonEnv;
  /** Daemons to kill at the end (tests push what they start). */
  daemons: Daemon[];
}

export function e2eEnv(tmpPrefix: string, opts: { keep?: () => boolean } = {}): E2E {
  const ctx = { daemons: [] as Daemon[] } as E2E;
  beforeAll(async () => {
    ctx.s3 = await startS3rver({ buckets: ['test'] });
    ctx.client = ctx.s3.client();
    ctx.env = { AWS_ACCESS_KEY_ID: ctx.s3.accessKeyId, AWS_SECRET_ACCESS_KEY: ctx.s3.secretAccessKey };
    ctx.work = await mkdtemp(join(tmpdir(), tmpPrefix));
  });
  afterAll(async () => {
    for (const d of ctx.daemons) await d.stop('SIGKILL').catch(() => undefined);
    if (ctx.work) {
      await sh(
        `for m in $(grep -o '${ctx.work}[^ ]*' /proc/mounts || true); do umount -l "$m" || true; done`,
      ).catch(() => undefined);
    }
    await ctx.s3?.stop();
    if (ctx.work && !opts.keep?.()) await rm(ctx.work, { recursive: true, force: true });
  });
  return ctx;
}
