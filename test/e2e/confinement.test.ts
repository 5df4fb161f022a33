import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDaemon } from '../support/daemon.js';
import { guestSpec } from '../support/guest.js';
import { rpc, watchVms } from '../support/rpc.js';
import { cgroupMounts } from '../support/cgroups.js';

const run = promisify(execFile);

/** The lines of /proc/<pid>/status vmlet promises about a confined QEMU. */
async function procStatus(pid: number): Promise<Record<string, string>> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  return Object.fromEntries(text.split('\n').map((l) => l.split(':\t')).filter((p) => p.length === 2).map(([k, v]) => [k!, v!.trim()]));
}

/** Runs `args` as `uid` (no capabilities); resolves with its exit code and output. */
async function asUser(uid: number, args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--inh-caps=-all', '--', ...args]);
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr };
  }
}

/** The directory of a VM's cgroup in the memory hierarchy (v1) or the unified one (v2). */
async function memoryCgroupDir(cgroup: string): Promise<string> {
  const mounts = await cgroupMounts();
  const memory = mounts.find((m) => /\/memory$/.test(m) || /[,/]memory(,|$)/.test(m)) ?? mounts.find((m) => m.endsWith('/unified') || m === '/sys/fs/cgroup');
  return join(memory!, cgroup);
}

describe('confinement: each QEMU in its own cell', () => {
  let d: TestDaemon;
  let api: ReturnType<typeof rpc>;

  beforeAll(async () => {
    d = await TestDaemon.start();
    api = rpc(d.clients);
  });
  afterAll(() => d?.cleanup());

  it('runs QEMU as its own uid with no capabilities, no_new_privs and seccomp, in its own cgroup with limits', async () => {
    const a = await api.create(guestSpec('cell-a'), true);
    const b = await api.create(guestSpec('cell-b', { cpuLimitMillicores: 500 }), true);
    for (const vm of [a, b]) {
      const { pid, uid, cgroup } = vm.status!;
      const s = await procStatus(pid);
      expect(uid).toBeGreaterThanOrEqual(1000);
      expect(s.Uid).toBe(`${uid}\t${uid}\t${uid}\t${uid}`);
      expect(s.Gid).toBe(`${uid}\t${uid}\t${uid}\t${uid}`);
      for (const caps of ['CapEff', 'CapPrm', 'CapBnd', 'CapInh', 'CapAmb']) expect(s[caps]).toBe('0000000000000000');
      expect(s.NoNewPrivs).toBe('1');
      expect(s.Seccomp).toBe('2');
      expect(cgroup).toBe(`${d.cgroupParent}/vmlet-${vm.spec!.id}.scope`);
      const procCgroups = await readFile(`/proc/${pid}/cgroup`, 'utf8');
      expect(procCgroups).toContain(`/${cgroup}\n`);
      const dir = await memoryCgroupDir(cgroup);
      const limit = Number((await readFile(join(dir, 'memory.limit_in_bytes'), 'utf8').catch(() => readFile(join(dir, 'memory.max'), 'utf8'))).trim());
      expect(limit).toBeGreaterThan(128 * 1024 * 1024);
      expect(limit).toBeLessThan(1024 * 1024 * 1024);
    }
    expect(a.status!.uid).not.toBe(b.status!.uid);
    // Half a CPU: 50 ms per 100 ms period, in v1's cpu hierarchy or v2's cpu.max.
    const quotas = await Promise.all(
      (await cgroupMounts()).map(async (m) => {
        const v1 = await readFile(join(m, b.status!.cgroup, 'cpu.cfs_quota_us'), 'utf8').catch(() => undefined);
        return v1 ?? (await readFile(join(m, b.status!.cgroup, 'cpu.max'), 'utf8').catch(() => undefined));
      }),
    );
    expect(quotas.filter((q) => q !== undefined).map((q) => q!.trim().split(' ')[0])).toEqual(['50000']);
    // Running, each cell has its one vCPU's weight again, not the start-up weight of its QEMU's initialisation.
    const weights = await Promise.all(
      (await cgroupMounts()).flatMap((m) =>
        ['cpu.shares', 'cpu.weight'].map(async (file) => ({ file, value: (await readFile(join(m, a.status!.cgroup, file), 'utf8').catch(() => undefined))?.trim() })),
      ),
    );
    const found = weights.filter((w) => w.value !== undefined);
    expect(found.length).toBeGreaterThan(0);
    for (const w of found) expect(w.value).toBe(w.file === 'cpu.shares' ? '1024' : '100');
  });

  it("one VM's user can read neither another VM's overlay nor its QMP socket", async () => {
    await writeFile(join(d.root, 'images', 'base.raw'), Buffer.alloc(1024 * 1024));
    const disks = [{ name: 'data', imagePath: join(d.root, 'images', 'base.raw'), overlay: true, readonly: false }];
    const x = await api.create(guestSpec('iso-x', { disks }), true);
    const y = await api.create(guestSpec('iso-y', { disks }), true);
    const overlayOfY = y.status!.disks[0]!.path;
    const qmpOfY = join(d.runDir, 'vms', 'iso-y', 'qmp.sock');
    const connect = `require('net').connect(process.argv[1]).on('connect', () => process.exit(0)).on('error', (e) => { console.log(e.code); process.exit(3); })`;

    // The owner itself may (the test's probe works), the other VM's user may not.
    expect((await asUser(y.status!.uid, ['head', '-c', '1', overlayOfY])).code).toBe(0);
    const read = await asUser(x.status!.uid, ['head', '-c', '1', overlayOfY]);
    expect(read.code).not.toBe(0);
    expect(read.out).toMatch(/Permission denied/);
    expect((await asUser(y.status!.uid, [process.execPath, '-e', connect, qmpOfY])).code).toBe(0);
    const dial = await asUser(x.status!.uid, [process.execPath, '-e', connect, qmpOfY]);
    expect(dial.code).toBe(3);
    expect(dial.out).toMatch(/EACCES/);
  });

  it('stop and delete remove the cell; the uid is freed on delete', async () => {
    const vm = await api.get('cell-a');
    const dir = await memoryCgroupDir(vm.status!.cgroup);
    await readFile(join(dir, 'cgroup.procs'), 'utf8');
    const stopped = await api.stop('cell-a', 0, true);
    expect(stopped.status!.cgroup).toBe('');
    await expect(readFile(join(dir, 'cgroup.procs'), 'utf8')).rejects.toThrow(/ENOENT/);
    const uid = stopped.status!.uid;
    await api.delete('cell-a');
    const again = await api.create(guestSpec('cell-a2'));
    expect(again.status!.uid).toBe(uid);
  });
});

