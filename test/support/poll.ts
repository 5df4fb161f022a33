import { setTimeout as delay } from 'node:timers/promises';

/**
 * Polls `fn` until it returns something other than undefined, with a deadline: the tests' one way
 * to wait for a state nothing announces (no sleeps as synchronisation). Errors thrown by `fn`
 * count as "not yet" and the last one is reported at the deadline.
 */
export async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${lastError ? ` (last error: ${String(lastError)})` : ''}`);
    await delay(intervalMs);
  }
}
