/**
 * Ranged GETs whose body is read from the socket straight into the caller's buffer.
 *
 * A cold sequential read is a stream of 8 MiB ranged GETs (random reads: one GET per block). Through Node's HTTP client every
 * 64 KiB the socket delivers becomes a fresh Buffer (the parser's `socketOnData`), which is then
 * copied into the destination and left to the garbage collector: in a profile of a cold read of
 * 512 MiB these were the three largest costs of the daemon's one JavaScript thread (HTTP parsing
 * 16 %, GC 12 %, the copy 8 %), on a machine where the S3 server needs the other core. Here the
 * socket is created with `onread`: the kernel copies the response head into a small per-socket
 * buffer and the body directly into the destination, with no allocation per chunk.
 *
 * Scope, as for the lean HEAD/PUT (lean-head.ts): plain-HTTP path-style endpoints, requests
 * signed by the SDK's SigV4 signer; only the plain outcome is answered here: 200/206 with a
 * Content-Length that fits the buffer (no chunked encoding). Anything else — another status, a
 * head that is too large, a connection that fails or closes early — resolves `undefined` (the
 * socket is closed) and the caller repeats the request through the SDK, which maps, retries and
 * reports it as before. A request that gets no answer in time rejects with a TimeoutError; an
 * aborted one with an AbortError.
 *
 * The same sockets also carry the lean HEADs and single-request PUTs (`request`): a cold `ls -l`
 * is one HEAD per file and every small file written is a HEAD and a PUT, and Node's HTTP client
 * (ClientRequest, agent, IncomingMessage streams) cost about as much CPU per request as
 * everything else the daemon does for it. Only the status and the headers are returned; a PUT
 * answer's body (normally empty) is read and dropped, or the socket is closed when its length is
 * not given.
 */
import net from 'node:net';

export interface LeanGetRequest {
  /** Request target (path and query), already encoded. */
  path: string;
  /** Signed headers (lower-case names), including host. */
  headers: Record<string, string>;
}

export interface LeanGetResult {
  status: 200 | 206;
  /** Bytes of body now in dest[0, length). */
  length: number;
  etag: string | undefined;
  contentRange: string | undefined;
}

/** Largest response head accepted (S3 heads are well below 2 KiB). */
const HEAD_MAX = 16 * 1024;
/** Idle keep-alive sockets kept, and how long (servers close idle ones after ~5 s). */
const IDLE_MAX = 8;
const IDLE_MS = 4000;
const CRLFCRLF = Buffer.from('\r\n\r\n');

/** Status and headers (lower-case names; repeated ones joined with ", ") of a HEAD or PUT. */
export interface LeanReply {
  status: number;
  headers: Record<string, string>;
}

/** Largest PUT answer body read (and dropped) to keep the socket; a longer one closes it. */
const SMALL_BODY_MAX = 64 * 1024;

interface Pending {
  method: 'GET' | 'HEAD' | 'PUT';
  /** HEAD/PUT: the answer, once its head has arrived. */
  reply: LeanReply | undefined;
  dest: Buffer;
  filled: number;
  expected: number;
  status: 200 | 206;
  etag: string | undefined;
  contentRange: string | undefined;
  keepAlive: boolean;
  resolve: (r: LeanGetResult | undefined, reply?: LeanReply) => void;
  reject: (e: Error) => void;
}

class Conn {
  readonly socket: net.Socket;
  private readonly head = Buffer.allocUnsafe(HEAD_MAX);
  private headLen = 0;
  /** Waiting for (or reading) the response head, then its body; undefined when idle. */
  private req: Pending | undefined;
  private inBody = false;
  dead = false;
  idleTimer: NodeJS.Timeout | undefined;

  constructor(
    host: string,
    port: number,
    private readonly onIdle: (c: Conn) => void,
  ) {
    this.socket = net.connect({
      host,
      port,
      noDelay: true,
      onread: {
        buffer: () => this.nextBuffer(),
        callback: (n: number) => {
          this.onData(n);
          return true;
        },
      },
    });
    this.socket.on('error', () => this.fail());
    this.socket.on('close', () => this.fail());
    this.socket.on('timeout', () => {
      const e = new Error(`${this.req?.method ?? 'request'}: no answer in ${this.socket.timeout ?? 0} ms`);
      e.name = 'TimeoutError';
      this.fail(e);
    });
  }

