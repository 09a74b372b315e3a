/**
 * Duplicate-request cache for non-idempotent calls (CREATE, REMOVE, RENAME, MKDIR, ...).
 *
 * A client that loses its connection retransmits outstanding calls with the same XID, usually from a
 * new source port, so entries are keyed by (client address without port, xid, program, version,
 * procedure) and carry a digest of the arguments to avoid false hits when XIDs are reused.
 * While the original call is still running, a retransmission waits for it and gets its reply (the
 * client may have reconnected, so the original connection may be gone); after it finished, the
 * cached reply is replayed.
 */
import { createHash } from 'node:crypto';

export interface DrcKey {
  addr: string;
  xid: number;
  prog: number;
  vers: number;
  proc: number;
  /** Procedure arguments (hashed). */
  args: Uint8Array;
}

interface Entry {
  digest: string;
  reply: Uint8Array | undefined;
  at: number;
  /** Settles with the reply (or undefined when the call was aborted). */
  settled: Promise<Uint8Array | undefined>;
  settle: (r: Uint8Array | undefined) => void;
}

export type DrcLookup =
  | { state: 'new' }
  | { state: 'in-progress'; wait: Promise<Uint8Array | undefined> }
  | { state: 'done'; reply: Uint8Array };

export interface DrcOptions {
  maxEntries?: number;
  ttlMs?: number;
  now?: () => number;
}

export class DuplicateRequestCache {
  private readonly map = new Map<string, Entry>();
  private readonly maxEntries: number;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(opts: DrcOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 4096;
    this.ttlMs = opts.ttlMs ?? 120_000;
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.map.size;
  }

  private static id(k: DrcKey): string {
    return `${k.addr}|${k.xid >>> 0}|${k.prog}|${k.vers}|${k.proc}`;
  }

  private static digest(args: Uint8Array): string {
    return createHash('sha1').update(args).digest('base64');
  }

  /**
   * Look a call up; when it is new, it is recorded as in progress and the caller must later call
   * `complete()` (with the reply) or `abort()`.
   */
  begin(k: DrcKey): DrcLookup {
    const id = DuplicateRequestCache.id(k);
    const digest = DuplicateRequestCache.digest(k.args);
    const now = this.now();
    const e = this.map.get(id);
    if (e !== undefined && e.digest === digest && now - e.at <= this.ttlMs) {
      if (e.reply === undefined) return { state: 'in-progress', wait: e.settled };
      return { state: 'done', reply: e.reply };
    }
    if (e !== undefined) {
      this.map.delete(id);
      e.settle(undefined);
    }
    let settle: (r: Uint8Array | undefined) => void = () => undefined;
    const settled = new Promise<Uint8Array | undefined>((resolve) => {
      settle = resolve;
    });
    this.map.set(id, { digest, reply: undefined, at: now, settled, settle });
    this.evict(now);
    return { state: 'new' };
  }

  complete(k: DrcKey, reply: Uint8Array): void {
    const e = this.map.get(DuplicateRequestCache.id(k));
    if (e === undefined) return;
    // Own copy: the reply may be a view into a large connection buffer.
    e.reply = Uint8Array.from(reply);
    e.at = this.now();
    e.settle(e.reply);
  }

  abort(k: DrcKey): void {
    const id = DuplicateRequestCache.id(k);
    const e = this.map.get(id);
    if (e !== undefined && e.reply === undefined) {
      this.map.delete(id);
      e.settle(undefined);
    }
  }

  private evict(now: number): void {
    // Map iteration is in insertion order: the oldest entries come first.
    for (const [id, e] of this.map) {
      if (this.map.size <= this.maxEntries && now - e.at <= this.ttlMs) break;
      this.map.delete(id);
      if (e.reply === undefined) e.settle(undefined);
    }
  }
}
