/**
 * VM cgroups as systemd transient scopes (as libvirt and Proxmox make them) when systemd is
 * PID 1: it owns the cgroup tree there, and directories made behind its back get moved or
 * removed. busctl is run through the command runner; the argv builders and parsers are pure.
 */
import type { RunOptions, RunResult } from '../host/run.js';
import { errorMessage, failedPrecondition, invalidArgument } from '../model/errors.js';
import type { CgroupDriver, OrphanCgroup, ParentOptions, VmCgroup } from './driver.js';
import type { CgroupFiles } from './files.js';
import { checkCpuWeight, checkLimits, type CgroupLimits } from './limits.js';
import { normalizeParent, scopeName, scopePath, vmIdOfScopePath } from './names.js';
import { parseProcCgroup } from './layout.js';

/** The command runner's shape (host/run.ts), injectable for tests. */
export type CommandRunner = (command: string, args: readonly string[], options?: RunOptions) => Promise<RunResult>;

const DEST = ['org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.systemd1.Manager'];

/** One D-Bus property of a transient unit: name, signature, and busctl's words for the value. */
type Property = [name: string, signature: string, ...value: string[]];

/** Whether systemd runs this host: PID 1 is systemd and /run/systemd/system exists (sd_booted()). */
export async function isSystemdBooted(files: CgroupFiles): Promise<boolean> {
  if (!(await files.exists('/run/systemd/system'))) return false;
  const comm = await files.read('/proc/1/comm').catch(() => '');
  return comm.trim() === 'systemd';
}

/** The cgroup path of a slice unit: `a-b.slice` lives at `a.slice/a-b.slice`. */
export function slicePath(slice: string): string {
  const stem = slice.slice(0, -'.slice'.length);
  const parts = stem.split('-');
  return parts.map((_, i) => `${parts.slice(0, i + 1).join('-')}.slice`).join('/');
}

/** The slice unit named by a --cgroup-parent (`machine-vmlet.slice` or its path `machine.slice/machine-vmlet.slice`). */
export function sliceOfParent(parent: string): { unit: string; path: string } {
  const normalized = normalizeParent(parent);
  const unit = normalized.split('/').pop()!;
  const ok = /^[A-Za-z0-9_:.]+(-[A-Za-z0-9_:.]+)*\.slice$/.test(unit) && unit !== '-.slice';
  if (!ok || (normalized !== unit && normalized !== slicePath(unit))) {
    throw invalidArgument('cgroup-parent', `under systemd the parent must be a slice unit such as vmlet.slice or machine-vmlet.slice (cgroup machine.slice/machine-vmlet.slice); got "${parent}"`);
  }
  return { unit, path: slicePath(unit) };
}

/** The properties of a VM's transient scope. */
export function scopeProperties(vmId: string, slice: string, pid: number, limits: CgroupLimits): Property[] {
  const q = limits.cpuQuota;
  return [
    ['Description', 's', `vmlet VM ${vmId}`],
    ['Slice', 's', slice],
    ['PIDs', 'au', '1', String(pid)],
    ['MemoryMax', 't', String(limits.memoryBytes)],
    ['MemorySwapMax', 't', '0'],
    ['TasksMax', 't', String(limits.pidsMax)],
    ['CPUWeight', 't', String(limits.cpuWeight)],
    ...(q
      ? ([
          ['CPUQuotaPerSecUSec', 't', String(Math.floor((q.quotaUs * 1_000_000) / q.periodUs))],
          ['CPUQuotaPeriodUSec', 't', String(q.periodUs)],
        ] satisfies Property[])
      : []),
    ['Delegate', 'b', 'false'],
    ['CollectMode', 's', 'inactive-or-failed'],
  ];
}

/** busctl's argv for Manager.StartTransientUnit(name, mode, properties, no auxiliary units). */
export function startTransientUnitArgs(unit: string, mode: 'fail' | 'replace', properties: Property[]): string[] {
  return ['call', ...DEST, 'StartTransientUnit', 'ssa(sv)a(sa(sv))', unit, mode, String(properties.length), ...properties.flat(), '0'];
}

/** busctl's argv for Manager.SetUnitProperties(name, runtime, properties). */
export function setUnitPropertiesArgs(unit: string, properties: Property[]): string[] {
  return ['call', ...DEST, 'SetUnitProperties', 'sba(sv)', unit, 'true', String(properties.length), ...properties.flat()];
}

/** busctl's argv for Manager.AttachProcessesToUnit(name, subcgroup '', pids). */
export function attachProcessArgs(unit: string, pid: number): string[] {
  return ['call', ...DEST, 'AttachProcessesToUnit', 'ssau', unit, '', '1', String(pid)];
}

/** busctl's argv for a Manager method that takes a unit name, and a mode where it takes one. */
export function unitMethodArgs(method: 'StopUnit' | 'ResetFailedUnit', unit: string): string[] {
  return method === 'StopUnit' ? ['call', ...DEST, method, 'ss', unit, 'replace'] : ['call', ...DEST, method, 's', unit];
}

/** The job object path busctl prints for StartTransientUnit: `o "/org/freedesktop/systemd1/job/42"`. */
export function parseJobPath(stdout: string): string {
  const m = /^o "([^"]+)"\s*$/m.exec(stdout);
  if (!m) throw new Error(`busctl printed no job path: ${JSON.stringify(stdout.slice(0, 200))}`);
  return m[1]!;
}

