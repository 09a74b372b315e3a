/**
 * One TCP connection carrying RPC records: framing, pipelining and back-pressure.
 *
 * Calls are dispatched as soon as their record is complete and may finish in any order; each reply
 * is written whole (several buffers under cork for zero-copy READ). Reading stops (socket.pause)
 * while too many calls are in flight or the socket's write buffer is above its high-water mark,
 * and resumes when both drop. A framing violation (oversized or empty record) or an undecodable
 * RPC header closes the connection; other connections are unaffected.
 */
import { read as fsRead } from 'node:fs';
import type { Socket } from 'node:net';
import type { FileRange } from '../../core/types.js';
import type { Logger } from '../../log/index.js';
import { ReplyWriter } from './codec.js';
import { RecordDecoder, RecordError } from './record.js';
import { normalizeAddress } from './policy.js';
import { type IoAddon, type SendFileCallback, socketFd } from './sendfile.js';

/**
 * A reply whose buffers come from a pool: `release` is called once the socket has taken them
 * (written, or failed/closed), after which they may be reused.
 */
export interface PooledReply {
  readonly parts: Uint8Array[];
  release(): void;
}

/**
 * A reply whose body is a file range: `head` (record mark and reply up to the data length), the
 * range's bytes, then `pad` (0..3) zero bytes. Sent with sendfile(2) when the connection can;
 * the range is released once sent (or dropped).
 */
export interface FileReply {
  readonly head: Uint8Array;
  readonly range: FileRange;
  readonly pad: number;
}

export type Reply = Uint8Array | Uint8Array[] | PooledReply | FileReply;

/** Bytes of a FileReply written through the event loop when the socket is full, before sendfile resumes. */
const SLICE = 64 * 1024;
const EMPTY = new Uint8Array(0);

function isFileReply(r: Reply): r is FileReply {
  return !(r instanceof Uint8Array) && !Array.isArray(r) && 'range' in r;
}

function replyBytes(r: Reply): number {
  if (r instanceof Uint8Array) return r.length;
  if (isFileReply(r)) return r.head.length + r.range.length + r.pad;
  const parts = Array.isArray(r) ? r : r.parts;
  return parts.reduce((n, b) => n + b.length, 0);
}

export interface ConnInfo {
  readonly id: number;
  readonly addr: string;
  readonly port: number;
  readonly localAddr: string;
  readonly w: ReplyWriter;
}

/** Handles one record; resolves with the reply, undefined for no reply, or 'close'. */
export type RecordHandler = (conn: ConnInfo, record: Uint8Array) => Promise<Reply | undefined | 'close'>;

export interface ConnectionOptions {
  maxRecord: number;
  maxInflight: number;
  /** Pause reading while more than this many bytes wait in the socket's write buffer. */
  writeHighWater: number;
  /** Close a connection whose partial record sees no new byte for this long (slow-loris guard). */
  partialRecordTimeoutMs: number;
  /** Send FileReply bodies with this addon's sendFile; without it they are read and written. */
  io?: IoAddon;
}

let nextId = 1;

export class RpcConnection implements ConnInfo {
  readonly id = nextId++;
  readonly addr: string;
  readonly port: number;
  readonly localAddr: string;
  readonly w = new ReplyWriter();
  private readonly socket: Socket;
  private readonly decoder: RecordDecoder;
  private readonly handler: RecordHandler;
  private readonly opts: ConnectionOptions;
  private readonly log: Logger;
  private inflight = 0;
  private closed = false;
  private readonly pending = new Set<Promise<void>>();
  private partialTimer: NodeJS.Timeout | undefined;
  private readonly onClose: (c: RpcConnection) => void;
  /** Socket writes not yet handed to the kernel (their callbacks are pending). */
  private writing = 0;
  /** A FileReply is being sent: later replies wait in `queue` so that records do not interleave. */
  private fileBusy = false;
  private readonly queue: Reply[] = [];
  private queuedBytes = 0;
  /** Runs once `writing` drops to 0 (a FileReply waiting for the socket to take what precedes it). */
  private afterWrites: (() => void) | undefined;
  private readonly sentWaiters: Array<() => void> = [];
  /** Bytes sent with sendFile (observable in tests). */
  sentFromFile = 0;

