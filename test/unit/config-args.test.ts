import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  MOUNT_OPTIONS,
  UsageError,
  checkSharesDistinct,
  parseFstabOptions,
  parseMountArgs,
  parseMountInput,
  resolveDaemonConfig,
  resolveShare,
  type ShareConfig,
} from '../../src/config/index.js';

const G = 2 ** 30;
const BASE = ['s3://bucket', '/mnt/b'];

function mount(...extra: string[]): ShareConfig {
  return parseMountArgs([...BASE, ...extra], { cwd: '/work' });
}

function usageError(f: () => unknown): UsageError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return e as UsageError;
  }
  throw new Error('expected a UsageError');
}

function configError(f: () => unknown): ConfigError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('parseMountArgs: defaults', () => {
  it('fills every default of cli.md', () => {
    expect(parseMountArgs(['s3://bucket', '/mnt/b'])).toEqual({
      name: 'bucket',
      url: 's3://bucket',
      bucket: 'bucket',
      prefix: '',
      region: 'us-east-1',
      pathStyle: false,
      cacheDir: '/var/cache/bucketgate/bucket',
      cacheSize: 10 * G,
      mode: 'cache',
      refreshIntervalMs: 300_000,
      dirTtlMs: 60_000,
      attrTimeoutMs: 1000,
      uploadDelayMs: 1000,
      uploadBusyDeferMs: 5000,
      cacheWriteWaitMs: 60_000,
      s3TimeoutMs: 30_000,
      uploadConcurrency: 4,
      checksum: 'auto',
      mountpoint: '/mnt/b',
      noFuse: false,
      allowOther: false,
      nfsPortmap: false,
      nfsSecure: false,
      nfsClients: ['127.0.0.1/32'],
      nfsRoClients: [],
      nfsSquash: 'root_squash',
      nfsAnonUid: 65534,
      nfsAnonGid: 65534,
      readOnly: false,
      uid: 0,
      gid: 0,
      fileMode: 0o644,
      dirMode: 0o755,
      logLevel: 'info',
      adminSocketDir: '/run/bucketgate',
    } satisfies ShareConfig);
  });

  it('leaves endpoint, nfs and credentials absent', () => {
    const c = mount();
    expect('endpoint' in c).toBe(false);
    expect('nfs' in c).toBe(false);
    expect('credentials' in c).toBe(false);
  });
});

