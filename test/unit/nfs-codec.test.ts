/**
 * json-pack 18.28.0 defects (../shared/docs/nfs-notes.md) and our workarounds. Each "defect" test
 * pins the library's behaviour (if one starts failing, the library was fixed and the workaround may
 * go); each "workaround" test exercises our code in the situation that breaks the library and must
 * fail if the workaround is removed.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Reader } from '@jsonjoy.com/buffers/lib/Reader.js';
import { Writer } from '@jsonjoy.com/buffers/lib/Writer.js';
import { XdrEncoder } from '@jsonjoy.com/json-pack/lib/xdr/XdrEncoder.js';
import { XdrDecoder } from '@jsonjoy.com/json-pack/lib/xdr/XdrDecoder.js';
import { RmRecordDecoder } from '@jsonjoy.com/json-pack/lib/rm/RmRecordDecoder.js';
import { RmRecordEncoder } from '@jsonjoy.com/json-pack/lib/rm/RmRecordEncoder.js';
import { Nfsv3Encoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/Nfsv3Encoder.js';
import { Nfsv3Decoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/Nfsv3Decoder.js';
import { MountEncoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/mount/MountEncoder.js';
import { MountDecoder } from '@jsonjoy.com/json-pack/lib/nfs/v3/mount/MountDecoder.js';
import { MountFhandle3 } from '@jsonjoy.com/json-pack/lib/nfs/v3/mount/structs.js';
import * as mm from '@jsonjoy.com/json-pack/lib/nfs/v3/mount/messages.js';
import * as m from '@jsonjoy.com/json-pack/lib/nfs/v3/messages.js';
import {
  Nfsv3DirList,
  Nfsv3Entry,
  Nfsv3Fattr,
  Nfsv3Fh,
  Nfsv3PostOpAttr,
  Nfsv3SpecData,
  Nfsv3Time,
} from '@jsonjoy.com/json-pack/lib/nfs/v3/structs.js';
import { RpcMessageDecoder } from '@jsonjoy.com/json-pack/lib/rpc/RpcMessageDecoder.js';
import { RpcAcceptedReplyMessage } from '@jsonjoy.com/json-pack/lib/rpc/messages.js';
import { exactReader, mountHandle, ReplyWriter, SafeXdrEncoder } from '../../src/adapters/nfs/codec.js';
import { RecordDecoder, RecordError, rmHeader } from '../../src/adapters/nfs/record.js';
import * as C from '../../src/adapters/nfs/constants.js';

const MiB = 1024 * 1024;

function attrs(): Nfsv3PostOpAttr {
  const t = new Nfsv3Time(1, 2);
  return new Nfsv3PostOpAttr(
    true,
    new Nfsv3Fattr(1, 0o644, 1, 0, 0, 10n, 4096n, new Nfsv3SpecData(0, 0), 1n, 2n, t, t, t),
  );
}

/** Split a byte stream into records with our decoder. */
function records(bytes: Uint8Array): Uint8Array[] {
  const d = new RecordDecoder({ maxRecord: 64 * MiB });
  d.push(bytes);
  const out: Uint8Array[] = [];
  for (let r = d.next(); r !== undefined; r = d.next()) out.push(r);
  return out;
}

function decodeNfsReply(rec: Uint8Array, proc: number): m.Nfsv3Response {
  const msg = new RpcMessageDecoder().decodeMessage(new Reader(rec));
  if (!(msg instanceof RpcAcceptedReplyMessage) || msg.results === undefined)
    throw new Error('not an accepted reply');
  return new Nfsv3Decoder().decodeMessage(msg.results, proc, false) as m.Nfsv3Response;
}

function readReply(data: Uint8Array): m.Nfsv3ReadResponse {
  return new m.Nfsv3ReadResponse(0, new m.Nfsv3ReadResOk(attrs(), data.length, false, data));
}