describe('confinement: a guest over its memory limit', () => {
  let d: TestDaemon;

  beforeAll(async () => {
    // A fixed overhead small enough that a guest filling its RAM takes QEMU past the limit.
    d = await TestDaemon.start({ extraArgs: ['--memory-overhead-mib', '48'] });
  });
  afterAll(() => d?.cleanup());

  it('is OOM-killed in its own cgroup and reported Failed; the agent and the other guests live', async () => {
    const api = rpc(d.clients);
    // Its cgroup has room: an idle guest touches far less than its 512 MiB.
    const calm = await api.create(guestSpec('calm', { memoryMib: 512 }), true);
    const fill = 'mount -o remount,size=100% /dev/shm; dd if=/dev/zero of=/dev/shm/f bs=1M count=240; echo FILLED';
    const watch = watchVms(d.clients, { id: 'hog' });
    try {
      await api.create(guestSpec('hog', { memoryMib: 256, kernel: { ...guestSpec('hog').kernel!, cmdline: `console=ttyS0 panic=-1 vmlet.run="${fill}"` } }), true);
      const failed = await watch.until((e) => e.vm?.status?.phase === 'PHASE_FAILED', 180_000);
      expect(failed.vm!.status!.reason).toMatch(/OOM-killed in its cgroup/);
      expect(failed.vm!.status!.cgroup).toBe('');
    } finally {
      watch.close();
    }
    const other = await api.get('calm');
    expect(other.status?.phase).toBe('PHASE_RUNNING');
    expect(other.status?.pid).toBe(calm.status!.pid);
    expect((await api.node()).hostname).toBeTruthy();
  });
});
