/**
 * Direct SDK operations: the limits the file systems are compared with, and the bucket probes
 * (HEAD until an object is complete, key counts) that time "until in the bucket".
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { now, sleep } from './util.js';

export const MiB = 2 ** 20;

async function drain(body: unknown): Promise<number> {
  let n = 0;
  for await (const chunk of body as Readable) n += (chunk as Buffer).length;
  return n;
}

/** Single PutObject streamed from a file. */
export async function putFile(
  c: S3Client,
  bucket: string,
  key: string,
  file: string,
  size: number,
): Promise<void> {
  await c.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: createReadStream(file, { highWaterMark: MiB }),
      ContentLength: size,
    }),
  );
}

/** Multipart upload streamed from a file (16 MiB parts, 8 in parallel, as bucketgate's uploader). */
export async function multipartFile(c: S3Client, bucket: string, key: string, file: string): Promise<void> {
  const up = new Upload({
    client: c,
    params: { Bucket: bucket, Key: key, Body: createReadStream(file, { highWaterMark: MiB }) },
    partSize: 16 * MiB,
    queueSize: 8,
  });
  await up.done();
}

/** Single-stream GET of a whole object; returns the byte count. */
export async function getAll(c: S3Client, bucket: string, key: string): Promise<number> {
  const r = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return drain(r.Body);
}

/** GET of `size` bytes in ranges of `rangeBytes`, `parallel` at a time. */
export async function getRanged(
  c: S3Client,
  bucket: string,
  key: string,
  size: number,
  rangeBytes: number,
  parallel: number,
): Promise<number> {
  let next = 0;
  let total = 0;
  const worker = async (): Promise<void> => {
    while (next < size) {
      const start = next;
      next += rangeBytes;
      const end = Math.min(size, start + rangeBytes) - 1;
      const r = await c.send(
        new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${end}` }),
      );
      const n = await drain(r.Body);
      total += n;
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return total;
}

/** Run `fn(i)` for i in [0, n) with `concurrency` at a time. */
export async function pool(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
}

export const smallKey = (prefix: string, i: number): string => `${prefix}f${String(i).padStart(5, '0')}`;

export async function putSmall(
  c: S3Client,
  bucket: string,
  prefix: string,
  n: number,
  body: Buffer,
  concurrency: number,
): Promise<void> {
  await pool(n, concurrency, async (i) => {
    await c.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: smallKey(prefix, i),
        Body: body,
        ContentLength: body.length,
      }),
    );
  });
}

export async function getSmall(
  c: S3Client,
  bucket: string,
  prefix: string,
  n: number,
  concurrency: number,
): Promise<number> {
  let total = 0;
  await pool(n, concurrency, async (i) => {
    const r = await c.send(new GetObjectCommand({ Bucket: bucket, Key: smallKey(prefix, i) }));
    const n = await drain(r.Body);
    total += n;
  });
  return total;
}

/** Size and ETag of an object, or null when it does not exist. */
export async function head(
  c: S3Client,
  bucket: string,
  key: string,
): Promise<{ size: number; etag: string } | null> {
  try {
    const r = await c.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return { size: r.ContentLength ?? 0, etag: (r.ETag ?? '').replace(/"/g, '') };
  } catch (e) {
    const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 404 || (e as Error).name === 'NotFound' || (e as Error).name === 'NoSuchKey') return null;
    throw e;
  }
}

/** Keys under a prefix (all pages). */
export async function listKeys(
  c: S3Client,
  bucket: string,
  prefix: string,
): Promise<Array<{ key: string; size: number }>> {
  const out: Array<{ key: string; size: number }> = [];
  let token: string | undefined;
  do {
    const r = await c.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: 1000 }),
    );
    for (const o of r.Contents ?? []) out.push({ key: o.Key ?? '', size: o.Size ?? 0 });
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  return out;
}

/**
 * Seconds (on the `now()` clock) at which an object of `size` bytes first shows up, polling HEAD
 * every `intervalMs`. Throws after `timeoutMs`.
 */
export async function waitObject(
  c: S3Client,
  bucket: string,
  key: string,
  size: number,
  timeoutMs: number,
  intervalMs = 100,
): Promise<{ at: number; etag: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const h = await head(c, bucket, key).catch(() => null);
    if (h && h.size === size) return { at: now(), etag: h.etag };
    if (Date.now() > deadline)
      throw new Error(
        `${key}: not in the bucket with ${size} bytes after ${timeoutMs / 1000} s (last: ${h ? h.size : 'absent'})`,
      );
    await sleep(intervalMs);
  }
}

/**
 * Seconds at which at least `count` file objects (keys not ending in '/') of the listed sizes are
 * under `prefix`, polling a listing every `intervalMs`.
 */
export async function waitKeys(
  c: S3Client,
  bucket: string,
  prefix: string,
  count: number,
  bytes: number,
  timeoutMs: number,
  intervalMs = 250,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const keys = await listKeys(c, bucket, prefix).catch(() => []);
    const files = keys.filter((k) => !k.key.endsWith('/'));
    const total = files.reduce((a, k) => a + k.size, 0);
    if (files.length >= count && total >= bytes) return now();
    if (Date.now() > deadline) {
      throw new Error(
        `${prefix}: ${files.length}/${count} objects (${total}/${bytes} bytes) in the bucket after ${timeoutMs / 1000} s`,
      );
    }
    await sleep(intervalMs);
  }
}

/** Delete every key under a prefix. */
export async function deletePrefix(c: S3Client, bucket: string, prefix: string): Promise<void> {
  const keys = await listKeys(c, bucket, prefix);
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000);
    await c.send(
      new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: { Objects: batch.map((k) => ({ Key: k.key })), Quiet: true },
      }),
    );
  }
}