  start(lines: string, p: Pending, timeoutMs: number | undefined, body?: Buffer): void {
    this.req = p;
    this.inBody = false;
    this.headLen = 0;
    if (timeoutMs !== undefined) this.socket.setTimeout(timeoutMs);
    if (body === undefined || body.length === 0) {
      this.socket.write(lines, 'latin1');
      return;
    }
    this.socket.cork();
    this.socket.write(lines, 'latin1');
    this.socket.write(body);
    this.socket.uncork();
  }

  abort(e: Error): void {
    this.fail(e);
  }

  private nextBuffer(): Buffer {
    const r = this.req;
    if (r !== undefined && this.inBody) return r.dest.subarray(r.filled, r.expected);
    // The head (or unexpected bytes on an idle socket, which end it in onData).
    return this.head.subarray(this.headLen);
  }

  private onData(n: number): void {
    const r = this.req;
    if (r === undefined) {
      this.fail(); // the server sent something while idle
      return;
    }
    if (this.inBody) {
      r.filled += n;
      if (r.filled >= r.expected) this.done(r);
      return;
    }
    const from = Math.max(0, this.headLen - 3);
    this.headLen += n;
    const end = this.head.subarray(0, this.headLen).indexOf(CRLFCRLF, from);
    if (end < 0) {
      if (this.headLen >= HEAD_MAX) this.fail();
      return;
    }
    if (r.method !== 'GET') {
      this.smallReply(r, this.head.toString('latin1', 0, end), this.headLen - (end + 4));
      return;
    }
    if (!this.parseHead(r, this.head.toString('latin1', 0, end))) {
      this.fail();
      return;
    }
    // Body bytes that came with the head.
    const extra = this.headLen - (end + 4);
    if (extra > r.expected) {
      this.fail();
      return;
    }
    this.head.copy(r.dest, 0, end + 4, this.headLen);
    r.filled = extra;
    this.inBody = true;
    if (r.filled >= r.expected) this.done(r);
  }

  /** The head of a HEAD/PUT answer has arrived, with `extra` bytes after it. */
  private smallReply(r: Pending, text: string, extra: number): void {
    const head = parseResponseHead(text);
    if (head === undefined) {
      this.fail();
      return;
    }
    const { headers } = head;
    r.reply = { status: head.status, headers };
    r.keepAlive = head.keepAlive;
    // The answer's body: none for HEAD; for PUT its Content-Length (else the socket cannot be reused).
    let length = 0;
    if (r.method === 'PUT') {
      const cl = headers['content-length'];
      if (headers['transfer-encoding'] !== undefined || cl === undefined || !/^\d+$/.test(cl) || Number(cl) > SMALL_BODY_MAX) {
        r.keepAlive = false;
        length = extra;
      } else length = Number(cl);
    }
    if (extra > length) r.keepAlive = false; // bytes we cannot place: do not reuse the socket
    r.expected = length;
    r.filled = Math.min(extra, length);
    if (r.filled >= r.expected) {
      this.done(r);
      return;
    }
    r.dest = Buffer.allocUnsafe(length);
    this.inBody = true;
  }

  /** Status line and headers of a GET answer; false for anything this path does not answer. */
  private parseHead(r: Pending, text: string): boolean {
    const head = parseResponseHead(text);
    if (head === undefined || (head.status !== 200 && head.status !== 206)) return false;
    const h = head.headers;
    const cl = h['content-length'];
    if (h['transfer-encoding'] !== undefined || cl === undefined || !/^\d+$/.test(cl)) return false;
    const length = Number(cl);
    if (!Number.isSafeInteger(length) || length > r.dest.length) return false;
    r.status = head.status;
    r.keepAlive = head.keepAlive;
    r.etag = h.etag?.replace(/^"|"$/g, '');
    r.contentRange = h['content-range'];
    r.expected = length;
    return true;
  }

  private done(r: Pending): void {
    this.req = undefined;
    this.inBody = false;
    this.headLen = 0;
    this.socket.setTimeout(0);
    r.resolve({ status: r.status, length: r.filled, etag: r.etag, contentRange: r.contentRange }, r.reply);
    if (r.keepAlive && !this.dead) this.onIdle(this);
    else this.close();
  }

  /** End the socket; a request under way resolves undefined (or rejects with `e`). */
  private fail(e?: Error): void {
    const r = this.req;
    this.req = undefined;
    this.close();
    if (r === undefined) return;
    if (e !== undefined) r.reject(e);
    else r.resolve(undefined);
  }

  close(): void {
    this.dead = true;
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.socket.destroy();
  }
}

export class LeanGet {
  private readonly idle: Conn[] = [];
  private readonly host: string;
  private readonly port: number;

