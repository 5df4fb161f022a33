import { afterEach, describe, expect, it } from 'vitest';
import type { RunResult } from '../../src/host/run.js';
import { CommandError } from '../../src/host/run.js';
import { openCgroupDriver } from '../../src/cgroup/open.js';
import type { CgroupLimits } from '../../src/cgroup/limits.js';
import {
  parseJobPath,
  scopeProperties,
  sliceOfParent,
  slicePath,
  startTransientUnitArgs,
  type CommandRunner,
} from '../../src/cgroup/systemd.js';
import { makeFakeCgroupfs, type FakeCgroupfs } from '../support/fake-cgroupfs.js';

const MIB = 1 << 20;
const LIMITS: CgroupLimits = { memoryBytes: 512 * MIB, pidsMax: 1024, cpuWeight: 200, cpuQuota: { quotaUs: 150_000, periodUs: 100_000 } };
const CALL = ['call', 'org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.systemd1.Manager'];

describe('busctl argv', () => {
  it('StartTransientUnit of a VM scope: the pid, slice and limits as D-Bus properties', () => {
    expect(startTransientUnitArgs('vmlet-web1.scope', 'fail', scopeProperties('web1', 'vmlet.slice', 4242, LIMITS))).toEqual([
      ...CALL,
      'StartTransientUnit',
      'ssa(sv)a(sa(sv))',
      'vmlet-web1.scope',
      'fail',
      '11',
      'Description', 's', 'vmlet VM web1',
      'Slice', 's', 'vmlet.slice',
      'PIDs', 'au', '1', '4242',
      'MemoryMax', 't', String(512 * MIB),
      'MemorySwapMax', 't', '0',
      'TasksMax', 't', '1024',
      'CPUWeight', 't', '200',
      'CPUQuotaPerSecUSec', 't', '1500000',
      'CPUQuotaPeriodUSec', 't', '100000',
      'Delegate', 'b', 'false',
      'CollectMode', 's', 'inactive-or-failed',
      '0',
    ]);
  });

  it('no quota: no CPUQuota properties', () => {
    const props = scopeProperties('web1', 'vmlet.slice', 1, { ...LIMITS, cpuQuota: undefined });
    expect(props.map((p) => p[0])).toEqual(['Description', 'Slice', 'PIDs', 'MemoryMax', 'MemorySwapMax', 'TasksMax', 'CPUWeight', 'Delegate', 'CollectMode']);
  });

  it('parses the job path', () => {
    expect(parseJobPath('o "/org/freedesktop/systemd1/job/1234"\n')).toBe('/org/freedesktop/systemd1/job/1234');
    expect(() => parseJobPath('')).toThrow(/no job path/);
  });
});

