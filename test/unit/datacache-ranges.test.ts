import { describe, expect, it } from 'vitest';
import type { ByteRange } from '../../src/core/types.js';
import {
  addRange,
  clipRanges,
  cloneRanges,
  containsRange,
  intersectRange,
  intersectRanges,
  isNormalized,
  missingRanges,
  normalizeRanges,
  overlapsRange,
  rangesEqual,
  subtractRange,
  subtractRanges,
  totalBytes,
  truncateRanges,
  unionRanges,
} from '../../src/datacache/ranges.js';

const R = (start: number, end: number): ByteRange => ({ start, end });

describe('ranges: basics', () => {
  it('normalizes: sorts, drops empties, merges overlapping and touching ranges', () => {
    expect(normalizeRanges([R(10, 20), R(0, 5), R(5, 7), R(3, 3), R(15, 25), R(30, 29)])).toEqual([
      R(0, 7),
      R(10, 25),
    ]);
    expect(normalizeRanges([])).toEqual([]);
  });

  it('isNormalized', () => {
    expect(isNormalized([])).toBe(true);
    expect(isNormalized([R(0, 1), R(2, 3)])).toBe(true);
    expect(isNormalized([R(0, 1), R(1, 3)])).toBe(false); // touching
    expect(isNormalized([R(2, 3), R(0, 1)])).toBe(false);
    expect(isNormalized([R(1, 1)])).toBe(false);
    expect(isNormalized([R(-1, 1)])).toBe(false);
    expect(isNormalized([R(0.5, 1)])).toBe(false);
  });

  it('addRange merges with neighbours', () => {
    expect(addRange([R(0, 5), R(10, 15)], R(5, 10))).toEqual([R(0, 15)]);
    expect(addRange([R(0, 5), R(10, 15)], R(6, 9))).toEqual([R(0, 5), R(6, 9), R(10, 15)]);
    expect(addRange([R(0, 5)], R(7, 7))).toEqual([R(0, 5)]);
    expect(addRange([], R(3, 4))).toEqual([R(3, 4)]);
    expect(addRange([R(2, 4), R(6, 8)], R(0, 100))).toEqual([R(0, 100)]);
  });

  it('union', () => {
    expect(unionRanges([R(0, 2), R(8, 10)], [R(1, 3), R(5, 6), R(10, 11)])).toEqual([
      R(0, 3),
      R(5, 6),
      R(8, 11),
    ]);
  });

  it('subtract', () => {
    expect(subtractRange([R(0, 10)], R(3, 5))).toEqual([R(0, 3), R(5, 10)]);
    expect(subtractRange([R(0, 10)], R(0, 10))).toEqual([]);
    expect(subtractRange([R(0, 10), R(20, 30)], R(5, 25))).toEqual([R(0, 5), R(25, 30)]);
    expect(subtractRanges([R(0, 10), R(20, 30)], [R(-5, 1), R(9, 21), R(29, 40)])).toEqual([
      R(1, 9),
      R(21, 29),
    ]);
    // one b range covering several a ranges
    expect(subtractRanges([R(0, 2), R(4, 6), R(8, 10)], [R(1, 9)])).toEqual([R(0, 1), R(9, 10)]);
  });

  it('intersect and clip', () => {
    expect(intersectRanges([R(0, 5), R(10, 15)], [R(3, 12)])).toEqual([R(3, 5), R(10, 12)]);
    expect(intersectRange([R(0, 5)], R(5, 10))).toEqual([]);
    expect(clipRanges([R(0, 5), R(7, 9)], 2, 8)).toEqual([R(2, 5), R(7, 8)]);
  });

  it('truncate', () => {
    expect(truncateRanges([R(0, 5), R(7, 9), R(12, 20)], 8)).toEqual([R(0, 5), R(7, 8)]);
    expect(truncateRanges([R(0, 5)], 0)).toEqual([]);
    expect(truncateRanges([R(0, 5)], 5)).toEqual([R(0, 5)]);
  });

  it('missing', () => {
    expect(missingRanges(R(0, 10), [R(2, 4), R(6, 8)])).toEqual([R(0, 2), R(4, 6), R(8, 10)]);
    expect(missingRanges(R(0, 10), [R(0, 10)])).toEqual([]);
    expect(missingRanges(R(5, 5), [])).toEqual([]);
  });

  it('total, contains, overlaps, equal', () => {
    expect(totalBytes([R(0, 5), R(10, 12)])).toBe(7);
    expect(containsRange([R(0, 5), R(10, 12)], R(1, 5))).toBe(true);
    expect(containsRange([R(0, 5), R(10, 12)], R(4, 11))).toBe(false);
    expect(containsRange([], R(4, 4))).toBe(true);
    expect(overlapsRange([R(0, 5), R(10, 12)], R(5, 10))).toBe(false);
    expect(overlapsRange([R(0, 5), R(10, 12)], R(5, 11))).toBe(true);
    expect(overlapsRange([R(0, 5)], R(2, 2))).toBe(false);
    expect(rangesEqual([R(0, 1)], [R(0, 1)])).toBe(true);
    expect(rangesEqual([R(0, 1)], [R(0, 2)])).toBe(false);
  });

  it('never mutates or aliases inputs', () => {
    const a = [R(0, 5), R(10, 15)];
    const b = [R(5, 10)];
    const snapA = cloneRanges(a);
    const u = unionRanges(a, b);
    u[0]!.end = 99;
    const s = subtractRanges(a, []);
    s[0]!.start = 3;
    const t = truncateRanges(a, 100);
    t[1]!.end = 1;
    expect(a).toEqual(snapA);
    expect(b).toEqual([R(5, 10)]);
  });
});

