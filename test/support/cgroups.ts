/** The host's cgroup hierarchies, for tests that look into or clean up after vmlet's cgroups. */
import { cgroupMounts as mounts } from '../../bench/cgroups.js';

export { removeCgroupTree, cgroupMounts as cgroupHierarchies } from '../../bench/cgroups.js';

/** Mount points of every cgroup hierarchy (v1 and v2) on this host. */
export async function cgroupMounts(): Promise<string[]> {
  return (await mounts()).map((m) => m.dir);
}
