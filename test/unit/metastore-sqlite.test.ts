import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteMetaStore } from '../../src/metastore/sqlite.js';
import type { NewNode, NodeRow } from '../../src/metastore/types.js';

// The store keeps node rows and names in memory (write-through). These tests read the same
// database through a second connection after every change and compare.

function file(over: Partial<NewNode> = {}): NewNode {
  return {
    type: 'file',
    mode: 0o100644,
    uid: 0,
    gid: 0,
    size: 0,
    atimeNs: 1n,
    mtimeNs: 2n,
    ctimeNs: 3n,
    remoteKey: null,
    etag: null,
    remoteSize: null,
    state: 'dirty',
    symlink: null,
    metaLoaded: true,
    hasMarker: false,
    ...over,
  };
}

describe('SqliteMetaStore node cache', () => {
  let dir: string;
  let store: SqliteMetaStore;
  let raw: Database.Database;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bg-meta-'));
    store = new SqliteMetaStore({ path: join(dir, 'meta.db'), root: { mode: 0o40755, uid: 0, gid: 0 } });
    raw = new Database(join(dir, 'meta.db'), { readonly: true });
    raw.defaultSafeIntegers(true);
  });
  afterEach(() => {
    raw.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The row as the database has it, in NodeRow form. */
  function dbNode(ino: number): NodeRow | undefined {
    const r = raw.prepare('SELECT * FROM nodes WHERE ino = ?').get(ino) as Record<string, unknown> | undefined;
    if (!r) return undefined;
    return {
      ino: Number(r.ino),
      generation: Number(r.generation),
      type: r.type as NodeRow['type'],
      mode: Number(r.mode),
      uid: Number(r.uid),
      gid: Number(r.gid),
      size: Number(r.size),
      atimeNs: r.atime_ns as bigint,
      mtimeNs: r.mtime_ns as bigint,
      ctimeNs: r.ctime_ns as bigint,
      remoteKey: r.remote_key as string | null,
      etag: r.etag as string | null,
      remoteSize: r.remote_size === null ? null : Number(r.remote_size),
      state: r.state as NodeRow['state'],
      symlink: r.symlink as string | null,
      metaLoaded: r.meta_loaded !== 0n,
      hasMarker: r.has_marker !== 0n,
    };
  }
  function dbName(ino: number): { parent: number; name: string } | undefined {
    const r = raw.prepare('SELECT parent, name FROM edges WHERE ino = ?').get(ino) as
      | { parent: bigint; name: string }
      | undefined;
    return r ? { parent: Number(r.parent), name: r.name } : undefined;
  }
  function agree(inos: number[]): void {
    for (const ino of inos) {
      expect(store.getNode(ino), `node ${ino}`).toEqual(dbNode(ino));
      expect(store.parentOf(ino), `name of ${ino}`).toEqual(dbName(ino));
    }
  }

  it('agrees with the database through creates, updates, renames, unlinks and deletes', () => {
    const d = store.createChild(1, 'd', file({ type: 'dir', mode: 0o40755 }));
    const a = store.createChild(d.ino, 'a', file());
    const b = store.createChild(1, 'b', file({ size: 5 }));
    const all = [1, d.ino, a.ino, b.ino];
    agree(all); // warm: every row and name is cached now

    store.updateNode(a.ino, { size: 4096, mtimeNs: 99n, state: 'clean', remoteKey: 'd/a', etag: 'e1' });
    store.updateNode(b.ino, { metaLoaded: false, hasMarker: true, remoteSize: 7 });
    agree(all);

    store.moveEdge(d.ino, 'a', 1, 'a2');
    agree(all);
    store.removeEdge(1, 'b');
    agree(all); // b's row stays, its name is gone
    expect(store.parentOf(b.ino)).toBeUndefined();
    store.deleteNode(b.ino);
    agree(all);
    expect(store.getNode(b.ino)).toBeUndefined();

    // A name taken again by another inode after the first lost it.
    const c = store.createChild(d.ino, 'a', file());
    agree([...all, c.ino]);
    expect(store.lookup(d.ino, 'a')?.ino).toBe(c.ino);
  });

  it('forgets what a rolled-back transaction did', () => {
    const a = store.createChild(1, 'a', file());
    agree([a.ino]);
    let lost = 0;
    expect(() =>
      store.transaction(() => {
        store.updateNode(a.ino, { size: 123 });
        lost = store.createChild(1, 'new', file()).ino;
        store.moveEdge(1, 'a', 1, 'renamed');
        store.createChild(1, 'renamed', file()); // the name exists: throws, all of it rolls back
      }),
    ).toThrow();
    expect(store.getNode(a.ino)?.size).toBe(0);
    expect(store.parentOf(a.ino)).toEqual({ parent: 1, name: 'a' });
    expect(store.getNode(lost)).toBeUndefined();
    expect(store.parentOf(lost)).toBeUndefined();
    agree([a.ino, lost]);
  });

  it('hands out copies: changing a returned row changes nothing stored', () => {
    const a = store.createChild(1, 'a', file({ size: 1 }));
    const got = store.getNode(a.ino)!;
    got.size = 999;
    got.state = 'clean';
    const loc = store.parentOf(a.ino)!;
    loc.name = 'other';
    expect(store.getNode(a.ino)?.size).toBe(1);
    expect(store.getNode(a.ino)?.state).toBe('dirty');
    expect(store.parentOf(a.ino)?.name).toBe('a');
  });

  it('stays correct when more nodes exist than it keeps in memory', () => {
    const inos: number[] = [];
    store.transaction(() => {
      for (let i = 0; i < 40_000; i++) inos.push(store.createChild(1, `f${i}`, file({ size: i })).ino);
    });
    for (const i of [0, 1, 20_000, 39_999]) {
      const ino = inos[i]!;
      store.updateNode(ino, { size: i + 1 });
      expect(store.getNode(ino)?.size).toBe(i + 1);
      expect(store.parentOf(ino)).toEqual({ parent: 1, name: `f${i}` });
    }
    agree([inos[0]!, inos[5]!, inos[39_999]!]);
  });

  it('exclusive mode: a backup is a consistent copy, written under a temporary name', async () => {
    const xdir = mkdtempSync(join(tmpdir(), 'bg-meta-x-'));
    const x = new SqliteMetaStore({ path: join(xdir, 'meta.db'), root: { mode: 0o40755, uid: 0, gid: 0 }, exclusive: true });
    try {
      const a = x.createChild(1, 'a', file({ size: 7 }));
      x.enqueueUpload(a.ino, 123);
      const dest = join(xdir, 'copy.db');
      expect((await x.backup(dest)).pages).toBeGreaterThan(0);
      x.createChild(1, 'after', file()); // not in the copy
      const copy = new Database(dest, { readonly: true });
      try {
        expect(copy.prepare('SELECT name FROM edges ORDER BY name').all()).toEqual([{ name: 'a' }]);
        expect(copy.prepare('SELECT size FROM nodes WHERE ino = ?').get(a.ino)).toEqual({ size: 7 });
        expect(copy.prepare('SELECT count(*) AS c FROM uploads').get()).toEqual({ c: 1 });
      } finally {
        copy.close();
      }
      await expect(x.backup(join(xdir, 'missing', 'copy.db'))).rejects.toThrow();
      expect(readdirSync(xdir).filter((f) => f.includes('.tmp-'))).toEqual([]);
      expect(existsSync(dest)).toBe(true);
    } finally {
      x.close();
      rmSync(xdir, { recursive: true, force: true });
    }
  });
});
