import type { Cred } from '../core/types.js';
import { R_OK, W_OK, X_OK } from '../core/types.js';

export interface Owned {
  mode: number;
  uid: number;
  gid: number;
  type: string;
}

export function inGroup(cred: Cred, gid: number): boolean {
  return cred.gid === gid || cred.groups.includes(gid);
}

/**
 * POSIX permission check for `mask` (R_OK|W_OK|X_OK). Root may read and write anything and may
 * execute/search when any execute bit is set (or the node is a directory), as on Linux.
 */
export function permits(cred: Cred, node: Owned, mask: number): boolean {
  if (mask === 0) return true;
  if (cred.uid === 0) {
    if ((mask & X_OK) === 0 || node.type === 'dir') return true;
    return (node.mode & 0o111) !== 0;
  }
  let bits: number;
  if (cred.uid === node.uid) bits = (node.mode >> 6) & 7;
  else if (inGroup(cred, node.gid)) bits = (node.mode >> 3) & 7;
  else bits = node.mode & 7;
  return (bits & mask) === mask;
}

/** Sticky directories: only the owner of the entry, of the directory, or root may remove/rename it. */
export function stickyAllows(cred: Cred, dir: Owned, victim: Owned): boolean {
  if ((dir.mode & 0o1000) === 0 || cred.uid === 0) return true;
  return cred.uid === victim.uid || cred.uid === dir.uid;
}

export { R_OK, W_OK, X_OK };
