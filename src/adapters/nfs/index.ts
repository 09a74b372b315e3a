/** NFSv3 export of a share: ONC RPC, MOUNT v3 and NFS v3 over the Vfs. See docs/NFS.md. */
export { NfsServer, type NfsServerOptions } from './server.js';
export type { ExportConfig } from './core.js';
export { DEFAULT_POLICY, type ExportPolicy, type SquashMode } from './policy.js';
