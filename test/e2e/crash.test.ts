/**
 * Cache mode never loses acknowledged data: the daemon is killed with SIGKILL at random moments
 * during a workload of writes, renames and deletes, many cycles; after a restart and `flush`,
 * every file whose close(2) returned before the kill is in the bucket with identical content,
 * and nothing deleted before the kill comes back.
 *
 * The workload logs "I …" (intent) before and "A …" (acknowledged) after each operation. At most
 * one operation is in flight at the kill; for it both outcomes are accepted. Every third cycle
 * also kills a daemon during its start-up.
 */
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, sh, startDaemon } from '../helpers/daemon.js';
import { e2eEnv } from '../helpers/e2e-env.js';

const CYCLES = Number(process.env.BG_CRASH_CYCLES ?? 12);

const E = e2eEnv('bg-crash-', { keep: () => process.env.BG_CRASH_KEEP !== undefined });

// Sequential workload; each step: intent line, the operation, acknowledgement line.
// Files get unique names (cycle c, step i); renames and deletes pick earlier acknowledged files.
const WORKLOAD = String.raw`
set -uo pipefail
cd "$MNT" || exit 0
log() { echo "$*" >> "$LOG"; }
mkdir -p "d$C" 2>/dev/null || exit 0
log "A MKDIR d$C"
for i in $(seq 1 400); do
  r=$((RANDOM % 10))
  if [ $r -lt 6 ] || [ ! -s "$LOG.files" ]; then
    f="d$C/f$i"; n=$(( (RANDOM * 7) % 200000 + 1 ))
    log "I W $f"
    h=$(head -c $n /dev/urandom | tee "$f" | md5sum | cut -d' ' -f1) || exit 0
    [ -f "$f" ] || exit 0
    log "A W $f $h"; echo "$f" >> "$LOG.files"
  elif [ $r -lt 8 ]; then
    src=$(shuf -n1 "$LOG.files"); dst="d$C/r$i"
    [ -e "$src" ] || continue
    log "I R $src $dst"
    mv "$src" "$dst" || exit 0
    log "A R $src $dst"; grep -vxF "$src" "$LOG.files" > "$LOG.tmp"; echo "$dst" >> "$LOG.tmp"; mv "$LOG.tmp" "$LOG.files"
  else
    src=$(shuf -n1 "$LOG.files")
    [ -e "$src" ] || continue
    log "I D $src"
    rm "$src" || exit 0
    log "A D $src"; grep -vxF "$src" "$LOG.files" > "$LOG.tmp"; mv "$LOG.tmp" "$LOG.files"
  fi
done
`;

interface Expect {
  files: Map<string, string>;
  deleted: Set<string>;
  /** Names touched by the one unacknowledged operation of a cycle: either outcome is fine. */
  uncertain: Set<string>;
}

function replay(log: string): Expect {
  const files = new Map<string, string>();
  const deleted = new Set<string>();
  const uncertain = new Set<string>();
  let pending: { names: string[]; line: string } | undefined;
  for (const line of log.split('\n').filter(Boolean)) {
    const [kind, op, a, b] = line.split(' ');
    if (kind === 'I') {
      if (pending) for (const n of pending.names) uncertain.add(n); // in flight at a kill
      pending = { names: op === 'R' ? [a!, b!] : [a!], line: line.slice(2) };
      continue;
    }
    // An acknowledgement of another operation (the next cycle) means the pending one was cut.
    if (pending && !line.slice(2).startsWith(pending.line)) for (const n of pending.names) uncertain.add(n);
    pending = undefined;
    if (op === 'W') {
      files.set(a!, b!);
      deleted.delete(a!);
    } else if (op === 'R') {
      files.set(b!, files.get(a!)!);
      files.delete(a!);
      deleted.add(a!);
    } else if (op === 'D') {
      files.delete(a!);
      deleted.add(a!);
    }
  }
  if (pending) for (const n of pending.names) uncertain.add(n);
  return { files, deleted, uncertain };
}

