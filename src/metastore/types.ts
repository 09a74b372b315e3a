import type { FileType, Ino } from '../core/types.js';
import type { CacheIndex } from '../datacache/types.js';

/**
 * How a node relates to the bucket:
 * - clean: the object at `remoteKey` holds exactly this node's data and metadata;
 * - dirty: data (and metadata) must be uploaded;
 * - meta:  only metadata differs (chmod/chown/utimens): a server-side copy onto itself suffices.
 */
export type NodeState = 'clean' | 'dirty' | 'meta';

export interface NodeRow {
  ino: Ino;
  generation: number;
  type: FileType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  /** Key of the object that currently stores this node in the bucket (null: not in the bucket). */
  remoteKey: string | null;
  /** ETag of that object. */
  etag: string | null;
  remoteSize: number | null;
  state: NodeState;
  /** Symlink target when known locally. */
  symlink: string | null;
  /** False while POSIX metadata has not been read from the object (HEAD pending). */
  metaLoaded: boolean;
  /** True for a directory that has a marker object (`dir/`) in the bucket. */
  hasMarker: boolean;
}

export type NewNode = Omit<NodeRow, 'ino' | 'generation'>;

export interface ChildRow {
  name: string;
  node: NodeRow;
  /** Stable cookie (edge id); never 0. */
  cookie: bigint;
}

export interface DirState {
  complete: boolean;
  listedAtMs: number;
}

export interface UploadEntry {
  ino: Ino;
  dueMs: number;
  attempts: number;
  lastError: string | null;
  enqueuedMs: number;
}

/**
 * The metadata store. Synchronous (SQLite through better-sqlite3); multi-row changes run inside
 * `transaction`. Inode ids are never reused.
 */
export interface MetaStore extends CacheIndex {
  transaction<T>(fn: () => T): T;
  getNode(ino: Ino): NodeRow | undefined;
  lookup(parent: Ino, name: string): NodeRow | undefined;
  /** The edge that names `ino` (undefined for the root or an unlinked node). */
  parentOf(ino: Ino): { parent: Ino; name: string } | undefined;
  /** Children after `cookie` (0n = from the start), ordered by cookie. */
  children(parent: Ino, cookie: bigint, limit: number): ChildRow[];
  childCount(parent: Ino): number;
  /** Insert a node and its edge; throws if the name exists. */
  createChild(parent: Ino, name: string, node: NewNode): NodeRow;
  updateNode(ino: Ino, changes: Partial<NewNode>): void;
  /** Remove the edge `parent/name` (the node row stays until deleteNode). */
  removeEdge(parent: Ino, name: string): void;
  deleteNode(ino: Ino): void;
  /** Move an edge; an existing destination edge must have been removed first. */
  moveEdge(parent: Ino, name: string, newParent: Ino, newName: string): void;
  /** Descendants of a directory (depth-first), with their paths relative to it. */
  descendants(dir: Ino): Array<{ rel: string[]; node: NodeRow }>;
  getDirState(ino: Ino): DirState | undefined;
  setDirState(ino: Ino, state: DirState | undefined): void;
  /** Upload journal. */
  enqueueUpload(ino: Ino, dueMs: number): void;
  getUpload(ino: Ino): UploadEntry | undefined;
  dueUploads(nowMs: number, limit: number): UploadEntry[];
  allUploads(): UploadEntry[];
  /** Entries in the upload journal. */
  uploadCount(): number;
  /**
   * Make queued uploads due at `nowMs` (a flush): those not due yet, failing ones (attempts > 0)
   * only with `failingToo`. Returns how many changed.
   */
  hurryUploads(nowMs: number, failingToo: boolean): number;
  removeUpload(ino: Ino): void;
  uploadFailed(ino: Ino, error: string, nextDueMs: number): void;
  /** Names seen by a listing in progress (bounded-memory diff of large directories). */
  markSeen(parent: Ino, names: readonly string[]): void;
  clearSeen(parent: Ino): void;
  /** Children of `parent` whose names were not marked seen, after `cookie`. */
  unseenChildren(parent: Ino, cookie: bigint, limit: number): ChildRow[];
  /** Journal of namespace operations under way in the bucket (JSON bodies, replayed on start). */
  addRemoteOp(body: string): number;
  removeRemoteOp(id: number): void;
  remoteOps(): Array<{ id: number; body: string }>;
  /** Nodes whose state is not clean (recovery). */
  unsyncedNodes(): NodeRow[];
  nodeCount(): number;
  /** Make every committed change durable on disk (fsync of the write-ahead log). */
  sync(): Promise<void>;
  getMeta(key: string): Buffer | undefined;
  setMeta(key: string, value: Buffer): void;
  close(): void;
}
