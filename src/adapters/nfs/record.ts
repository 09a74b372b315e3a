/**
 * RPC record marking over TCP (RFC 5531 §11) on top of json-pack's RmRecordDecoder, with the
 * workarounds for its defects (see docs/NFS.md, "codec defects"):
 *
 * - `readRecord()` returns `undefined` after consuming a non-final fragment, exactly as when it
 *   needs more bytes: a `while (rec = readRecord())` loop stalls on multi-fragment records. We keep
 *   calling it while it makes progress.
 * - It has no cap on the record size: a peer could announce 2 GiB and make us buffer it. We peek at
 *   each fragment header before the decoder sees it and fail on a record larger than `maxRecord`
 *   (the caller closes the connection).
 * - A record it returns is a `Reader` over its internal buffer whose DataView spans that whole
 *   buffer: reads past the record's end would silently read the next record. We hand out a
 *   `Uint8Array` view of exactly the record, so any Reader built on it is bounded.
 */
import { RmRecordDecoder } from '@jsonjoy.com/json-pack/lib/rm/RmRecordDecoder.js';

export class RecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecordError';
  }
}

const LAST_FRAGMENT = 0x80000000;
const LENGTH_MASK = 0x7fffffff;

class CappedRmDecoder extends RmRecordDecoder {
  /** Bytes held in completed non-final fragments of the current record. */
  pendingBytes(): number {
    let n = 0;
    for (const f of this.fragments) n += f.length;
    return n;
  }

  pendingFragments(): number {
    return this.fragments.length;
  }
}

export interface RecordDecoderOptions {
  /** Largest record (sum of its fragments), in bytes. */
  maxRecord: number;
  /** Most fragments in one record (tiny-fragment floods). */
  maxFragments?: number;
}

export class RecordDecoder {
  private readonly dec = new CappedRmDecoder();
  private readonly maxRecord: number;
  private readonly maxFragments: number;

  constructor(opts: RecordDecoderOptions) {
    this.maxRecord = opts.maxRecord;
    this.maxFragments = opts.maxFragments ?? 1024;
  }

  push(chunk: Uint8Array): void {
    this.dec.push(chunk);
  }

  /** Bytes received and not yet returned as records. */
  buffered(): number {
    return this.dec.reader.size() + this.dec.pendingBytes();
  }

  /**
   * The next complete record, or undefined when more bytes are needed.
   * Throws RecordError on a protocol violation (the connection must then be closed).
   */
  next(): Uint8Array | undefined {
    const reader = this.dec.reader;
    for (;;) {
      const size = reader.size();
      if (size < 4) return undefined;
      const header = reader.view.getUint32(reader.x, false);
      const len = header & LENGTH_MASK;
      const last = (header & LAST_FRAGMENT) !== 0;
      if (this.dec.pendingBytes() + len > this.maxRecord) {
        throw new RecordError(`record larger than ${this.maxRecord} bytes (fragment of ${len})`);
      }
      if (!last && this.dec.pendingFragments() + 1 >= this.maxFragments) {
        throw new RecordError(`more than ${this.maxFragments} fragments in one record`);
      }
      if (size - 4 < len) return undefined;
      const before = size;
      const rec = this.dec.readRecord();
      if (rec !== undefined) {
        // Exactly the record's bytes: a view whose bounds end with the record.
        return rec.uint8.subarray(rec.x, rec.end);
      }
      if (reader.size() === before) return undefined;
      if (last) {
        // The last fragment was consumed but json-pack returned nothing: the record was empty.
        throw new RecordError('empty record');
      }
      // A non-final fragment was consumed: keep going (json-pack's readRecord() returned undefined).
    }
  }
}

/** Encode a record-marking header for a single-fragment record of `len` bytes. */
export function rmHeader(len: number, last = true): number {
  return ((last ? LAST_FRAGMENT : 0) | (len & LENGTH_MASK)) >>> 0;
}
