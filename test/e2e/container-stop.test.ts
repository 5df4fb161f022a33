import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDaemon } from '../support/daemon.js';
import { guestSpec } from '../support/guest.js';
import { rpc } from '../support/rpc.js';
import { cgroupHierarchies } from '../support/cgroups.js';
import { until } from '../support/poll.js';
import { isAlive } from '../../src/host/process.js';

/**
 * Every cgroup hierarchy, v1 and v2, keyed as /proc/self/cgroup names it: a runtime may stop a
 * container through any of them (runc freezes it, systemd kills by its own hierarchy).
 */
async function containerHierarchies(own: Map<string, string>): Promise<{ mount: string; key: string }[]> {
  return (await cgroupHierarchies()).flatMap((m) => {
    const key = m.type === 'cgroup2' ? '' : m.options.find((o) => own.has(o));
    return key === undefined ? [] : [{ mount: m.dir, key }];
  });
}

/** This process's cgroup in each hierarchy, from /proc/self/cgroup. */
async function ownCgroups(): Promise<Map<string, string>> {
  const own = new Map<string, string>();
  for (const line of (await readFile('/proc/self/cgroup', 'utf8')).split('\n')) {
    const [, controllers, path] = line.split(':');
    if (path === undefined) continue;
    for (const c of controllers!.split(',')) own.set(c, path);
  }
  return own;
}

/**
 * What a container runtime does to a pod it stops: every process in the container's cgroup is
 * killed. The daemon runs in a cgroup of its own ("the container"); its guests must not.
 */
describe('guests survive the container the agent runs in', () => {
  const container = `vmlet-container-${process.pid}.scope`;
  let hierarchies: { mount: string; key: string }[];
  let d: TestDaemon;

  beforeAll(async () => {
    const own = await ownCgroups();
    hierarchies = await containerHierarchies(own);
    for (const h of hierarchies) await mkdir(join(h.mount, container));
    // A new v1 cpuset cgroup takes no process before it has CPUs and memory nodes.
    for (const h of hierarchies.filter((x) => x.key === 'cpuset')) {
      for (const f of ['cpuset.cpus', 'cpuset.mems']) await writeFile(join(h.mount, container, f), await readFile(join(h.mount, f), 'utf8'));
    }
    // The daemon is forked inside the container's cgroup: this process steps in, forks, steps back.
    for (const h of hierarchies) await writeFile(join(h.mount, container, 'cgroup.procs'), String(process.pid));
    try {
      d = await TestDaemon.start();
    } finally {
      for (const h of hierarchies) await writeFile(join(h.mount, own.get(h.key) ?? '/', 'cgroup.procs'), String(process.pid));
    }
  });

  afterAll(async () => {
    await d?.cleanup();
    for (const h of hierarchies ?? []) await rmdir(join(h.mount, container)).catch(() => undefined);
  });

  it('kills every process of the daemon\'s cgroup: the guest runs on and the next daemon adopts it with the same pid', async () => {
    const api = rpc(d.clients);
    const vm = await api.create(guestSpec('outlives'), true);
    const pid = vm.status!.pid;
    const procs = async (h: { mount: string }): Promise<number[]> =>
      (await readFile(join(h.mount, container, 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean).map(Number);

    const inContainer = (await Promise.all(hierarchies.map(procs))).flat();
    expect(inContainer).toContain(d.child!.pid);
    expect(inContainer).not.toContain(pid);

    // The runtime's stop: SIGKILL to everything in the container, until it is empty.
    for (const p of new Set(inContainer)) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    // Killed processes whose parent died too may linger as zombies until PID 1 reaps them.
    const living = async (): Promise<number[]> => {
      const listed = [...new Set((await Promise.all(hierarchies.map(procs))).flat())];
      const alive = await Promise.all(listed.map((p) => isAlive(p)));
      return listed.filter((_, i) => alive[i]);
    };
    await until('every process of the container gone', async () => ((await living()).length === 0 ? true : undefined), 10_000);
    expect(await isAlive(pid)).toBe(true);

    await d.restart();
    const adopted = await rpc(d.clients).get('outlives');
    expect(adopted.status?.phase).toBe('PHASE_RUNNING');
    expect(adopted.status?.pid).toBe(pid);
  });
});
