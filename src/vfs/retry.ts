import { ObjectStoreError } from '../objectstore/types.js';

/**
 * Retry an idempotent object-store read (GET, HEAD, LIST) on transient errors (5xx, throttling,
 * timeouts, resets), with exponential backoff and jitter. The SDK already retries each request a
 * few times; this covers longer hiccups before the caller sees EIO.
 */
export async function retryTransient<T>(fn: () => Promise<T>, attempts = 4, baseMs = 200): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof ObjectStoreError) || !e.retryable || i >= attempts) throw e;
      const delay = baseMs * 2 ** (i - 1) * (0.5 + Math.random() / 2);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
