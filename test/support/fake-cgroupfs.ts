/**
 * A fake cgroupfs in a temp dir: the files a kernel shows for a cgroup v2 host or a v1 host
 * (this machine's layout: cpu, cpuacct, memory, pids hierarchies plus an empty cgroup2), with
 * the kernel's behaviour the drivers depend on: mkdir fills in control files, writes to files
 * that do not exist fail with ENOENT, rmdir of a cgroup with processes fails with EBUSY, a v1
 * memory limit below usage fails with EBUSY, v2 controllers must be available to be enabled.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CgroupFileError, fileError, hostCgroupFiles, type CgroupFiles } from '../../src/cgroup/files.js';

export const V1_MOUNTS = ['cpu', 'cpuacct', 'cpuset', 'memory', 'pids'] as const;
const V1_UNLIMITED = '9223372036854771712';

export interface FakeOptions {
  /** v2: controllers of the root's cgroup.controllers; default cpuset cpu io memory hugetlb pids rdma misc. */
  controllers?: string[];
  /** v1: hierarchies mounted; default V1_MOUNTS. */
  v1Mounts?: readonly string[];
  /** Swap accounting: memory.swap.max (v2) / memory.memsw.limit_in_bytes (v1) exist; default true. */
  swap?: boolean;
  /** v1: memory.oom_control has an oom_kill line (kernels ≥ 4.13); default true. */
  oomKillLine?: boolean;
  /** vmlet's own cgroup; default /system.slice/vmlet.service. */
  self?: string;
  /** /run/systemd/system exists and /proc/1/comm is systemd. */
  systemd?: boolean;
}

/** A fake tree and the files interface that behaves like the kernel over it. */
export interface FakeCgroupfs {
  root: string;
  kind: 'v1' | 'v2';
  files: CgroupFiles;
  /** Every write through `files`, in order (failed ones too). */
  writes: { path: string; value: string }[];
  /** Sets a file's content directly (as the kernel would change it: usage, events, processes). */
  set(file: string, content: string): Promise<void>;
  get(file: string): Promise<string>;
  cleanup(): Promise<void>;
}

const MOUNTINFO_V2 = '30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n';

function mountinfoV1(mounts: readonly string[]): string {
  const lines = ['31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755'];
  mounts.forEach((m, i) => lines.push(`${32 + i} 31 0:${29 + i} / /sys/fs/cgroup/${m} rw,relatime - cgroup cgroup rw,${m}`));
  lines.push('40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd');
  lines.push('41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw');
  return lines.join('\n') + '\n';
}

