/** The host's cgroup hierarchies, for tests that look into or clean up after vmlet's cgroups. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cgroupMounts as mounts } from '../../bench/cgroups.js';
import { parseMountinfo } from '../../src/cgroup/layout.js';

export { removeCgroupTree, cgroupMounts as cgroupHierarchies } from '../../bench/cgroups.js';

/** Mount points of every cgroup hierarchy (v1 and v2) on this host. */
export async function cgroupMounts(): Promise<string[]> {
  return (await mounts()).map((m) => m.dir);
}

/** test/support/netns-cgroups.sh: mounts the host's cgroup hierarchies again inside `ip netns exec`. */
export const NETNS_CGROUPS = join(import.meta.dirname, 'netns-cgroups.sh');

/**
 * The cgroup mounts under /sys/fs/cgroup as netns-cgroups.sh takes them (mount point, type,
 * options), after a tmpfs to hold them when the host has one there: a daemon in a test network
 * namespace then finds the cgroups the host has.
 */
export async function cgroupRemounts(): Promise<string[]> {
  const under = (point: string): boolean => point === '/sys/fs/cgroup' || point.startsWith('/sys/fs/cgroup/');
  const mounts = parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8')).filter((m) => under(m.mountPoint));
  const args = mounts.length && !mounts.some((m) => m.mountPoint === '/sys/fs/cgroup') ? ['/sys/fs/cgroup', 'tmpfs', 'mode=755'] : [];
  for (const m of mounts) {
    const options = m.superOptions.filter((o) => o !== 'rw' && o !== 'ro');
    if (m.fsType === 'cgroup' && options.every((o) => o.startsWith('name=') || o === 'xattr')) options.unshift('none');
    args.push(m.mountPoint, m.fsType, options.length ? options.join(',') : 'defaults');
  }
  return args;
}
