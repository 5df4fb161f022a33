import { describe, expect, it } from 'vitest';
import { cpuQuotaFromMillicores, cpuWeightForVcpus, cpuWeightToShares } from '../../src/cgroup/limits.js';

describe('CPU conversions', () => {
  it.each([
    [1, 10],
    [50, 512],
    [100, 1024],
    [200, 2048],
    [10_000, 102_400],
  ])('cpu.weight %d is cpu.shares %d (systemd\'s conversion)', (weight, shares) => {
    expect(cpuWeightToShares(weight)).toBe(shares);
  });

  it('cpu.shares stays within the kernel\'s 2..262144', () => {
    expect(cpuWeightToShares(0)).toBe(2);
    expect(cpuWeightToShares(1e6)).toBe(262_144);
  });

  it.each([
    [1, 100],
    [4, 400],
    [200, 10_000],
  ])('%d vCPUs weigh %d', (vcpus, weight) => {
    expect(cpuWeightForVcpus(vcpus)).toBe(weight);
  });

  it.each([
    [0, undefined],
    [500, { quotaUs: 50_000, periodUs: 100_000 }],
    [2500, { quotaUs: 250_000, periodUs: 100_000 }],
    [1, { quotaUs: 1000, periodUs: 100_000 }],
  ])('cpu_limit_millicores %d is %j', (millicores, quota) => {
    expect(cpuQuotaFromMillicores(millicores)).toEqual(quota);
  });

  it('rejects a negative limit', () => {
    expect(() => cpuQuotaFromMillicores(-1)).toThrow(/cpu_limit_millicores: must be a non-negative integer/);
  });
});
