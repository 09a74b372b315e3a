/**
 * SQLite implementation of MetaStore (better-sqlite3, WAL).
 *
 * Ordering rules: better-sqlite3 is synchronous, so each method is atomic with respect to the
 * event loop; callers that need several changes to commit together wrap them in transaction().
 * Inode ids come from an AUTOINCREMENT column and are never reused (NFS handles rely on it).
 *
 * Node rows and their names (`getNode`, `parentOf`) are also kept in a bounded in-memory cache.
 * Every FUSE operation reads a few of them (permission checks, paths for keys, uploads), and in
 * WAL mode each statement costs two `fcntl` locks: these point reads were the largest item of the
 * daemon's CPU profile of an untar (20 %). The daemon is the database's only writer (the cache
 * directory is locked to one process), every write goes through this class and updates the cache
 * in the same call, and a transaction that rolls back empties it, so it never disagrees with the
 * database. Callers get copies.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { ByteRange, FileType, Ino } from '../core/types.js';
import { ROOT_INO } from '../core/types.js';
import type { CacheEntryState } from '../datacache/types.js';
import type { ChildRow, DirState, MetaStore, NewNode, NodeRow, NodeState, UploadEntry } from './types.js';

const MIGRATIONS: string[] = [
  // v1
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
  CREATE TABLE nodes (
    ino INTEGER PRIMARY KEY AUTOINCREMENT,
    generation INTEGER NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('file', 'dir', 'symlink')),
    mode INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    size INTEGER NOT NULL,
    atime_ns INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    remote_key TEXT,
    etag TEXT,
    remote_size INTEGER,
    state TEXT NOT NULL CHECK (state IN ('clean', 'dirty', 'meta')),
    symlink TEXT,
    meta_loaded INTEGER NOT NULL,
    has_marker INTEGER NOT NULL
  );
  CREATE TABLE edges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    parent INTEGER NOT NULL,
    name TEXT NOT NULL,
    ino INTEGER NOT NULL UNIQUE,
    UNIQUE (parent, name)
  );
  CREATE TABLE dirstate (ino INTEGER PRIMARY KEY, complete INTEGER NOT NULL, listed_at_ms INTEGER NOT NULL);
  CREATE TABLE cache_entries (
    ino INTEGER PRIMARY KEY,
    size INTEGER NOT NULL,
    present TEXT NOT NULL,
    dirty TEXT NOT NULL,
    modified INTEGER NOT NULL,
    last_access_ms INTEGER NOT NULL
  );
  CREATE TABLE uploads (
    ino INTEGER PRIMARY KEY,
    due_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    enqueued_ms INTEGER NOT NULL
  );
  CREATE INDEX uploads_due ON uploads (due_ms);
  CREATE INDEX nodes_state ON nodes (state) WHERE state != 'clean';
  `,
  // v2: namespace operations in progress in the bucket (replayed after a crash)
  `
  CREATE TABLE remote_ops (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, created_ms INTEGER NOT NULL);
  `,
  // v3: names seen by a directory listing in progress (bounded-memory diff)
  `
  CREATE TABLE listing_seen (parent INTEGER NOT NULL, name TEXT NOT NULL, PRIMARY KEY (parent, name)) WITHOUT ROWID;
  `,
];

interface RawNode {
  ino: bigint;
  generation: bigint;
  type: string;
  mode: bigint;
  uid: bigint;
  gid: bigint;
  size: bigint;
  atime_ns: bigint;
  mtime_ns: bigint;
  ctime_ns: bigint;
  remote_key: string | null;
  etag: string | null;
  remote_size: bigint | null;
  state: string;
  symlink: string | null;
  meta_loaded: bigint;
  has_marker: bigint;
}

function toNode(r: RawNode): NodeRow {
  return {
    ino: Number(r.ino),
    generation: Number(r.generation),
    type: r.type as FileType,
    mode: Number(r.mode),
    uid: Number(r.uid),
    gid: Number(r.gid),
    size: Number(r.size),
    atimeNs: r.atime_ns,
    mtimeNs: r.mtime_ns,
    ctimeNs: r.ctime_ns,
    remoteKey: r.remote_key,
    etag: r.etag,
    remoteSize: r.remote_size === null ? null : Number(r.remote_size),
    state: r.state as NodeState,
    symlink: r.symlink,
    metaLoaded: r.meta_loaded !== 0n,
    hasMarker: r.has_marker !== 0n,
  };
}

const COLUMN: Record<keyof NewNode, string> = {
  type: 'type',
  mode: 'mode',
  uid: 'uid',
  gid: 'gid',
  size: 'size',
  atimeNs: 'atime_ns',
  mtimeNs: 'mtime_ns',
  ctimeNs: 'ctime_ns',
  remoteKey: 'remote_key',
  etag: 'etag',
  remoteSize: 'remote_size',
  state: 'state',
  symlink: 'symlink',
  metaLoaded: 'meta_loaded',
  hasMarker: 'has_marker',
};

function sqlValue(v: unknown): unknown {
  if (typeof v === 'boolean') return v ? 1 : 0;
  return v;
}

function rangesToJson(r: ByteRange[]): string {
  return JSON.stringify(r.map((x) => [x.start, x.end]));
}

function rangesFromJson(s: string): ByteRange[] {
  const parsed: unknown = JSON.parse(s);
  if (!Array.isArray(parsed)) return [];
  const out: ByteRange[] = [];
  for (const p of parsed) {
    if (Array.isArray(p) && typeof p[0] === 'number' && typeof p[1] === 'number')
      out.push({ start: p[0], end: p[1] });
  }
  return out;
}

export interface SqliteMetaStoreOptions {
  /** Database file path, or ':memory:'. */
  path: string;
  /**
   * Attributes of the root directory when the database is created. `fromMarker`: they are only
   * defaults; the root's attributes are loaded from the bucket on first use (a prefix share's
   * `PREFIX/` marker carries them, object-format.md).
   */
  root: { mode: number; uid: number; gid: number; fromMarker?: boolean };
  /**
   * Hold the database's locks for the life of the connection (`locking_mode = EXCLUSIVE`):
   * every statement otherwise takes and releases its WAL locks with `fcntl` (half the cost of a
   * point read on a VM). No other process can then read the database while the daemon runs: the
   * online backup goes through the daemon (`bucketgate backup`, see backup()).
   */
  exclusive?: boolean;
}

