import { afterEach, describe, expect, it } from 'vitest';
import { openCgroupDriver } from '../../src/cgroup/open.js';
import type { CgroupDriver } from '../../src/cgroup/driver.js';
import type { CgroupLimits } from '../../src/cgroup/limits.js';
import { makeFakeCgroupfs, type FakeCgroupfs, type FakeOptions } from '../support/fake-cgroupfs.js';

const MIB = 1 << 20;
const LIMITS: CgroupLimits = { memoryBytes: 512 * MIB, pidsMax: 1024, cpuWeight: 200, cpuQuota: { quotaUs: 150_000, periodUs: 100_000 } };
const CG = '/sys/fs/cgroup';
const HIERARCHIES = ['cpu', 'cpuacct', 'memory', 'pids'];
/** Hierarchies without limits QEMU is moved along in, so that it leaves vmlet's cgroup everywhere. */
const COMPANIONS = ['cpuset', 'systemd', 'unified'];

let fake: FakeCgroupfs;
afterEach(async () => fake.cleanup());

async function setup(options: FakeOptions = {}, parent?: string): Promise<CgroupDriver> {
  fake = await makeFakeCgroupfs('v1', options);
  return openCgroupDriver({ files: fake.files, ...(parent ? { parent } : {}) });
}

async function ready(options: FakeOptions = {}): Promise<CgroupDriver> {
  const driver = await setup(options);
  await driver.ensureParent({ cpuWeight: 100 });
  fake.writes.length = 0;
  return driver;
}

