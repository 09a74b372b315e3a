/** Start an NfsServer over given VFSs on an ephemeral loopback port, plus request builders. */
import {
  Nfsv3DirOpArgs,
  Nfsv3Fh,
  Nfsv3Sattr,
  Nfsv3SetAtime,
  Nfsv3SetGid,
  Nfsv3SetMode,
  Nfsv3SetMtime,
  Nfsv3SetSize,
  Nfsv3SetUid,
  Nfsv3Time,
} from '@jsonjoy.com/json-pack/lib/nfs/v3/structs.js';
import { NfsServer, type NfsServerOptions } from '../../src/adapters/nfs/index.js';
import type { ExportConfig } from '../../src/adapters/nfs/core.js';
import { DEFAULT_POLICY, type ExportPolicy } from '../../src/adapters/nfs/policy.js';
import type { Vfs } from '../../src/vfs/types.js';
import { getLogger } from '../../src/log/index.js';
import { RpcTestClient } from './nfs-rpc-client.js';

export const TEST_SECRET = Buffer.alloc(32, 0x5a);

export function testExport(
  name: string,
  vfs: Vfs,
  policy: Partial<ExportPolicy> = {},
  exportId = 1,
): ExportConfig {
  return {
    name,
    vfs,
    policy: { ...DEFAULT_POLICY, clients: ['127.0.0.1/32'], squash: 'none', ...policy },
    exportId,
    dbGeneration: Buffer.from('db-generation-1'),
    secret: TEST_SECRET,
  };
}

export interface Running {
  srv: NfsServer;
  port: number;
  portmapPort?: number;
  clients: RpcTestClient[];
  client(localPort?: number): Promise<RpcTestClient>;
  url(path: string, extra?: string): string;
  stop(): Promise<void>;
}

export async function startNfs(
  exports: ExportConfig[],
  opts: Partial<Omit<NfsServerOptions, 'exports'>> = {},
): Promise<Running> {
  const srv = new NfsServer({
    exports,
    host: '127.0.0.1',
    port: 0,
    logger: getLogger({ component: 'nfs-test' }),
    ...opts,
  });
  const started = await srv.start();
  const clients: RpcTestClient[] = [];
  const r: Running = {
    srv,
    port: started.port,
    ...(started.portmapPort !== undefined ? { portmapPort: started.portmapPort } : {}),
    clients,
    async client(localPort?: number) {
      const c = await RpcTestClient.connect(started.port, '127.0.0.1', localPort);
      clients.push(c);
      return c;
    },
    url(path: string, extra = '') {
      return `nfs://127.0.0.1${path}?nfsport=${started.port}&mountport=${started.port}&version=3${extra}`;
    },
    async stop() {
      await Promise.all(clients.map((c) => c.close()));
      await srv.stop();
    },
  };
  return r;
}

export function fh(data: Uint8Array): Nfsv3Fh {
  return new Nfsv3Fh(data);
}

export function dirop(dir: Uint8Array, name: string): Nfsv3DirOpArgs {
  return new Nfsv3DirOpArgs(new Nfsv3Fh(dir), name);
}

export function sattr(
  s: {
    mode?: number;
    uid?: number;
    gid?: number;
    size?: bigint;
    atime?: Nfsv3Time | 'server';
    mtime?: Nfsv3Time | 'server';
  } = {},
): Nfsv3Sattr {
  const time = (t: Nfsv3Time | 'server' | undefined): [number, Nfsv3Time | undefined] =>
    t === undefined ? [0, undefined] : t === 'server' ? [1, undefined] : [2, t];
  const [ah, at] = time(s.atime);
  const [mh, mt] = time(s.mtime);
  return new Nfsv3Sattr(
    new Nfsv3SetMode(s.mode !== undefined, s.mode),
    new Nfsv3SetUid(s.uid !== undefined, s.uid),
    new Nfsv3SetGid(s.gid !== undefined, s.gid),
    new Nfsv3SetSize(s.size !== undefined, s.size),
    new Nfsv3SetAtime(ah, at),
    new Nfsv3SetMtime(mh, mt),
  );
}
