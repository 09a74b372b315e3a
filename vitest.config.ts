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
    // The AWS SDK's notice that its 2027 releases need Node 22 (we pin one that runs on 20).
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  },
});
