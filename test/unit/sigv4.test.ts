import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it } from 'vitest';
import { SigV4, type SigV4Identity } from '../../src/objectstore/sigv4.js';

// The lean paths' signer must produce exactly what the SDK's signer produces for the same request.

/** The hash the SDK's signer is given (node:crypto, as the SDK uses on Node). */
type Data = string | ArrayBuffer | ArrayBufferView;
const bytes = (d: Data): string | Buffer =>
  typeof d === 'string' ? d : ArrayBuffer.isView(d) ? Buffer.from(d.buffer, d.byteOffset, d.byteLength) : Buffer.from(d);
class Sha256 {
  private h: Hash | Hmac;
  constructor(private readonly secret?: Data) {
    this.h = this.make();
  }
  private make(): Hash | Hmac {
    return this.secret !== undefined ? createHmac('sha256', bytes(this.secret)) : createHash('sha256');
  }
  update(d: Data): void {
    this.h.update(bytes(d));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.h.digest()));
  }
  reset(): void {
    this.h = this.make();
  }
}

const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

async function both(
  id: SigV4Identity,
  region: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  date: Date,
): Promise<{ ours: Record<string, string>; sdk: Record<string, string> }> {
  const ours = await new SigV4(async () => id, region).sign(method, path, headers, date);
  const sdk = await new SignatureV4({
    credentials: id,
    region,
    service: 's3',
    sha256: Sha256,
    uriEscapePath: false,
    applyChecksum: false,
  }).sign(
    { method, protocol: 'http:', hostname: '127.0.0.1', port: 9000, path, query: {}, headers },
    { signingDate: date },
  );
  return { ours, sdk: sdk.headers };
}

describe('SigV4 (lean paths)', () => {
  const id = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };

  it('signs HEAD, GET and PUT like the SDK, across days, regions and odd keys and headers', async () => {
    const cases: Array<[string, string, Record<string, string>]> = [
      ['HEAD', '/bucket/plain', { host: '127.0.0.1:9000', 'x-amz-content-sha256': EMPTY }],
      ['GET', '/bucket/sp%20ace%2Bplus%25pct', { host: '127.0.0.1:9000', 'x-amz-content-sha256': EMPTY, range: 'bytes=0-1048575', 'if-match': '"abc"' }],
      ['HEAD', '/bucket/%C3%BCn%C3%AF%20%E6%97%A5%E6%9C%AC/x', { host: '127.0.0.1:9000', 'x-amz-content-sha256': EMPTY }],
      [
        'PUT',
        '/bucket/dir/file.txt',
        {
          host: '127.0.0.1:9000',
          'content-length': '5',
          'content-md5': 'XUFAKrxLKna5cZ2REBfFkg==',
          'content-type': 'text/plain',
          'x-amz-meta-mode': '33188',
          'x-amz-meta-file-mtime': '  1700000000123456789ns  ',
          'x-amz-meta-note': 'two   spaces  inside',
          'if-none-match': '*',
          'x-amz-content-sha256': createHash('sha256').update('hello').digest('hex'),
        },
      ],
    ];
    const dates = [new Date('2026-12-07T11:15:00.123Z'), new Date('2027-01-01T00:00:00Z'), new Date('2026-02-28T23:59:59.999Z')];
    for (const region of ['us-east-1', 'eu-central-1']) {
      for (const date of dates) {
        for (const [method, path, headers] of cases) {
          const { ours, sdk } = await both(id, region, method, path, headers, date);
          expect(ours, `${method} ${path} ${region} ${date.toISOString()}`).toEqual(sdk);
        }
      }
    }
  });

  it('adds and signs the session token of temporary credentials', async () => {
    const temp = { ...id, sessionToken: 'FwoGZXIvYXdzEJr//////////wEaDN+token' };
    const { ours, sdk } = await both(temp, 'us-east-1', 'HEAD', '/b/k', { host: 'h', 'x-amz-content-sha256': EMPTY }, new Date('2026-12-07T00:00:00Z'));
    expect(ours['x-amz-security-token']).toBe(temp.sessionToken);
    expect(ours).toEqual(sdk);
  });

  it('uses the current secret: a rotated key gives another signature the same day', async () => {
    let current: SigV4Identity = id;
    const s = new SigV4(async () => current, 'us-east-1');
    const date = new Date('2026-12-07T10:00:00Z');
    const h = { host: 'h', 'x-amz-content-sha256': EMPTY };
    const a = await s.sign('HEAD', '/b/k', h, date);
    current = { accessKeyId: 'AKIDNEW', secretAccessKey: 'another-secret' };
    const b = await s.sign('HEAD', '/b/k', h, date);
    expect(b.authorization).not.toBe(a.authorization);
    expect(b).toEqual((await both(current, 'us-east-1', 'HEAD', '/b/k', h, date)).sdk);
  });
});