function readdirReply(names: string[]): m.Nfsv3ReaddirResponse {
  let list: Nfsv3Entry | undefined;
  for (let i = names.length - 1; i >= 0; i--)
    list = new Nfsv3Entry(BigInt(i + 10), names[i]!, BigInt(i + 1), list);
  return new m.Nfsv3ReaddirResponse(
    0,
    new m.Nfsv3ReaddirResOk(attrs(), new Uint8Array(8), new Nfsv3DirList(true, list)),
  );
}

function names(res: m.Nfsv3ReaddirResponse): string[] {
  const out: string[] = [];
  for (let e = res.resok?.reply.entries; e; e = e.nextentry) out.push(e.name);
  return out;
}

describe('defect 1: XdrEncoder.writeStr has no bounds check (names crossing the buffer end)', () => {
  it('defect: a short string written near the end of the buffer comes out corrupted', () => {
    const w = new Writer(64);
    const x = new XdrEncoder(w);
    w.x += 60; // 4 bytes left: the 4-byte length fits, the name does not
    x.writeStr('abcdefgh');
    const out = w.flush();
    const back = new XdrDecoder(new Reader(out.subarray(60)));
    let decoded: string | undefined;
    try {
      decoded = back.readString();
    } catch {
      decoded = undefined;
    }
    expect(decoded).not.toBe('abcdefgh');
  });

  it('workaround: SafeXdrEncoder writes strings across the buffer end intact (short, long, multi-byte)', () => {
    for (const s of ['abcdefgh', 'é'.repeat(30), 'x'.repeat(100), '名前'.repeat(40), '😀'.repeat(20)]) {
      for (let room = 0; room < 12; room++) {
        const w = new Writer(64);
        const x = new SafeXdrEncoder(w);
        w.x += 64 - room;
        w.x0 = w.x;
        x.writeStr(s);
        x.writeUnsignedInt(0xdeadbeef);
        const out = w.flush();
        const d = new XdrDecoder(new Reader(out));
        expect(d.readString()).toBe(s);
        expect(d.readUnsignedInt()).toBe(0xdeadbeef);
      }
    }
  });

  it('workaround: a READDIR reply whose names cross buffer boundaries decodes intact', () => {
    const all = Array.from({ length: 3000 }, (_, i) => `file-${i}-${'n'.repeat(i % 37)}-é`);
    // A small allocation and no size hint: the writer must grow many times in the middle of names.
    const rw = new ReplyWriter(256);
    const rec = rw.nfsReply(1, C.NfsProc.READDIR, readdirReply(all), 0);
    const [one] = records(rec);
    expect(names(decodeNfsReply(one!, C.NfsProc.READDIR) as m.Nfsv3ReaddirResponse)).toEqual(all);
    // And the plain library encoder on the same writer sizes corrupts them.
    const w = new Writer(256);
    const enc = new Nfsv3Encoder(w);
    const plain = enc.encodeMessage(readdirReply(all), C.NfsProc.READDIR, false);
    let plainNames: string[] | undefined;
    try {
      plainNames = names(
        new Nfsv3Decoder().decodeMessage(
          new Reader(plain),
          C.NfsProc.READDIR,
          false,
        ) as m.Nfsv3ReaddirResponse,
      );
    } catch {
      plainNames = undefined;
    }
    expect(plainNames).not.toEqual(all);
  });
});