describe('cgroup v1: the parent', () => {
  it('a hybrid host (v1 controllers, empty cgroup2) gets the v1 driver; ensureParent makes the parent in every hierarchy', async () => {
    const driver = await setup();
    expect(driver.kind).toBe('v1');
    await driver.ensureParent({ cpuWeight: 100 });
    for (const h of [...HIERARCHIES, ...COMPANIONS]) expect(await fake.files.exists(`${CG}/${h}/vmlet.slice`)).toBe(true);
    expect(fake.writes).toEqual([
      { path: `${CG}/cpuset/vmlet.slice/cpuset.cpus`, value: '0-1' },
      { path: `${CG}/cpuset/vmlet.slice/cpuset.mems`, value: '0' },
      { path: `${CG}/cpu/vmlet.slice/cpu.shares`, value: '1024' },
    ]);
  });

  it('a cpuset cgroup that already has CPUs and memory nodes is left as it is', async () => {
    const driver = await setup();
    await fake.files.mkdir(`${CG}/cpuset/vmlet.slice`);
    await fake.set(`${CG}/cpuset/vmlet.slice/cpuset.cpus`, '1\n');
    await fake.set(`${CG}/cpuset/vmlet.slice/cpuset.mems`, '0\n');
    await driver.ensureParent({ cpuWeight: 100 });
    expect(fake.writes.filter((w) => w.path.includes('/cpuset/'))).toEqual([]);
  });

  it('converts the parent weight to cpu.shares as systemd does', async () => {
    const driver = await setup();
    await driver.ensureParent({ cpuWeight: 50 });
    expect(await fake.get(`${CG}/cpu/vmlet.slice/cpu.shares`)).toBe('512\n');
  });

  it('names the missing hierarchy', async () => {
    const driver = await setup({ v1Mounts: ['cpu', 'memory'] });
    await expect(driver.ensureParent({ cpuWeight: 100 })).rejects.toThrow('cgroup v1 controller(s) pids not mounted');
  });

  it('refuses a parent inside vmlet\'s own cgroup', async () => {
    const driver = await setup({ self: '/vmlet' }, 'vmlet/guests');
    await expect(driver.ensureParent({ cpuWeight: 100 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: /inside vmlet's own cgroup \/vmlet \(cpu hierarchy\)/ });
  });
});

describe('cgroup v1: a VM cgroup', () => {
  it('create writes exactly: memory and memory+swap (swap 0), pids, shares, period, quota', async () => {
    const driver = await ready();
    expect(await driver.create('web1', LIMITS)).toEqual({ path: 'vmlet.slice/vmlet-web1.scope' });
    const at = (h: string, f: string): string => `${CG}/${h}/vmlet.slice/vmlet-web1.scope/${f}`;
    expect(fake.writes).toEqual([
      { path: at('memory', 'memory.memsw.limit_in_bytes'), value: '-1' },
      { path: at('memory', 'memory.limit_in_bytes'), value: String(512 * MIB) },
      { path: at('memory', 'memory.memsw.limit_in_bytes'), value: String(512 * MIB) },
      { path: at('pids', 'pids.max'), value: '1024' },
      { path: at('cpu', 'cpu.shares'), value: '2048' },
      { path: at('cpu', 'cpu.cfs_period_us'), value: '100000' },
      { path: at('cpu', 'cpu.cfs_quota_us'), value: '150000' },
      { path: at('cpuset', 'cpuset.cpus'), value: '0-1' },
      { path: at('cpuset', 'cpuset.mems'), value: '0' },
    ]);
    for (const h of HIERARCHIES) expect(await fake.files.exists(`${CG}/${h}/vmlet.slice/vmlet-web1.scope`)).toBe(true);
    expect(await fake.get(at('memory', 'memory.oom_control'))).toContain('oom_kill_disable 0');
  });

  it('no quota writes -1; no swap accounting skips memory.memsw', async () => {
    const driver = await ready({ swap: false });
    await driver.create('web1', { ...LIMITS, cpuQuota: undefined });
    expect(fake.writes.map((w) => `${w.path.split('/').pop()} ${w.value}`)).toEqual([
      'memory.limit_in_bytes 536870912',
      'pids.max 1024',
      'cpu.shares 2048',
      'cpu.cfs_period_us 100000',
      'cpu.cfs_quota_us -1',
      'cpuset.cpus 0-1',
      'cpuset.mems 0',
    ]);
  });

  it('create again can raise and lower the limit (memory+swap never below memory)', async () => {
    const driver = await ready();
    await driver.create('web1', LIMITS);
    await driver.create('web1', { ...LIMITS, memoryBytes: 1024 * MIB });
    await driver.create('web1', { ...LIMITS, memoryBytes: 256 * MIB });
    expect(await fake.get(`${CG}/memory/vmlet.slice/vmlet-web1.scope/memory.memsw.limit_in_bytes`)).toBe(`${256 * MIB}\n`);
  });

  it('a limit below usage: EBUSY, named, with what to do', async () => {
    const driver = await ready();
    const { path } = await driver.create('web1', LIMITS);
    await fake.set(`${CG}/memory/${path}/memory.usage_in_bytes`, `${600 * MIB}\n`);
    await expect(driver.create('web1', LIMITS)).rejects.toThrow(
      `cgroup: write /sys/fs/cgroup/memory/vmlet.slice/vmlet-web1.scope/memory.limit_in_bytes failed: EBUSY (the cgroup already uses ${600 * MIB} bytes, more than the limit ${512 * MIB}; in cgroup v1 the limit must be set before the process is added)`,
    );
    // It existed before: a failed create leaves it alone.
    expect(await fake.files.exists(`${CG}/memory/${path}`)).toBe(true);
  });

  it('a failed create removes the directories it made', async () => {
    const driver = await ready();
    await fake.files.rmdir(`${CG}/pids/vmlet.slice`);
    await fake.set(`${CG}/pids/vmlet.slice`, 'not a directory');
    await expect(driver.create('web1', LIMITS)).rejects.toThrow(/mkdir \/sys\/fs\/cgroup\/pids\/vmlet.slice\/vmlet-web1.scope failed: ENOTDIR/);
    for (const h of ['cpu', 'cpuacct', 'memory']) expect(await fake.files.exists(`${CG}/${h}/vmlet.slice/vmlet-web1.scope`)).toBe(false);
  });

  it('addProcess writes cgroup.procs in every hierarchy; pidsOf is their union', async () => {
    const driver = await ready();
    const { path } = await driver.create('web1', LIMITS);
    await driver.addProcess(path, 4242);
    expect(fake.writes.filter((w) => w.path.endsWith('cgroup.procs')).map((w) => w.path.split('/')[4]).sort()).toEqual([...HIERARCHIES, ...COMPANIONS].sort());
    await fake.set(`${CG}/pids/${path}/cgroup.procs`, '4242\n99\n');
    expect(await driver.pidsOf(path)).toEqual([99, 4242]);
  });

  it('setCpuWeight writes cpu.shares in the cpu hierarchy only, converted as systemd does', async () => {
    const driver = await ready();
    const { path } = await driver.create('web1', LIMITS);
    fake.writes.length = 0;
    await driver.setCpuWeight(path, 10_000);
    expect(fake.writes).toEqual([{ path: `${CG}/cpu/${path}/cpu.shares`, value: '102400' }]);
  });

  it('oomKilled reads the oom_kill line of memory.oom_control', async () => {
    const driver = await ready();
    const { path } = await driver.create('web1', LIMITS);
    expect(await driver.oomKilled(path)).toBe(0);
    await fake.set(`${CG}/memory/${path}/memory.oom_control`, 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n');
    expect(await driver.oomKilled(path)).toBe(2);
  });

  it('without an oom_kill line (kernels before 4.13): 1 when the limit was hit, else 0', async () => {
    const driver = await ready({ oomKillLine: false });
    const { path } = await driver.create('web1', LIMITS);
    const dir = `${CG}/memory/${path}`;
    expect(await driver.oomKilled(path)).toBe(0);
    await fake.set(`${dir}/memory.failcnt`, '3\n');
    await fake.set(`${dir}/memory.max_usage_in_bytes`, `${512 * MIB}\n`);
    expect(await driver.oomKilled(path)).toBe(1);
  });

  it('remove refuses while any hierarchy has processes, then removes everywhere, then is a no-op', async () => {
    const driver = await ready();
    const { path } = await driver.create('web1', LIMITS);
    await fake.set(`${CG}/memory/${path}/cgroup.procs`, '4242\n');
    await expect(driver.remove(path)).rejects.toThrow(`cgroup ${CG}/memory/${path} cannot be removed: it still has processes 4242: stop them first`);
    await fake.set(`${CG}/memory/${path}/cgroup.procs`, '');
    await driver.remove(path);
    for (const h of HIERARCHIES) expect(await fake.files.exists(`${CG}/${h}/${path}`)).toBe(false);
    await driver.remove(path);
  });

  it('listOrphans finds a scope left in one hierarchy only', async () => {
    const driver = await ready();
    await driver.create('kept', LIMITS);
    await fake.files.mkdir(`${CG}/pids/vmlet.slice/vmlet-stray.scope`);
    expect(await driver.listOrphans(new Set(['kept']))).toEqual([{ vmId: 'stray', path: 'vmlet.slice/vmlet-stray.scope' }]);
    await driver.remove('vmlet.slice/vmlet-stray.scope');
    expect(await driver.listOrphans(new Set(['kept']))).toEqual([]);
  });
});
