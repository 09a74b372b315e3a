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
import type { Socket } from 'node:net';
import { addonCandidates, requireAddon } from '../addon.js';

/** Result of one native send: errno (0, or the error of send/sendfile), bytes sent, early EOF. */
export type SendFileCallback = (errno: number, sent: number, eof: boolean) => void;

/** What to send: the socket, a head, `length` bytes of the file from `offset`, then `tailLen` zeros. */
export type SendArgs = [
  sockFd: number,
  head: Uint8Array,
  fileFd: number,
  offset: number,
  length: number,
  tailLen: number,
];

export interface IoAddon {
  /**
   * Send `head`, then `length` bytes of `fileFd` from `offset`, then `tailLen` zero bytes, as far
   * as the socket's send buffer takes them without waiting (the rest is the caller's). Both
   * descriptors are duplicated at the call; it throws only on bad arguments or a failed dup.
   */
  sendFile(...args: [...SendArgs, cb: SendFileCallback]): void;
  /**
   * The same send, done at once on this thread, when every page of the file range is in the page
   * cache (so that it cannot wait for the disk): [errno, sent, eof] as sendFile's callback gets
   * them. Undefined when the range is not all cached or the kernel cannot tell (cachestat(2),
   * Linux 6.5+): then use sendFile. Optional (tests may wrap only sendFile).
   */
  sendFileNow?(...args: SendArgs): [number, number, boolean] | undefined;
  /**
   * A Buffer of `size` bytes starting on a 2 MiB boundary, advised for transparent huge pages
   * (a few page faults instead of one per 4 KiB) and usable for O_DIRECT. Optional.
   */
  alignedBuffer?(size: number): Buffer;
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
  try {
    const found = requireAddon(addonCandidates('bucketgate_io', process.env.BUCKETGATE_IO_ADDON));
    if (found !== undefined && isAddon(found.mod)) loaded = found.mod;
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