  constructor(
    socket: Socket,
    handler: RecordHandler,
    opts: ConnectionOptions,
    log: Logger,
    onClose: (c: RpcConnection) => void,
  ) {
    this.socket = socket;
    this.handler = handler;
    this.opts = opts;
    this.onClose = onClose;
    this.addr = normalizeAddress(socket.remoteAddress ?? '');
    this.port = socket.remotePort ?? 0;
    this.localAddr = normalizeAddress(socket.localAddress ?? '127.0.0.1');
    this.log = log.child({ conn: this.id, client: `${this.addr}:${this.port}` });
    this.decoder = new RecordDecoder({ maxRecord: opts.maxRecord });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.pump());
    socket.on('error', (err) => this.log.debug('nfs: socket error', { error: err }));
    socket.on('close', () => this.finish());
    socket.on('end', () => {
      // Half-close from the client: answer what is in flight, then close.
      void this.settled()
        .then(() => this.sent())
        .then(() => socket.end());
    });
  }

  get inFlight(): number {
    return this.inflight;
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.decoder.push(chunk);
    this.pump();
    this.armPartialTimer();
  }

  /** While bytes of an incomplete record wait, the client must keep sending. */
  private armPartialTimer(): void {
    if (this.partialTimer !== undefined) clearTimeout(this.partialTimer);
    this.partialTimer = undefined;
    if (this.closed || this.decoder.buffered() === 0 || this.socket.isPaused()) return;
    this.partialTimer = setTimeout(() => {
      this.partialTimer = undefined;
      if (this.closed || this.socket.isPaused() || this.decoder.buffered() === 0) return;
      this.log.info('nfs: closing connection: incomplete record timed out');
      this.close();
    }, this.opts.partialRecordTimeoutMs);
    this.partialTimer.unref();
  }

  private blocked(): boolean {
    return (
      this.inflight >= this.opts.maxInflight ||
      this.socket.writableLength + this.queuedBytes > this.opts.writeHighWater
    );
  }

  /** Dispatch the complete records we may take now; pause or resume reading accordingly. */
  private pump(): void {
    if (this.closed) return;
    while (!this.blocked()) {
      let rec: Uint8Array | undefined;
      try {
        rec = this.decoder.next();
      } catch (e) {
        this.log.info('nfs: closing connection: record marking violation', {
          error: e instanceof RecordError ? e.message : String(e),
        });
        this.close();
        return;
      }
      if (rec === undefined) break;
      this.dispatch(rec);
      if (this.closed) return;
    }
    if (this.blocked()) {
      if (!this.socket.isPaused()) this.socket.pause();
    } else if (this.socket.isPaused()) {
      this.socket.resume();
      this.armPartialTimer();
    }
  }

  private dispatch(rec: Uint8Array): void {
    this.inflight++;
    const p = this.handler(this, rec)
      .then(
        (reply) => {
          if (reply === 'close') {
            this.log.info('nfs: closing connection: undecodable RPC message');
            this.close();
          } else if (reply !== undefined) {
            this.send(reply);
          }
        },
        (err: unknown) => {
          this.log.error('nfs: call failed', { error: err instanceof Error ? err : String(err) });
        },
      )
      .finally(() => {
        this.inflight--;
        this.pending.delete(p);
        this.pump();
      });
    this.pending.add(p);
  }

  send(reply: Reply): void {
    if (this.closed || this.socket.destroyed) {
      this.drop(reply);
      return;
    }
    if (this.fileBusy) {
      this.queue.push(reply);
      this.queuedBytes += replyBytes(reply);
      return;
    }
    this.put(reply);
  }

  /** Write one reply now (no FileReply in progress). */
  private put(reply: Reply): void {
    if (isFileReply(reply)) {
      this.fileBusy = true;
      this.sendFile(reply);
      return;
    }
    const parts = reply instanceof Uint8Array ? [reply] : Array.isArray(reply) ? reply : reply.parts;
    const release = reply instanceof Uint8Array || Array.isArray(reply) ? undefined : () => reply.release();
    this.writeParts(parts, release);
  }

  /**
   * Write buffers as one record. Node calls a write's callback once its data is handed to the
   * kernel, or with an error when the socket fails or is destroyed first: either way the buffers
   * are free after it.
   */
  private writeParts(parts: readonly Uint8Array[], release?: () => void): void {
    if (parts.length === 0) {
      release?.();
      return;
    }
    this.writing++;
    if (parts.length > 1) this.socket.cork();
    const last = parts.length - 1;
    parts.forEach((b, i) => {
      if (i === last) this.socket.write(b, () => this.written(release));
      else this.socket.write(b);
    });
    if (parts.length > 1) this.socket.uncork();
  }

  private written(release: (() => void) | undefined): void {
    release?.();
    this.writing--;
    if (this.writing === 0 && this.afterWrites !== undefined) {
      const next = this.afterWrites;
      this.afterWrites = undefined;
      next();
    }
  }

  /** Send a FileReply: with sendfile(2) once everything before it is in the kernel. */
  private sendFile(r: FileReply): void {
    if (this.writing > 0 && !this.closed && !this.socket.destroyed) {
      this.afterWrites = () => this.sendFile(r);
      return;
    }
    this.continueFile(r, 0);
  }

  /**
   * Send the FileReply from byte `sent` of its record on: sendfile what the socket takes now;
   * when it is full, one slice goes through the event loop's write (which waits for room), and
   * sendfile resumes once the kernel has taken that slice. Without sendfile the rest is read and
   * written in one piece.
   */
  private continueFile(r: FileReply, sent: number): void {
    const { head, range, pad } = r;
    const total = head.length + range.length + pad;
    if (sent >= total || this.closed || this.socket.destroyed) {
      range.release();
      this.fileDone();
      return;
    }
    const io = this.opts.io;
    const fd = socketFd(this.socket);
    if (io === undefined || fd === undefined) {
      this.writeSlice(r, sent, total - sent);
      return;
    }
    const dataFrom = Math.max(0, sent - head.length);
    const headRest = sent < head.length ? head.subarray(sent) : EMPTY;
    const padRest = Math.min(pad, total - sent);
    const done: SendFileCallback = (errno, n, eof) => {
      this.sentFromFile += Math.max(0, Math.min(sent + n - head.length, range.length) - dataFrom);
      if (errno !== 0 || eof) {
        this.fileFailed(r, eof ? 'the cache file ended early (truncated during the read)' : `errno ${errno}`);
        return;
      }
      if (sent + n >= total) this.continueFile(r, total);
      else this.writeSlice(r, sent + n, SLICE);
    };
    let now: [number, number, boolean] | undefined;
    try {
      // Cached data goes out at once: a thread-pool round trip costs more than the send itself.
      now = io.sendFileNow?.(
        fd,
        headRest,
        range.fd,
        range.offset + dataFrom,
        range.length - dataFrom,
        padRest,
      );
      if (now === undefined)
        io.sendFile(fd, headRest, range.fd, range.offset + dataFrom, range.length - dataFrom, padRest, done);
    } catch (e) {
      this.log.debug('nfs: sendfile unavailable for this reply; writing it', {
        error: e instanceof Error ? e : String(e),
      });
      this.writeSlice(r, sent, total - sent);
      return;
    }
    if (now !== undefined) done(...now);
  }

  /** Write up to `max` bytes of the record from `sent` on through the socket, then continue. */
  private writeSlice(r: FileReply, sent: number, max: number): void {
    const { head, range } = r;
    const total = head.length + range.length + r.pad;
    const resume = (n: number) => (): void => this.continueFile(r, sent + n);
    if (sent < head.length) {
      const part = head.subarray(sent, sent + Math.min(max, head.length - sent));
      this.writeParts([part], resume(part.length));
      return;
    }
    const dataFrom = sent - head.length;
    if (dataFrom >= range.length) {
      this.writeParts([new Uint8Array(total - sent)], resume(total - sent));
      return;
    }
    const len = Math.min(max, range.length - dataFrom);
    const buf = Buffer.allocUnsafe(len);
    const readAt = (got: number): void => {
      fsRead(range.fd, buf, got, len - got, range.offset + dataFrom + got, (err, n) => {
        if (err || n === 0) {
          this.fileFailed(r, err ? err.message : 'the cache file ended early (truncated during the read)');
          return;
        }
        if (got + n < len) readAt(got + n);
        else if (this.closed || this.socket.destroyed) this.continueFile(r, total);
        else this.writeParts([buf], resume(len));
      });
    };
    readAt(0);
  }

  /** A FileReply cannot be completed: the record is cut, so the connection must go. */
  private fileFailed(r: FileReply, why: string): void {
    r.range.release();
    if (!this.closed) {
      this.log.info('nfs: closing connection: sending a READ reply from the cache file failed', {
        error: why,
      });
      this.close();
    }
    this.fileDone();
  }

  /** The FileReply in progress is done: write what waited behind it, up to the next FileReply. */
  private fileDone(): void {
    this.fileBusy = false;
    while (!this.fileBusy && this.queue.length > 0) {
      const next = this.queue.shift() as Reply;
      this.queuedBytes -= replyBytes(next);
      if (this.closed || this.socket.destroyed) this.drop(next);
      else this.put(next);
    }
    if (!this.fileBusy) for (const w of this.sentWaiters.splice(0)) w();
    this.pump();
  }

  /** Give back what a reply that will not be sent holds. */
  private drop(reply: Reply): void {
    if (reply instanceof Uint8Array || Array.isArray(reply)) return;
    if (isFileReply(reply)) reply.range.release();
    else reply.release();
  }

  /** Resolves when no reply waits behind a FileReply (all were handed to the socket). */
  private sent(): Promise<void> {
    if (!this.fileBusy && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.sentWaiters.push(resolve));
  }

  /** Resolves when every call in flight has been answered. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  close(): void {
    if (this.partialTimer !== undefined) clearTimeout(this.partialTimer);
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.finish();
  }

  private finish(): void {
    if (this.partialTimer !== undefined) clearTimeout(this.partialTimer);
    this.closed = true;
    for (const r of this.queue.splice(0)) this.drop(r);
    this.queuedBytes = 0;
    for (const w of this.sentWaiters.splice(0)) w();
    this.onClose(this);
  }
}