describe('defect 2: record-marking headers keep an absolute offset across Writer growth', () => {
  const data1 = new Uint8Array(MiB).fill(1);
  const data2 = new Uint8Array(MiB).fill(2);

  const datas = [data1, data2, data1, data2];
  const recordLengthOk = (rec: Uint8Array): boolean =>
    (new DataView(rec.buffer, rec.byteOffset, 4).getUint32(0) & 0x7fffffff) === rec.length - 4;

  it('defect: startRecord/endRecord corrupt a later 1 MiB reply once the writer grows under it', () => {
    const w = new Writer();
    const rm = new RmRecordEncoder(w);
    const enc = new Nfsv3Encoder(w);
    const out: Uint8Array[] = [];
    for (const d of datas) {
      const pos = rm.startRecord();
      enc.writeMessage(readReply(d), C.NfsProc.READ, false);
      rm.endRecord(pos);
      out.push(w.flush());
    }
    expect(out.every(recordLengthOk)).toBe(false);
  });

  it('workaround: consecutive 1 MiB READ replies on one connection writer are all intact', () => {
    const rw = new ReplyWriter();
    const out = datas.map((d, i) => rw.nfsReply(i + 1, C.NfsProc.READ, readReply(d), 0));
    expect(out.every(recordLengthOk)).toBe(true);
    const recs = records(Buffer.concat(out));
    expect(recs).toHaveLength(datas.length);
    recs.forEach((rec, i) => {
      const r = decodeNfsReply(rec, C.NfsProc.READ) as m.Nfsv3ReadResponse;
      expect(r.resok?.data.length).toBe(MiB);
      expect(r.resok?.data.every((v) => v === datas[i]![0])).toBe(true);
    });
  });

  it('workaround: zero-copy READ head + data + padding forms one valid record', () => {
    const rw = new ReplyWriter();
    for (const n of [0, 1, 3, 4, 5, MiB - 1]) {
      const data = new Uint8Array(n).fill(9);
      const head = rw.readReplyHead(5, C.NfsProc.READ, readReply(new Uint8Array(0)), n);
      const pad = new Uint8Array((4 - (n % 4)) % 4);
      const [rec] = records(Buffer.concat([head, data, pad]));
      const r = decodeNfsReply(rec!, C.NfsProc.READ) as m.Nfsv3ReadResponse;
      expect(r.resok?.data.length).toBe(n);
    }
  });
});

