import type { Ino } from '../../src/core/types.js';
import type { CacheEntryState, CacheIndex } from '../../src/datacache/types.js';

function clone(s: CacheEntryState): CacheEntryState {
  return {
    size: s.size,
    present: s.present.map((r) => ({ start: r.start, end: r.end })),
    dirty: s.dirty.map((r) => ({ start: r.start, end: r.end })),
    modified: s.modified,
    lastAccessMs: s.lastAccessMs,
  };
}

/** In-memory CacheIndex for tests. Stores copies, so callers cannot alias its rows. */
export class MemoryCacheIndex implements CacheIndex {
  readonly rows = new Map<Ino, CacheEntryState>();
  saves = 0;
  removes = 0;

  loadAll(): Map<Ino, CacheEntryState> {
    const out = new Map<Ino, CacheEntryState>();
    for (const [ino, s] of this.rows) out.set(ino, clone(s));
    return out;
  }

  save(ino: Ino, state: CacheEntryState): void {
    this.saves++;
    this.rows.set(ino, clone(state));
  }

  remove(ino: Ino): void {
    this.removes++;
    this.rows.delete(ino);
  }

  /** The stored row (a copy), or undefined. */
  get(ino: Ino): CacheEntryState | undefined {
    const s = this.rows.get(ino);
    return s ? clone(s) : undefined;
  }
}
