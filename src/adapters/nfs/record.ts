/**
 * RPC record marking over TCP (RFC 5531 §11): splits the byte stream of a connection into
 * records.
 *
 * Written here rather than taken from json-pack's RmRecordDecoder, which has defects (see
 * docs/NFS.md, "codec defects": it stalls on multi-fragment records, has no size cap, and hands
 * out Readers that can read past their record) and copied every byte into a growing buffer that
 * it reallocated about once per 1 MiB WRITE record (a third of the daemon's time in an `nfs-cp`).
 *
 * Chunks are kept as they arrive (Node does not reuse a socket's read buffers). A record whose
 * bytes lie in one chunk is returned as a view of it, without a copy; one that spans chunks or
 * fragments is copied once into a buffer of its exact size. Every record is a Uint8Array of
 * exactly its bytes, so a Reader over it cannot read the next one. A record larger than
 * `maxRecord`, or with more than `maxFragments` fragments, is refused as soon as a fragment header
 * says so (the caller closes the connection).
 */

export class RecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecordError';
  }
}

const LAST_FRAGMENT = 0x80000000;
const LENGTH_MASK = 0x7fffffff;

export interface RecordDecoderOptions {
  /** Largest record (sum of its fragments), in bytes. */
  maxRecord: number;
  /** Most fragments in one record (tiny-fragment floods). */
  maxFragments?: number;
}

export class RecordDecoder {
  private readonly maxRecord: number;
  private readonly maxFragments: number;
  /** Received bytes not yet returned: chunks[0] from offset `head`. */
  private chunks: Uint8Array[] = [];
  private head = 0;
  private bytes = 0;
  /** Completed non-final fragments of the current record. */
  private fragments: Uint8Array[] = [];
  private fragmentBytes = 0;

  constructor(opts: RecordDecoderOptions) {
    this.maxRecord = opts.maxRecord;
    this.maxFragments = opts.maxFragments ?? 1024;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  /** Bytes received and not yet returned as records. */
  buffered(): number {
    return this.bytes + this.fragmentBytes;
  }

  /**
   * The next complete record, or undefined when more bytes are needed.
   * Throws RecordError on a protocol violation (the connection must then be closed).
   */
  next(): Uint8Array | undefined {
    for (;;) {
      if (this.bytes < 4) return undefined;
      const header = this.peekU32();
      const len = header & LENGTH_MASK;
      const last = (header & LAST_FRAGMENT) !== 0;
      if (this.fragmentBytes + len > this.maxRecord) {
        throw new RecordError(`record larger than ${this.maxRecord} bytes (fragment of ${len})`);
      }
      if (!last && this.fragments.length + 1 >= this.maxFragments) {
        throw new RecordError(`more than ${this.maxFragments} fragments in one record`);
      }
      if (this.bytes - 4 < len) return undefined;
      this.take(4);
      const frag = this.take(len);
      if (!last) {
        this.fragments.push(frag);
        this.fragmentBytes += len;
        continue;
      }
      if (this.fragments.length === 0) return frag;
      this.fragments.push(frag);
      const rec = concat(this.fragments, this.fragmentBytes + len);
      this.fragments = [];
      this.fragmentBytes = 0;
      return rec;
    }
  }

  /** The big-endian u32 at the read position (4 bytes are buffered). */
  private peekU32(): number {
    const c = this.chunks[0] as Uint8Array;
    const h = this.head;
    if (c.length - h >= 4)
      return (
        ((c[h] as number) * 0x1000000 +
          (((c[h + 1] as number) << 16) | ((c[h + 2] as number) << 8) | (c[h + 3] as number))) >>>
        0
      );
    let v = 0;
    let i = 0;
    let off = h;
    for (const ch of this.chunks) {
      for (; off < ch.length && i < 4; off++, i++) v = v * 256 + (ch[off] as number);
      if (i === 4) break;
      off = 0;
    }
    return v >>> 0;
  }

  /** Remove `n` buffered bytes (n ≤ buffered): a view when they lie in one chunk, else a copy. */
  private take(n: number): Uint8Array {
    this.bytes -= n;
    const first = this.chunks[0];
    if (n === 0 || first === undefined) return new Uint8Array(0);
    if (first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.advance(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const c = this.chunks[0] as Uint8Array;
      const k = Math.min(n - got, c.length - this.head);
      out.set(c.subarray(this.head, this.head + k), got);
      got += k;
      this.advance(k);
    }
    return out;
  }

  private advance(n: number): void {
    this.head += n;
    const c = this.chunks[0];
    if (c !== undefined && this.head >= c.length) {
      this.chunks.shift();
      this.head = 0;
    }
  }
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = Buffer.allocUnsafe(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Encode a record-marking header for a single-fragment record of `len` bytes. */
export function rmHeader(len: number, last = true): number {
  return ((last ? LAST_FRAGMENT : 0) | (len & LENGTH_MASK)) >>> 0;
}