describe('defect 3: RmRecordDecoder.readRecord() returns undefined after a non-final fragment', () => {
  function fragments(payload: Uint8Array, sizes: number[]): Uint8Array {
    const parts: Uint8Array[] = [];
    let off = 0;
    sizes.forEach((s, i) => {
      const last = i === sizes.length - 1;
      const h = Buffer.alloc(4);
      h.writeUInt32BE(rmHeader(s, last));
      parts.push(h, payload.subarray(off, off + s));
      off += s;
    });
    return Buffer.concat(parts);
  }

  it('defect: a while (rec = readRecord()) loop stalls on a buffered multi-fragment record', () => {
    const payload = new Uint8Array(300).map((_, i) => i & 0xff);
    const d = new RmRecordDecoder();
    d.push(fragments(payload, [100, 100, 100]));
    const got: unknown[] = [];
    let rec;
    while ((rec = d.readRecord())) got.push(rec);
    expect(got).toHaveLength(0);
  });

  it('workaround: RecordDecoder returns multi-fragment records, whatever the chunking', () => {
    const p1 = new Uint8Array(300).map((_, i) => i & 0xff);
    const p2 = new Uint8Array(9).fill(7);
    const stream = Buffer.concat([fragments(p1, [100, 1, 0, 199]), fragments(p2, [9])]);
    for (const chunk of [1, 3, 7, 64, stream.length]) {
      const d = new RecordDecoder({ maxRecord: 1024 });
      const out: Uint8Array[] = [];
      for (let i = 0; i < stream.length; i += chunk) {
        d.push(stream.subarray(i, i + chunk));
        for (let r = d.next(); r !== undefined; r = d.next()) out.push(Uint8Array.from(r));
      }
      expect(out.map((r) => Buffer.from(r).toString('hex'))).toEqual([
        Buffer.from(p1).toString('hex'),
        Buffer.from(p2).toString('hex'),
      ]);
    }
  });

  it('random records and fragments split at random points come out whole, in order', () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const payloads: Uint8Array[] = [];
    const parts: Uint8Array[] = [];
    for (let i = 0; i < 60; i++) {
      const size = rnd(4) === 0 ? rnd(3 * 65536) : rnd(300);
      const p = new Uint8Array(size).map(() => rnd(256));
      payloads.push(p);
      const cuts = rnd(3) === 0 ? [Math.floor(size / 3), size - Math.floor(size / 3)] : [size];
      parts.push(fragments(p, cuts));
    }
    const stream = Buffer.concat(parts);
    const d = new RecordDecoder({ maxRecord: 1024 * 1024 });
    const out: Uint8Array[] = [];
    for (let i = 0; i < stream.length;) {
      const n = 1 + rnd(rnd(2) === 0 ? 70_000 : 50);
      d.push(stream.subarray(i, i + n));
      i += n;
      for (let r = d.next(); r !== undefined; r = d.next()) out.push(r);
    }
    expect(out).toHaveLength(payloads.length);
    out.forEach((r, i) => expect(Buffer.from(r).equals(Buffer.from(payloads[i]!))).toBe(true));
    expect(d.buffered()).toBe(0);
  });

  it('a record inside one received chunk is a view of it (no copy)', () => {
    const chunk = fragments(new Uint8Array([9, 8, 7, 6, 5]), [5]);
    const d = new RecordDecoder({ maxRecord: 1024 });
    d.push(chunk);
    const r = d.next()!;
    expect(r.buffer).toBe(chunk.buffer);
    expect(Array.from(r)).toEqual([9, 8, 7, 6, 5]);
  });

  it('records are bounded: a Reader over one cannot read the next record', () => {
    const d = new RecordDecoder({ maxRecord: 1024 });
    d.push(
      Buffer.concat([
        fragments(new Uint8Array([1, 2, 3, 4]), [4]),
        fragments(new Uint8Array([5, 6, 7, 8]), [4]),
      ]),
    );
    const r = d.next()!;
    const reader = new Reader(r);
    reader.u32();
    expect(() => reader.u32()).toThrow(RangeError);
  });

  it('caps the record size (absurd lengths) and rejects empty records and fragment floods', () => {
    const d = new RecordDecoder({ maxRecord: 1000 });
    d.push(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    expect(() => d.next()).toThrow(RecordError);
    const d2 = new RecordDecoder({ maxRecord: 1000 });
    d2.push(fragments(new Uint8Array(1200), [600, 600]).subarray(0, 4 + 600 + 4));
    expect(() => d2.next()).toThrow(RecordError);
    const d3 = new RecordDecoder({ maxRecord: 1000 });
    d3.push(Buffer.from([0x80, 0, 0, 0]));
    const empty = d3.next();
    expect(empty?.length ?? 0).toBe(0);
    const d4 = new RecordDecoder({ maxRecord: 1000, maxFragments: 10 });
    d4.push(fragments(new Uint8Array(0), new Array(20).fill(0)));
    expect(() => d4.next()).toThrow(RecordError);
  });
});

describe('defect 4: fields typed Reader are written as their whole backing buffer', () => {
  const big = new Uint8Array(100).map((_, i) => i);
  const handle = big.subarray(10, 54); // a 44-byte handle inside a larger buffer

  it('defect: MountFhandle3 over a Reader slice writes the backing buffer from its start', () => {
    const enc = new MountEncoder(new Writer());
    const slice = new Reader(big).slice(10, 54);
    const bytes = enc.encodeMessage(
      new mm.MountMntResponse(0, new mm.MountMntResOk(new MountFhandle3(slice), [1])),
      C.MountProc.MNT,
      false,
    );
    const res = new MountDecoder().decodeMessage(
      new Reader(bytes),
      C.MountProc.MNT,
      false,
    ) as mm.MountMntResponse;
    const got = res.mountinfo?.fhandle.data;
    expect(got && Buffer.from(got.subarray(0, got.size())).equals(Buffer.from(handle))).toBe(false);
  });

  it('workaround: mountHandle() copies the handle into a Reader of its own', () => {
    const rw = new ReplyWriter();
    const rec = rw.mountReply(
      3,
      C.MountProc.MNT,
      new mm.MountMntResponse(0, new mm.MountMntResOk(mountHandle(handle), [1])),
    );
    const [r] = records(rec);
    const msg = new RpcMessageDecoder().decodeMessage(new Reader(r!)) as RpcAcceptedReplyMessage;
    const res = new MountDecoder().decodeMessage(msg.results!, C.MountProc.MNT, false) as mm.MountMntResponse;
    const got = res.mountinfo!.fhandle.data;
    expect(Buffer.from(got.subarray(0, got.size())).equals(Buffer.from(handle))).toBe(true);
    expect(exactReader(handle).uint8.length).toBe(handle.length);
  });
});

