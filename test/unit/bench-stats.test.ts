import { describe, expect, it } from 'vitest';
import { parseStatTicks, parseStatusKiB } from '../../src/bench/proc.js';
import { paramsFor, parseOptions } from '../../src/bench/options.js';
import { treeSizes } from '../../src/bench/setup.js';
import {
  fmtMiB,
  fmtRate,
  fmtRatio,
  fmtSeconds,
  maxOf,
  median,
  minOf,
  prng,
  ratio,
  renderMarkdownTable,
  renderTextTable,
} from '../../src/bench/stats.js';

describe('median', () => {
  it('of odd and even counts, unsorted input', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([5])).toBe(5);
  });
  it('ignores non-finite values and is null when nothing is left', () => {
    expect(median([])).toBeNull();
    expect(median([NaN, Infinity])).toBeNull();
    expect(median([NaN, 7, 1])).toBe(4);
  });
  it('does not reorder its input', () => {
    const xs = [3, 1, 2];
    median(xs);
    expect(xs).toEqual([3, 1, 2]);
  });
});

describe('maxOf / minOf / ratio', () => {
  it('skip null and undefined', () => {
    expect(maxOf([1, null, 5, undefined, 3])).toBe(5);
    expect(minOf([4, null, 2])).toBe(2);
    expect(maxOf([null])).toBeNull();
  });
  it('ratio is null for missing figures and non-positive divisors', () => {
    expect(ratio(6, 2)).toBe(3);
    expect(ratio(null, 2)).toBeNull();
    expect(ratio(2, 0)).toBeNull();
    expect(ratio(2, -1)).toBeNull();
    expect(ratio(undefined, 1)).toBeNull();
  });
});

describe('formatting', () => {
  it('seconds with about 3 significant digits', () => {
    expect(fmtSeconds(0.0042)).toBe('0.0042');
    expect(fmtSeconds(0.1234)).toBe('0.123');
    expect(fmtSeconds(1.234)).toBe('1.23');
    expect(fmtSeconds(12.34)).toBe('12.3');
    expect(fmtSeconds(123.4)).toBe('123');
    expect(fmtSeconds(null)).toBe('—');
  });
  it('ratios, rates and MiB', () => {
    expect(fmtRatio(1.234)).toBe('1.23x');
    expect(fmtRatio(12.34)).toBe('12.3x');
    expect(fmtRatio(250)).toBe('250x');
    expect(fmtRatio(null)).toBe('—');
    expect(fmtRate(512 * 2 ** 20, 2)).toBe('256');
    expect(fmtRate(1, 0)).toBe('—');
    expect(fmtMiB(123.6)).toBe('124');
  });
});

describe('tables', () => {
  it('text tables align columns (first left, others right)', () => {
    const t = renderTextTable(
      ['name', 'v'],
      [
        ['a', '1'],
        ['long name', '22'],
      ],
    );
    expect(t.split('\n')).toEqual(['name        v', '---------  --', 'a           1', 'long name  22']);
  });
  it('markdown tables escape pipes and mark right-aligned columns', () => {
    const t = renderMarkdownTable(['w', 's'], [['a|b', '1']]);
    expect(t.split('\n')).toEqual(['| w | s |', '|---|---:|', '| a\\|b | 1 |']);
  });
  it('missing cells are empty', () => {
    expect(renderMarkdownTable(['a', 'b'], [['x']])).toContain('| x |  |');
  });
});

describe('prng and tree sizes', () => {
  it('is deterministic and in [0, 1)', () => {
    const a = prng(7);
    const b = prng(7);
    for (let i = 0; i < 100; i++) {
      const x = a();
      expect(x).toBe(b());
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThan(1);
    }
  });
  it('2000 tree files make about 19 MB, every file non-empty', () => {
    const s = treeSizes(2000, 9500);
    expect(s).toHaveLength(2000);
    expect(Math.min(...s)).toBeGreaterThan(0);
    const total = s.reduce((x, y) => x + y, 0);
    expect(total).toBeGreaterThan(17.5e6);
    expect(total).toBeLessThan(20.5e6);
  });
});

describe('/proc parsing', () => {
  it('utime + stime after a command name with spaces and parentheses', () => {
    const stat = '1234 (node (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 11 0 500 1000 100';
    expect(parseStatTicks(stat)).toBe(325);
    expect(parseStatTicks('garbage')).toBeNull();
  });
  it('VmHWM and VmRSS in KiB', () => {
    const status = 'Name:\tnode\nVmPeak:\t 900 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n';
    expect(parseStatusKiB(status, 'VmHWM')).toBe(204800);
    expect(parseStatusKiB(status, 'VmRSS')).toBe(102400);
    expect(parseStatusKiB('Name: x\n', 'VmHWM')).toBeNull();
  });
});

describe('options', () => {
  it('full run: 3 repetitions and the sizes of the issue', () => {
    const o = parseOptions([], '/r');
    expect(o.reps).toBe(3);
    expect(o.out).toBe('/r/.bench');
    const p = paramsFor(false, 3);
    expect(p.bigBytes).toBe(512 * 2 ** 20);
    expect(p.nfsBytes).toBe(256 * 2 ** 20);
    expect(p.smallFiles).toBe(1000);
    expect(p.lsFiles).toBe(2000);
    expect(p.sdkSmallObjects).toBe(2000);
    expect(p.treeFiles).toBe(2000);
    expect(p.randomReads).toBe(2000);
  });
  it('quick: 1 repetition and a quarter of the sizes', () => {
    expect(parseOptions(['--quick'], '/r').reps).toBe(1);
    expect(paramsFor(true, 1).bigBytes).toBe(128 * 2 ** 20);
  });
  it('--only expands aliases and rejects unknown systems', () => {
    const o = parseOptions(['--only', 'rclone,bg-cache'], '/r');
    expect([...o.only].sort()).toEqual(['bg-cache', 'rclone-full', 'rclone-writes']);
    expect(o.onlyGiven).toBe(true);
    expect(() => parseOptions(['--only', 'nope'], '/r')).toThrow(/unknown system/);
    expect(() => parseOptions(['--reps', '0'], '/r')).toThrow(/positive/);
    expect(() => parseOptions(['--bogus'], '/r')).toThrow(/unknown option/);
  });
});
