/**
 * One TCP connection carrying RPC records: framing, pipelining and back-pressure.
 *
 * Calls are dispatched as soon as their record is complete and may finish in any order; each reply
 * is written whole (several buffers under cork for zero-copy READ). Reading stops (socket.pause)
 * while too many calls are in flight or the socket's write buffer is above its high-water mark,
 * and resumes when both drop. A framing violation (oversized or empty record) or an undecodable
 * RPC header closes the connection; other connections are unaffected.
 */
import type { Socket } from 'node:net';
import type { Logger } from '../../log/index.js';
import { ReplyWriter } from './codec.js';
import { RecordDecoder, RecordError } from './record.js';
import { normalizeAddress } from './policy.js';

/**
 * A reply whose buffers come from a pool: `release` is called once the socket has taken them
 * (written, or failed/closed), after which they may be reused.
 */
export interface PooledReply {
  readonly parts: Uint8Array[];
  release(): void;
}

export type Reply = Uint8Array | Uint8Array[] | PooledReply;

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
      void this.settled().then(() => socket.end());
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
    return this.inflight >= this.opts.maxInflight || this.socket.writableLength > this.opts.writeHighWater;
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
    if (!(reply instanceof Uint8Array) && !Array.isArray(reply)) {
      this.sendPooled(reply);
      return;
    }
    if (this.closed || this.socket.destroyed) return;
    if (reply instanceof Uint8Array) {
      this.socket.write(reply);
      return;
    }
    this.socket.cork();
    for (const b of reply) this.socket.write(b);
    this.socket.uncork();
  }

  private sendPooled(reply: PooledReply): void {
    if (this.closed || this.socket.destroyed || reply.parts.length === 0) {
      reply.release();
      return;
    }
    this.socket.cork();
    const last = reply.parts.length - 1;
    // Node calls a write's callback once its data is handed to the kernel, or with an error
    // when the socket fails or is destroyed first: either way the buffers are free after it.
    reply.parts.forEach((b, i) => {
      if (i === last) this.socket.write(b, () => reply.release());
      else this.socket.write(b);
    });
    this.socket.uncork();
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
    this.onClose(this);
  }
}