describe('defect 5: enums are const enums in .d.ts only', () => {
  const require = createRequire(import.meta.url);

  it('defect: the runtime constants modules are empty', () => {
    const nfs = require('@jsonjoy.com/json-pack/lib/nfs/v3/constants.js') as Record<string, unknown>;
    const rpc = require('@jsonjoy.com/json-pack/lib/rpc/constants.js') as Record<string, unknown>;
    expect(nfs.Nfsv3Stat).toBeUndefined();
    expect(rpc.RpcAcceptStat).toBeUndefined();
  });

  it('our constants match the values declared in the .d.ts files', () => {
    const dts = (p: string): string =>
      readFileSync(require.resolve(`@jsonjoy.com/json-pack/lib/${p}`), 'utf8');
    const enumValues = (text: string, name: string): Record<string, number> => {
      const body = new RegExp(`enum ${name} \\{([^}]*)\\}`).exec(text)?.[1] ?? '';
      const out: Record<string, number> = {};
      for (const m of body.matchAll(/(\w+) = (\d+)/g)) out[m[1]!] = Number(m[2]);
      return out;
    };
    const nfs = dts('nfs/v3/constants.d.ts');
    const stat = enumValues(nfs, 'Nfsv3Stat');
    for (const [k, v] of Object.entries(C.Nfs3Stat))
      expect(stat[k === 'OK' ? 'NFS3_OK' : `NFS3ERR_${k}`]).toBe(v);
    expect(enumValues(nfs, 'Nfsv3Proc')).toEqual(C.NfsProc);
    const rpc = dts('rpc/constants.d.ts');
    expect(enumValues(rpc, 'RpcAcceptStat')).toEqual(C.AcceptStat);
    const mount = enumValues(dts('nfs/v3/mount/constants.d.ts'), 'MountStat');
    for (const [k, v] of Object.entries(C.MountStat))
      expect(mount[k === 'OK' ? 'MNT3_OK' : `MNT3ERR_${k}`]).toBe(v);
  });
});

describe('defect 6: encoders validate nothing', () => {
  it('defect: a 100-byte file handle is encoded without complaint (we check ≤ 64 ourselves)', () => {
    const enc = new Nfsv3Encoder(new Writer());
    const bytes = enc.encodeMessage(
      new m.Nfsv3GetattrRequest(new Nfsv3Fh(new Uint8Array(100))),
      C.NfsProc.GETATTR,
      true,
    );
    expect(bytes.length).toBe(104);
  });

  it('the request decoder does not stop at a truncated opaque (we check the cursor)', () => {
    // WRITE args announcing 1000 bytes of data but carrying 8.
    const w = new Writer();
    const x = new XdrEncoder(w);
    x.writeVarlenOpaque(new Uint8Array(44));
    x.writeUnsignedHyper(0n);
    x.writeUnsignedInt(1000);
    x.writeUnsignedInt(2);
    x.writeUnsignedInt(1000);
    x.writeOpaque(new Uint8Array(8));
    const reader = new Reader(w.flush());
    const req = new Nfsv3Decoder().decodeMessage(reader, C.NfsProc.WRITE, true) as m.Nfsv3WriteRequest;
    expect(req.data.length).toBe(8);
    expect(reader.x).toBeGreaterThan(reader.end);
  });
});