async function bucketObjects(prefix: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let token: string | undefined;
  do {
    const r = await E.client.send(
      new ListObjectsV2Command({ Bucket: 'test', Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of r.Contents ?? []) {
      if (o.Key!.endsWith('/')) continue;
      const g = await E.client.send(new GetObjectCommand({ Bucket: 'test', Key: o.Key! }));
      const body = Buffer.from(await g.Body!.transformToByteArray());
      out.set(o.Key!.slice(prefix.length), createHash('md5').update(body).digest('hex'));
    }
    token = r.NextContinuationToken;
  } while (token);
  return out;
}

describe('kill -9 during a cache-mode workload', () => {
  it(
    `loses nothing acknowledged and resurrects nothing deleted over ${CYCLES} cycles`,
    { timeout: 400_000 },
    async () => {
      const mnt = join(E.work, 'mnt');
      const cacheDir = join(E.work, 'cache');
      const logFile = join(E.work, 'ops.log');
      await mkdir(mnt, { recursive: true });
      await writeFile(logFile, '');
      const args = [
        'mount',
        's3://test/crash',
        mnt,
        '--endpoint',
        E.s3.endpoint,
        '--path-style',
        '--cache-dir',
        cacheDir,
        '--admin-dir',
        join(E.work, 'run'),
        '--mode',
        'cache',
        '--upload-delay',
        '300ms',
        '--refresh-interval',
        '0',
        '--log-level',
        process.env.BG_CRASH_KEEP ? 'debug' : 'error',
      ];
      let seed = 12345;
      const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      for (let c = 1; c <= CYCLES; c++) {
        if (c % 3 === 0) {
          // Every third cycle also kills a daemon while it starts: journal replay, upload recovery
          // and the stale-mount check must survive being cut anywhere, too.
          const early = await startDaemon(args, E.env);
          E.daemons.push(early);
          await new Promise((r) => setTimeout(r, 50 + Math.floor(rnd() * 700)));
          early.proc.kill('SIGKILL');
          await early.exited;
        }
        const t0 = Date.now();
        const d = await startDaemon(args, E.env, mnt);
        E.daemons.push(d);
        if (process.env.BG_CRASH_DEBUG) console.log(`cycle ${c}: mounted after ${Date.now() - t0} ms`);
        const wl = sh(WORKLOAD, { env: { MNT: mnt, LOG: logFile, C: String(c) }, timeoutMs: 120_000 }).catch(
          () => '',
        );
        await new Promise((r) => setTimeout(r, 300 + Math.floor(rnd() * 1500)));
        d.proc.kill('SIGKILL');
        await d.exited;
        if (process.env.BG_CRASH_KEEP) await writeFile(join(E.work, `daemon-${c}.log`), d.output());
        await wl;
      }
      // Restart: the journal resumes; flush waits for every upload.
      const d = await startDaemon(args, E.env, mnt);
      E.daemons.push(d);
      const f = await cli(['flush', mnt, '--admin-dir', join(E.work, 'run'), '--timeout', '120s']);
      expect(f.code, `${f.stderr}\n${d.output()}`).toBe(0);

      const exp = replay(await readFile(logFile, 'utf8'));
      const got = await bucketObjects('crash/');
      let bytesChecked = 0;
      const problems: string[] = [];
      for (const [name, md5] of exp.files) {
        if (exp.uncertain.has(name)) continue;
        if (got.get(name) !== md5)
          problems.push(`${name}: expected ${md5}, bucket has ${got.get(name) ?? 'nothing'}`);
        else bytesChecked += Number((await sh(`stat -c %s '${mnt}/${name}'`)).trim());
      }
      for (const name of exp.deleted) {
        if (exp.uncertain.has(name) || exp.files.has(name)) continue;
        if (got.has(name)) problems.push(`${name}: deleted before the kill but back in the bucket`);
      }
      // The mount agrees with the bucket.
      const local = new Set(
        (await sh(`cd '${mnt}' && find . -type f -printf '%P\\n'`)).split('\n').filter(Boolean),
      );
      const onlyLocal = [...local].filter((n) => !got.has(n));
      const onlyBucket = [...got.keys()].filter((n) => !local.has(n));
      const logTail = (n: string): string =>
        (await0 ?? '')
          .split('\n')
          .filter((l) => l.includes(` ${n}`))
          .join(' | ');
      const await0 = await readFile(logFile, 'utf8');
      if (onlyLocal.length + onlyBucket.length > 0)
        console.log(
          'MISMATCH',
          JSON.stringify({
            onlyLocal: onlyLocal.map((n) => `${n}: ${logTail(n)}`),
            onlyBucket: onlyBucket.map((n) => `${n}: ${logTail(n)}`),
          }),
        );
      expect({
        onlyLocal: onlyLocal.map((n) => `${n}: ${logTail(n)}`),
        onlyBucket: onlyBucket.map((n) => `${n}: ${logTail(n)}`),
      }).toEqual({ onlyLocal: [], onlyBucket: [] });
      expect(problems).toEqual([]);
      expect(exp.files.size).toBeGreaterThan(CYCLES * 3);
      console.log(
        `kill -9: ${CYCLES} cycles, ${exp.files.size} files (${bytesChecked} bytes) checked, ${exp.deleted.size} deletions checked`,
      );
      expect(await d.stop('SIGTERM')).toBe(0);
    },
  );
});
