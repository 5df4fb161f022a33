import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { QmpPoll } from '../../src/metrics/qmp-poll.js';

/** A read that counts its calls and answers the current `next`, or fails with it. */
function reader(next: { value: unknown }) {
  const r = {
    calls: 0,
    read: async () => {
      r.calls++;
      if (next.value instanceof Error) throw next.value;
      return next.value;
    },
  };
  return r;
}

describe('QmpPoll', () => {
  let now = 0;
  beforeEach(() => {
    now = 0;
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  const tick = async (ms: number) => {
    now += ms;
    await vi.advanceTimersByTimeAsync(ms);
  };

  it('the first get waits for a read; later ones get what the latest poll read, one read per interval', async () => {
    const poll = new QmpPoll<unknown>(10_000, 60_000, () => now);
    const next = { value: 'first' as unknown };
    const r = reader(next);
    expect(await poll.get('vm/1', r.read)).toBe('first');
    next.value = 'second';
    await tick(9_999);
    expect(await poll.get('vm/1', r.read)).toBe('first');
    expect(r.calls).toBe(1);
    await tick(1);
    expect(r.calls).toBe(2);
    expect(await poll.get('vm/1', r.read)).toBe('second');
    await tick(10_000);
    expect(r.calls).toBe(3);
    poll.stop();
  });

  it('gets that come while the first read runs share it', async () => {
    const poll = new QmpPoll<unknown>(10_000, 60_000, () => now);
    const r = reader({ value: 'x' });
    const [a, b] = await Promise.all([poll.get('vm/1', r.read), poll.get('vm/1', r.read)]);
    expect([a, b, r.calls]).toEqual(['x', 'x', 1]);
    poll.stop();
  });

  it('a failed poll forgets the figures: the next get reads itself and sees the failure', async () => {
    const poll = new QmpPoll<unknown>(10_000, 60_000, () => now);
    const next = { value: 'first' as unknown };
    const r = reader(next);
    await poll.get('vm/1', r.read);
    next.value = new Error('query-blockstats: no answer within 1000 ms');
    await tick(10_000);
    await expect(poll.get('vm/1', r.read)).rejects.toThrow('no answer');
    next.value = 'back';
    expect(await poll.get('vm/1', r.read)).toBe('back');
    poll.stop();
  });

  it('stops polling a QEMU no get asked for in the idle time, and those that are gone', async () => {
    const poll = new QmpPoll<unknown>(10_000, 25_000, () => now);
    const r1 = reader({ value: 1 });
    const r2 = reader({ value: 2 });
    await poll.get('vm/1', r1.read);
    await poll.get('vm/2', r2.read);
    poll.keepOnly(new Set(['vm/1']));
    for (let i = 0; i < 3; i++) await tick(10_000);
    // vm/1 was polled at 10 s and 20 s; at 30 s it had not been asked for in 25 s.
    expect([r1.calls, r2.calls]).toEqual([3, 1]);
    for (let i = 0; i < 3; i++) await tick(10_000);
    expect(r1.calls).toBe(3);
    expect(await poll.get('vm/1', r1.read)).toBe(1);
    expect(r1.calls).toBe(4);
    poll.stop();
  });
});
