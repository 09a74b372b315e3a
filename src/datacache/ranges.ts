/**
 * Pure functions on byte-range lists.
 *
 * A "range list" is sorted by start, holds only non-empty half-open ranges [start, end), and is
 * merged: no two ranges overlap or touch (r[i].end < r[i+1].start). Every function here takes range
 * lists in that form (except normalizeRanges, which produces it), never mutates its arguments and
 * returns fresh range objects (no aliasing with the inputs), so results can be stored freely.
 */
import type { ByteRange } from '../core/types.js';

export type RangeList = readonly ByteRange[];

/** Sort, drop empty ranges and merge overlapping or touching ones. Accepts any input order. */
export function normalizeRanges(ranges: Iterable<ByteRange>): ByteRange[] {
  const sorted: ByteRange[] = [];
  for (const r of ranges) if (r.end > r.start) sorted.push({ start: r.start, end: r.end });
  sorted.sort((a, b) => a.start - b.start);
  const out: ByteRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && r.start <= last.end) {
      if (r.end > last.end) last.end = r.end;
    } else {
      out.push(r);
    }
  }
  return out;
}

/** True when `list` is a valid range list (sorted, non-empty, merged, non-negative safe integers). */
export function isNormalized(list: RangeList): boolean {
  let prevEnd = -1;
  for (const r of list) {
    if (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.end)) return false;
    if (r.start < 0 || r.end <= r.start || r.start <= prevEnd) return false;
    prevEnd = r.end;
  }
  return true;
}

/** Sum of the lengths of the ranges. */
export function totalBytes(list: RangeList): number {
  let n = 0;
  for (const r of list) n += r.end - r.start;
  return n;
}

/** Union of two range lists. */
export function unionRanges(a: RangeList, b: RangeList): ByteRange[] {
  const out: ByteRange[] = [];
  const push = (r: ByteRange): void => {
    const last = out[out.length - 1];
    if (last !== undefined && r.start <= last.end) {
      if (r.end > last.end) last.end = r.end;
    } else {
      out.push({ start: r.start, end: r.end });
    }
  };
  let i = 0;
  let j = 0;
  for (;;) {
    const x = a[i];
    const y = b[j];
    if (x === undefined && y === undefined) break;
    if (y === undefined || (x !== undefined && x.start <= y.start)) {
      push(x as ByteRange);
      i++;
    } else {
      push(y);
      j++;
    }
  }
  return out;
}

/** `list` plus one range (an empty range changes nothing). */
export function addRange(list: RangeList, r: ByteRange): ByteRange[] {
  return unionRanges(list, r.end > r.start ? [r] : []);
}

/** The parts of `a` not covered by `b`. */
export function subtractRanges(a: RangeList, b: RangeList): ByteRange[] {
  const out: ByteRange[] = [];
  let j = 0;
  for (const r of a) {
    // b ranges ending at or before r.start cannot touch r or any later range of a.
    while (j < b.length && (b[j] as ByteRange).end <= r.start) j++;
    let start = r.start;
    for (let k = j; k < b.length && start < r.end; k++) {
      const c = b[k] as ByteRange;
      if (c.start >= r.end) break;
      if (c.start > start) out.push({ start, end: c.start });
      if (c.end > start) start = c.end;
    }
    if (start < r.end) out.push({ start, end: r.end });
  }
  return out;
}

/** `list` minus one range. */
export function subtractRange(list: RangeList, r: ByteRange): ByteRange[] {
  return subtractRanges(list, r.end > r.start ? [r] : []);
}

/** The parts covered by both `a` and `b`. */
export function intersectRanges(a: RangeList, b: RangeList): ByteRange[] {
  const out: ByteRange[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i] as ByteRange;
    const y = b[j] as ByteRange;
    const start = Math.max(x.start, y.start);
    const end = Math.min(x.end, y.end);
    if (start < end) out.push({ start, end });
    if (x.end < y.end) i++;
    else j++;
  }
  return out;
}

/** The parts of `list` inside one range. */
export function intersectRange(list: RangeList, r: ByteRange): ByteRange[] {
  return intersectRanges(list, r.end > r.start ? [r] : []);
}

/** The parts of `list` inside [start, end). */
export function clipRanges(list: RangeList, start: number, end: number): ByteRange[] {
  return intersectRange(list, { start, end });
}

/** The parts of `list` below `size` (what survives truncating a file to `size` bytes). */
export function truncateRanges(list: RangeList, size: number): ByteRange[] {
  const out: ByteRange[] = [];
  for (const r of list) {
    if (r.start >= size) break;
    out.push({ start: r.start, end: Math.min(r.end, size) });
  }
  return out;
}

/** The parts of `want` that are not in `present` (what must still be fetched). */
export function missingRanges(want: ByteRange, present: RangeList): ByteRange[] {
  if (want.end <= want.start) return [];
  return subtractRanges([want], present);
}

/** Index of the range containing `pos`, or -1. Binary search. */
function indexContaining(list: RangeList, pos: number): number {
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const r = list[mid] as ByteRange;
    if (pos < r.start) hi = mid - 1;
    else if (pos >= r.end) lo = mid + 1;
    else return mid;
  }
  return -1;
}

/** True when every byte of `r` is in `list` (an empty range is always contained). */
export function containsRange(list: RangeList, r: ByteRange): boolean {
  if (r.end <= r.start) return true;
  const i = indexContaining(list, r.start);
  return i >= 0 && (list[i] as ByteRange).end >= r.end;
}

/** True when some byte of `r` is in `list`. */
export function overlapsRange(list: RangeList, r: ByteRange): boolean {
  if (r.end <= r.start) return false;
  // First range ending after r.start, by binary search.
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((list[mid] as ByteRange).end <= r.start) lo = mid + 1;
    else hi = mid;
  }
  const c = list[lo];
  return c !== undefined && c.start < r.end;
}

/** Structural equality of two range lists. */
export function rangesEqual(a: RangeList, b: RangeList): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as ByteRange;
    const y = b[i] as ByteRange;
    if (x.start !== y.start || x.end !== y.end) return false;
  }
  return true;
}

/** Copy of a range list (fresh objects). */
export function cloneRanges(list: RangeList): ByteRange[] {
  return list.map((r) => ({ start: r.start, end: r.end }));
}
