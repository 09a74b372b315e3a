/**
 * AWS Signature Version 4 for the lean request paths (HEAD, PUT, ranged GET of one object).
 *
 * The SDK's signer (@smithy/signature-v4) is general: it normalises every input, builds the
 * canonical request through several helper objects and creates a fresh hash object per HMAC
 * step. In a CPU profile of a cold `ls -l` (one HEAD per file) signing was a fifth of the
 * daemon's busy time. These requests are all of one shape — a path-style key, no query, a few
 * headers, the payload hash given — so the signature is computed here directly: one SHA-256 of
 * the canonical request and one HMAC with the signing key, which is derived once per day,
 * region and secret. The result is byte-for-byte what the SDK's signer produces for the same
 * request and time (test/unit/sigv4.test.ts compares them).
 */
import { createHash, createHmac } from 'node:crypto';

export interface SigV4Identity {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** The SDK client's credentials: an identity, or a (memoised) provider of one. */
export type SigV4Credentials = SigV4Identity | (() => Promise<SigV4Identity>);

/** Headers never signed (as the SDK's signer). */
const UNSIGNABLE = new Set([
  'authorization',
  'cache-control',
  'connection',
  'expect',
  'from',
  'keep-alive',
  'max-forwards',
  'pragma',
  'referer',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'user-agent',
  'x-amzn-trace-id',
]);

/** The last second formatted (a cold `ls -l` signs thousands of requests per second). */
let lastSecond = -1;
let lastStamp = '';

function amzDate(d: Date): string {
  // 2026-12-07T11:15:00.123Z -> 20261207T111500Z
  const second = Math.floor(d.getTime() / 1000);
  if (second !== lastSecond) {
    lastStamp = d
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d{3}/, '');
    lastSecond = second;
  }
  return lastStamp;
}

export class SigV4 {
  private keyFor: { secret: string; day: string; key: Buffer } | undefined;

  constructor(
    private readonly credentials: SigV4Credentials,
    private readonly region: string,
    private readonly service = 's3',
  ) {}

  /**
   * The headers to send: `headers` (lower-case names, including host and
   * x-amz-content-sha256) plus x-amz-date, x-amz-security-token when there is one, and
   * authorization. `path` is the request target, already URI-encoded, with no query.
   * Rejects when the credentials cannot be had.
   */
  async sign(
    method: string,
    path: string,
    headers: Record<string, string>,
    date: Date = new Date(),
  ): Promise<Record<string, string>> {
    const id = typeof this.credentials === 'function' ? await this.credentials() : this.credentials;
    const stamp = amzDate(date);
    const day = stamp.slice(0, 8);
    const out: Record<string, string> = { ...headers, 'x-amz-date': stamp };
    if (id.sessionToken !== undefined && id.sessionToken !== '')
      out['x-amz-security-token'] = id.sessionToken;
    const names = Object.keys(out)
      .filter((n) => !UNSIGNABLE.has(n))
      .sort();
    let canonicalHeaders = '';
    for (const n of names) canonicalHeaders += `${n}:${(out[n] ?? '').trim().replace(/\s+/g, ' ')}\n`;
    const signed = names.join(';');
    const payload = out['x-amz-content-sha256'] ?? 'UNSIGNED-PAYLOAD';
    const canonical = `${method}\n${path}\n\n${canonicalHeaders}\n${signed}\n${payload}`;
    const scope = `${day}/${this.region}/${this.service}/aws4_request`;
    const toSign = `AWS4-HMAC-SHA256\n${stamp}\n${scope}\n${createHash('sha256').update(canonical).digest('hex')}`;
    const signature = createHmac('sha256', this.signingKey(id.secretAccessKey, day))
      .update(toSign)
      .digest('hex');
    out.authorization = `AWS4-HMAC-SHA256 Credential=${id.accessKeyId}/${scope}, SignedHeaders=${signed}, Signature=${signature}`;
    return out;
  }

  private signingKey(secret: string, day: string): Buffer {
    const k = this.keyFor;
    if (k !== undefined && k.secret === secret && k.day === day) return k.key;
    let key = createHmac('sha256', `AWS4${secret}`).update(day).digest();
    for (const part of [this.region, this.service, 'aws4_request'])
      key = createHmac('sha256', key).update(part).digest();
    this.keyFor = { secret, day, key };
    return key;
  }
}
