import { describe, expect, it } from 'vitest';
import { median, percentile, ratioOfMediansInterval } from '../../bench/stats.js';

describe('bench statistics', () => {
  it('median and nearest-rank percentile', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(percentile([5, 1, 4, 2, 3], 90)).toBe(5);
    expect(percentile([5, 1, 4, 2, 3], 40)).toBe(2);
  });

  it('the ratio interval is a point when neither side varies', () => {
    expect(ratioOfMediansInterval([11, 11, 11], [10, 10, 10])).toEqual([1.1, 1.1]);
  });

  it('the ratio interval holds the ratio of the medians, narrows with more samples and is reproducible', () => {
    // Two noisy sides whose medians differ by 10 %, spread like QEMU start times (deterministic).
    const noisy = (n: number, base: number) => Array.from({ length: n }, (_, i) => base * (1 + 0.2 * Math.sin(i * 12.9898)));
    const [a60, b60] = [noisy(60, 55), noisy(60, 50)];
    const point = median(a60) / median(b60);
    const [lo60, hi60] = ratioOfMediansInterval(a60, b60);
    expect(lo60).toBeLessThan(point);
    expect(hi60).toBeGreaterThan(point);
    const [lo600, hi600] = ratioOfMediansInterval(noisy(600, 55), noisy(600, 50));
    expect(hi600 - lo600).toBeLessThan(hi60 - lo60);
    expect(ratioOfMediansInterval(a60, b60)).toEqual([lo60, hi60]);
  });

  it('refuses empty sides', () => {
    expect(() => ratioOfMediansInterval([], [1])).toThrow(/no samples/);
  });
});
