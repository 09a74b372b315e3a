// Runs one s3rver in its own process (see s3rver.ts). Argument: JSON {directory, buckets, address}.
// Prints {"port": N} on stdout once listening; exits on SIGTERM/SIGINT or when stdin closes (the
// parent died), so an orphaned server never outlives the test run.
import process from 'node:process';
import { setTimeout } from 'node:timers';
import S3rver from 's3rver';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const server = new S3rver({
  address: cfg.address ?? '127.0.0.1',
  port: 0,
  silent: true,
  directory: cfg.directory,
  configureBuckets: (cfg.buckets ?? ['test']).map((name) => ({ name })),
  // Path-style only: a vhost guess on the Host header is never what the tests want.
  vhostBuckets: false,
});

let closing = false;
async function shutdown(code) {
  if (closing) return;
  closing = true;
  const timer = setTimeout(() => process.exit(code), 2000);
  timer.unref();
  try {
    await server.close();
  } catch {
    // not running
  }
  process.exit(code);
}

process.on('SIGTERM', () => void shutdown(0));
process.on('SIGINT', () => void shutdown(0));
process.stdin.on('end', () => void shutdown(0));
process.stdin.on('close', () => void shutdown(0));
process.stdin.on('error', () => void shutdown(0));
process.stdin.resume();

// A client that goes away mid-request must not take the server down.
process.on('uncaughtException', (err) => {
  process.stderr.write(`s3rver child: uncaught exception: ${err && err.stack ? err.stack : String(err)}\n`);
});
server.on('error', () => {
  // request-level errors are answered by s3rver itself; logs are silent
});

try {
  const addr = await server.run();
  process.stdout.write(`${JSON.stringify({ port: addr.port, address: addr.address })}\n`);
} catch (err) {
  process.stderr.write(`s3rver child: cannot start: ${err && err.stack ? err.stack : String(err)}\n`);
  process.exit(1);
}
