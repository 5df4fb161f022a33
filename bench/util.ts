import { setTimeout as delay } from 'node:timers/promises';

/** True if `p` settles within `ms`; the timer is cancelled either way, so it never holds the process open. */
export async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  const ac = new AbortController();
  try {
    return await Promise.race([p.then(() => true), delay(ms, false, { signal: ac.signal })]);
  } finally {
    ac.abort();
  }
}

export const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
