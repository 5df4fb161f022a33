/**
 * Which cgroup hierarchies this host has and where they are mounted. Parsing is pure (the text
 * of /proc/self/mountinfo and /proc/self/cgroup); readCgroupLayout reads them.
 */
import { posix } from 'node:path';
import type { CgroupFiles } from './files.js';

/** The v1 controllers vmlet uses: limits on cpu, memory and pids; cpuacct for per-VM CPU figures. */
export const V1_CONTROLLERS = ['cpu', 'cpuacct', 'memory', 'pids'] as const;

/**
 * v1 controllers vmlet sets nothing on but moves QEMU along in (with named hierarchies such as
 * name=systemd): a container runtime or service manager that stops vmlet's cgroup by any of them
 * must not find the guests there.
 */
const COMPANION_CONTROLLERS = ['cpuset', 'devices', 'freezer', 'blkio', 'net_cls', 'net_prio', 'perf_event', 'hugetlb', 'rdma', 'misc'] as const;

/** One mounted hierarchy: where it is mounted and which of its cgroups the mount shows as its root. */
export interface CgroupMount {
  mountPoint: string;
  /** The hierarchy path shown at the mount point (`/` unless a subtree was bind-mounted). */
  root: string;
}

/** The host's cgroup hierarchies. */
export interface CgroupLayout {
  /**
   * `v2`: only the unified hierarchy; `v1`: only per-controller hierarchies; `hybrid`: v1
   * controllers plus a cgroup2 mount that holds no controller vmlet uses (systemd's "hybrid").
   */
  kind: 'v2' | 'v1' | 'hybrid';
  /** The cgroup2 mount, if any. */
  unified?: CgroupMount;
  /** v1 controller → its hierarchy's mount (co-mounted controllers share one). */
  v1: Partial<Record<string, CgroupMount>>;
  /** The other v1 hierarchies, by their first controller or `name=...`; absent when there are none. */
  companions?: Partial<Record<string, CgroupMount>>;
  /** This process's cgroup per hierarchy: `''` for the unified one, else the controller name. */
  self: Partial<Record<string, string>>;
}

interface MountinfoEntry {
  root: string;
  mountPoint: string;
  fsType: string;
  superOptions: string[];
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
const unescapeMount = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The cgroup and cgroup2 lines of /proc/self/mountinfo. */
export function parseMountinfo(text: string): MountinfoEntry[] {
  const entries: MountinfoEntry[] = [];
  for (const line of text.split('\n')) {
    const dash = line.indexOf(' - ');
    if (dash === -1) continue;
    const pre = line.slice(0, dash).split(' ');
    const [fsType, , superOpts] = line.slice(dash + 3).split(' ');
    if ((fsType !== 'cgroup' && fsType !== 'cgroup2') || pre.length < 5) continue;
    entries.push({ root: unescapeMount(pre[3]!), mountPoint: unescapeMount(pre[4]!), fsType, superOptions: (superOpts ?? '').split(',') });
  }
  return entries;
}

/** /proc/<pid>/cgroup → hierarchy key (`''` for v2, else each controller or `name=...`) → path. */
export function parseProcCgroup(text: string): Record<string, string> {
  const paths: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const [, , controllers, path] = m;
    if (controllers === '') paths[''] = path!;
    for (const c of controllers!.split(',').filter(Boolean)) paths[c] = path!;
  }
  return paths;
}

/** Works out the layout from the text of /proc/self/mountinfo and /proc/self/cgroup. */
export function detectLayout(mountinfo: string, selfCgroup: string): CgroupLayout {
  const mounts = parseMountinfo(mountinfo);
  // A hierarchy may be mounted more than once; prefer a mount of its whole tree.
  const better = (old: CgroupMount | undefined, root: string): boolean => !old || (old.root !== '/' && root === '/');
  let unified: CgroupMount | undefined;
  const v1: Partial<Record<string, CgroupMount>> = {};
  const companions: Partial<Record<string, CgroupMount>> = {};
  for (const m of mounts) {
    const mount = { mountPoint: m.mountPoint, root: m.root };
    if (m.fsType === 'cgroup2') {
      if (better(unified, m.root)) unified = mount;
      continue;
    }
    const used = V1_CONTROLLERS.filter((c) => m.superOptions.includes(c));
    for (const c of used) if (better(v1[c], m.root)) v1[c] = mount;
    const key = m.superOptions.find((o) => o.startsWith('name=')) ?? COMPANION_CONTROLLERS.find((c) => m.superOptions.includes(c));
    if (used.length === 0 && key !== undefined && better(companions[key], m.root)) companions[key] = mount;
  }
  const hasV1 = Object.keys(v1).length > 0;
  if (!hasV1 && !unified) throw new Error('no cgroup or cgroup2 file system is mounted (see /proc/self/mountinfo)');
  const kind = hasV1 ? (unified ? 'hybrid' : 'v1') : 'v2';
  const others = hasV1 && Object.keys(companions).length > 0 ? { companions } : {};
  return { kind, ...(unified ? { unified } : {}), v1, ...others, self: parseProcCgroup(selfCgroup) };
}

/** Reads and detects the layout of the host (or of the fake tree behind `files`). */
export async function readCgroupLayout(files: CgroupFiles): Promise<CgroupLayout> {
  const [mountinfo, self] = await Promise.all([files.read('/proc/self/mountinfo'), files.read('/proc/self/cgroup')]);
  return detectLayout(mountinfo, self);
}

/** The host directory of a cgroup, given as a path relative to the mount's root (`vmlet.slice/x.scope`). */
export function cgroupDir(mount: CgroupMount, path: string): string {
  return posix.join(mount.mountPoint, path);
}

/** The cgroup path as /proc/<pid>/cgroup shows it (when the mount and the reader share a cgroup namespace). */
export function hierarchyPath(mount: CgroupMount, path: string): string {
  return posix.join(mount.root, path);
}

/** Whether hierarchy path `inner` is `outer` or below it. */
export function isWithin(inner: string, outer: string): boolean {
  const o = outer.endsWith('/') ? outer : `${outer}/`;
  return inner === outer || inner.startsWith(o) || outer === '/';
}
