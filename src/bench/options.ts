/**
 * Command-line options of `npm run bench` and the workload sizes of full and quick runs (pure).
 */
import { resolve } from 'node:path';
import { SYSTEMS, type Params, type SystemId } from './schema.js';

const MiB = 2 ** 20;

export interface Options {
  quick: boolean;
  reps: number;
  only: Set<SystemId>;
  onlyGiven: boolean;
  profile: boolean;
  install: boolean;
  out: string;
  docs: boolean | undefined;
  help: boolean;
}

export const USAGE =
  'usage: npm run bench -- [--quick] [--reps N] [--only LIST] [--profile] [--no-install] [--out DIR] [--docs|--no-docs]';

const ALIASES: Record<string, SystemId[]> = {
  bucketgate: ['bg-cache', 'bg-wt', 'bg-nfs'],
  peers: ['s3fs', 'rclone-writes', 'rclone-full'],
  rclone: ['rclone-writes', 'rclone-full'],
  nfs: ['bg-nfs', 'ganesha'],
  fuse: ['bg-cache', 'bg-wt', 's3fs', 'rclone-writes', 'rclone-full'],
};

export function parseOptions(argv: readonly string[], root = process.cwd()): Options {
  const o: Options = {
    quick: false,
    reps: -1,
    only: new Set(SYSTEMS.map((s) => s.id)),
    onlyGiven: false,
    profile: false,
    install: true,
    out: resolve(root, '.bench'),
    docs: undefined,
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--reps') {
      o.reps = Number(value());
      if (!Number.isInteger(o.reps) || o.reps < 1) throw new Error('--reps must be a positive integer');
    } else if (a === '--only') {
      o.onlyGiven = true;
      o.only = new Set();
      for (const name of value().split(',')) {
        const ids = ALIASES[name] ?? (SYSTEMS.some((s) => s.id === name) ? [name as SystemId] : undefined);
        if (!ids)
          throw new Error(
            `--only: unknown system ${name} (${SYSTEMS.map((s) => s.id).join(', ')}, ${Object.keys(ALIASES).join(', ')})`,
          );
        for (const id of ids) o.only.add(id);
      }
    } else if (a === '--profile') o.profile = true;
    else if (a === '--no-install') o.install = false;
    else if (a === '--out') o.out = resolve(value());
    else if (a === '--docs') o.docs = true;
    else if (a === '--no-docs') o.docs = false;
    else if (a === '--help' || a === '-h') o.help = true;
    else throw new Error(`unknown option ${a}`);
  }
  if (o.reps === -1) o.reps = o.quick ? 1 : 3;
  if (!Number.isInteger(o.reps) || o.reps < 1) throw new Error('--reps must be a positive integer');
  return o;
}

export function paramsFor(quick: boolean, reps: number): Params {
  const f = quick ? 4 : 1;
  const treeFiles = 2000 / f;
  return {
    repetitions: reps,
    bigBytes: (512 / f) * MiB,
    nfsBytes: (256 / f) * MiB,
    smallFiles: 1000 / f,
    sdkSmallObjects: 2000 / f,
    lsFiles: 2000 / f,
    treeFiles,
    treeBytes: 0, // set when the tree is made
    randomReads: 2000 / f,
    uploadDelayMs: 1000,
  };
}
