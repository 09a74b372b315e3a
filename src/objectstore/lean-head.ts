/**
 * HEAD requests, and single-request PUTs, without the SDK's per-command middleware stack.
 *
 * A cold `ls -l` of a directory of foreign objects sends one HeadObject per file (their POSIX
 * metadata lives only in the object metadata). Through the SDK each costs ~1.5 ms of CPU on the
 * daemon's one JavaScript thread (middleware resolution, endpoint rules, schema serde, retry
 * bookkeeping, signing), which made listings CPU-bound. This path signs the request with SigV4
 * (sigv4.ts: the same signature as the SDK's signer, computed directly; with the client's
 * credential provider, so the default chain and its refresh still apply) and sends it on the
 * raw keep-alive sockets of lean-get.ts (plain HTTP) or the store's keep-alive agent (https).
 *
 * It is used only for path-style addressing against an explicit endpoint (every S3-compatible
 * service; AWS itself stays on the SDK, whose endpoint rules handle its many address forms), and
 * it answers only the two plain outcomes: 200 (the head) and 404 (no such object). Anything else
 * (a redirect, 400, 403, 5xx, a network error) returns `undefined`, and the caller repeats the
 * request through the SDK, which maps, retries and reports it exactly as before. A request that
 * times out fails at once with a TimeoutError (transient), so that a hung server does not cost
 * the SDK's timeouts on top.
 *
 * PUT of a whole small object works the same way, for the same reason (every small file written
 * through the mount is one PUT; the SDK's share of its CPU competed with the file system's own
 * work): the payload's SHA-256 is signed, Content-MD5 and the metadata, content type and
 * conditional headers are those the SDK would send, and only 200 with an ETag is answered here.
 * Anything else returns `undefined` and the caller sends the PUT again through the SDK, which
 * maps the error (412 = precondition, 403, ...) and retries as before; a PUT may thus reach the
 * server twice, like an SDK retry after a lost answer.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { LeanGet, LeanReply } from './lean-get.js';
import { SigV4, type SigV4Credentials } from './sigv4.js';
import type { ObjectHead } from './types.js';

const USER_AGENT = 'bucketgate (lean HEAD)';
const USER_AGENT_PUT = 'bucketgate (lean PUT)';

/** SHA-256 of the empty payload, sent as x-amz-content-sha256 (and signed). */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** RFC 3986 percent-encoding of one path segment, as S3 expects it (unreserved characters stay). */
function encodeSegment(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export interface LeanHeadOptions {
  endpoint: string;
  bucket: string;
  region: string;
  credentials: SigV4Credentials;
  httpAgent: http.Agent;
  httpsAgent: https.Agent;
  timeoutMs?: number;
  /** Plain-HTTP endpoints: send on these raw keep-alive sockets instead of Node's HTTP client. */
  raw?: LeanGet;
}

export class LeanHead {
  private readonly signer: SigV4;
  private readonly url: URL;
  private readonly basePath: string;

  constructor(private readonly o: LeanHeadOptions) {
    this.url = new URL(o.endpoint);
    const base = this.url.pathname.replace(/\/+$/, '');
    this.basePath = `${base}/${encodeSegment(o.bucket)}/`;
    this.signer = new SigV4(o.credentials, o.region);
  }

  /** A signed GET of `key` (for LeanGet), or undefined when it cannot be signed. */
  async signGet(key: string, headers: Record<string, string>): Promise<{ path: string; headers: Record<string, string> } | undefined> {
    const path = this.basePath + key.split('/').map(encodeSegment).join('/');
    try {
      const signed = await this.signer.sign('GET', path, {
        ...headers,
        'x-amz-content-sha256': EMPTY_SHA256,
        host: this.url.host,
      });
      return { path, headers: signed };
    } catch {
      return undefined; // no credentials yet, or a provider error: the SDK reports it
    }
  }

  /**
   * Sign and send one request: the answer's status and headers (a PUT's body has been read).
   * Undefined when it cannot be signed or sent, or the connection failed (the SDK then repeats
   * it); rejects with a TimeoutError when the server does not answer in time.
   */
  private async send(
    method: 'HEAD' | 'PUT',
    key: string,
    headers: Record<string, string>,
    body: Buffer | undefined,
    signal: AbortSignal | undefined,
  ): Promise<LeanReply | undefined> {
    const u = this.url;
    const path = this.basePath + key.split('/').map(encodeSegment).join('/');
    let signed: { path: string; headers: Record<string, string> };
    try {
      signed = { path, headers: await this.signer.sign(method, path, { ...headers, host: u.host }) };
    } catch {
      return undefined; // no credentials yet, or a provider error: the SDK reports it
    }
    if (this.o.raw !== undefined) {
      try {
        return await this.o.raw.request(method, { path: signed.path, headers: signed.headers }, body, signal);
      } catch (e) {
        if (e instanceof Error && e.name === 'TimeoutError') throw e;
        return undefined; // aborted: the SDK call that follows reports it
      }
    }
    const isHttps = u.protocol === 'https:';
    return new Promise<LeanReply | undefined>((resolve, reject) => {
      let timedOut = false;
      let r: http.ClientRequest;
      try {
        r = (isHttps ? https : http).request(
          {
            method,
            hostname: u.hostname,
            ...(u.port !== '' ? { port: Number(u.port) } : {}),
            path: signed.path,
            headers: { ...signed.headers, 'user-agent': method === 'PUT' ? USER_AGENT_PUT : USER_AGENT },
            agent: isHttps ? this.o.httpsAgent : this.o.httpAgent,
            ...(signal !== undefined ? { signal } : {}),
            ...(this.o.timeoutMs !== undefined ? { timeout: this.o.timeoutMs } : {}),
          },
          (res) => {
            const h: Record<string, string> = {};
            for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h[k] = Array.isArray(v) ? v.join(', ') : v;
            const reply = { status: res.statusCode ?? 0, headers: h };
            res.resume();
            res.on('end', () => resolve(reply));
            res.on('error', () => resolve(undefined));
          },
        );
      } catch {
        // A header Node refuses (it validates names and values): let the SDK send it.
        resolve(undefined);
        return;
      }
      r.on('timeout', () => {
        // A hung server: fail now (a transient error the caller retries) rather than wait for
        // the SDK's timeouts on top.
        timedOut = true;
        const e = new Error(`${method} ${key}: no answer in ${this.o.timeoutMs} ms`);
        e.name = 'TimeoutError';
        r.destroy(e);
      });
      // Any other failure (a keep-alive socket the server had closed, an abort): the SDK retries.
      r.on('error', (e) => (timedOut ? reject(e) : resolve(undefined)));
      r.end(body);
    });
  }

  /** The head, null for 404, undefined when the SDK should answer instead. */
  async head(key: string, signal?: AbortSignal): Promise<ObjectHead | null | undefined> {
    const reply = await this.send('HEAD', key, { 'x-amz-content-sha256': EMPTY_SHA256 }, undefined, signal);
    if (reply === undefined) return undefined;
    if (reply.status === 404) return null;
    if (reply.status !== 200) return undefined;
    return parseHead(key, reply.headers);
  }

  /**
   * PUT `body` as the whole object. `headers`: content-md5, x-amz-meta-*, content-type,
   * if-match / if-none-match (lower-case names). Resolves with the ETag (unquoted) on 200,
   * undefined when the SDK should send it instead.
   */
  async put(
    key: string,
    body: Buffer,
    headers: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const reply = await this.send(
      'PUT',
      key,
      {
        ...headers,
        'content-length': String(body.length),
        'x-amz-content-sha256': createHash('sha256').update(body).digest('hex'),
      },
      body,
      signal,
    );
    const etag = reply?.headers.etag;
    if (reply?.status !== 200 || etag === undefined || etag === '') return undefined;
    return etag.replace(/^"|"$/g, '');
  }
}

function parseHead(key: string, h: Record<string, string>): ObjectHead | undefined {
  const len = Number(h['content-length']);
  const etag = h.etag;
  if (!Number.isSafeInteger(len) || len < 0 || etag === undefined) return undefined;
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (k.startsWith('x-amz-meta-')) metadata[k.slice('x-amz-meta-'.length)] = v;
  }
  const lm = h['last-modified'] !== undefined ? new Date(h['last-modified']) : new Date(0);
  return {
    key,
    size: len,
    etag: etag.replace(/^"|"$/g, ''),
    lastModified: Number.isNaN(lm.getTime()) ? new Date(0) : lm,
    metadata,
    contentType: h['content-type'],
  };
}
