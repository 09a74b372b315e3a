/**
 * The config file of `bucketgate serve`: YAML → ServeConfig, errors that name the key (and
 * the line), unknown keys, defaults, and the permission check on files holding credentials.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigFileError, loadConfigFile, parseConfigText } from '../../src/config/file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bg-svc-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const GOOD = `
# two shares on one MinIO
logLevel: warn
logFormat: json
adminDir: /run/bg-test
cacheRoot: cache            # relative to the file's directory
metrics: 9464
auditLog: /var/log/bucketgate/audit.log
defaults:
  endpoint: http://127.0.0.1:9000
  pathStyle: true
  region: eu-west-1
shares:
  - url: s3://media/videos
    mountpoint: /mnt/videos
    cacheSize: 20G
    refreshInterval: 10m
    fileMode: "0640"
  - bucket: backups
    name: bk
    noFuse: true
    nfs: 0.0.0.0:2049
    nfsClients: [10.0.0.0/8, "192.168.1.0/24"]
    mode: write-through
    region: us-east-2
    cacheDir: /srv/cache/bk
`;

function parse(text: string): ReturnType<typeof parseConfigText>['config'] {
  return parseConfigText(text, join(dir, 'bg.yaml')).config;
}

function errorOf(text: string): ConfigFileError {
  try {
    parse(text);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigFileError);
    return e as ConfigFileError;
  }
  throw new Error('no error');
}

describe('config file: valid files', () => {
  it('resolves every share with the defaults, cacheRoot and the daemon settings', () => {
    const c = parse(GOOD);
    expect(c.file).toBe(join(dir, 'bg.yaml'));
    expect(c.logLevel).toBe('warn');
    expect(c.logFormat).toBe('json');
    expect(c.adminSocketDir).toBe('/run/bg-test');
    expect(c.metrics).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(c.auditLog).toBe('/var/log/bucketgate/audit.log');
    expect(c.cacheRoot).toBe(join(dir, 'cache'));
    expect(c.shares).toHaveLength(2);
    const [a, b] = c.shares;
    expect(a).toMatchObject({
      name: 'media-videos',
      bucket: 'media',
      prefix: 'videos/',
      endpoint: 'http://127.0.0.1:9000',
      pathStyle: true,
      region: 'eu-west-1',
      mountpoint: '/mnt/videos',
      cacheDir: join(dir, 'cache', 'media-videos'),
      cacheSize: 20 * 2 ** 30,
      refreshIntervalMs: 600_000,
      fileMode: 0o640,
      logLevel: 'warn',
      adminSocketDir: '/run/bg-test',
    });
    expect(b).toMatchObject({
      name: 'bk',
      noFuse: true,
      nfs: { host: '0.0.0.0', port: 2049 },
      nfsClients: ['10.0.0.0/8', '192.168.1.0/24'],
      mode: 'write-through',
      region: 'us-east-2',
      cacheDir: '/srv/cache/bk',
    });
    expect(b?.mountpoint).toBeUndefined();
  });

  it('metrics: a bare port or a mapping without host means loopback; a host is kept; false is off', () => {
    const base = 'shares: [{url: "s3://b", mountpoint: /m}]\n';
    expect(parse(`${base}metrics: {port: 9100}`).metrics).toEqual({ host: '127.0.0.1', port: 9100 });
    expect(parse(`${base}metrics: "9101"`).metrics).toEqual({ host: '127.0.0.1', port: 9101 });
    expect(parse(`${base}metrics: 0.0.0.0:9102`).metrics).toEqual({ host: '0.0.0.0', port: 9102 });
    expect(parse(`${base}metrics: false`).metrics).toBeUndefined();
    expect(parse(base).metrics).toBeUndefined();
    expect(parse(base).shares[0]?.cacheDir).toBe('/var/cache/bucketgate/b');
  });

  it('relative paths are relative to the file, not the working directory', () => {
    const c = parse('auditLog: logs/audit.log\nshares: [{url: "s3://b", mountpoint: mnt, cacheDir: c}]\n');
    expect(c.auditLog).toBe(join(dir, 'logs', 'audit.log'));
    expect(c.shares[0]?.mountpoint).toBe(join(dir, 'mnt'));
    expect(c.shares[0]?.cacheDir).toBe(join(dir, 'c'));
  });
});

describe('config file: errors name the key and the line', () => {
  it('a bad value in the third share', () => {
    const e = errorOf(`shares:
  - {url: "s3://a", mountpoint: /a}
  - {url: "s3://b", mountpoint: /b}
  - url: s3://c
    mountpoint: /c
    cacheSize: 20X
`);
    expect(e.key).toBe('shares[2].cacheSize');
    expect(e.line).toBe(6);
    expect(e.message).toBe(
      `${join(dir, 'bg.yaml')}:6: shares[2].cacheSize: "20X" is not a size (e.g. 4096, 512M, 20G, 1T)`,
    );
  });

  it('unknown keys, with hints', () => {
    expect(errorOf('shares: [{url: "s3://a", mountpoint: /a, cachesize: 1G}]').message).toMatch(
      /shares\[0\]\.cachesize: unknown setting \(did you mean cacheSize\?\)/,
    );
    expect(errorOf('loglevel: info\nshares: [{url: "s3://a", mountpoint: /a}]').message).toMatch(
      /:1: loglevel: unknown setting \(did you mean logLevel\?\)/,
    );
    expect(errorOf('cacheSize: 1G\nshares: [{url: "s3://a", mountpoint: /a}]').message).toMatch(
      /cacheSize: unknown setting \(a per-share setting: put it under shares\[\] or defaults\)/,
    );
    expect(errorOf('audit_log: /x\nshares: [{url: "s3://a", mountpoint: /a}]').message).toMatch(
      /did you mean auditLog/,
    );
    expect(
      errorOf('metrics: {host: 127.0.0.1, port: 1, path: /m}\nshares: [{url: "s3://a", mountpoint: /a}]').key,
    ).toBe('metrics.path');
  });

  it('errors in defaults are reported at defaults, per-share keys are refused there', () => {
    const e = errorOf(`defaults:
  endpoint: ftp://x
shares:
  - {url: "s3://a", mountpoint: /a}
`);
    expect(e.key).toBe('defaults.endpoint');
    expect(e.line).toBe(2);
    expect(e.message).toMatch(/defaults\.endpoint: "ftp:\/\/x" is not an http\(s\) URL/);
    expect(errorOf('defaults: {mountpoint: /m}\nshares: [{url: "s3://a"}]').message).toMatch(
      /defaults\.mountpoint: names one share: set it in each share/,
    );
    expect(errorOf('defaults: {cacheSise: 1G}\nshares: [{url: "s3://a", mountpoint: /a}]').message).toMatch(
      /defaults\.cacheSise: unknown setting \(did you mean cacheSize\?\)/,
    );
  });

  it('YAML syntax errors, empty files, wrong shapes, unquoted modes, collisions', () => {
    const dup = errorOf('shares: []\nlogLevel: info\nlogLevel: debug\n');
    expect(dup.message).toMatch(/bg\.yaml:3:1: YAML: Map keys must be unique/);
    expect(errorOf('').message).toMatch(/shares: the file is empty/);
    expect(errorOf('- a\n- b\n').message).toMatch(/config: the file must be a mapping/);
    expect(errorOf('shares: {url: "s3://a"}').message).toMatch(/shares: must be a list of shares/);
    expect(errorOf('shares: []').message).toMatch(/shares: must list at least one share/);
    expect(errorOf('shares: ["s3://a"]').message).toMatch(/shares\[0\]: must be a mapping/);
    expect(errorOf('shares: [{url: "s3://a", mountpoint: /a, fileMode: 0644}]').message).toMatch(
      /shares\[0\]\.fileMode: 644: write the mode as an octal string such as "0644"/,
    );
    expect(
      errorOf('shares: [{url: "s3://a", mountpoint: /a}, {url: "s3://a", mountpoint: /b}]').message,
    ).toMatch(/shares\[1\]\.name: "a" is already used by shares\[0\]/);
    expect(errorOf('shares: [{url: "s3://a"}]').message).toMatch(/shares\[0\]\.mountpoint: is required/);
  });

  it('never quotes a secret', () => {
    const e = errorOf(
      'shares: [{url: "s3://a", mountpoint: /a, credentials: {accessKeyId: AK, secretAccessKey: 7}}]',
    );
    expect(e.message).toMatch(/shares\[0\]\.credentials\.secretAccessKey: must be a non-empty string/);
    expect(e.message).not.toMatch(/\b7\b/);
  });
});

describe('config file: permissions', () => {
  const WITH_SECRET = `shares:
  - url: s3://a
    mountpoint: /a
    credentials: {accessKeyId: AKIDEXAMPLE, secretAccessKey: wJalrXUtnFEMI/K7MDENG}
`;

  it('a file with credentials readable by group/others is refused; 0600 is accepted', async () => {
    const f = join(dir, 'secret.yaml');
    await writeFile(f, WITH_SECRET);
    await chmod(f, 0o644);
    await expect(loadConfigFile(f)).rejects.toThrow(
      /shares\[0\]\.credentials: the file holds credentials but is readable or writable by group\/others \(mode 0644\): run "chmod 600/,
    );
    await chmod(f, 0o640);
    await expect(loadConfigFile(f)).rejects.toThrow(/mode 0640/);
    await chmod(f, 0o600);
    const c = await loadConfigFile(f);
    expect(c.shares[0]?.credentials).toEqual({
      accessKeyId: 'AKIDEXAMPLE',
      secretAccessKey: 'wJalrXUtnFEMI/K7MDENG',
    });
  });

  it('credentials in defaults count too; a file without credentials may be world-readable', async () => {
    const f = join(dir, 'defaults-secret.yaml');
    await writeFile(
      f,
      'defaults: {credentials: {accessKeyId: A, secretAccessKey: B}}\nshares: [{url: "s3://a", mountpoint: /a}]\n',
    );
    await chmod(f, 0o604);
    await expect(loadConfigFile(f)).rejects.toThrow(/defaults\.credentials: the file holds credentials/);
    const g = join(dir, 'plain.yaml');
    await writeFile(g, 'shares: [{url: "s3://a", mountpoint: /a}]\n');
    await chmod(g, 0o644);
    expect((await loadConfigFile(g)).shares).toHaveLength(1);
  });

  it('a missing file is a clear error', async () => {
    await expect(loadConfigFile(join(dir, 'nope.yaml'))).rejects.toThrow(
      /nope\.yaml: config: cannot be read: ENOENT/,
    );
  });
});
