import { describe, expect, it } from 'vitest';
import { deviceOfMount } from '../../src/adapters/fuse/readahead.js';

const INFO = [
  '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
  '95 22 0:39 / /tmp/a\\040b/mnt rw,nosuid,nodev,relatime shared:50 - fuse.bucketgate bucketgate:x rw,user_id=0,group_id=0',
  '96 22 0:40 / /tmp/other rw,relatime - fuse.s3fs s3fs rw',
  '97 22 0:41 / /tmp/a\\040b/mnt rw,relatime shared:51 - fuse.bucketgate bucketgate:y rw,user_id=0,group_id=0',
  '',
].join('\n');

describe('deviceOfMount', () => {
  it('finds the device of the last matching mount, unescaping the path', () => {
    expect(deviceOfMount(INFO, '/tmp/a b/mnt', 'fuse.bucketgate')).toBe('0:41');
  });
  it('matches the file system type', () => {
    expect(deviceOfMount(INFO, '/tmp/other', 'fuse.bucketgate')).toBeUndefined();
    expect(deviceOfMount(INFO, '/tmp/other', 'fuse.s3fs')).toBe('0:40');
  });
  it('ignores malformed lines and unknown paths', () => {
    expect(deviceOfMount('garbage\n1 2 3\n - fuse.bucketgate', '/x', 'fuse.bucketgate')).toBeUndefined();
    expect(deviceOfMount(INFO, '/tmp/nope', 'fuse.bucketgate')).toBeUndefined();
  });
});
