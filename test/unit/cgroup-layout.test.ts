import { afterEach, describe, expect, it } from 'vitest';
import { detectLayout, isWithin, parseMountinfo, parseProcCgroup, readCgroupLayout } from '../../src/cgroup/layout.js';
import { normalizeParent, scopeName, scopePath, vmIdOfScope, vmIdOfScopePath } from '../../src/cgroup/names.js';
import { parseFlatKeyed, parseProcs } from '../../src/cgroup/parse.js';
import { makeFakeCgroupfs, type FakeCgroupfs } from '../support/fake-cgroupfs.js';

// /proc/self/mountinfo of the development machine: v1 controllers, a cgroup2 mount without any.
const HYBRID = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;
const SELF_HYBRID = '9:name=systemd:/\n8:pids:/\n4:memory:/process_api/9a6f\n2:cpuacct:/\n1:cpu:/\n0::/\n';
// A systemd host in unified mode.
const UNIFIED = '30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n';
// Debian 10 style v1: cpu and cpuacct co-mounted, no cgroup2.
const LEGACY = `25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory
31 25 0:28 /docker/abc /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,pids
32 25 0:28 / /mnt/my\\040pids rw - cgroup cgroup rw,pids
`;

describe('detectLayout', () => {
  it('this machine: hybrid, a mount per controller, the process\'s own cgroups', () => {
    const layout = detectLayout(HYBRID, SELF_HYBRID);
    expect(layout.kind).toBe('hybrid');
    expect(layout.unified).toEqual({ mountPoint: '/sys/fs/cgroup/unified', root: '/' });
    expect(layout.v1).toEqual({
      cpu: { mountPoint: '/sys/fs/cgroup/cpu', root: '/' },
      cpuacct: { mountPoint: '/sys/fs/cgroup/cpuacct', root: '/' },
      memory: { mountPoint: '/sys/fs/cgroup/memory', root: '/' },
      pids: { mountPoint: '/sys/fs/cgroup/pids', root: '/' },
    });
    expect(layout.self).toMatchObject({ '': '/', memory: '/process_api/9a6f', cpu: '/', 'name=systemd': '/' });
  });

  it('unified: v2', () => {
    const layout = detectLayout(UNIFIED, '0::/system.slice/vmlet.service\n');
    expect(layout).toEqual({ kind: 'v2', unified: { mountPoint: '/sys/fs/cgroup', root: '/' }, v1: {}, self: { '': '/system.slice/vmlet.service' } });
  });

  it('v1 with co-mounted controllers; a whole-tree mount wins over a subtree one; escaped mount points', () => {
    const layout = detectLayout(LEGACY, '');
    expect(layout.kind).toBe('v1');
    expect(layout.v1['cpu']).toEqual({ mountPoint: '/sys/fs/cgroup/cpu,cpuacct', root: '/' });
    expect(layout.v1['cpuacct']).toBe(layout.v1['cpu']);
    expect(layout.v1['pids']).toEqual({ mountPoint: '/mnt/my pids', root: '/' });
  });

  it('no cgroup file system at all is an error', () => {
    expect(() => detectLayout('22 1 0:5 / /proc rw - proc proc rw\n', '')).toThrow(/no cgroup or cgroup2 file system is mounted/);
  });

  it('parseMountinfo keeps only cgroup mounts', () => {
    expect(parseMountinfo(HYBRID).map((m) => m.fsType)).toEqual(['cgroup', 'cgroup', 'cgroup', 'cgroup', 'cgroup', 'cgroup', 'cgroup2']);
  });

  it('parseProcCgroup splits co-mounted controllers', () => {
    expect(parseProcCgroup('3:cpu,cpuacct:/a\n0::/b\n')).toEqual({ cpu: '/a', cpuacct: '/a', '': '/b' });
  });

  it('isWithin', () => {
    expect(isWithin('/a/b', '/a')).toBe(true);
    expect(isWithin('/a', '/a')).toBe(true);
    expect(isWithin('/ab', '/a')).toBe(false);
    expect(isWithin('/x', '/')).toBe(true);
  });
});

describe('readCgroupLayout', () => {
  let fake: FakeCgroupfs;
  afterEach(async () => fake.cleanup());

  it('reads /proc/self under the injected root', async () => {
    fake = await makeFakeCgroupfs('v2', { self: '/a.slice' });
    expect(await readCgroupLayout(fake.files)).toMatchObject({ kind: 'v2', self: { '': '/a.slice' } });
  });
});

describe('names', () => {
  it('a VM scope', () => {
    expect(scopeName('web-1')).toBe('vmlet-web-1.scope');
    expect(vmIdOfScope('vmlet-web-1.scope')).toBe('web-1');
    expect(vmIdOfScope('vmlet-.scope')).toBeUndefined();
    expect(vmIdOfScope('other.scope')).toBeUndefined();
    expect(scopePath('vmlet.slice', 'a')).toBe('vmlet.slice/vmlet-a.scope');
    expect(vmIdOfScopePath('vmlet.slice', 'vmlet.slice/vmlet-a.scope')).toBe('a');
    expect(() => scopeName('A_b')).toThrow(/cannot name a cgroup/);
  });

  it.each([
    ['vmlet.slice', 'vmlet.slice'],
    ['/machine.slice/vmlet.slice/', 'machine.slice/vmlet.slice'],
  ])('normalizeParent(%j) = %j', (input, out) => {
    expect(normalizeParent(input)).toBe(out);
  });

  it.each(['', '/', '../x', 'a/../b', 'a b', 'a/./b'])('normalizeParent rejects %j', (input) => {
    expect(() => normalizeParent(input)).toThrow(/is not a cgroup path/);
  });
});

describe('parsers', () => {
  it('parseProcs', () => {
    expect(parseProcs('12\n3\n\n')).toEqual([3, 12]);
  });
  it('parseFlatKeyed', () => {
    expect(parseFlatKeyed('oom_kill_disable 0\nunder_oom 0\noom_kill 3\n')).toEqual({ oom_kill_disable: 0, under_oom: 0, oom_kill: 3 });
  });
});