describe('parseMountArgs: URL, prefix and derived names', () => {
  it.each([
    ['s3://b', 'b', '', 's3://b'],
    ['s3://b/', 'b', '', 's3://b'],
    ['s3://b/p', 'b-p', 'p/', 's3://b/p'],
    ['s3://b/p/q/', 'b-p-q', 'p/q/', 's3://b/p/q'],
    ['s3://b/p/q///', 'b-p-q', 'p/q/', 's3://b/p/q'],
    ['s3://my.bucket-1/data_2024', 'my.bucket-1-data_2024', 'data_2024/', 's3://my.bucket-1/data_2024'],
    ['S3://b/x', 'b-x', 'x/', 's3://b/x'],
  ])('%s → name %s, prefix %j', (url, name, prefix, canonical) => {
    const c = parseMountArgs([url, '/m']);
    expect(c.name).toBe(name);
    expect(c.bucket).toBe(url.replace(/^s3:\/\//i, '').split('/')[0]);
    expect(c.prefix).toBe(prefix);
    expect(c.url).toBe(canonical);
    expect(c.cacheDir).toBe(`/var/cache/bucketgate/${name}`);
  });

  it('--name overrides the derived name (and the cache dir default follows it)', () => {
    const c = mount('--name', 'photos');
    expect(c.name).toBe('photos');
    expect(c.cacheDir).toBe('/var/cache/bucketgate/photos');
  });

  it.each([
    'bucket',
    'http://b/x',
    's3://',
    's3:///p',
    's3://host:9000/b',
    's3://b/a//c',
    's3://b/../x',
    's3://b?x',
  ])('refuses the URL %j as a usage error naming it', (url) => {
    const e = usageError(() => parseMountArgs([url, '/m']));
    expect(e.key).toBe('url');
    expect(e.message).toMatch(/^URL: /);
    expect(e.message).toContain(JSON.stringify(url));
  });

  it('a derived name that is not a valid share name asks for --name', () => {
    const e = usageError(() => parseMountArgs(['s3://b/my dir', '/m']));
    expect(e.key).toBe('name');
    expect(e.message).toContain('"b-my dir"');
    expect(e.message).toMatch(/^--name: /);
    expect(parseMountArgs(['s3://b/my dir', '/m', '--name', 'b-mydir']).prefix).toBe('my dir/');
    const long = `s3://b/${'x'.repeat(70)}`;
    expect(() => parseMountArgs([long, '/m'])).toThrow(/--name: .* is not a valid share name/);
  });

  it.each(['a/b', 'has space', '', 'x'.repeat(65), 'ü'])('refuses --name %j', (name) => {
    const e = usageError(() => mount('--name', name));
    expect(e.key).toBe('name');
    expect(e.message).toMatch(/^--name: /);
  });
});

/** Every flag of cli.md, with a value and the resulting ShareConfig fields. */
const FLAG_CASES: [string[], Partial<ShareConfig>][] = [
  [['--endpoint', 'http://127.0.0.1:9000'], { endpoint: 'http://127.0.0.1:9000' }],
  [['--region', 'eu-west-3'], { region: 'eu-west-3' }],
  [['--path-style'], { pathStyle: true }],
  [['--cache-dir', '/var/tmp/c'], { cacheDir: '/var/tmp/c' }],
  [['--cache-size', '20G'], { cacheSize: 20 * G }],
  [['--mode', 'write-through'], { mode: 'write-through' }],
  [['--refresh-interval', '0'], { refreshIntervalMs: 0 }],
  [['--dir-ttl', '5s'], { dirTtlMs: 5000 }],
  [['--name', 'n1'], { name: 'n1' }],
  [['--checksum', 'crc64nvme'], { checksum: 'crc64nvme' }],
  [['--nfs', '0.0.0.0:20490'], { nfs: { host: '0.0.0.0', port: 20490 } }],
  [['--nfs-portmap'], { nfsPortmap: true }],
  [['--nfs-secure'], { nfsSecure: true }],
  [['--nfs-clients', '10.0.0.0/8,192.168.1.7'], { nfsClients: ['10.0.0.0/8', '192.168.1.7'] }],
  [['--nfs-ro-clients', 'fd00::/8'], { nfsRoClients: ['fd00::/8'] }],
  [['--nfs-squash', 'all_squash'], { nfsSquash: 'all_squash' }],
  [['--nfs-squash', 'all_anonymous'], { nfsSquash: 'all_squash' }],
  [['--nfs-squash', 'none'], { nfsSquash: 'none' }],
  [['--nfs-anon-uid', '1000'], { nfsAnonUid: 1000 }],
  [['--nfs-anon-gid', '1001'], { nfsAnonGid: 1001 }],
  [['--read-only'], { readOnly: true }],
  [['--uid', '1000'], { uid: 1000 }],
  [['--gid', '100'], { gid: 100 }],
  [['--file-mode', '0600'], { fileMode: 0o600 }],
  [['--dir-mode', '0700'], { dirMode: 0o700 }],
  [['--allow-other'], { allowOther: true }],
  [['--log-level', 'debug'], { logLevel: 'debug' }],
  [['--upload-delay', '250ms'], { uploadDelayMs: 250 }],
  [['--cache-write-wait', '5s'], { cacheWriteWaitMs: 5000 }],
  [['--upload-busy-defer', '0'], { uploadBusyDeferMs: 0 }],
  [['--upload-busy-defer', '10s'], { uploadBusyDeferMs: 10_000 }],
  [['--s3-timeout', '2m'], { s3TimeoutMs: 120_000 }],
  [['--upload-concurrency', '16'], { uploadConcurrency: 16 }],
  [['--attr-timeout', '0'], { attrTimeoutMs: 0 }],
  [['--admin-dir', '/tmp/bg-admin'], { adminSocketDir: '/tmp/bg-admin' }],
];

describe('parseMountArgs: every flag', () => {
  it.each(FLAG_CASES)('%j', (args, expected) => {
    expect(mount(...args)).toMatchObject(expected);
  });

  it.each(FLAG_CASES.filter(([a]) => a.length === 2))('--flag=value form of %j', (args, expected) => {
    expect(mount(`${args[0]}=${args[1]}`)).toMatchObject(expected);
  });

  it('covers every flag of cli.md (plus the cache-issue additions)', () => {
    const cliMd = [
      'endpoint', 'region', 'path-style', 'cache-dir', 'cache-size', 'mode', 'refresh-interval', 'dir-ttl',
      'name', 'checksum', 'nfs', 'nfs-portmap', 'nfs-secure', 'no-fuse', 'nfs-clients', 'nfs-ro-clients',
      'nfs-squash', 'nfs-anon-uid', 'nfs-anon-gid', 'read-only', 'uid', 'gid', 'file-mode', 'dir-mode',
      'allow-other', 'log-level', 'upload-delay', 'upload-busy-defer', 'cache-write-wait', 's3-timeout', 'upload-concurrency', 'attr-timeout', 'admin-dir',
    ]; // prettier-ignore
    expect(MOUNT_OPTIONS.map((o) => o.flag).sort()).toEqual([...cliMd].sort());
    const tested = new Set(FLAG_CASES.map(([a]) => (a[0] ?? '').slice(2)));
    for (const f of cliMd) if (f !== 'no-fuse') expect(tested.has(f)).toBe(true);
    for (const o of MOUNT_OPTIONS)
      expect(o.key).toBe(o.flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()));
  });

  it('options may come before, between and after the positionals', () => {
    const c = parseMountArgs(['--read-only', 's3://b/p', '--uid', '7', '/m', '--gid=8']);
    expect(c).toMatchObject({ readOnly: true, uid: 7, gid: 8, bucket: 'b', prefix: 'p/', mountpoint: '/m' });
  });

  it('boolean flags take =true/false (and yes/no, on/off, 1/0)', () => {
    expect(mount('--path-style=false').pathStyle).toBe(false);
    expect(mount('--read-only=yes').readOnly).toBe(true);
    expect(mount('--allow-other=0').allowOther).toBe(false);
    const e = usageError(() => mount('--read-only=maybe'));
    expect(e.message).toBe('--read-only: "maybe" is not true or false');
    expect(e.key).toBe('readOnly');
  });

  it('a boolean flag does not swallow the next argument', () => {
    const c = parseMountArgs(['--read-only', 's3://b', '/m']);
    expect(c.readOnly).toBe(true);
    expect(c.bucket).toBe('b');
  });

  it('the last value of a repeated flag wins; client lists accumulate', () => {
    expect(mount('--mode', 'write-through', '--mode', 'cache').mode).toBe('cache');
    const c = mount('--nfs-clients', '10.0.0.0/8', '--nfs-clients=192.168.0.0/16,10.1.2.3');
    expect(c.nfsClients).toEqual(['10.0.0.0/8', '192.168.0.0/16', '10.1.2.3']);
  });

  it('an empty client list allows no read-write client', () => {
    expect(mount('--nfs-clients', '').nfsClients).toEqual([]);
  });

  it('resolves relative paths against the working directory', () => {
    const c = parseMountArgs(['s3://b', 'mnt', '--cache-dir', './cache', '--admin-dir=run'], {
      cwd: '/home/u',
    });
    expect(c.mountpoint).toBe('/home/u/mnt');
    expect(c.cacheDir).toBe('/home/u/cache');
    expect(c.adminSocketDir).toBe('/home/u/run');
  });

  it('-- ends the options', () => {
    expect(parseMountArgs(['--', 's3://b', '-weird-dir']).mountpoint).toMatch(/\/-weird-dir$/);
  });

  it('normalises the endpoint and keeps https', () => {
    expect(mount('--endpoint', 'http://127.0.0.1:9000/').endpoint).toBe('http://127.0.0.1:9000');
    expect(mount('--endpoint', 'https://s3.example.com').endpoint).toBe('https://s3.example.com');
  });
});

describe('parseMountArgs: usage errors', () => {
  it('an unknown flag is named, with a suggestion', () => {
    expect(usageError(() => mount('--cache-sise', '1G')).message).toBe(
      'unknown option --cache-sise (did you mean --cache-size?)',
    );
    expect(usageError(() => mount('--frobnicate')).message).toBe('unknown option --frobnicate');
    expect(usageError(() => mount('-x')).message).toBe('unknown option -x');
  });

  it('a flag without its value', () => {
    const e = usageError(() => mount('--cache-size'));
    expect(e.message).toBe('--cache-size needs a value (--cache-size SIZE)');
    expect(e.key).toBe('cacheSize');
    expect(usageError(() => mount('--cache-dir', '--read-only')).message).toMatch(
      /^--cache-dir needs a value .*write --cache-dir=VALUE/,
    );
    expect(mount('--cache-dir=-odd').cacheDir).toBe('/work/-odd');
  });

  it('missing positionals', () => {
    expect(usageError(() => parseMountArgs([])).message).toBe('missing s3://BUCKET[/PREFIX]');
    expect(usageError(() => parseMountArgs(['--read-only'])).key).toBe('url');
    const e = usageError(() => parseMountArgs(['s3://b']));
    expect(e.key).toBe('mountpoint');
    expect(e.message).toMatch(/^missing MOUNTPOINT/);
  });

  it('an extra positional', () => {
    expect(usageError(() => parseMountArgs(['s3://b', '/m', 'x'])).message).toBe('unexpected argument "x"');
  });

  it('is exit code 2', () => {
    expect(usageError(() => parseMountArgs([])).exitCode).toBe(2);
  });

  it.each([
    [['--cache-size', '20X'], 'cacheSize', '--cache-size: "20X" is not a size'],
    [['--cache-size', '0'], 'cacheSize', '--cache-size: "0" must be above 0'],
    [['--mode', 'writeback'], 'mode', '--mode: "writeback" is not one of cache, write-through'],
    [
      ['--refresh-interval', '5'],
      'refreshInterval',
      '--refresh-interval: "5" is not a duration: give it a unit',
    ],
    [['--refresh-interval', '30d'], 'refreshInterval', '--refresh-interval: "30d" is too long'],
    [['--upload-delay', '1y'], 'uploadDelay', '--upload-delay: "1y" is not a duration'],
    [['--dir-ttl', 'soon'], 'dirTtl', '--dir-ttl: "soon" is not a duration'],
    [['--attr-timeout=-1s'], 'attrTimeout', '--attr-timeout: "-1s" is not a duration'],
    [['--checksum', 'sha1'], 'checksum', '--checksum: "sha1" is not one of auto, md5, crc32c, crc64nvme'],
    [['--nfs-squash', 'squash'], 'nfsSquash', '--nfs-squash: "squash" is not one of none, root_squash'],
    [['--log-level', 'trace'], 'logLevel', '--log-level: "trace" is not one of error, warn, info, debug'],
    [['--uid', '-1'], 'uid', '--uid needs a value'],
    [['--uid=-1'], 'uid', '--uid: "-1" is not a whole number'],
    [['--gid', 'wheel'], 'gid', '--gid: "wheel" is not a whole number'],
    [['--nfs-anon-uid', '4294967295'], 'nfsAnonUid', '--nfs-anon-uid: "4294967295" is out of range'],
    [['--upload-concurrency', '0'], 'uploadConcurrency', '--upload-concurrency: "0" is out of range (1-256)'],
    [
      ['--upload-concurrency', '2.5'],
      'uploadConcurrency',
      '--upload-concurrency: "2.5" is not a whole number',
    ],
    [['--file-mode', '0999'], 'fileMode', '--file-mode: "0999" is not an octal mode'],
    [['--file-mode', 'rw-r--r--'], 'fileMode', '--file-mode: "rw-r--r--" is not an octal mode'],
    [['--dir-mode', '17777'], 'dirMode', '--dir-mode: "17777" is above 07777'],
    [['--endpoint', '127.0.0.1:9000'], 'endpoint', '--endpoint: "127.0.0.1:9000" is not an http(s) URL'],
    [['--endpoint', 'ftp://x'], 'endpoint', '--endpoint: "ftp://x" is not an http(s) URL'],
    [['--region', 'us east'], 'region', '--region: "us east" is not a region'],
    [['--nfs', 'host:0'], 'nfs', '--nfs: "host:0" names an invalid port'],
    [['--nfs', 'host:65536'], 'nfs', '--nfs: "host:65536": "65536" is not a port (1-65535)'],
    [['--nfs', ':2049'], 'nfs', '--nfs: ":2049" names no host'],
    [['--nfs', 'bad_host!'], 'nfs', '--nfs: "bad_host!": "bad_host!" is not a host name or IP address'],
    [
      ['--nfs-clients', '10.0.0.0/33'],
      'nfsClients',
      '--nfs-clients: "10.0.0.0/33": "33" is not a prefix length (0-32)',
    ],
    [
      ['--nfs-clients', '10.0.0.256'],
      'nfsClients',
      '--nfs-clients: "10.0.0.256" is not an IP address or CIDR',
    ],
    [
      ['--nfs-clients', 'example.com'],
      'nfsClients',
      '--nfs-clients: "example.com" is not an IP address or CIDR',
    ],
    [
      ['--nfs-ro-clients', 'fd00::/129'],
      'nfsRoClients',
      '--nfs-ro-clients: "fd00::/129": "129" is not a prefix',
    ],
    [
      ['--nfs-ro-clients', '127.0.0.1/32'],
      'nfsRoClients',
      '--nfs-ro-clients: "127.0.0.1/32" is also in nfsClients',
    ],
  ])('%j → %s error', (args, key, message) => {
    const e = usageError(() => mount(...args));
    if (!message.endsWith('needs a value')) expect(e.key).toBe(key);
    if (message.includes('invalid port')) expect(e.message).toMatch(/^--nfs: "host:0": "0" is not a port/);
    else expect(e.message.startsWith(message)).toBe(true);
    if (e.cause !== undefined) expect(e.cause).toBeInstanceOf(ConfigError);
  });

  it('does not echo credentials embedded in the endpoint', () => {
    const e = usageError(() => mount('--endpoint', 'http://AKIA:s3cr3t@127.0.0.1:9000'));
    expect(e.message).not.toContain('s3cr3t');
    expect(e.message).toMatch(/^--endpoint: must not contain credentials/);
  });
});

describe('parseMountArgs: octal modes', () => {
  it.each([
    ['0644', 0o644],
    ['644', 0o644],
    ['0o644', 0o644],
    ['0755', 0o755],
    ['2775', 0o2775],
    ['07777', 0o7777],
    ['0', 0],
    ['000600', 0o600],
  ])('--file-mode %s → %o', (s, mode) => {
    expect(mount('--file-mode', s).fileMode).toBe(mode);
    expect(mount(`--dir-mode=${s}`).dirMode).toBe(mode);
  });
});

describe('parseMountArgs: NFS', () => {
  it.each([
    ['127.0.0.1', { host: '127.0.0.1', port: 2049 }],
    ['127.0.0.1:20490', { host: '127.0.0.1', port: 20490 }],
    ['localhost:2050', { host: 'localhost', port: 2050 }],
    ['nfs.example.com', { host: 'nfs.example.com', port: 2049 }],
    ['[::1]:20490', { host: '::1', port: 20490 }],
    ['[::]', { host: '::', port: 2049 }],
    ['::1', { host: '::1', port: 2049 }],
    ['fe80::1', { host: 'fe80::1', port: 2049 }],
  ])('--nfs %s', (v, nfs) => {
    expect(mount('--nfs', v).nfs).toEqual(nfs);
  });

  it('--no-fuse omits MOUNTPOINT and requires --nfs', () => {
    const c = parseMountArgs(['s3://b', '--no-fuse', '--nfs', '127.0.0.1:20490']);
    expect(c.noFuse).toBe(true);
    expect(c.mountpoint).toBeUndefined();
    expect('mountpoint' in c).toBe(false);
    expect(c.nfs).toEqual({ host: '127.0.0.1', port: 20490 });
    // --no-fuse may come anywhere
    expect(parseMountArgs(['--nfs=127.0.0.1', 's3://b', '--no-fuse']).noFuse).toBe(true);
    const e = usageError(() => parseMountArgs(['s3://b', '--no-fuse']));
    expect(e.key).toBe('nfs');
    expect(e.message).toMatch(/^--nfs: is required with noFuse \/ --no-fuse/);
    expect(usageError(() => parseMountArgs(['s3://b', '/m', '--no-fuse', '--nfs', 'h'])).message).toBe(
      'unexpected argument "/m" (--no-fuse takes no MOUNTPOINT)',
    );
    expect(parseMountArgs(['s3://b', '/m', '--no-fuse=false']).mountpoint).toBe('/m');
  });

  it('FUSE and NFS together', () => {
    const c = mount('--nfs', '0.0.0.0', '--nfs-portmap', '--nfs-secure', '--nfs-squash=all_anonymous');
    expect(c).toMatchObject({
      mountpoint: '/mnt/b',
      nfs: { host: '0.0.0.0', port: 2049 },
      nfsPortmap: true,
      nfsSecure: true,
      nfsSquash: 'all_squash',
    });
  });

  it.each([
    '10.0.0.0/8',
    '10.0.0.1',
    '0.0.0.0/0',
    '::1',
    '::/0',
    'fd00::/8',
    '2001:db8::1/128',
    '::ffff:10.0.0.1',
  ])('accepts client %s', (c) => {
    expect(mount('--nfs-clients', c).nfsClients).toEqual([c]);
    expect(mount('--nfs-ro-clients', c).nfsRoClients).toEqual([c]);
  });

  it.each([
    '10.0.0',
    '10.0.0.0/',
    '10.0.0.0/8/8',
    '10.0.0.0/x',
    '::g',
    '/8',
    'localhost',
    '*',
    '10.0.0.0/-1',
  ])('refuses client %s', (c) => {
    expect(usageError(() => mount('--nfs-clients', c)).key).toBe('nfsClients');
  });

  it('trims client lists and drops empties and duplicates', () => {
    expect(mount('--nfs-clients', ' 10.0.0.1 , ,10.0.0.2,10.0.0.1,').nfsClients).toEqual([
      '10.0.0.1',
      '10.0.0.2',
    ]);
  });
});

describe('parseFstabOptions', () => {
  it('parses the example of the issue, ignoring generic options', () => {
    expect(parseFstabOptions('cache-dir=/x,mode=write-through,allow_other,_netdev,rw,nofail')).toEqual({
      cacheDir: '/x',
      mode: 'write-through',
      allowOther: true,
    });
  });

  it('ignores every mount(8) generic option', () => {
    expect(
      parseFstabOptions(
        'defaults,auto,noauto,user,nouser,users,exec,dev,suid,noexec,nodev,nosuid,noatime,relatime,' +
          'x-systemd.automount,x-systemd.requires=network-online.target,comment=foo,user=alice,_netdev,nofail,rw',
      ),
    ).toEqual({});
  });

  it('maps ro to read-only', () => {
    expect(parseFstabOptions('ro,_netdev')).toEqual({ readOnly: true });
  });

  it('accepts every flag without dashes, and _ for -', () => {
    const s =
      'endpoint=http://127.0.0.1:9000,region=eu-west-1,path-style,cache-dir=/c,cache-size=20G,mode=cache,' +
      'refresh-interval=0,dir-ttl=10s,name=n,checksum=md5,nfs=127.0.0.1:2050,nfs-portmap,nfs-secure,' +
      'nfs_clients=10.0.0.0/8,nfs-ro-clients=fd00::/8,nfs-squash=none,nfs-anon-uid=1,nfs-anon-gid=2,read-only,' +
      'uid=1000,gid=1000,file-mode=0640,dir-mode=0750,allow-other,log-level=warn,upload-delay=2s,' +
      'upload-concurrency=8,attr-timeout=100ms,admin-dir=/run/x';
    const c = resolveShare({ url: 's3://b', mountpoint: '/m', ...parseFstabOptions(s) });
    expect(c).toMatchObject({
      endpoint: 'http://127.0.0.1:9000',
      region: 'eu-west-1',
      pathStyle: true,
      cacheDir: '/c',
      cacheSize: 20 * G,
      mode: 'cache',
      refreshIntervalMs: 0,
      dirTtlMs: 10_000,
      name: 'n',
      checksum: 'md5',
      nfs: { host: '127.0.0.1', port: 2050 },
      nfsPortmap: true,
      nfsSecure: true,
      nfsClients: ['10.0.0.0/8'],
      nfsRoClients: ['fd00::/8'],
      nfsSquash: 'none',
      nfsAnonUid: 1,
      nfsAnonGid: 2,
      readOnly: true,
      uid: 1000,
      gid: 1000,
      fileMode: 0o640,
      dirMode: 0o750,
      allowOther: true,
      logLevel: 'warn',
      uploadDelayMs: 2000,
      uploadConcurrency: 8,
      attrTimeoutMs: 100,
      adminSocketDir: '/run/x',
    });
  });

  it('boolean options take =true/false', () => {
    expect(parseFstabOptions('path-style=false,allow_other=1')).toEqual({
      pathStyle: 'false',
      allowOther: '1',
    });
  });

  it('client lists: quoted, continued by bare addresses, or repeated', () => {
    expect(parseFstabOptions('nfs-clients="10.0.0.0/8,fd00::/8",rw').nfsClients).toEqual([
      '10.0.0.0/8',
      'fd00::/8',
    ]);
    expect(parseFstabOptions('nfs-clients=10.0.0.0/8,192.168.1.0/24,::1,rw').nfsClients).toEqual([
      '10.0.0.0/8',
      '192.168.1.0/24',
      '::1',
    ]);
    expect(parseFstabOptions('nfs-clients=10.0.0.1,ro,nfs-clients=10.0.0.2')).toEqual({
      nfsClients: ['10.0.0.1', '10.0.0.2'],
      readOnly: true,
    });
  });

  it('a bare address outside a list is refused', () => {
    expect(() => parseFstabOptions('rw,10.0.0.1')).toThrow(UsageError);
    expect(() => parseFstabOptions('mode=cache,10.0.0.1')).toThrow('unknown mount option "10.0.0.1"');
  });

  it('unknown options and missing values are usage errors', () => {
    expect(usageError(() => parseFstabOptions('cache-sise=1G')).message).toBe(
      'unknown mount option "cache-sise" (did you mean cache-size?)',
    );
    const e = usageError(() => parseFstabOptions('cache-dir'));
    expect(e.message).toBe('mount option cache-dir needs a value (cache-dir=DIR)');
    expect(e.key).toBe('cacheDir');
    expect(() => parseFstabOptions('name="x')).toThrow(/unbalanced/);
  });

  it('empty items are skipped', () => {
    expect(parseFstabOptions(',,mode=cache,')).toEqual({ mode: 'cache' });
    expect(parseFstabOptions('')).toEqual({});
  });

  it('-o in mount arguments, with errors naming the option as written', () => {
    const c = parseMountArgs(['s3://b/p', '/m', '-o', 'cache-size=1G,allow_other,_netdev', '-oro']);
    expect(c).toMatchObject({ cacheSize: G, allowOther: true, readOnly: true, name: 'b-p' });
    expect(usageError(() => parseMountArgs(['s3://b', '/m', '-o', 'cache-size=20X'])).message).toMatch(
      /^-o cache-size: "20X" is not a size/,
    );
    expect(usageError(() => parseMountArgs(['s3://b', '/m', '-o'])).message).toMatch(/^-o needs a value/);
    // flags after -o override it
    expect(parseMountArgs(['s3://b', '/m', '-o', 'mode=cache', '--mode', 'write-through']).mode).toBe(
      'write-through',
    );
  });
});

describe('parseMountInput', () => {
  it('returns the raw settings and how each was written', () => {
    const { input, labels } = parseMountInput(['s3://b', '/m', '--cache-size=1G', '-o', 'uid=5']);
    expect(input).toEqual({ url: 's3://b', mountpoint: '/m', cacheSize: '1G', uid: '5' });
    expect(labels).toMatchObject({
      cacheSize: '--cache-size',
      uid: '-o uid',
      url: 'URL',
      mountpoint: 'MOUNTPOINT',
    });
  });
});

describe('resolveShare (config-file keys)', () => {
  const base = { url: 's3://b', mountpoint: '/m' };

  it('takes camelCase keys with native types', () => {
    const c = resolveShare({
      ...base,
      cacheSize: 1024,
      pathStyle: true,
      refreshInterval: '10m',
      dirTtlMs: 5,
      uid: 1000,
      nfs: { host: '::1', port: 2050 },
      nfsClients: ['10.0.0.0/8'],
      adminDir: '/run/x',
    });
    expect(c).toMatchObject({
      cacheSize: 1024,
      pathStyle: true,
      refreshIntervalMs: 600_000,
      dirTtlMs: 5,
      uid: 1000,
      nfs: { host: '::1', port: 2050 },
      nfsClients: ['10.0.0.0/8'],
      adminSocketDir: '/run/x',
    });
    expect(resolveShare({ ...base, nfs: { host: '10.0.0.1' } }).nfs).toEqual({
      host: '10.0.0.1',
      port: 2049,
    });
  });

  it('bucket + prefix instead of url', () => {
    const c = resolveShare({ bucket: 'b', prefix: 'p/q/', mountpoint: '/m' });
    expect(c).toMatchObject({ url: 's3://b/p/q', bucket: 'b', prefix: 'p/q/', name: 'b-p-q' });
    expect(resolveShare({ bucket: 'b', prefix: '/p', mountpoint: '/m' }).prefix).toBe('p/');
    expect(resolveShare({ url: 's3://b/p', bucket: 'b', prefix: 'p', mountpoint: '/m' }).prefix).toBe('p/');
    expect(configError(() => resolveShare({ url: 's3://b', bucket: 'c', mountpoint: '/m' })).key).toBe(
      'bucket',
    );
    expect(configError(() => resolveShare({ url: 's3://b/p', prefix: 'q', mountpoint: '/m' })).key).toBe(
      'prefix',
    );
    expect(configError(() => resolveShare({ mountpoint: '/m' })).message).toBe(
      'url: is required (s3://BUCKET[/PREFIX])',
    );
  });

  it('refuses unknown keys with a suggestion', () => {
    const e = configError(() => resolveShare({ ...base, cacheSzie: '1G' } as never));
    expect(e.key).toBe('cacheSzie');
    expect(e.message).toBe('cacheSzie: unknown setting (did you mean cacheSize?)');
  });

  it('refuses two spellings of the same setting', () => {
    expect(() => resolveShare({ ...base, refreshInterval: '1m', refreshIntervalMs: 60_000 })).toThrow(
      'refreshIntervalMs: give only one of refreshInterval and refreshIntervalMs',
    );
    expect(() => resolveShare({ ...base, adminDir: '/a', adminSocketDir: '/b' })).toThrow(ConfigError);
  });

  it('refuses numeric file modes (ambiguous in JSON) and wrong types', () => {
    expect(() => resolveShare({ ...base, fileMode: 644 as never })).toThrow(
      'fileMode: 644: write the mode as an octal string such as "0644"',
    );
    expect(() => resolveShare({ ...base, pathStyle: 1 as never })).toThrow(
      'pathStyle: 1 is not true or false',
    );
    expect(() => resolveShare({ ...base, cacheSize: true as never })).toThrow(
      'cacheSize: true is not a size',
    );
    expect(() => resolveShare({ ...base, nfsClients: 5 as never })).toThrow(ConfigError);
    expect(() => resolveShare({ ...base, name: 7 as never })).toThrow('name: 7 is not a string');
  });

  it('mountpoint is required unless noFuse, and refused with it', () => {
    expect(configError(() => resolveShare({ url: 's3://b' })).key).toBe('mountpoint');
    expect(configError(() => resolveShare({ ...base, noFuse: true, nfs: 'h' })).key).toBe('mountpoint');
    expect(configError(() => resolveShare({ url: 's3://b', noFuse: true })).key).toBe('nfs');
    expect(resolveShare({ url: 's3://b', noFuse: true, nfs: 'h:1' }).nfs).toEqual({ host: 'h', port: 1 });
  });

  it('credentials: validated, never echoed', () => {
    const creds = { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'sup3rs3cret' };
    expect(resolveShare({ ...base, credentials: creds }).credentials).toEqual(creds);
    const withToken = { ...creds, sessionToken: 'tok' };
    expect(resolveShare({ ...base, credentials: withToken }).credentials).toEqual(withToken);
    const e = configError(() => resolveShare({ ...base, credentials: { accessKeyId: 'AKIA' } as never }));
    expect(e.key).toBe('credentials.secretAccessKey');
    const e2 = configError(() =>
      resolveShare({ ...base, credentials: { ...creds, secretAccessKey: 42, secretAccesKey: 'x' } as never }),
    );
    expect(e2.message).not.toContain('sup3rs3cret');
    expect(e2.key).toBe('credentials.secretAccesKey');
    expect(e2.message).toContain('did you mean secretAccessKey?');
    const e3 = configError(() => resolveShare({ ...base, credentials: 'AKIA:sup3rs3cret' as never }));
    expect(e3.message).not.toContain('sup3rs3cret');
  });

  it('keyPrefix, label and defaults', () => {
    const e = configError(() => resolveShare({ ...base, cacheSize: '1X' }, { keyPrefix: 'shares[3].' }));
    expect(e.key).toBe('shares[3].cacheSize');
    expect(e.message).toMatch(/^shares\[3\]\.cacheSize: "1X" is not a size/);
    const c = resolveShare(
      { ...base, logLevel: 'warn' },
      { defaults: { logLevel: 'debug', adminDir: '/d' } },
    );
    expect(c.logLevel).toBe('warn');
    expect(c.adminSocketDir).toBe('/d');
  });

  it('the timer limit applies to refreshInterval and uploadDelay', () => {
    expect(resolveShare({ ...base, refreshInterval: '24d' }).refreshIntervalMs).toBe(24 * 86_400_000);
    expect(() => resolveShare({ ...base, refreshInterval: '25d' })).toThrow(
      'refreshInterval: "25d" is too long',
    );
    expect(() => resolveShare({ ...base, uploadDelayMs: 2 ** 31 })).toThrow('uploadDelayMs');
    expect(resolveShare({ ...base, dirTtl: '365d' }).dirTtlMs).toBe(365 * 86_400_000);
  });
});

describe('daemon config', () => {
  it('resolves shares with daemon-wide defaults', () => {
    const d = resolveDaemonConfig({
      logLevel: 'debug',
      logFormat: 'json',
      adminDir: '/run/bg',
      metrics: '127.0.0.1:9100',
      shares: [
        { url: 's3://a', mountpoint: '/mnt/a' },
        { url: 's3://b/x', noFuse: true, nfs: '0.0.0.0', logLevel: 'error' },
      ],
    });
    expect(d).toMatchObject({
      logLevel: 'debug',
      logFormat: 'json',
      adminSocketDir: '/run/bg',
      metrics: { host: '127.0.0.1', port: 9100 },
    });
    expect(d.shares.map((s) => [s.name, s.logLevel, s.adminSocketDir])).toEqual([
      ['a', 'debug', '/run/bg'],
      ['b-x', 'error', '/run/bg'],
    ]);
    expect(resolveDaemonConfig({ shares: [{ url: 's3://a', mountpoint: '/m' }] })).toMatchObject({
      logLevel: 'info',
      logFormat: 'text',
      adminSocketDir: '/run/bucketgate',
    });
  });

  it('errors name the share', () => {
    expect(() =>
      resolveDaemonConfig({
        shares: [
          { url: 's3://a', mountpoint: '/m' },
          { url: 's3://b', mountpoint: '/n', mode: 'x' },
        ],
      }),
    ).toThrow(/^shares\[1\]\.mode: "x" is not one of cache, write-through/);
    expect(() => resolveDaemonConfig({ shares: [] })).toThrow('shares: must list at least one share');
    expect(() =>
      resolveDaemonConfig({ shares: [{ url: 's3://a', mountpoint: '/m' }], cacheSize: '1G' } as never),
    ).toThrow('cacheSize: unknown setting (a per-share setting: put it in shares[])');
    expect(() =>
      resolveDaemonConfig({ shares: [{ url: 's3://a', mountpoint: '/m' }], logFormat: 'xml' }),
    ).toThrow('logFormat: "xml" is not one of text, json');
    expect(() =>
      resolveDaemonConfig({ shares: [{ url: 's3://a', mountpoint: '/m' }], metrics: 'h' }),
    ).toThrow('metrics: "h" names no port');
  });

  it('share names, mountpoints and cache dirs must be distinct', () => {
    const a = resolveShare({ url: 's3://a', mountpoint: '/m1' });
    const a2 = resolveShare({ url: 's3://a/', mountpoint: '/m2' });
    expect(() => checkSharesDistinct([a, a2])).toThrow('shares[1].name: "a" is already used by shares[0]');
    const b = resolveShare({ url: 's3://b', mountpoint: '/m1' });
    expect(() => checkSharesDistinct([a, b])).toThrow(
      'shares[1].mountpoint: "/m1" is already used by shares[0]',
    );
    const c = resolveShare({ url: 's3://c', mountpoint: '/m3', cacheDir: '/var/cache/bucketgate/a' });
    expect(() => checkSharesDistinct([a, c])).toThrow('shares[1].cacheDir');
    expect(() =>
      resolveDaemonConfig({
        shares: [
          { url: 's3://a', mountpoint: '/m1' },
          { url: 's3://b', mountpoint: '/m2', name: 'A' },
        ],
      }),
    ).toThrow('shares[1].name: "A" is already used by shares[0]');
  });
});