describe('slices', () => {
  it.each([
    ['vmlet.slice', 'vmlet.slice'],
    ['machine-vmlet.slice', 'machine.slice/machine-vmlet.slice'],
    ['a-b-c.slice', 'a.slice/a-b.slice/a-b-c.slice'],
  ])('slicePath(%j) = %j', (slice, path) => {
    expect(slicePath(slice)).toBe(path);
  });

  it('a parent is a slice unit or its cgroup path', () => {
    expect(sliceOfParent('machine-vmlet.slice')).toEqual({ unit: 'machine-vmlet.slice', path: 'machine.slice/machine-vmlet.slice' });
    expect(sliceOfParent('/machine.slice/machine-vmlet.slice')).toEqual({ unit: 'machine-vmlet.slice', path: 'machine.slice/machine-vmlet.slice' });
  });

  it.each(['machine.slice/vmlet.slice', 'vmlet', 'vmlet.scope', 'a--b.slice'])('rejects %j', (parent) => {
    expect(() => sliceOfParent(parent)).toThrow(/under systemd the parent must be a slice unit/);
  });

  it('rejects the root slice', () => {
    expect(() => sliceOfParent('-.slice')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

describe('SystemdCgroupDriver (busctl faked)', () => {
  let fake: FakeCgroupfs;
  afterEach(async () => fake.cleanup());

  /** A runner that records busctl calls; StartTransientUnit of a scope "moves" the pid in the fake /proc. */
  function fakeBusctl(fail: (args: readonly string[]) => string | undefined = () => undefined): { runner: CommandRunner; calls: string[][] } {
    const calls: string[][] = [];
    const runner: CommandRunner = async (command, args): Promise<RunResult> => {
      calls.push([command, ...args]);
      const stderr = fail(args);
      if (stderr) throw new CommandError(command, args, 1, stderr, 'failed (exit 1)');
      const unit = args[6] ?? '';
      if (args[4] === 'StartTransientUnit' && unit.endsWith('.scope')) {
        const pid = args[args.indexOf('PIDs') + 3];
        await fake.set(`/proc/${pid}/cgroup`, `0::/vmlet.slice/${unit}\n`);
      }
      return { stdout: args[4] === 'StartTransientUnit' ? 'o "/org/freedesktop/systemd1/job/7"\n' : '', stderr: '' };
    };
    return { runner, calls };
  }

  it('is chosen when systemd is PID 1; ensureParent starts the slice with its weight', async () => {
    fake = await makeFakeCgroupfs('v2', { systemd: true });
    const { runner, calls } = fakeBusctl();
    const driver = await openCgroupDriver({ files: fake.files, runner });
    expect(driver.kind).toBe('systemd');
    expect(driver.parent).toBe('vmlet.slice');
    await driver.ensureParent({ cpuWeight: 100 });
    expect(calls).toEqual([['busctl', ...CALL, 'StartTransientUnit', 'ssa(sv)a(sa(sv))', 'vmlet.slice', 'fail', '2', 'Description', 's', 'vmlet guests', 'CPUWeight', 't', '100', '0']]);
    expect(fake.writes).toEqual([]);
  });

  it('an existing slice gets its weight through SetUnitProperties', async () => {
    fake = await makeFakeCgroupfs('v2', { systemd: true });
    const { runner, calls } = fakeBusctl((args) => (args[4] === 'StartTransientUnit' ? 'Call failed: Unit vmlet.slice already exists.' : undefined));
    const driver = await openCgroupDriver({ files: fake.files, runner });
    await driver.ensureParent({ cpuWeight: 100 });
    expect(calls[1]).toEqual(['busctl', ...CALL, 'SetUnitProperties', 'sba(sv)', 'vmlet.slice', 'true', '1', 'CPUWeight', 't', '100']);
  });

  it('create only records; addProcess starts the scope with the pid and waits until the kernel shows it there', async () => {
    fake = await makeFakeCgroupfs('v2', { systemd: true });
    const { runner, calls } = fakeBusctl();
    const driver = await openCgroupDriver({ files: fake.files, runner });
    const { path } = await driver.create('web1', LIMITS);
    expect(path).toBe('vmlet.slice/vmlet-web1.scope');
    expect(calls).toEqual([]);
    await driver.addProcess(path, 4242);
    expect(calls).toEqual([['busctl', ...startTransientUnitArgs('vmlet-web1.scope', 'fail', scopeProperties('web1', 'vmlet.slice', 4242, LIMITS))]]);
    // The scope exists now: another process is attached to it.
    await driver.addProcess(path, 4243);
    expect(calls[1]).toEqual(['busctl', ...CALL, 'AttachProcessesToUnit', 'ssau', 'vmlet-web1.scope', '', '1', '4243']);
  });

  it('setCpuWeight before the scope starts goes into its properties; after, through SetUnitProperties', async () => {
    fake = await makeFakeCgroupfs('v2', { systemd: true });
    const { runner, calls } = fakeBusctl();
    const driver = await openCgroupDriver({ files: fake.files, runner });
    const { path } = await driver.create('web1', LIMITS);
    await driver.setCpuWeight(path, 10_000);
    await driver.addProcess(path, 4242);
    expect(calls[0]).toEqual(['busctl', ...startTransientUnitArgs('vmlet-web1.scope', 'fail', scopeProperties('web1', 'vmlet.slice', 4242, { ...LIMITS, cpuWeight: 10_000 }))]);
    await driver.setCpuWeight(path, 100);
    expect(calls[1]).toEqual(['busctl', ...CALL, 'SetUnitProperties', 'sba(sv)', 'vmlet-web1.scope', 'true', '1', 'CPUWeight', 't', '100']);
  });

  it('a scope that systemd never fills is an error after the deadline', async () => {
    fake = await makeFakeCgroupfs('v2', { systemd: true });
    const runner: CommandRunner = async () => ({ stdout: 'o "/j/1"\n', stderr: '' });
    await fake.set('/proc/4242/cgroup', '0::/system.slice/vmlet.service\n');
    const driver = await openCgroupDriver({ files: fake.files, runner, systemdOptions: { moveTimeoutMs: 50 } });
    const { path } = await driver.create('web1', LIMITS);
    await expect(driver.addProcess(path, 4242)).rejects.toThrow('systemd did not move process 4242 into vmlet-web1.scope within 50 ms');
  });

  it('a stale empty scope of the same name is reset and the start retried once', async () => {
    fake = await makeFakeCgroupfs('v2', { systemd: true });
    let refused = false;
    const { runner, calls } = fakeBusctl((args) => {
      if (args[4] !== 'StartTransientUnit' || refused) return undefined;
      refused = true;
      return 'Call failed: Unit vmlet-web1.scope already exists.';
    });
    const driver = await openCgroupDriver({ files: fake.files, runner });
    const { path } = await driver.create('web1', LIMITS);
    await driver.addProcess(path, 4242);
    expect(calls.map((c) => `${c[5]} ${c[7]}`)).toEqual(['StartTransientUnit vmlet-web1.scope', 'ResetFailedUnit vmlet-web1.scope', 'StopUnit vmlet-web1.scope', 'StartTransientUnit vmlet-web1.scope']);
  });

  it('remove refuses while processes remain, stops an empty scope, and ignores a unit that is gone', async () => {
    fake = await makeFakeCgroupfs('v2', { systemd: true });
    const { runner, calls } = fakeBusctl((args) => (args[4] === 'StopUnit' ? 'Call failed: Unit vmlet-web1.scope not loaded.' : undefined));
    const driver = await openCgroupDriver({ files: fake.files, runner });
    const path = 'vmlet.slice/vmlet-web1.scope';
    await fake.set(`/sys/fs/cgroup/${path}/cgroup.procs`, '4242\n');
    await expect(driver.remove(path)).rejects.toThrow('scope vmlet-web1.scope cannot be removed: it still has processes 4242: stop them first');
    await fake.set(`/sys/fs/cgroup/${path}/cgroup.procs`, '');
    await driver.remove(path);
    expect(calls).toEqual([['busctl', ...CALL, 'StopUnit', 'ss', 'vmlet-web1.scope', 'replace']]);
  });

  it('a nested slice parent reads scopes under the slice\'s cgroup path', async () => {
    fake = await makeFakeCgroupfs('v2', { systemd: true });
    const driver = await openCgroupDriver({ files: fake.files, runner: fakeBusctl().runner, parent: 'machine-vmlet.slice' });
    expect(driver.parent).toBe('machine.slice/machine-vmlet.slice');
    await fake.set('/sys/fs/cgroup/machine.slice/machine-vmlet.slice/vmlet-old.scope/cgroup.procs', '');
    expect(await driver.listOrphans(new Set())).toEqual([{ vmId: 'old', path: 'machine.slice/machine-vmlet.slice/vmlet-old.scope' }]);
  });

  it('systemd: never keeps cgroupfs on a systemd host', async () => {
    fake = await makeFakeCgroupfs('v2', { systemd: true });
    expect((await openCgroupDriver({ files: fake.files, systemd: 'never' })).kind).toBe('v2');
  });
});
