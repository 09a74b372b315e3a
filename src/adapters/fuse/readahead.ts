/**
 * Kernel read-ahead of a FUSE mount. The kernel starts a FUSE mount with 128 KiB of read-ahead
 * (its default, and the most libfuse 2.9's INIT accepts), so sequential reads arrive as 128 KiB
 * READs even when the connection allows 1 MiB ones. The read-ahead of a mount is its backing
 * device's `read_ahead_kb` in sysfs, which root may raise after the mount.
 */
import { readFile, realpath, writeFile } from 'node:fs/promises';

/** Undo mountinfo's octal escapes (space, tab, newline, backslash). */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * The "major:minor" device of the last mount at `mountpoint` (a real path) with file system type
 * `fstype` in the text of /proc/self/mountinfo, or undefined.
 */
export function deviceOfMount(mountinfo: string, mountpoint: string, fstype: string): string | undefined {
  let found: string | undefined;
  for (const line of mountinfo.split('\n')) {
    // id parent major:minor root mountpoint options [optional fields...] - fstype source super
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    const dev = left[2];
    const mp = left[4];
    if (dev === undefined || mp === undefined || right[0] !== fstype) continue;
    if (!/^\d+:\d+$/.test(dev)) continue;
    if (unescapeMountPath(mp) === mountpoint) found = dev;
  }
  return found;
}

/**
 * Set the read-ahead of the FUSE mount at `mountpoint` to `kb` KiB. Returns the device it set,
 * or throws (not root, no sysfs, mount not found).
 */
export async function setMountReadAhead(mountpoint: string, fstype: string, kb: number): Promise<string> {
  const mp = await realpath(mountpoint).catch(() => mountpoint);
  const dev = deviceOfMount(await readFile('/proc/self/mountinfo', 'utf8'), mp, fstype);
  if (!dev) throw new Error(`no ${fstype} mount at ${mp} in /proc/self/mountinfo`);
  await writeFile(`/sys/class/bdi/${dev}/read_ahead_kb`, `${Math.floor(kb)}\n`);
  return dev;
}
