import { afterEach, describe, expect, it } from 'vitest';
import { openCgroupDriver } from '../../src/cgroup/open.js';
import type { CgroupDriver } from '../../src/cgroup/driver.js';
import type { CgroupLimits } from '../../src/cgroup/limits.js';
import { makeFakeCgroupfs, type FakeCgroupfs, type FakeOptions } from '../support/fake-cgroupfs.js';

const MIB = 1 << 20;
const LIMITS: CgroupLimits = { memoryBytes: 512 * MIB, pidsMax: 1024, cpuWeight: 200, cpuQuota: { quotaUs: 150_000, periodUs: 100_000 } };
const CG = '/sys/fs/cgroup';

let fake: FakeCgroupfs;
afterEach(async () => fake.cleanup());

async function setup(options: FakeOptions = {}, parent?: string): Promise<CgroupDriver> {
  fake = await makeFakeCgroupfs('v2', options);
  return openCgroupDriver({ files: fake.files, ...(parent ? { parent } : {}) });
}

async function ready(options: FakeOptions = {}): Promise<CgroupDriver> {
  const driver = await setup(options);
  await driver.ensureParent({ cpuWeight: 100 });
  fake.writes.length = 0;
  return driver;
}

describe('cgroup v2: the parent', () => {
  it('is vmlet.slice by default; ensureParent enables cpu, memory and pids top-down and sets its weight', async () => {
    const driver = await setup();
    expect(driver.kind).toBe('v2');
    expect(driver.parent).toBe('vmlet.slice');
    await driver.ensureParent({ cpuWeight: 100 });
    expect(fake.writes).toEqual([
      { path: `${CG}/cgroup.subtree_control`, value: '+cpu +memory +pids' },
      { path: `${CG}/vmlet.slice/cgroup.subtree_control`, value: '+cpu +memory +pids' },
      { path: `${CG}/vmlet.slice/cpu.weight`, value: '100' },
    ]);
    expect(await fake.get(`${CG}/vmlet.slice/cpu.weight`)).toBe('100\n');
  });

  it('is idempotent: a second ensureParent only sets the weight again', async () => {
    const driver = await setup();
    await driver.ensureParent({ cpuWeight: 100 });
    fake.writes.length = 0;
    await driver.ensureParent({ cpuWeight: 50 });
    expect(fake.writes).toEqual([{ path: `${CG}/vmlet.slice/cpu.weight`, value: '50' }]);
  });

  it('enables the controllers at every level of a nested parent, and only those not yet on', async () => {
    const driver = await setup({}, '/machine.slice/vmlet.slice');
    await fake.set(`${CG}/cgroup.subtree_control`, 'cpu memory io\n');
    await driver.ensureParent({ cpuWeight: 100 });
    expect(fake.writes.map((w) => `${w.path} ${w.value}`)).toEqual([
      `${CG}/cgroup.subtree_control +pids`,
      `${CG}/machine.slice/cgroup.subtree_control +cpu +memory +pids`,
      `${CG}/machine.slice/vmlet.slice/cgroup.subtree_control +cpu +memory +pids`,
      `${CG}/machine.slice/vmlet.slice/cpu.weight 100`,
    ]);
  });

  it('names the controllers the host lacks', async () => {
    const driver = await setup({ controllers: ['cpu', 'io', 'pids'] });
    await expect(driver.ensureParent({ cpuWeight: 100 })).rejects.toThrow(/controller\(s\) memory not available at \/sys\/fs\/cgroup \(cgroup.controllers: cpu io pids\)/);
  });

  it('refuses a parent inside vmlet\'s own cgroup', async () => {
    const driver = await setup({ self: '/system.slice/vmlet.service' }, 'system.slice/vmlet.service/guests');
    await expect(driver.ensureParent({ cpuWeight: 100 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: /inside vmlet's own cgroup \/system.slice\/vmlet.service/ });
  });

  it('explains EBUSY from an ancestor that holds processes (no internal processes)', async () => {
    const driver = await setup({}, 'busy.slice/vmlet.slice');
    await fake.files.mkdir(`${CG}/busy.slice`);
    await fake.set(`${CG}/busy.slice/cgroup.procs`, '777\n');
    await expect(driver.ensureParent({ cpuWeight: 100 })).rejects.toThrow(
      /write \/sys\/fs\/cgroup\/busy.slice\/cgroup.subtree_control failed: EBUSY \(this cgroup holds processes itself/,
    );
  });

  it.each([0, 10_001, 1.5])('rejects the parent weight %d', async (cpuWeight) => {
    const driver = await setup();
    await expect(driver.ensureParent({ cpuWeight })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('rejects a parent with ..', async () => {
    fake = await makeFakeCgroupfs('v2');
    await expect(openCgroupDriver({ files: fake.files, parent: '../x.slice' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('cgroup v2: a VM cgroup', () => {
  it('create writes exactly memory, swap, pids and cpu limits', async () => {
    const driver = await ready();
    expect(await driver.create('web1', LIMITS)).toEqual({ path: 'vmlet.slice/vmlet-web1.scope' });
    const dir = `${CG}/vmlet.slice/vmlet-web1.scope`;
    expect(fake.writes).toEqual([
      { path: `${dir}/memory.max`, value: String(512 * MIB) },
      { path: `${dir}/memory.swap.max`, value: '0' },
      { path: `${dir}/pids.max`, value: '1024' },
      { path: `${dir}/cpu.weight`, value: '200' },
      { path: `${dir}/cpu.max`, value: '150000 100000' },
    ]);
    expect(await fake.get(`${dir}/cpu.max`)).toBe('150000 100000\n');
  });

  it('no quota is cpu.max "max"; no swap accounting skips memory.swap.max', async () => {
    const driver = await ready({ swap: false });
    await driver.create('web1', { ...LIMITS, cpuQuota: undefined });
    expect(fake.writes.map((w) => `${w.path.split('/').pop()} ${w.value}`)).toEqual(['memory.max 536870912', 'pids.max 1024', 'cpu.weight 200', 'cpu.max max 100000']);
  });

  it('setCpuWeight writes cpu.weight and refuses a weight out of 1..10000', async () => {
    const driver = await ready();
    const { path } = await driver.create('web1', LIMITS);
    fake.writes.length = 0;
    await driver.setCpuWeight(path, 10_000);
    expect(fake.writes).toEqual([{ path: `${CG}/${path}/cpu.weight`, value: '10000' }]);
    await expect(driver.setCpuWeight(path, 0)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(driver.setCpuWeight('vmlet.slice/other', 100)).rejects.toThrow();
  });

  it('create again re-applies the limits', async () => {
    const driver = await ready();
    await driver.create('web1', LIMITS);
    await driver.create('web1', { ...LIMITS, pidsMax: 99 });
    expect(await fake.get(`${CG}/vmlet.slice/vmlet-web1.scope/pids.max`)).toBe('99\n');
  });

  it('without the controllers enabled, create fails naming the file and leaves no directory', async () => {
    const driver = await setup();
    await fake.files.mkdir(`${CG}/vmlet.slice`);
    await expect(driver.create('web1', LIMITS)).rejects.toThrow(
      'cgroup: write /sys/fs/cgroup/vmlet.slice/vmlet-web1.scope/memory.max failed: ENOENT (the memory controller is not enabled for this cgroup)',
    );
    expect(await fake.files.exists(`${CG}/vmlet.slice/vmlet-web1.scope`)).toBe(false);
  });

  it.each([
    ['memoryBytes', { memoryBytes: 1000 }],
    ['pidsMax', { pidsMax: 0 }],
    ['cpuWeight', { cpuWeight: 0 }],
    ['cpuQuota', { cpuQuota: { quotaUs: 500, periodUs: 100_000 } }],
  ])('rejects a bad %s', async (_, bad) => {
    const driver = await ready();
    await expect(driver.create('web1', { ...LIMITS, ...bad })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(fake.writes).toEqual([]);
  });

  it('rejects a VM id that is no DNS label', async () => {
    const driver = await ready();
    await expect(driver.create('../etc', LIMITS)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('addProcess writes cgroup.procs; pidsOf reads it; a gone process is ESRCH', async () => {
    const driver = await ready();
    const { path } = await driver.create('web1', LIMITS);
    await driver.addProcess(path, 4242);
    await driver.addProcess(path, 17);
    expect(await driver.pidsOf(path)).toEqual([17, 4242]);
    await expect(driver.addProcess(path, 4_999_999)).rejects.toThrow(/cannot add process 4999999 to .*vmlet-web1.scope\/cgroup.procs: ESRCH/);
  });

  it('oomKilled reads oom_kill from memory.events', async () => {
    const driver = await ready();
    const { path } = await driver.create('web1', LIMITS);
    expect(await driver.oomKilled(path)).toBe(0);
    await fake.set(`${CG}/${path}/memory.events`, 'low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n');
    expect(await driver.oomKilled(path)).toBe(1);
  });

  it('remove refuses while processes remain, naming them; then removes; then is a no-op', async () => {
    const driver = await ready();
    const { path } = await driver.create('web1', LIMITS);
    await driver.addProcess(path, 4242);
    await expect(driver.remove(path)).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: 'cgroup /sys/fs/cgroup/vmlet.slice/vmlet-web1.scope cannot be removed: it still has processes 4242: stop them first',
    });
    await fake.set(`${CG}/${path}/cgroup.procs`, '');
    await driver.remove(path);
    expect(await fake.files.exists(`${CG}/${path}`)).toBe(false);
    await driver.remove(path);
  });

  it('never touches a path that is not a VM cgroup under its parent', async () => {
    const driver = await ready();
    for (const path of ['vmlet.slice', 'system.slice/vmlet-a.scope', 'vmlet.slice/other', 'vmlet.slice/vmlet-a.scope/x']) {
      await expect(driver.remove(path)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
  });

  it('listOrphans lists VM scopes not kept, ignoring other directories', async () => {
    const driver = await ready();
    for (const id of ['a', 'b', 'c']) await driver.create(id, LIMITS);
    await fake.files.mkdir(`${CG}/vmlet.slice/something-else`);
    expect(await driver.listOrphans(new Set(['b']))).toEqual([
      { vmId: 'a', path: 'vmlet.slice/vmlet-a.scope' },
      { vmId: 'c', path: 'vmlet.slice/vmlet-c.scope' },
    ]);
  });

  it('listOrphans before the parent exists is empty', async () => {
    const driver = await setup();
    expect(await driver.listOrphans(new Set())).toEqual([]);
  });
});
