/**
 * Log lines: one line per event, text or JSON, no timestamp and a syslog priority prefix under
 * journald, secrets masked (secret-looking keys, registered secret values, URL signatures),
 * per-logger levels.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { configureLogging, getLogger, registerSecrets, scrub } from '../../src/log/index.js';

/** Lines the logger writes while `f` runs. */
function capture(f: () => void): string[] {
  const out: string[] = [];
  // winston's Console transport writes to console._stderr when it exists, else console.error.
  const c = console as unknown as { _stderr?: { write: (s: string) => boolean } };
  const target = c._stderr ?? process.stderr;
  const orig = target.write.bind(target);
  const origError = console.error;
  target.write = (s: string): boolean => {
    out.push(String(s));
    return true;
  };
  console.error = (s: unknown): void => void out.push(String(s));
  try {
    f();
  } finally {
    target.write = orig;
    console.error = origError;
  }
  return out
    .join('')
    .split('\n')
    .filter((l) => l !== '');
}

const savedJournal = process.env.JOURNAL_STREAM;
afterEach(() => {
  if (savedJournal === undefined) delete process.env.JOURNAL_STREAM;
  else process.env.JOURNAL_STREAM = savedJournal;
  configureLogging({ level: 'info', format: 'text' });
});

describe('logging', () => {
  it('text: one line per event with a timestamp, newlines escaped, secrets masked', () => {
    delete process.env.JOURNAL_STREAM;
    configureLogging({ level: 'info', format: 'text' });
    registerSecrets(['wJalrXUtnFEMI-K7MDENG-bPxRfiCY']);
    const lines = capture(() => {
      const log = getLogger({ component: 't' });
      log.info('first\nsecond', { secretAccessKey: 'abc', note: 'key wJalrXUtnFEMI-K7MDENG-bPxRfiCY here' });
      log.warn('GET https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA/x&X-Amz-Signature=deadbeef&y=1');
      log.error('endpoint http://user:pa55@host:9000/ failed', { error: new Error('boom') });
      log.debug('not shown at info');
    });
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(
      /^\d{4}-\d\d-\d\dT[\d:.]+Z info first\\nsecond component="t" secretAccessKey="\[redacted\]" note="key \[redacted\] here"$/,
    );
    expect(lines[1]).toContain('X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]&y=1');
    expect(lines[2]).toContain('http://[redacted]@host:9000/');
    expect(lines[2]).toContain('error="Error: boom"');
    expect(lines.join('\n')).not.toMatch(/pa55|deadbeef|wJalrXUtnFEMI/);
  });

  it('under journald: no timestamp, a syslog priority prefix; JSON lines too', () => {
    process.env.JOURNAL_STREAM = '8:1234';
    configureLogging({ level: 'debug', format: 'text' });
    const text = capture(() => {
      const log = getLogger({ share: 's' });
      log.error('e');
      log.warn('w');
      log.info('i');
      log.debug('d');
    });
    expect(text).toEqual([
      '<3>error e share="s"',
      '<4>warn w share="s"',
      '<6>info i share="s"',
      '<7>debug d share="s"',
    ]);
    configureLogging({ level: 'info', format: 'json' });
    const json = capture(() => getLogger({ share: 's' }).warn('two\nlines', { size: 3n, token: 'x' }));
    expect(json).toHaveLength(1);
    expect(json[0]?.startsWith('<4>{')).toBe(true);
    expect(JSON.parse(json[0]?.slice(3) ?? '')).toEqual({
      level: 'warn',
      message: 'two\nlines',
      share: 's',
      size: '3',
      token: '[redacted]',
    });
  });

  it('JSON outside journald carries a timestamp', () => {
    delete process.env.JOURNAL_STREAM;
    configureLogging({ level: 'info', format: 'json' });
    const [line] = capture(() => getLogger().info('hello'));
    expect(JSON.parse(line ?? '')).toMatchObject({
      level: 'info',
      message: 'hello',
      timestamp: expect.any(String),
    });
  });

  it('a child logger may log at its own level (fixed or asked at every line)', () => {
    delete process.env.JOURNAL_STREAM;
    configureLogging({ level: 'warn', format: 'text' });
    let level: 'debug' | 'error' = 'debug';
    const lines = capture(() => {
      const base = getLogger({ c: 1 });
      base.info('hidden');
      base.child({ share: 'a' }, { level: 'debug' }).debug('shown a');
      const dyn = base.child({ share: 'b' }, { level: () => level });
      dyn.debug('shown b');
      level = 'error';
      dyn.warn('hidden b');
      dyn.child({ x: 1 }).error('shown b2');
    });
    expect(lines.map((l) => l.replace(/^\S+ /, ''))).toEqual([
      'debug shown a c=1 share="a"',
      'debug shown b c=1 share="b"',
      'error shown b2 c=1 share="b" x=1',
    ]);
  });

  it('scrub masks an AWS authorization header', () => {
    expect(
      scrub(
        'Authorization: AWS4-HMAC-SHA256 Credential=AKIA123/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0123abcd',
      ),
    ).toBe('Authorization: AWS4-HMAC-SHA256 Credential=[redacted], SignedHeaders=host, Signature=[redacted]');
  });
});
