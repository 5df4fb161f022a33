import { describe, expect, it } from 'vitest';
import { GuestStatsCache } from '../../src/metrics/guest-stats-cache.js';

/** A reader that counts its calls and answers what `next` holds, or fails with it. */
function reader(next: { value: unknown }) {
  const r = { calls: 0, read: async () => {
    r.calls++;
    if (next.value instanceof Error) throw next.value;
    return next.value;
  } };
  return r;
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('GuestStatsCache', () => {
  it('reads once, then shows that answer until it is older than the interval', async () => {
    let now = 0;
    const cache = new GuestStatsCache(10_000, () => now);
    const next = { value: 'first' as unknown };
    const r = reader(next);
    expect(await cache.get('vm/1', r.read)).toBe('first');
    cache.refreshIfStale('vm/1', r.read);
    now = 9_999;
    cache.refreshIfStale('vm/1', r.read);
    expect(await cache.get('vm/1', r.read)).toBe('first');
    expect(r.calls).toBe(1);
  });

  it('an old answer is still shown while the new one is read behind the scrape', async () => {
    let now = 0;
    const cache = new GuestStatsCache(10_000, () => now);
    const next = { value: 'first' as unknown };
    const r = reader(next);
    await cache.get('vm/1', r.read);
    now = 10_000;
    next.value = 'second';
    cache.refreshIfStale('vm/1', r.read);
    cache.refreshIfStale('vm/1', r.read);
    expect(r.calls).toBe(2);
    await settle();
    expect(await cache.get('vm/1', r.read)).toBe('second');
    expect(r.calls).toBe(2);
  });

  it('a failed refresh forgets the answer: the next scrape reads and sees the failure itself', async () => {
    let now = 0;
    const cache = new GuestStatsCache(10_000, () => now);
    const next = { value: 'first' as unknown };
    const r = reader(next);
    await cache.get('vm/1', r.read);
    now = 20_000;
    next.value = new Error('qom-get: no answer within 1000 ms');
    cache.refreshIfStale('vm/1', r.read);
    await settle();
    await expect(cache.get('vm/1', r.read)).rejects.toThrow('no answer');
    next.value = 'third';
    expect(await cache.get('vm/1', r.read)).toBe('third');
  });

  it('forgets QEMUs that are gone', async () => {
    const cache = new GuestStatsCache(10_000, () => 0);
    const r = reader({ value: 'x' });
    await cache.get('vm/1', r.read);
    await cache.get('vm/2', r.read);
    cache.keepOnly(new Set(['vm/2']));
    await cache.get('vm/1', r.read);
    await cache.get('vm/2', r.read);
    expect(r.calls).toBe(3);
  });
});
