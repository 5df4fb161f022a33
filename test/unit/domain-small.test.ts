import { describe, expect, it } from 'vitest';
import { OpQueue } from '../../src/vm/op-queue.js';
import { allocatable, checkFits, type CapacityPolicy } from '../../src/vm/capacity.js';
import { VmletError } from '../../src/model/errors.js';
import { parseQemuVersion } from '../../src/qemu/version.js';

describe('OpQueue', () => {
  it('runs operations one at a time in order, and a failure does not stop the next', async () => {
    const q = new OpQueue();
    const log: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const first = q.run(async () => {
      log.push('1 start');
      await gate;
      log.push('1 end');
    });
    const second = q.run(async () => {
      log.push('2');
      throw new Error('boom');
    });
    const third = q.run(async () => log.push('3'));
    expect(q.busy).toBe(true);
    await Promise.resolve();
    expect(log).toEqual(['1 start']);
    release();
    await first;
    await expect(second).rejects.toThrow('boom');
    await third;
    expect(log).toEqual(['1 start', '1 end', '2', '3']);
    await q.idle();
    expect(q.busy).toBe(false);
  });
});

describe('capacity', () => {
  const policy: CapacityPolicy = { capacity: { cpus: 4, memoryMib: 8192 }, reserved: { cpus: 1, memoryMib: 1024 }, cpuOvercommit: 2, memoryOvercommit: 1 };

  it('allocatable is capacity minus reserve', () => {
    expect(allocatable(policy)).toEqual({ cpus: 3, memoryMib: 7168 });
  });

  it('refuses beyond allocatable × overcommit with RESOURCE_EXHAUSTED', () => {
    expect(() => checkFits(policy, { cpus: 5, memoryMib: 0 }, { cpus: 1, memoryMib: 1 }, 'ok')).not.toThrow();
    const cpu = (() => {
      try {
        checkFits(policy, { cpus: 6, memoryMib: 0 }, { cpus: 1, memoryMib: 1 }, 'x');
      } catch (e) {
        return e as VmletError;
      }
    })();
    expect(cpu?.code).toBe('RESOURCE_EXHAUSTED');
    expect(cpu?.message).toContain('vCPUs');
    expect(() => checkFits(policy, { cpus: 0, memoryMib: 7000 }, { cpus: 1, memoryMib: 169 }, 'x')).toThrow(/MiB/);
    expect(() => checkFits(policy, { cpus: 0, memoryMib: 7000 }, { cpus: 1, memoryMib: 168 }, 'x')).not.toThrow();
  });
});

describe('parseQemuVersion', () => {
  it('reads the version line', () => {
    expect(parseQemuVersion('QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright')).toBe('7.2.22');
    expect(parseQemuVersion('something else')).toBeUndefined();
  });
});