// ---- randomized test against a bitmap model -------------------------------------------------

const N = 64;

/** Deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function toBits(list: readonly ByteRange[]): boolean[] {
  const bits = new Array<boolean>(N + 8).fill(false);
  for (const r of list) for (let i = r.start; i < r.end; i++) bits[i] = true;
  return bits;
}

function fromBits(bits: readonly boolean[]): ByteRange[] {
  const out: ByteRange[] = [];
  let i = 0;
  while (i < bits.length) {
    if (!bits[i]) {
      i++;
      continue;
    }
    const s = i;
    while (i < bits.length && bits[i]) i++;
    out.push({ start: s, end: i });
  }
  return out;
}

function randomRange(rand: () => number): ByteRange {
  const a = Math.floor(rand() * (N + 1));
  const b = Math.floor(rand() * (N + 1));
  return { start: Math.min(a, b), end: Math.max(a, b) };
}

function randomList(rand: () => number): ByteRange[] {
  const bits = new Array<boolean>(N).fill(false);
  const density = rand();
  for (let i = 0; i < N; i++) bits[i] = rand() < density;
  return fromBits(bits);
}

describe('ranges: randomized against a bitmap model', () => {
  it('every operation matches the bitmap and returns normalized lists', () => {
    const rand = rng(12345);
    for (let iter = 0; iter < 3000; iter++) {
      const a = randomList(rand);
      const b = randomList(rand);
      const r = randomRange(rand);
      const size = Math.floor(rand() * (N + 2));
      const A = toBits(a);
      const B = toBits(b);
      const Rb = toBits([r]);
      const check = (got: ByteRange[], want: boolean[]): void => {
        expect(isNormalized(got)).toBe(true);
        expect(got).toEqual(fromBits(want));
      };
      check(
        unionRanges(a, b),
        A.map((x, i) => x || !!B[i]),
      );
      check(
        subtractRanges(a, b),
        A.map((x, i) => x && !B[i]),
      );
      check(
        intersectRanges(a, b),
        A.map((x, i) => x && !!B[i]),
      );
      check(
        addRange(a, r),
        A.map((x, i) => x || !!Rb[i]),
      );
      check(
        subtractRange(a, r),
        A.map((x, i) => x && !Rb[i]),
      );
      check(
        intersectRange(a, r),
        A.map((x, i) => x && !!Rb[i]),
      );
      check(
        clipRanges(a, r.start, r.end),
        A.map((x, i) => x && !!Rb[i]),
      );
      check(
        truncateRanges(a, size),
        A.map((x, i) => x && i < size),
      );
      check(
        missingRanges(r, a),
        Rb.map((x, i) => x && !A[i]),
      );
      expect(totalBytes(a)).toBe(A.filter((x) => x).length);
      const inR = A.filter((_, i) => i >= r.start && i < r.end);
      expect(containsRange(a, r)).toBe(inR.every((x) => x));
      expect(overlapsRange(a, r)).toBe(inR.some((x) => x));
      // normalize of an arbitrary (shuffled, overlapping) concatenation equals the union
      const shuffled = [...a, ...b, r].sort(() => rand() - 0.5);
      check(
        normalizeRanges(shuffled),
        A.map((x, i) => x || !!B[i] || !!Rb[i]),
      );
    }
  });
});