/** Builds a fake tree in a fresh temp dir. */
export async function makeFakeCgroupfs(kind: 'v1' | 'v2', options: FakeOptions = {}): Promise<FakeCgroupfs> {
  const root = await mkdtemp(path.join(os.tmpdir(), `vmlet-cgroupfs-${kind}-`));
  const swap = options.swap ?? true;
  const self = options.self ?? '/system.slice/vmlet.service';
  const v1Mounts = options.v1Mounts ?? V1_MOUNTS;
  const at = (p: string): string => path.join(root, p);
  const put = async (p: string, content: string): Promise<void> => {
    await mkdir(path.dirname(at(p)), { recursive: true });
    await writeFile(at(p), content);
  };
  const get = (p: string): Promise<string> => readFile(at(p), 'utf8');
  const exists = (p: string): Promise<boolean> => readdir(path.dirname(at(p))).then((names) => names.includes(path.basename(p)), () => false);

  if (kind === 'v2') {
    await put('/proc/self/mountinfo', MOUNTINFO_V2);
    await put('/proc/self/cgroup', `0::${self}\n`);
    await put('/sys/fs/cgroup/cgroup.controllers', `${(options.controllers ?? ['cpuset', 'cpu', 'io', 'memory', 'hugetlb', 'pids', 'rdma', 'misc']).join(' ')}\n`);
    await put('/sys/fs/cgroup/cgroup.subtree_control', '\n');
    await put('/sys/fs/cgroup/cgroup.procs', '1\n');
  } else {
    await put('/proc/self/mountinfo', mountinfoV1(v1Mounts));
    await put('/proc/self/cgroup', ['9:name=systemd:/', ...v1Mounts.map((m, i) => `${i + 1}:${m}:${self}`), '0::/'].join('\n') + '\n');
    for (const m of [...v1Mounts, 'systemd', 'unified']) await put(`/sys/fs/cgroup/${m}/cgroup.procs`, '1\n');
    if (v1Mounts.includes('cpuset')) {
      await put('/sys/fs/cgroup/cpuset/cpuset.cpus', '0-1\n');
      await put('/sys/fs/cgroup/cpuset/cpuset.mems', '0\n');
    }
  }
  if (options.systemd) {
    await mkdir(at('/run/systemd/system'), { recursive: true });
    await put('/proc/1/comm', 'systemd\n');
  }

  /** The v2 control files of a controller. */
  function v2Files(controller: string): Record<string, string> {
    if (controller === 'cpu') return { 'cpu.weight': '100\n', 'cpu.max': 'max 100000\n', 'cpu.stat': 'usage_usec 0\n' };
    if (controller === 'pids') return { 'pids.max': 'max\n', 'pids.current': '0\n' };
    if (controller !== 'memory') return {};
    return {
      'memory.max': 'max\n',
      'memory.current': '0\n',
      'memory.events': 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n',
      ...(swap ? { 'memory.swap.max': 'max\n' } : {}),
    };
  }

  /** The v1 control files of a hierarchy. */
  function v1Files(hierarchy: string): Record<string, string> {
    if (hierarchy === 'cpu') return { 'cpu.shares': '1024\n', 'cpu.cfs_period_us': '100000\n', 'cpu.cfs_quota_us': '-1\n' };
    if (hierarchy === 'pids') return { 'pids.max': 'max\n', 'pids.current': '0\n' };
    if (hierarchy === 'cpuacct') return { 'cpuacct.usage': '0\n' };
    if (hierarchy === 'cpuset') return { 'cpuset.cpus': '\n', 'cpuset.mems': '\n' };
    if (hierarchy !== 'memory') return {};
    return {
      'memory.limit_in_bytes': `${V1_UNLIMITED}\n`,
      'memory.usage_in_bytes': '0\n',
      'memory.max_usage_in_bytes': '0\n',
      'memory.failcnt': '0\n',
      'memory.oom_control': `oom_kill_disable 0\nunder_oom 0\n${(options.oomKillLine ?? true) ? 'oom_kill 0\n' : ''}`,
      ...(swap ? { 'memory.memsw.limit_in_bytes': `${V1_UNLIMITED}\n` } : {}),
    };
  }

  const enabledIn = async (dir: string): Promise<string[]> => (await get(`${dir}/cgroup.subtree_control`)).split(/\s+/).filter(Boolean);

  /** The control files the kernel makes in a new cgroup. */
  async function populate(dir: string): Promise<void> {
    let files: Record<string, string> = { 'cgroup.procs': '' };
    if (kind === 'v2') {
      const on = await enabledIn(path.dirname(dir));
      files = { ...files, 'cgroup.controllers': `${on.join(' ')}\n`, 'cgroup.subtree_control': '\n', 'cgroup.events': 'populated 0\nfrozen 0\n' };
      for (const c of on) files = { ...files, ...v2Files(c) };
    } else {
      files = { ...files, tasks: '', ...v1Files(dir.split('/')[4]!) };
    }
    for (const [name, content] of Object.entries(files)) await writeFile(at(`${dir}/${name}`), content);
  }

  /** v2: what enabling controllers in `dir` does to its children: their control files appear. */
  async function delegate(dir: string, on: string[]): Promise<void> {
    for (const child of await readdir(at(dir), { withFileTypes: true })) {
      if (!child.isDirectory()) continue;
      const childDir = `${dir}/${child.name}`;
      await writeFile(at(`${childDir}/cgroup.controllers`), `${on.join(' ')}\n`);
      for (const c of on) {
        for (const [name, content] of Object.entries(v2Files(c))) if (!(await exists(`${childDir}/${name}`))) await writeFile(at(`${childDir}/${name}`), content);
      }
    }
  }

  const host = hostCgroupFiles(root);
  const writes: FakeCgroupfs['writes'] = [];
  const fail = (p: string, errno: string): never => {
    throw new CgroupFileError('write', p, errno);
  };
  const num = (text: string): number => (text.trim() === '-1' ? Number(V1_UNLIMITED) : Number(text.trim()));

  const files: CgroupFiles = {
    read: (p) => host.read(p),
    exists: (p) => host.exists(p),
    listDirs: (p) => host.listDirs(p),
    async write(p, value) {
      writes.push({ path: p, value });
      const dir = path.dirname(p);
      const name = path.basename(p);
      if (!(await exists(p))) fail(p, 'ENOENT');
      if (name === 'cgroup.procs') {
        if (!/^[1-9]\d*$/.test(value)) fail(p, 'EINVAL');
        if (Number(value) > 4_000_000) fail(p, 'ESRCH');
        await writeFile(at(p), (await get(p)) + `${value}\n`);
        return;
      }
      if (name === 'cgroup.subtree_control') {
        const available = new Set(dir === '/sys/fs/cgroup' ? (await get(`${dir}/cgroup.controllers`)).split(/\s+/) : await enabledIn(path.dirname(dir)));
        const on = new Set(await enabledIn(dir));
        for (const word of value.split(/\s+/)) {
          if (!available.has(word.slice(1))) fail(p, 'ENOENT');
          if (word.startsWith('+')) on.add(word.slice(1));
          else on.delete(word.slice(1));
        }
        if (dir !== '/sys/fs/cgroup' && (await get(`${dir}/cgroup.procs`)).trim() !== '') fail(p, 'EBUSY');
        await writeFile(at(p), `${[...on].join(' ')}\n`);
        await delegate(dir, [...on]);
        return;
      }
      if (name === 'memory.limit_in_bytes') {
        if (num(value) < num(await get(`${dir}/memory.usage_in_bytes`))) fail(p, 'EBUSY');
        if ((await exists(`${dir}/memory.memsw.limit_in_bytes`)) && num(value) > num(await get(`${dir}/memory.memsw.limit_in_bytes`))) fail(p, 'EINVAL');
      }
      if (name === 'memory.memsw.limit_in_bytes' && num(value) < num(await get(`${dir}/memory.limit_in_bytes`))) fail(p, 'EINVAL');
      await writeFile(at(p), `${value.trim() === '-1' ? V1_UNLIMITED : value}\n`);
    },
    async mkdir(p) {
      const missing: string[] = [];
      for (let d = p; !(await host.exists(d)); d = path.dirname(d)) missing.unshift(d);
      for (const d of missing) {
        await mkdir(at(d)).catch((err: unknown) => {
          throw fileError('mkdir', d, err);
        });
        await populate(d);
      }
      return missing.length > 0;
    },
    async rmdir(p) {
      if (!(await host.exists(p))) return false;
      const subdirs = await host.listDirs(p);
      if (subdirs.length > 0 || (await get(`${p}/cgroup.procs`)).trim() !== '') throw new CgroupFileError('rmdir', p, 'EBUSY');
      await rm(at(p), { recursive: true });
      return true;
    },
  };

  return { root, kind, files, writes, set: put, get, cleanup: () => rm(root, { recursive: true, force: true }) };
}
