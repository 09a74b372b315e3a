import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // FUSE mounts, s3rver instances and NFS servers are real processes/ports: keep files in
    // separate forks, but only two at a time on a 2-core machine.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
