/**
 * Zero-copy sends of file ranges to a TCP socket: the bucketgate_io addon's sendFile
 * (native/io.cc, sendfile(2) on the libuv thread pool). NFS READ replies of cached data go out
 * this way: the kernel passes the cache file's page-cache pages to the socket instead of the
 * daemon reading them into a buffer and writing that buffer (two copies of every byte, on the one
 * JavaScript thread for the second).
 *
 * Optional: without the addon (not built) or without a socket descriptor the callers keep the
 * buffer path.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Result of one native send: errno (0, or the error of send/sendfile), bytes sent, early EOF. */
export type SendFileCallback = (errno: number, sent: number, eof: boolean) => void;

export interface IoAddon {
  /**
   * Send `head`, then `length` bytes of `fileFd` from `offset`, then `tailLen` zero bytes, as far
   * as the socket's send buffer takes them without waiting (the rest is the caller's). Both
   * descriptors are duplicated at the call; it throws only on bad arguments or a failed dup.
   */
  sendFile(
    sockFd: number,
    head: Uint8Array,
    fileFd: number,
    offset: number,
    length: number,
    tailLen: number,
    cb: SendFileCallback,
  ): void;
}

function isAddon(m: unknown): m is IoAddon {
  return typeof m === 'object' && m !== null && typeof (m as { sendFile?: unknown }).sendFile === 'function';
}

let loaded: IoAddon | null | undefined;

/**
 * The addon, or undefined when it is not built or does not load (built for another Node, say), or
 * when BUCKETGATE_NO_SENDFILE=1 turns it off (to compare, or to work around a kernel problem).
 * It is an optimisation: without it NFS READ replies are copied as before. BUCKETGATE_IO_ADDON
 * names another file to load (tests).
 */
export function ioAddon(): IoAddon | undefined {
  if (loaded !== undefined) return loaded ?? undefined;
  loaded = null;
  if (process.env.BUCKETGATE_NO_SENDFILE === '1') return undefined;
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const candidates = [
    process.env.BUCKETGATE_IO_ADDON,
    join(root, 'build', 'Release', 'bucketgate_io.node'),
    join(root, 'build', 'Debug', 'bucketgate_io.node'),
  ].filter((p): p is string => typeof p === 'string' && p.length > 0);
  const path = candidates.find((p) => existsSync(p));
  if (path === undefined) return undefined;
  try {
    const mod: unknown = createRequire(import.meta.url)(path);
    if (isAddon(mod)) loaded = mod;
  } catch {
    loaded = null;
  }
  return loaded ?? undefined;
}

/** The file descriptor of a connected TCP socket (Node keeps it on its libuv handle). */
export function socketFd(socket: Socket): number | undefined {
  const handle: unknown = (socket as unknown as { _handle?: unknown })._handle;
  if (typeof handle !== 'object' || handle === null) return undefined;
  const fd = (handle as { fd?: unknown }).fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : undefined;
}