const unitExists = (err: unknown): boolean => /already exists|UnitExists/i.test(errorMessage(err));
const noSuchUnit = (err: unknown): boolean => /not loaded|NoSuchUnit/i.test(errorMessage(err));

/** Options of the systemd driver. */
export interface SystemdDriverOptions {
  /** How long a started scope may take to hold the process; default 5 s. */
  moveTimeoutMs?: number;
  /** busctl's deadline; default 10 s. */
  busctlTimeoutMs?: number;
}

/**
 * VM cgroups as transient scopes `vmlet-<id>.scope` in a slice. A scope cannot exist without a
 * process, so create() only records the limits and addProcess() starts the scope with the pid.
 * Reads (pids, OOM kills, orphans) go to the cgroupfs driver `reader` of the same tree.
 */
export class SystemdCgroupDriver implements CgroupDriver {
  readonly kind = 'systemd';
  readonly parent: string;
  private readonly slice: string;
  private readonly pending = new Map<string, { vmId: string; limits: CgroupLimits }>();

  constructor(
    private readonly reader: CgroupDriver,
    private readonly files: CgroupFiles,
    private readonly runner: CommandRunner,
    parent: string,
    private readonly options: SystemdDriverOptions = {},
  ) {
    const slice = sliceOfParent(parent);
    if (reader.parent !== slice.path) throw new Error(`the reader's parent ${reader.parent} is not the slice's cgroup ${slice.path}`);
    this.slice = slice.unit;
    this.parent = slice.path;
  }

  async ensureParent(options: ParentOptions): Promise<void> {
    checkCpuWeight(options.cpuWeight, 'cgroup parent cpuWeight');
    const weight: Property = ['CPUWeight', 't', String(options.cpuWeight)];
    try {
      await this.busctl(startTransientUnitArgs(this.slice, 'fail', [['Description', 's', 'vmlet guests'], weight]));
    } catch (err) {
      if (!unitExists(err)) throw err;
      await this.busctl(setUnitPropertiesArgs(this.slice, [weight]));
    }
  }

  async create(vmId: string, limits: CgroupLimits): Promise<VmCgroup> {
    checkLimits(limits);
    const path = scopePath(this.parent, vmId);
    this.pending.set(path, { vmId, limits });
    return { path };
  }

  async addProcess(path: string, pid: number): Promise<void> {
    const vmId = vmIdOfScopePath(this.parent, path);
    const unit = scopeName(vmId);
    const pending = this.pending.get(path);
    if (!pending) {
      await this.busctl(attachProcessArgs(unit, pid));
      return;
    }
    const start = (): Promise<RunResult> => this.busctl(startTransientUnitArgs(unit, 'fail', scopeProperties(vmId, this.slice, pid, pending.limits)));
    try {
      await start();
    } catch (err) {
      // A scope left by an earlier start that failed: clear it when empty and start again once.
      if (!unitExists(err) || (await this.reader.pidsOf(path)).length > 0) throw err;
      await this.busctl(unitMethodArgs('ResetFailedUnit', unit)).catch(() => undefined);
      await this.busctl(unitMethodArgs('StopUnit', unit)).catch(() => undefined);
      await start();
    }
    this.pending.delete(path);
    await this.waitForMove(pid, unit);
  }

  /** Before the scope exists (QEMU not moved in yet) the weight goes into the scope's properties. */
  async setCpuWeight(path: string, weight: number): Promise<void> {
    checkCpuWeight(weight, 'cgroup cpuWeight');
    const pending = this.pending.get(path);
    if (pending) {
      pending.limits = { ...pending.limits, cpuWeight: weight };
      return;
    }
    await this.busctl(setUnitPropertiesArgs(scopeName(vmIdOfScopePath(this.parent, path)), [['CPUWeight', 't', String(weight)]]));
  }

  oomKilled(path: string): Promise<number> {
    return this.reader.oomKilled(path);
  }

  async remove(path: string): Promise<void> {
    const unit = scopeName(vmIdOfScopePath(this.parent, path));
    this.pending.delete(path);
    const pids = await this.reader.pidsOf(path);
    if (pids.length > 0) throw failedPrecondition(`scope ${unit} cannot be removed: it still has processes ${pids.join(', ')}: stop them first`);
    // An empty scope stops by itself and CollectMode unloads it; this only hurries a straggler.
    await this.busctl(unitMethodArgs('StopUnit', unit)).catch((err: unknown) => {
      if (!noSuchUnit(err)) throw err;
    });
  }

  listOrphans(keep: ReadonlySet<string>): Promise<OrphanCgroup[]> {
    return this.reader.listOrphans(keep);
  }

  pidsOf(path: string): Promise<number[]> {
    return this.reader.pidsOf(path);
  }

  private busctl(args: string[]): Promise<RunResult> {
    return this.runner('busctl', args, { timeoutMs: this.options.busctlTimeoutMs ?? 10_000 });
  }

  /** The job that starts a scope runs after the call returns: wait until the kernel shows the pid in it. */
  private async waitForMove(pid: number, unit: string): Promise<void> {
    const deadline = Date.now() + (this.options.moveTimeoutMs ?? 5000);
    for (;;) {
      const text = await this.files.read(`/proc/${pid}/cgroup`);
      if (Object.values(parseProcCgroup(text)).some((p) => p.endsWith(`/${unit}`))) return;
      if (Date.now() > deadline) throw failedPrecondition(`systemd did not move process ${pid} into ${unit} within ${this.options.moveTimeoutMs ?? 5000} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