/** Node rows (and names) kept in memory; beyond this the oldest are dropped. */
const NODE_CACHE_MAX = 32_768;

export class SqliteMetaStore implements MetaStore {
  private readonly db: Database.Database;
  private readonly stmts: ReturnType<SqliteMetaStore['prepare']>;
  /** Write-through caches of node rows and of the edge naming each inode (null: none). */
  private readonly nodes = new Map<Ino, NodeRow>();
  private readonly names = new Map<Ino, { parent: Ino; name: string } | null>();

  private readonly path: string;

  constructor(opts: SqliteMetaStoreOptions) {
    this.path = opts.path;
    if (opts.path !== ':memory:') mkdirSync(dirname(opts.path), { recursive: true });
    this.db = new Database(opts.path);
    this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a commit survives a process crash (kill -9); fsync happens at checkpoints.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = OFF');
    if (opts.exclusive === true && opts.path !== ':memory:') this.db.pragma('locking_mode = EXCLUSIVE');
    this.db.defaultSafeIntegers(true);
    this.migrate(opts.root);
    this.stmts = this.prepare();
  }

  private migrate(root: SqliteMetaStoreOptions['root']): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const row = this.db.prepare('SELECT version FROM schema_version').get() as
      { version: bigint } | undefined;
    let version = row ? Number(row.version) : 0;
    if (version > MIGRATIONS.length) {
      throw new Error(
        `metadata database has schema version ${version}, newer than this bucketgate (${MIGRATIONS.length})`,
      );
    }
    const run = this.db.transaction(() => {
      for (; version < MIGRATIONS.length; version++) {
        this.db.exec(MIGRATIONS[version] ?? '');
        if (version === 0) {
          const now = BigInt(Date.now()) * 1_000_000n;
          this.db
            .prepare(
              `INSERT INTO nodes (ino, generation, type, mode, uid, gid, size, atime_ns, mtime_ns, ctime_ns,
               state, meta_loaded, has_marker) VALUES (?, 1, 'dir', ?, ?, ?, 0, ?, ?, ?, 'clean', ?, 0)`,
            )
            .run(ROOT_INO, root.mode, root.uid, root.gid, now, now, now, root.fromMarker === true ? 0 : 1);
          this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run('db_generation', randomBytes(8));
          this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run('secret', randomBytes(32));
        }
      }
      this.db.exec('DELETE FROM schema_version');
      this.db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(version);
    });
    run();
  }

  private prepare() {
    const d = this.db;
    return {
      getNode: d.prepare('SELECT * FROM nodes WHERE ino = ?'),
      lookup: d.prepare(
        'SELECT n.* FROM edges e JOIN nodes n ON n.ino = e.ino WHERE e.parent = ? AND e.name = ?',
      ),
      parentOf: d.prepare('SELECT parent, name FROM edges WHERE ino = ?'),
      edgeIno: d.prepare('SELECT ino FROM edges WHERE parent = ? AND name = ?'),
      children: d.prepare(
        'SELECT e.id AS cookie, e.name AS name, n.* FROM edges e JOIN nodes n ON n.ino = e.ino WHERE e.parent = ? AND e.id > ? ORDER BY e.id LIMIT ?',
      ),
      childCount: d.prepare('SELECT count(*) AS c FROM edges WHERE parent = ?'),
      insertNode: d.prepare(
        `INSERT INTO nodes (generation, type, mode, uid, gid, size, atime_ns, mtime_ns, ctime_ns, remote_key, etag,
         remote_size, state, symlink, meta_loaded, has_marker)
         VALUES (@generation, @type, @mode, @uid, @gid, @size, @atime_ns, @mtime_ns, @ctime_ns, @remote_key, @etag,
         @remote_size, @state, @symlink, @meta_loaded, @has_marker)`,
      ),
      insertEdge: d.prepare('INSERT INTO edges (parent, name, ino) VALUES (?, ?, ?)'),
      removeEdge: d.prepare('DELETE FROM edges WHERE parent = ? AND name = ?'),
      deleteNode: d.prepare('DELETE FROM nodes WHERE ino = ?'),
      deleteDirState: d.prepare('DELETE FROM dirstate WHERE ino = ?'),
      deleteUpload: d.prepare('DELETE FROM uploads WHERE ino = ?'),
      deleteCache: d.prepare('DELETE FROM cache_entries WHERE ino = ?'),
      moveEdge: d.prepare(
        "UPDATE edges SET parent = ?, name = ?, id = (SELECT seq + 1 FROM sqlite_sequence WHERE name = 'edges') WHERE parent = ? AND name = ?",
      ),
      bumpEdgeSeq: d.prepare("UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'edges'"),
      getDirState: d.prepare('SELECT complete, listed_at_ms FROM dirstate WHERE ino = ?'),
      setDirState: d.prepare(
        'INSERT OR REPLACE INTO dirstate (ino, complete, listed_at_ms) VALUES (?, ?, ?)',
      ),
      enqueueUpload: d.prepare(
        `INSERT INTO uploads (ino, due_ms, attempts, enqueued_ms) VALUES (?, ?, 0, ?)
         ON CONFLICT (ino) DO UPDATE SET due_ms = excluded.due_ms`,
      ),
      getUpload: d.prepare('SELECT * FROM uploads WHERE ino = ?'),
      dueUploads: d.prepare('SELECT * FROM uploads WHERE due_ms <= ? ORDER BY due_ms LIMIT ?'),
      allUploads: d.prepare('SELECT * FROM uploads ORDER BY due_ms'),
      uploadCount: d.prepare('SELECT count(*) AS c FROM uploads'),
      hurryUploads: d.prepare('UPDATE uploads SET due_ms = ? WHERE due_ms > ? AND attempts = 0'),
      hurryAllUploads: d.prepare('UPDATE uploads SET due_ms = ? WHERE due_ms > ?'),
      uploadFailed: d.prepare(
        'UPDATE uploads SET attempts = attempts + 1, last_error = ?, due_ms = ? WHERE ino = ?',
      ),
      unsynced: d.prepare("SELECT * FROM nodes WHERE state != 'clean'"),
      nodeCount: d.prepare('SELECT count(*) AS c FROM nodes'),
      getMeta: d.prepare('SELECT value FROM meta WHERE key = ?'),
      setMeta: d.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)'),
      markSeen: d.prepare('INSERT OR IGNORE INTO listing_seen (parent, name) VALUES (?, ?)'),
      clearSeen: d.prepare('DELETE FROM listing_seen WHERE parent = ?'),
      unseen: d.prepare(
        `SELECT e.id AS cookie, e.name AS name, n.* FROM edges e JOIN nodes n ON n.ino = e.ino
         WHERE e.parent = ? AND e.id > ? AND NOT EXISTS (SELECT 1 FROM listing_seen s WHERE s.parent = e.parent AND s.name = e.name)
         ORDER BY e.id LIMIT ?`,
      ),
      addOp: d.prepare('INSERT INTO remote_ops (body, created_ms) VALUES (?, ?)'),
      removeOp: d.prepare('DELETE FROM remote_ops WHERE id = ?'),
      allOps: d.prepare('SELECT id, body FROM remote_ops ORDER BY id'),
      cacheAll: d.prepare('SELECT * FROM cache_entries'),
      cacheSave: d.prepare(
        'INSERT OR REPLACE INTO cache_entries (ino, size, present, dirty, modified, last_access_ms) VALUES (?, ?, ?, ?, ?, ?)',
      ),
    };
  }

  transaction<T>(fn: () => T): T {
    if (this.db.inTransaction) return fn();
    try {
      return this.db.transaction(fn)();
    } catch (e) {
      // Rolled back: what the cache learned inside it may not be in the database.
      this.forgetAll();
      throw e;
    }
  }

  /** Empty the in-memory caches (the database is the truth). */
  forgetAll(): void {
    this.nodes.clear();
    this.names.clear();
  }

  private remember(row: NodeRow): void {
    if (!this.nodes.has(row.ino) && this.nodes.size >= NODE_CACHE_MAX) {
      const oldest = this.nodes.keys().next();
      if (oldest.done !== true) this.nodes.delete(oldest.value);
    }
    this.nodes.set(row.ino, row);
  }

  private rememberName(ino: Ino, loc: { parent: Ino; name: string } | null): void {
    if (!this.names.has(ino) && this.names.size >= NODE_CACHE_MAX) {
      const oldest = this.names.keys().next();
      if (oldest.done !== true) this.names.delete(oldest.value);
    }
    this.names.set(ino, loc);
  }

  /** The inode named `parent/name` loses that name (the edge is removed or moved). */
  private forgetEdge(parent: Ino, name: string): void {
    const r = this.stmts.edgeIno.get(parent, name) as { ino: bigint } | undefined;
    if (r !== undefined) this.names.delete(Number(r.ino));
  }

  getNode(ino: Ino): NodeRow | undefined {
    const hit = this.nodes.get(ino);
    if (hit !== undefined) return { ...hit };
    const r = this.stmts.getNode.get(ino) as RawNode | undefined;
    if (!r) return undefined;
    const row = toNode(r);
    this.remember(row);
    return { ...row };
  }

  lookup(parent: Ino, name: string): NodeRow | undefined {
    const r = this.stmts.lookup.get(parent, name) as RawNode | undefined;
    if (!r) return undefined;
    const row = toNode(r);
    this.remember(row);
    return { ...row };
  }

  parentOf(ino: Ino): { parent: Ino; name: string } | undefined {
    const hit = this.names.get(ino);
    if (hit !== undefined) return hit === null ? undefined : { ...hit };
    const r = this.stmts.parentOf.get(ino) as { parent: bigint; name: string } | undefined;
    const loc = r ? { parent: Number(r.parent), name: r.name } : null;
    this.rememberName(ino, loc);
    return loc === null ? undefined : { ...loc };
  }

  children(parent: Ino, cookie: bigint, limit: number): ChildRow[] {
    const rows = this.stmts.children.all(parent, cookie, limit) as Array<
      RawNode & { cookie: bigint; name: string }
    >;
    return rows.map((r) => ({ name: r.name, cookie: r.cookie, node: toNode(r) }));
  }

  childCount(parent: Ino): number {
    const r = this.stmts.childCount.get(parent) as { c: bigint };
    return Number(r.c);
  }

  createChild(parent: Ino, name: string, node: NewNode): NodeRow {
    return this.transaction(() => {
      const generation = randomInt(1, 0x7fffffff);
      const info = this.stmts.insertNode.run({
        generation,
        type: node.type,
        mode: node.mode,
        uid: node.uid,
        gid: node.gid,
        size: node.size,
        atime_ns: node.atimeNs,
        mtime_ns: node.mtimeNs,
        ctime_ns: node.ctimeNs,
        remote_key: node.remoteKey,
        etag: node.etag,
        remote_size: node.remoteSize,
        state: node.state,
        symlink: node.symlink,
        meta_loaded: node.metaLoaded ? 1 : 0,
        has_marker: node.hasMarker ? 1 : 0,
      });
      const ino = Number(info.lastInsertRowid);
      this.stmts.insertEdge.run(parent, name, ino);
      const row: NodeRow = { ...node, ino, generation };
      this.remember(row);
      this.rememberName(ino, { parent, name });
      return { ...row };
    });
  }

  updateNode(ino: Ino, changes: Partial<NewNode>): void {
    const keys = Object.keys(changes) as Array<keyof NewNode>;
    if (keys.length === 0) return;
    const sets = keys.map((k) => `${COLUMN[k]} = ?`).join(', ');
    // Statements are cached by better-sqlite3 per SQL text only if we keep them; a small map does.
    let stmt = this.updateCache.get(sets);
    if (!stmt) {
      stmt = this.db.prepare(`UPDATE nodes SET ${sets} WHERE ino = ?`);
      this.updateCache.set(sets, stmt);
    }
    stmt.run(...keys.map((k) => sqlValue(changes[k])), ino);
    const hit = this.nodes.get(ino);
    if (hit === undefined) return;
    if (keys.some((k) => changes[k] === undefined)) this.nodes.delete(ino);
    else this.nodes.set(ino, { ...hit, ...changes });
  }
  private readonly updateCache = new Map<string, Database.Statement>();

  removeEdge(parent: Ino, name: string): void {
    this.forgetEdge(parent, name);
    this.stmts.removeEdge.run(parent, name);
  }

  deleteNode(ino: Ino): void {
    this.nodes.delete(ino);
    this.names.delete(ino);
    this.transaction(() => {
      this.stmts.deleteNode.run(ino);
      this.stmts.deleteDirState.run(ino);
      this.stmts.deleteUpload.run(ino);
      this.stmts.deleteCache.run(ino);
    });
  }

  moveEdge(parent: Ino, name: string, newParent: Ino, newName: string): void {
    // The moved entry gets a new cookie (it is a new directory entry at the destination).
    this.transaction(() => {
      this.forgetEdge(parent, name);
      this.stmts.moveEdge.run(newParent, newName, parent, name);
      this.stmts.bumpEdgeSeq.run();
    });
  }

  descendants(dir: Ino): Array<{ rel: string[]; node: NodeRow }> {
    const out: Array<{ rel: string[]; node: NodeRow }> = [];
    const walk = (ino: Ino, rel: string[]): void => {
      let cookie = 0n;
      for (;;) {
        const page = this.children(ino, cookie, 1000);
        for (const c of page) {
          const r = [...rel, c.name];
          out.push({ rel: r, node: c.node });
          if (c.node.type === 'dir') walk(c.node.ino, r);
        }
        if (page.length < 1000) break;
        cookie = page[page.length - 1]!.cookie;
      }
    };
    walk(dir, []);
    return out;
  }

  getDirState(ino: Ino): DirState | undefined {
    const r = this.stmts.getDirState.get(ino) as { complete: bigint; listed_at_ms: bigint } | undefined;
    return r ? { complete: r.complete !== 0n, listedAtMs: Number(r.listed_at_ms) } : undefined;
  }

  setDirState(ino: Ino, state: DirState | undefined): void {
    if (!state) this.stmts.deleteDirState.run(ino);
    else this.stmts.setDirState.run(ino, state.complete ? 1 : 0, state.listedAtMs);
  }

  enqueueUpload(ino: Ino, dueMs: number): void {
    this.stmts.enqueueUpload.run(ino, dueMs, Date.now());
  }

  getUpload(ino: Ino): UploadEntry | undefined {
    const r = this.stmts.getUpload.get(ino) as RawUpload | undefined;
    return r ? toUpload(r) : undefined;
  }

  dueUploads(nowMs: number, limit: number): UploadEntry[] {
    return (this.stmts.dueUploads.all(nowMs, limit) as RawUpload[]).map(toUpload);
  }

  allUploads(): UploadEntry[] {
    return (this.stmts.allUploads.all() as RawUpload[]).map(toUpload);
  }

  uploadCount(): number {
    return Number((this.stmts.uploadCount.get() as { c: bigint }).c);
  }

  hurryUploads(nowMs: number, failingToo: boolean): number {
    const stmt = failingToo ? this.stmts.hurryAllUploads : this.stmts.hurryUploads;
    return stmt.run(nowMs, nowMs).changes;
  }

  removeUpload(ino: Ino): void {
    this.stmts.deleteUpload.run(ino);
  }

  uploadFailed(ino: Ino, error: string, nextDueMs: number): void {
    this.stmts.uploadFailed.run(error, nextDueMs, ino);
  }

  unsyncedNodes(): NodeRow[] {
    return (this.stmts.unsynced.all() as RawNode[]).map(toNode);
  }

  nodeCount(): number {
    return Number((this.stmts.nodeCount.get() as { c: bigint }).c);
  }

  markSeen(parent: Ino, names: readonly string[]): void {
    for (const n of names) this.stmts.markSeen.run(parent, n);
  }

  clearSeen(parent: Ino): void {
    this.stmts.clearSeen.run(parent);
  }

  unseenChildren(parent: Ino, cookie: bigint, limit: number): ChildRow[] {
    const rows = this.stmts.unseen.all(parent, cookie, limit) as Array<
      RawNode & { cookie: bigint; name: string }
    >;
    return rows.map((r) => ({ name: r.name, cookie: r.cookie, node: toNode(r) }));
  }

  addRemoteOp(body: string): number {
    return Number(this.stmts.addOp.run(body, Date.now()).lastInsertRowid);
  }

  removeRemoteOp(id: number): void {
    this.stmts.removeOp.run(id);
  }

  remoteOps(): Array<{ id: number; body: string }> {
    return (this.stmts.allOps.all() as Array<{ id: bigint; body: string }>).map((r) => ({
      id: Number(r.id),
      body: r.body,
    }));
  }

  async sync(): Promise<void> {
    // WAL mode with synchronous=NORMAL commits without fsync (a commit survives a crash of this
    // process, not of the machine). fsync of the -wal file makes every commit so far durable.
    if (this.path === ':memory:') return;
    const fh = await open(`${this.path}-wal`, 'r').catch(() => undefined);
    if (!fh) return;
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /**
   * A consistent copy of the database at `dest` (SQLite's online backup, while the share keeps
   * running), written to a temporary name beside it and renamed into place.
   */
  async backup(dest: string): Promise<{ pages: number }> {
    const tmp = `${dest}.tmp-${process.pid}`;
    try {
      const r = await this.db.backup(tmp);
      await rename(tmp, dest);
      return { pages: r.totalPages };
    } catch (e) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw e;
    }
  }

  getMeta(key: string): Buffer | undefined {
    const r = this.stmts.getMeta.get(key) as { value: Buffer } | undefined;
    return r?.value;
  }

  setMeta(key: string, value: Buffer): void {
    this.stmts.setMeta.run(key, value);
  }

  // CacheIndex
  loadAll(): Map<Ino, CacheEntryState> {
    const out = new Map<Ino, CacheEntryState>();
    const rows = this.stmts.cacheAll.all() as Array<{
      ino: bigint;
      size: bigint;
      present: string;
      dirty: string;
      modified: bigint;
      last_access_ms: bigint;
    }>;
    for (const r of rows) {
      out.set(Number(r.ino), {
        size: Number(r.size),
        present: rangesFromJson(r.present),
        dirty: rangesFromJson(r.dirty),
        modified: r.modified !== 0n,
        lastAccessMs: Number(r.last_access_ms),
      });
    }
    return out;
  }

  save(ino: Ino, s: CacheEntryState): void {
    this.stmts.cacheSave.run(
      ino,
      s.size,
      rangesToJson(s.present),
      rangesToJson(s.dirty),
      s.modified ? 1 : 0,
      s.lastAccessMs,
    );
  }

  remove(ino: Ino): void {
    this.stmts.deleteCache.run(ino);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

interface RawUpload {
  ino: bigint;
  due_ms: bigint;
  attempts: bigint;
  last_error: string | null;
  enqueued_ms: bigint;
}

function toUpload(r: RawUpload): UploadEntry {
  return {
    ino: Number(r.ino),
    dueMs: Number(r.due_ms),
    attempts: Number(r.attempts),
    lastError: r.last_error,
    enqueuedMs: Number(r.enqueued_ms),
  };
}
