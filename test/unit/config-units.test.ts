import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { formatDuration, formatSize, parseDuration, parseSize } from '../../src/config/units.js';

const K = 1024;
const M = K * 1024;
const G = M * 1024;
const T = G * 1024;

function errorOf(f: () => unknown): ConfigError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['2d', 172_800_000],
    ['0', 0],
    ['0s', 0],
    ['00', 0],
    ['1h30m', 5_400_000],
    ['1m30s', 90_000],
    ['1s500ms', 1500],
    ['1.5s', 1500],
    ['0.25s', 250],
    ['.5s', 500],
    ['30S', 30_000],
    ['5M', 300_000],
    ['100MS', 100],
    [' 60s ', 60_000],
    ['1ms', 1],
  ])('%s → %d ms', (s, ms) => {
    expect(parseDuration(s)).toBe(ms);
  });

  it('accepts the number 0', () => {
    expect(parseDuration(0)).toBe(0);
  });

  it.each(['', 'abc', '5x', '-5s', '5 s', 's', '1h-30m', '5m junk', 'ms', '1e3s'])('refuses %j', (s) => {
    const e = errorOf(() => parseDuration(s, 'dirTtl'));
    expect(e.key).toBe('dirTtl');
    expect(e.message).toBe(`dirTtl: ${JSON.stringify(s)} is not a duration (e.g. 500ms, 30s, 5m, 1h)`);
  });

  it('refuses a bare non-zero number as ambiguous', () => {
    expect(() => parseDuration('30', 'refreshInterval')).toThrow(
      'refreshInterval: "30" is not a duration: give it a unit',
    );
    expect(() => parseDuration(30, 'refreshInterval')).toThrow('refreshInterval: 30 is not a duration');
  });

  it('names "duration" when no key is given', () => {
    expect(errorOf(() => parseDuration('x')).key).toBe('duration');
  });
});

describe('parseSize', () => {
  it.each([
    ['4096', 4096],
    ['0', 0],
    ['512B', 512],
    ['10K', 10 * K],
    ['10k', 10 * K],
    ['10KB', 10 * K],
    ['10KiB', 10 * K],
    ['10kib', 10 * K],
    ['512M', 512 * M],
    ['512MiB', 512 * M],
    ['20G', 20 * G],
    ['20g', 20 * G],
    ['20GB', 20 * G],
    ['20 GiB', 20 * G],
    ['1T', T],
    ['1P', 1024 * T],
    ['1.5G', 1.5 * G],
    ['0.5K', 512],
    [' 64M ', 64 * M],
  ])('%s → %d bytes', (s, n) => {
    expect(parseSize(s)).toBe(n);
  });

  it('accepts whole numbers of bytes', () => {
    expect(parseSize(1234)).toBe(1234);
    expect(parseSize(0)).toBe(0);
  });

  it.each(['20X', '', 'G', '-1G', '1.5', '10iB', '10 X', '1G2M', 'ten', '1e9'])('refuses %j', (s) => {
    const e = errorOf(() => parseSize(s, 'cacheSize'));
    expect(e.key).toBe('cacheSize');
    expect(e.message.startsWith(`cacheSize: ${JSON.stringify(s)} is not a`)).toBe(true);
  });

  it('names the key and the bad value: cacheSize: "20X" is not a size', () => {
    expect(() => parseSize('20X', 'cacheSize')).toThrow('cacheSize: "20X" is not a size');
  });

  it('refuses negative, fractional and unsafe numbers', () => {
    expect(() => parseSize(-1, 'cacheSize')).toThrow('cacheSize: -1 is not a size');
    expect(() => parseSize(1.5, 'cacheSize')).toThrow(ConfigError);
    expect(() => parseSize(2 ** 60, 'cacheSize')).toThrow(ConfigError);
    expect(() => parseSize('99999P', 'cacheSize')).toThrow('too large');
  });
});

describe('formatSize', () => {
  it.each([
    [0, '0B'],
    [512, '512B'],
    [1023, '1023B'],
    [1024, '1K'],
    [1536, '1.5K'],
    [10 * G, '10G'],
    [512 * M, '512M'],
    [20 * G, '20G'],
    [T, '1T'],
    [1.25 * G, '1.3G'],
    [M - 1, '1M'],
    [1024 * T, '1P'],
  ])('%d → %s', (n, s) => {
    expect(formatSize(n)).toBe(s);
  });

  it('round-trips exact multiples through parseSize', () => {
    for (const n of [0, 1, 512, K, 3 * K, 10 * G, 512 * M, 7 * T, 1.5 * G]) {
      expect(parseSize(formatSize(n))).toBe(n);
    }
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [1, '1ms'],
    [500, '500ms'],
    [1000, '1s'],
    [1500, '1.5s'],
    [30_000, '30s'],
    [60_000, '1m'],
    [90_000, '1m30s'],
    [300_000, '5m'],
    [3_600_000, '1h'],
    [5_400_000, '1h30m'],
    [3_601_000, '1h0m1s'],
    [90_000_000, '25h'],
  ])('%d → %s', (ms, s) => {
    expect(formatDuration(ms)).toBe(s);
  });

  it('round-trips through parseDuration', () => {
    for (const ms of [0, 1, 999, 1000, 1001, 61_500, 3_600_000, 3_661_001, 86_400_000 * 3 + 7]) {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
  });
});
