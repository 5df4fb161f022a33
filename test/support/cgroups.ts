/** The host's cgroup hierarchies, for tests that look into or clean up after vmlet's cgroups. */
import { readFile, readdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';

/** Mount points of every cgroup hierarchy (v1 and v2) on this host. */
export async function cgroupMounts(): Promise<string[]> {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  return mounts
    .split('\n')
    .map((line) => line.split(' '))
    .filter((f) => f[2] === 'cgroup' || f[2] === 'cgroup2')
    .map((f) => f[1]!);
}

/** Removes `parent` and the cgroups below it in every hierarchy (they must hold no process). */
export async function removeCgroupTree(parent: string): Promise<void> {
  for (const mount of await cgroupMounts()) {
    const dir = join(mount, parent);
    const children = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const child of children.filter((c) => c.isDirectory())) await rmdir(join(dir, child.name)).catch(() => undefined);
    await rmdir(dir).catch(() => undefined);
  }
}
