/** The host's cgroup hierarchies, for benchmarks and tests that clean up after vmlet's cgroups. */
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

/** A mounted cgroup hierarchy. */
export interface CgroupMount {
  dir: string;
  type: string;
  options: string[];
}

/** Every cgroup (v1) and cgroup2 mount of this host. */
export async function cgroupMounts(): Promise<CgroupMount[]> {
  return (await readFile('/proc/self/mounts', 'utf8'))
    .split('\n')
    .map((line) => line.split(' '))
    .filter((f) => f[2] === 'cgroup' || f[2] === 'cgroup2')
    .map((f) => ({ dir: f[1]!.replace(/\\040/g, ' '), type: f[2]!, options: (f[3] ?? '').split(',') }));
}

/** rmdir of a cgroup, retried while exited QEMUs are not reaped yet; ENOENT is success. */
async function rmdirCgroup(dir: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await rmdir(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || Date.now() > deadline) throw err;
      await delay(50);
    }
  }
}

/** SIGKILL to every process still in a cgroup: a test that failed with its daemon stopped leaves its guests there. */
async function killMembers(dir: string): Promise<void> {
  const procs = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
  for (const pid of procs.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Removes <hierarchy>/<parent>/* then <hierarchy>/<parent> in every cgroup hierarchy mounted, killing what still runs there. */
export async function removeCgroupTree(parent: string): Promise<void> {
  for (const mount of await cgroupMounts()) {
    const dir = join(mount.dir, parent);
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => undefined);
    if (!entries) continue;
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      await killMembers(join(dir, e.name));
      await rmdirCgroup(join(dir, e.name));
    }
    await rmdirCgroup(dir);
  }
}

/** The hierarchies that weigh CPU time: v1 mounts with the cpu controller, and cgroup2. */
async function cpuHierarchies(): Promise<string[]> {
  return (await cgroupMounts()).filter((m) => m.type === 'cgroup2' || m.options.includes('cpu')).map((m) => m.dir);
}

/**
 * Moves a process (all its threads) into the cgroup `name` at the top of each hierarchy that
 * weighs CPU time, made if missing: the daemon of a benchmark then competes with the guests' parent
 * as a cgroup of the default weight, as systemd runs vmlet.service, rather than as one task of the
 * root cgroup beside the benchmark's own client.
 */
export async function joinTopCgroup(pid: number, name: string): Promise<void> {
  for (const dir of await cpuHierarchies()) {
    await mkdir(join(dir, name), { recursive: true });
    await writeFile(join(dir, name, 'cgroup.procs'), String(pid));
  }
}

/** Removes what joinTopCgroup made, once the processes in it have exited. */
export async function leaveTopCgroup(name: string): Promise<void> {
  for (const dir of await cpuHierarchies()) await rmdirCgroup(join(dir, name));
}
