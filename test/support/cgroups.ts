/** The host's cgroup hierarchies, for tests that look into or clean up after vmlet's cgroups. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cgroupMounts as mounts } from '../../bench/cgroups.js';

export { removeCgroupTree, cgroupMounts as cgroupHierarchies } from '../../bench/cgroups.js';

/** Mount points of every cgroup hierarchy (v1 and v2) on this host. */
export async function cgroupMounts(): Promise<string[]> {
  return (await mounts()).map((m) => m.dir);
}

/** test/support/netns-cgroups.sh: mounts the host's cgroup hierarchies again inside `ip netns exec`. */
export const NETNS_CGROUPS = join(import.meta.dirname, 'netns-cgroups.sh');

/**
 * The mounts at and under /sys/fs/cgroup, as netns-cgroups.sh takes them (mount point, type,
 * options), parents first: a daemon in a test network namespace then finds the cgroups the host has.
 */
export async function cgroupRemounts(): Promise<string[]> {
  const args: string[] = [];
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const dash = line.indexOf(' - ');
    if (dash === -1) continue;
    const point = line.slice(0, dash).split(' ')[4]!;
    const [type, , superOptions = ''] = line.slice(dash + 3).split(' ');
    if (point !== '/sys/fs/cgroup' && !point.startsWith('/sys/fs/cgroup/')) continue;
    const options = superOptions.split(',').filter((o) => o !== 'rw' && o !== 'ro');
    if (type === 'cgroup' && options.every((o) => o.startsWith('name=') || o === 'xattr')) options.unshift('none');
    args.push(point, type!, options.length ? options.join(',') : 'defaults');
  }
  return args;
}
