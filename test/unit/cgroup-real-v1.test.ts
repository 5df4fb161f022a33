/**
 * The v1 driver against this machine's kernel: a cgroup under a throw-away parent in the cpu,
 * cpuacct, memory and pids hierarchies, a real process in it, a real OOM kill. Needs root and
 * a v1 memory hierarchy; everything made here is removed at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import type { CgroupDriver } from '../../src/cgroup/driver.js';
import { hostCgroupFiles } from '../../src/cgroup/files.js';
import { detectLayout, type CgroupLayout } from '../../src/cgroup/layout.js';
import { openCgroupDriver } from '../../src/cgroup/open.js';

const MIB = 1 << 20;
const PARENT = `vmlet-test-${process.pid}.slice`;
const HIERARCHIES = ['cpu', 'cpuacct', 'memory', 'pids'];

function hostLayout(): CgroupLayout | undefined {
  try {
    return detectLayout(readFileSync('/proc/self/mountinfo', 'utf8'), readFileSync('/proc/self/cgroup', 'utf8'));
  } catch {
    return undefined;
  }
}
const layout = hostLayout();
const skipWhy =
  process.getuid?.() !== 0
    ? 'not root: cannot create cgroups'
    : !layout || layout.kind === 'v2' || !layout.v1['memory']
      ? 'no cgroup v1 memory hierarchy on this host'
      : !['cpu', 'pids'].every((c) => layout.v1[c])
        ? 'no cgroup v1 cpu or pids hierarchy on this host'
        : undefined;
if (skipWhy) console.warn(`cgroup-real-v1: skipped: ${skipWhy}`);

const files = hostCgroupFiles();
const children: ChildProcess[] = [];
let driver: CgroupDriver | undefined;

const at = (h: string, path: string, file: string): string => `${layout!.v1[h]!.mountPoint}/${path}/${file}`;
const read = (h: string, path: string, file: string): string => readFileSync(at(h, path, file), 'utf8').trim();
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const exited = (child: ChildProcess): Promise<NodeJS.Signals | number | null> =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve(child.signalCode ?? child.exitCode) : new Promise((r) => child.once('exit', (code, signal) => r(signal ?? code)));

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await Promise.all(children.map(exited));
  if (!driver) return;
  for (const orphan of await driver.listOrphans(new Set())) await driver.remove(orphan.path);
  const mounts = [...Object.values(layout?.v1 ?? {}), ...Object.values(layout?.companions ?? {}), layout?.unified];
  for (const mountPoint of new Set(mounts.map((m) => m?.mountPoint))) if (mountPoint) await files.rmdir(`${mountPoint}/${PARENT}`);
});

describe.skipIf(skipWhy !== undefined)('cgroup v1 on this kernel', () => {
  it('creates a VM cgroup with its limits, holds a process, refuses removal while it lives, then removes it', async () => {
    driver = await openCgroupDriver({ parent: PARENT, systemd: 'never' });
    expect(driver.kind).toBe('v1');
    await driver.ensureParent({ cpuWeight: 100 });
    expect(read('cpu', PARENT, 'cpu.shares')).toBe('1024');

    const { path } = await driver.create('real1', { memoryBytes: 64 * MIB, pidsMax: 16, cpuWeight: 300, cpuQuota: { quotaUs: 50_000, periodUs: 100_000 } });
    expect(path).toBe(`${PARENT}/vmlet-real1.scope`);
    expect(read('memory', path, 'memory.limit_in_bytes')).toBe(String(64 * MIB));
    if (layout!.v1['memory'] && (await files.exists(at('memory', path, 'memory.memsw.limit_in_bytes')))) {
      expect(read('memory', path, 'memory.memsw.limit_in_bytes')).toBe(String(64 * MIB));
    }
    expect(read('memory', path, 'memory.oom_control')).toMatch(/^oom_kill_disable 0$/m);
    expect(read('pids', path, 'pids.max')).toBe('16');
    expect(read('cpu', path, 'cpu.shares')).toBe('3072');
    expect(read('cpu', path, 'cpu.cfs_period_us')).toBe('100000');
    expect(read('cpu', path, 'cpu.cfs_quota_us')).toBe('50000');
    await driver.setCpuWeight(path, 10_000);
    expect(read('cpu', path, 'cpu.shares')).toBe('102400');

    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    children.push(sleeper);
    await driver.addProcess(path, sleeper.pid!);
    const own = readFileSync(`/proc/${sleeper.pid}/cgroup`, 'utf8');
    for (const h of HIERARCHIES) expect(own).toMatch(new RegExp(`^\\d+:${h}:/${PARENT}/vmlet-real1\\.scope$`, 'm'));
    // Every other hierarchy too (freezer, devices, name=systemd, the cgroup2 mount …): nothing of
    // the process stays in the cgroups of the one that started it.
    for (const line of own.trim().split('\n')) expect(line).toMatch(new RegExp(`:/${PARENT}/vmlet-real1\\.scope$`));
    expect(await driver.pidsOf(path)).toEqual([sleeper.pid]);
    expect(await driver.listOrphans(new Set(['other']))).toEqual([{ vmId: 'real1', path }]);
    expect(await driver.listOrphans(new Set(['real1']))).toEqual([]);

    await expect(driver.remove(path)).rejects.toThrow(`it still has processes ${sleeper.pid}: stop them first`);
    sleeper.kill('SIGKILL');
    await exited(sleeper);
    await driver.remove(path);
    for (const h of HIERARCHIES) expect(await files.exists(at(h, path, ''))).toBe(false);
    await driver.remove(path);
    expect(await driver.oomKilled(`${PARENT}/vmlet-gone.scope`).catch((e: Error) => e.message)).toMatch(/ENOENT/);
  });

  it('a process that outgrows the memory limit is OOM-killed in its own cgroup, and oomKilled says so', async () => {
    driver ??= await openCgroupDriver({ parent: PARENT, systemd: 'never' });
    await driver.ensureParent({ cpuWeight: 100 });
    const { path } = await driver.create('oom1', { memoryBytes: 32 * MIB, pidsMax: 64, cpuWeight: 100 });
    expect(await driver.oomKilled(path)).toBe(0);
    // It waits for a line on stdin, so that it allocates only once it is in the cgroup.
    const hog = spawn(process.execPath, ['-e', 'process.stdin.once("data", () => { const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1)); })'], {
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    children.push(hog);
    await driver.addProcess(path, hog.pid!);
    hog.stdin!.write('go\n');
    expect(await exited(hog)).toBe('SIGKILL');
    expect(await driver.oomKilled(path)).toBeGreaterThanOrEqual(1);
    await driver.remove(path);
  }, 20_000);

  it('a memory limit below what the cgroup uses is refused with EBUSY, and the message says why', async () => {
    driver ??= await openCgroupDriver({ parent: PARENT, systemd: 'never' });
    await driver.ensureParent({ cpuWeight: 100 });
    const limits = { memoryBytes: 128 * MIB, pidsMax: 64, cpuWeight: 100 };
    const { path } = await driver.create('busy1', limits);
    const holder = spawn(process.execPath, ['-e', 'process.stdin.once("data", () => { globalThis.held = Buffer.alloc(48 << 20, 1); console.log("held"); setInterval(() => {}, 1000); })'], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    children.push(holder);
    await driver.addProcess(path, holder.pid!);
    holder.stdin!.write('go\n');
    await new Promise((r) => holder.stdout!.once('data', r));
    await expect(driver.create('busy1', { ...limits, memoryBytes: 16 * MIB })).rejects.toThrow(
      new RegExp(`write ${escape(at('memory', path, 'memory.limit_in_bytes'))} failed: EBUSY \\(the cgroup already uses \\d+ bytes, more than the limit ${16 * MIB}; in cgroup v1 the limit must be set before the process is added\\)`),
    );
    holder.kill('SIGKILL');
    await exited(holder);
    await driver.remove(path);
  }, 20_000);
});