  constructor(
    endpoint: URL,
    private readonly timeoutMs?: number,
  ) {
    this.host = endpoint.hostname.replace(/^\[|\]$/g, '');
    this.port = endpoint.port !== '' ? Number(endpoint.port) : 80;
  }

  /** Whether this path can serve the endpoint (plain HTTP only). */
  static supports(endpoint: URL): boolean {
    return endpoint.protocol === 'http:';
  }

  /**
   * Send the signed GET and read its body into `dest`. Undefined: the SDK should send it
   * instead (dest may hold partial data then).
   */
  get(req: LeanGetRequest, dest: Buffer, signal?: AbortSignal): Promise<LeanGetResult | undefined> {
    return this.exchange('GET', req, dest, undefined, signal, (r) => r);
  }

  /**
   * Send a signed HEAD, or a PUT with `body`: the answer's status and headers, whatever the
   * status. Undefined when it could not be sent or the connection failed (the SDK should repeat
   * it); a PUT may then have reached the server.
   */
  request(
    method: 'HEAD' | 'PUT',
    req: LeanGetRequest,
    body: Buffer | undefined,
    signal?: AbortSignal,
  ): Promise<LeanReply | undefined> {
    return this.exchange(method, req, EMPTY, body, signal, (_r, reply) => reply);
  }

  private exchange<T>(
    method: Pending['method'],
    req: LeanGetRequest,
    dest: Buffer,
    body: Buffer | undefined,
    signal: AbortSignal | undefined,
    pick: (r: LeanGetResult, reply: LeanReply | undefined) => T | undefined,
  ): Promise<T | undefined> {
    let text = `${method} ${req.path} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(req.headers)) {
      if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) return Promise.resolve(undefined);
      text += `${k}: ${v}\r\n`;
    }
    text += `user-agent: bucketgate (lean ${method})\r\nconnection: keep-alive\r\n\r\n`;
    return new Promise<T | undefined>((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(abortError(method));
        return;
      }
      const conn = this.take();
      const onAbort = (): void => conn.abort(abortError(method));
      signal?.addEventListener('abort', onAbort, { once: true });
      const settle = (): void => signal?.removeEventListener('abort', onAbort);
      conn.start(
        text,
        {
          method,
          reply: undefined,
          dest,
          filled: 0,
          expected: 0,
          status: 200,
          etag: undefined,
          contentRange: undefined,
          keepAlive: false,
          resolve: (r, reply) => {
            settle();
            resolve(r === undefined ? undefined : pick(r, reply));
          },
          reject: (e) => {
            settle();
            reject(e);
          },
        },
        this.timeoutMs,
        body,
      );
    });
  }

  /** Close the idle sockets. */
  destroy(): void {
    for (const c of this.idle.splice(0)) c.close();
  }

  private take(): Conn {
    for (let c = this.idle.pop(); c !== undefined; c = this.idle.pop()) {
      if (c.idleTimer !== undefined) clearTimeout(c.idleTimer);
      c.idleTimer = undefined;
      if (!c.dead && !c.socket.destroyed) return c;
    }
    return new Conn(this.host, this.port, (c) => this.putBack(c));
  }

  private putBack(c: Conn): void {
    if (this.idle.length >= IDLE_MAX) {
      c.close();
      return;
    }
    c.idleTimer = setTimeout(() => {
      const i = this.idle.indexOf(c);
      if (i >= 0) this.idle.splice(i, 1);
      c.close();
    }, IDLE_MS);
    c.idleTimer.unref();
    this.idle.push(c);
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Status line and headers of an HTTP/1.x answer (lower-case names, repeated ones joined with
 * ", "), and whether the connection may be reused; undefined when it is not well formed.
 */
function parseResponseHead(
  text: string,
): { status: number; keepAlive: boolean; headers: Record<string, string> } | undefined {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0] ?? '');
  if (m === null) return undefined;
  const headers: Record<string, string> = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const c = line.indexOf(':');
    if (c <= 0) return undefined;
    const name = line.slice(0, c).trim().toLowerCase();
    const value = line.slice(c + 1).trim();
    const had = headers[name];
    headers[name] = had === undefined ? value : `${had}, ${value}`;
  }
  const conn = headers.connection;
  const http11 = m[1] === '1';
  const keepAlive = conn !== undefined ? !/close/i.test(conn) && (http11 || /keep-alive/i.test(conn)) : http11;
  return { status: Number(m[2]), keepAlive, headers };
}

function abortError(method: string): Error {
  const e = new Error(`${method} aborted`);
  e.name = 'AbortError';
  return e;
}
