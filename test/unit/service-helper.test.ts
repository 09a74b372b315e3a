/**
 * The fstab helper's argument handling: the argument vector mount(8) builds, helper-only
 * options, sloppy mode, and option checks that fail before anything starts.
 */
import { describe, expect, it } from 'vitest';
import { mountHelper, parseHelperArgv, splitHelperOptions } from '../../src/cli/mount-helper.js';
import { takeServiceFlags } from '../../src/cli/service-flags.js';

describe('mount.fuse.bucketgate arguments', () => {
  it('reads SOURCE TARGET and the flags mount(8) adds', () => {
    expect(parseHelperArgv(['s3://b/p', '/mnt/x', '-o', 'rw,_netdev,cache-size=1G'])).toEqual({
      source: 's3://b/p',
      target: '/mnt/x',
      options: 'rw,_netdev,cache-size=1G',
      sloppy: false,
      fake: false,
      verbose: false,
    });
    const a = parseHelperArgv([
      's3://b',
      '/m',
      '-s',
      '-fnv',
      '-oro',
      '-t',
      'fuse.bucketgate',
      '-o',
      'allow_other',
    ]);
    expect(a).toMatchObject({ sloppy: true, fake: true, verbose: true, options: 'ro,allow_other' });
    expect(parseHelperArgv(['bucket/prefix', '/m']).source).toBe('s3://bucket/prefix');
    expect(() => parseHelperArgv(['s3://b'])).toThrow(/usage/);
    expect(() => parseHelperArgv(['s3://b', '/m', '-N', '/proc/1/ns/mnt'])).toThrow(/namespace/);
    expect(() => parseHelperArgv(['s3://b', '/m', '-x'])).toThrow(/unknown flag -x/);
  });

  it('separates helper options, keeps share and generic options, drops unknown ones when sloppy', () => {
    const r = splitHelperOptions(
      'rw,_netdev,x-systemd.automount,allow_other,cache-dir=/c,nfs-clients=10.0.0.0/8,192.168.0.0/16,log-file=/var/log/x.log,metrics=9464,profile=p,bogus=1',
      true,
    );
    expect(r.share).toEqual([
      'rw',
      '_netdev',
      'x-systemd.automount',
      'allow_other',
      'cache-dir=/c',
      'nfs-clients=10.0.0.0/8',
      '192.168.0.0/16',
    ]);
    expect(r.helper).toEqual({ 'log-file': '/var/log/x.log', metrics: '9464', profile: 'p' });
    expect(r.dropped).toEqual(['bogus=1']);
    expect(splitHelperOptions('bogus=1', false).share).toEqual(['bogus=1']);
    expect(() => splitHelperOptions('log-file', false)).toThrow(/needs a value/);
  });

  it('exits 1 on a bad option and 0 in fake mode, starting nothing', async () => {
    const writes: string[] = [];
    const orig = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => writes.push(String(s)) > 0) as typeof process.stderr.write;
    try {
      expect(await mountHelper(['s3://b', '/nonexistent-mnt', '-o', 'cache-size=20X'])).toBe(1);
      expect(await mountHelper(['s3://b', '/nonexistent-mnt', '-o', 'cache-sise=1G'])).toBe(1);
      expect(await mountHelper(['s3://b', '/nonexistent-mnt', '-f', '-o', 'cache-size=1G,_netdev'])).toBe(0);
      expect(await mountHelper(['s3://b', '/nonexistent-mnt', '-f', '-s', '-o', 'whatever=1'])).toBe(0);
    } finally {
      process.stderr.write = orig;
    }
    expect(writes.join('')).toMatch(/mount\.fuse\.bucketgate: -o cache-size: "20X" is not a size/);
    expect(writes.join('')).toMatch(/unknown mount option "cache-sise" \(did you mean cache-size\?\)/);
  });
});

describe('bucketgate mount daemon-wide flags', () => {
  it('takes --metrics, --audit-log and --log-format out of the arguments', () => {
    const args = [
      's3://b',
      '/m',
      '--metrics',
      '9464',
      '--cache-size',
      '1G',
      '--audit-log=a.log',
      '--log-format',
      'json',
    ];
    expect(takeServiceFlags(args, '/srv')).toEqual({
      metrics: { host: '127.0.0.1', port: 9464 },
      auditLog: '/srv/a.log',
      logFormat: 'json',
    });
    expect(args).toEqual(['s3://b', '/m', '--cache-size', '1G']);
    expect(takeServiceFlags(['--metrics=[::1]:9100']).metrics).toEqual({ host: '::1', port: 9100 });
    expect(takeServiceFlags(['--metrics', '0.0.0.0:9100']).metrics).toEqual({ host: '0.0.0.0', port: 9100 });
    expect(() => takeServiceFlags(['--metrics', 'x:y'])).toThrow(/--metrics: "x:y": "y" is not a port/);
    expect(() => takeServiceFlags(['--log-format', 'xml'])).toThrow(
      /--log-format: "xml" is not one of text, json/,
    );
    expect(() => takeServiceFlags(['--audit-log'])).toThrow(/--audit-log needs a value/);
  });
});
