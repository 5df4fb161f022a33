import { describe, expect, it } from 'vitest';
import { DEFAULT_TCG_TB_SIZE_MIB, memoryLimitBytes, memoryOverhead, type OverheadOptions } from '../../src/cgroup/overhead.js';
import { CgroupCells, limitsOf } from '../../src/cgroup/cells.js';

const MIB = 1 << 20;
const GIB = 1 << 30;

describe('memoryOverhead', () => {
  // base 80 MiB + 8 MiB per vCPU + guest/512, rounded up to a MiB; + tb-size under TCG.
  it.each<[string, number, number, OverheadOptions, number]>([
    ['128 MiB, 1 vCPU, KVM', 128 * MIB, 1, {}, 89],
    ['128 MiB, 1 vCPU, TCG', 128 * MIB, 1, { tcg: true }, 89 + DEFAULT_TCG_TB_SIZE_MIB],
    ['1 GiB, 2 vCPUs, KVM', GIB, 2, {}, 98],
    ['1 GiB, 2 vCPUs, TCG tb-size 64', GIB, 2, { tcg: true, tbSizeMib: 64 }, 162],
    ['16 GiB, 8 vCPUs, KVM', 16 * GIB, 8, {}, 80 + 64 + 32],
    ['tb-size is ignored under KVM', GIB, 1, { tbSizeMib: 1024 }, 90],
    ['base and per-vCPU are tunable', GIB, 4, { baseMib: 30, perVcpuMib: 4 }, 30 + 16 + 2],
    ['the page-table share rounds up', 100 * MIB + 1, 1, { baseMib: 0, perVcpuMib: 0 }, 1],
  ])('%s', (_, guest, vcpus, options, mib) => {
    expect(memoryOverhead(guest, vcpus, options)).toBe(mib * MIB);
  });

  it('the limit is the guest plus the overhead', () => {
    expect(memoryLimitBytes(256 * MIB, 1, { tcg: true })).toBe((256 + 80 + 8 + 1 + 128) * MIB);
  });

  it.each<[number, number, OverheadOptions]>([
    [0, 1, {}],
    [MIB, 0, {}],
    [MIB, 1.5, {}],
    [MIB, 1, { tbSizeMib: -1 }],
    [MIB, 1, { baseMib: Number.NaN }],
  ])('rejects guest %d, vcpus %d, %j', (guest, vcpus, options) => {
    expect(() => memoryOverhead(guest, vcpus, options)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

describe('CgroupCells.overheadBytes (kubevirt_vmi_launcher_memory_overhead_bytes)', () => {
  const driver = {} as ConstructorParameters<typeof CgroupCells>[0];
  it('what the cell allows beyond the guest: the formula, or the fixed overhead', () => {
    expect(new CgroupCells(driver, { tcg: true }).overheadBytes({ memoryMib: 128, vcpus: 1 })).toBe((89 + DEFAULT_TCG_TB_SIZE_MIB) * MIB);
    expect(new CgroupCells(driver, { fixedMib: 300 }).overheadBytes({ memoryMib: 1024, vcpus: 4 })).toBe(300 * MIB);
    const spec = { memoryMib: 1024, vcpus: 2 };
    expect(new CgroupCells(driver, {}).overheadBytes(spec)).toBe(limitsOf({ ...spec, id: 'x', labels: {}, disks: [], nics: [] }, {}).memoryBytes - GIB);
  });
});
