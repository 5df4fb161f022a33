/**
 * Per-VM series with KubeVirt's names: virt-handler's domainstats for VMs with a QEMU, and what
 * virt-controller says of VMs and VMIs (`kubevirt_vm_*`, `kubevirt_vmi_info`) for every VM.
 *
 * One scrape: a list of targets (what the VM manager knows, no I/O), then each VM read with
 * bounded concurrency and a per-VM deadline: its disks' sizes (cached while the files do not
 * change) and, with a QEMU, what the last QMP poll of it read (QmpPoll: `query-blockstats` and
 * the balloon's `guest-stats` every 10 s; only a QEMU's first scrape waits for a read), /proc
 * (stat, status, the vCPU threads' schedstat and sched, and net/dev for the TAP counters) and
 * what the guest agent last told (no I/O). A VM whose figures cannot be read in time loses its
 * QEMU and /proc series for this scrape and counts one scrape error; the scrape itself goes on.
 * Only queries are sent: a scrape never changes a VM.
 */
import type { Family, Labels, Sample } from './exposition.js';
import { renderFamilies } from './exposition.js';
import { DEFAULT_METRICS_NAMESPACE, vmLabelSet, vmNamespace } from './labels.js';
import { CLOCK_TICKS_PER_SECOND, readProcStat, readResidentBytes, readThreadCpu, readThreadWaitSeconds } from './procfs.js';
import { guestCountersByTap, type GuestNicCounters, type Traffic } from './netdev.js';
import { QmpPoll } from './qmp-poll.js';
import { vmiAddresses, type AgentInterface } from './vmi-addresses.js';
import { driveCounters, type DriveCounters } from './blockstats.js';
import { mapBounded, withDeadline } from './bounded.js';
import { guestMemory, type GuestMemory } from './guest-memory.js';
import { DiskSizes, type DiskSize } from './disk-size.js';
import { KUBEVIRT_SERIES, type SeriesKey } from './kubevirt-series.js';
import { vmiPhase } from './kubevirt-status.js';
import { MACHINE_TYPE, NONE, systemInfo, vmFamilySamples } from './vm-family.js';
import type { Phase } from '../model/vm.js';
import type { GuestFigures } from '../model/guest-figures.js';
import { BALLOON_QOM_PATH, BALLOON_STATS_INTERVAL_SECONDS } from '../model/qemu-ids.js';
import { readFile } from 'node:fs/promises';

/** The part of a QMP client a scrape uses (QmpClient satisfies it). */
export interface QmpQuerier {
  execute<T = unknown>(command: string, args?: Record<string, unknown>, options?: { timeoutMs?: number }): Promise<T>;
}

/** A VM as a scrape sees it; built from the manager without I/O. */
export interface ScrapeTarget {
  id: string;
  labels: Readonly<Record<string, string>>;
  phase: Phase;
  vcpus: number;
  memoryBytes: number;
  /** The VM's hard CPU cap in cores, when it has one. */
  cpuLimitCores?: number;
  /** ISO times from the status. */
  createdAt: string;
  lastTransitionAt: string;
  /** Present while the VM has a QEMU process with a QMP connection. */
  qemu?: { pid: number; qmp: QmpQuerier };
  nics: readonly { name: string; tap: string; mac: string }[];
  /** Disk names of the spec. */
  disks: readonly string[];
  /** The files QEMU opens for them (the status's disks). */
  diskFiles: readonly { name: string; path: string; format: 'raw' | 'qcow2' }[];
  /** What the guest agent reports, while one is connected. */
  guestOs?: { name: string; versionId: string; kernelRelease: string };
  /** The guest's interfaces as the agent reports them (no loopback), while one is connected. */
  guestInterfaces?: readonly AgentInterface[];
  /** The guest agent's last figures (file systems, load, architecture), while one is connected. */
  guest?: GuestFigures;
}

/**
 * Migration figures of a VM, for `kubevirt_vmi_migration_*`. Whatever knows about migrations
 * implements MigrationFiguresSource and is handed to the collector (AgentMetrics.setMigrationSource;
 * the daemon plugs in the migration registry through migration-figures.ts). Without a source, or
 * for a VM it knows nothing about, these series are not emitted.
 */
export interface MigrationFigures {
  /** The migration's uid: KubeVirt's `vmim` and `migration_name`. */
  uid: string;
  dataTotalBytes: number;
  dataProcessedBytes: number;
  dataRemainingBytes: number;
  /** Outcome of the VM's last finished migration; both false while one runs. */
  succeeded: boolean;
  failed: boolean;
  startedAtSeconds: number;
  /** Set once it ended (succeeded, failed or cancelled). */
  endedAtSeconds?: number;
}

export interface MigrationFiguresSource {
  /** The current or last migration of a VM; undefined if it never migrated. Must not do I/O. */
  migrationFigures(id: string): MigrationFigures | undefined;
}

export interface VcpuFigures {
  id: number;
  runSeconds: number;
  delaySeconds?: number;
  waitSeconds?: number;
}

/** What one VM's read gives. */
export interface VmFigures {
  cpuUserSeconds: number;
  cpuSystemSeconds: number;
  vcpus: VcpuFigures[];
  residentBytes: number;
  balloonActualBytes?: number;
  guestMemory?: GuestMemory;
  drives: Map<string, DriveCounters>;
}

export interface VmiCollectorOptions {
  node: string;
  /** `namespace` of VMs without a `vmlet.io/namespace` label; default DEFAULT_METRICS_NAMESPACE. */
  namespace?: string;
  targets: () => ScrapeTarget[];
  /** The network device table of a QEMU's network namespace; default /proc/<pid>/net/dev. */
  readNetDev?: (pid: number) => Promise<string>;
  /** Told about each VM (its id) whose figures could not be read: vmlet_scrape_errors_total. */
  onError: (err: unknown, vm: string) => void;
  migrations?: MigrationFiguresSource;
  /** VMs read at once; default DEFAULT_SCRAPE_CONCURRENCY. */
  concurrency?: number;
  /** Everything of one VM must be read within this. Default 2000 ms. */
  vmDeadlineMs?: number;
  /** Each QMP query. Default 1000 ms. */
  qmpTimeoutMs?: number;
  /** How often each QEMU's monitor is polled for the figures a scrape shows; default QEMU's guest-stats polling interval. */
  qmpPollMs?: number;
  /** The memory a VM's cell allows beyond its guest's; absent without cells (no overhead series). */
  memoryOverheadBytes?: (spec: { memoryMib: number; vcpus: number }) => number;
}

/** VMs a scrape reads at once: it then takes about as long as its slowest VM, not rounds of them. */
export const DEFAULT_SCRAPE_CONCURRENCY = 64;

/** A QEMU no scrape asked for in this long is polled no more (until the next scrape). */
const QMP_POLL_IDLE_MS = 5 * 60_000;

const MIB = 1024 * 1024;


/** A vCPU and the host thread that runs it. */
type VcpuThread = { 'cpu-index': number; 'thread-id': number };

/** A QMP error answer (as opposed to a timeout or a closed connection): the VM simply lacks the thing. */
const isQmpAnswer = (err: unknown): boolean => typeof (err as { qmpClass?: unknown }).qmpClass === 'string';

/** What a poll reads from a QEMU's monitor (QmpPoll). */
interface QmpFigures {
  cpus: VcpuThread[];
  blockstats: unknown;
  guestStats: unknown;
}

/**
 * The poll of one QEMU: `query-blockstats` and the balloon's `guest-stats`, and on its first read
 * `query-cpus-fast` (a QEMU's vCPU threads never change: vmlet hot-plugs no vCPU).
 */
function qmpReader(qmp: QmpQuerier, qmpTimeoutMs: number): () => Promise<QmpFigures> {
  const opts = { timeoutMs: qmpTimeoutMs };
  let cpus: VcpuThread[] | undefined;
  return async () => {
    const [c, blockstats, guestStats] = await Promise.all([
      cpus ?? qmp.execute<VcpuThread[]>('query-cpus-fast', undefined, opts),
      qmp.execute<unknown>('query-blockstats', undefined, opts),
      // A VM without the balloon device (started by an older vmlet) has no guest-stats: no memory series.
      qmp.execute<unknown>('qom-get', { path: BALLOON_QOM_PATH, property: 'guest-stats' }, opts).catch((err: unknown) => {
        if (isQmpAnswer(err)) return undefined;
        throw err;
      }),
    ]);
    cpus = c;
    return { cpus: c, blockstats, guestStats };
  };
}

/** One VM's figures: its QEMU's from the poll, /proc's read now. Throws on anything missing. */
async function readVmFigures(target: ScrapeTarget, poll: QmpPoll<QmpFigures>, qmpTimeoutMs: number): Promise<VmFigures> {
  const qemu = target.qemu;
  if (!qemu) throw new Error(`VM ${target.id} has no QEMU`);
  const { pid, qmp } = qemu;
  const [{ cpus, blockstats, guestStats }, stat, residentBytes] = await Promise.all([
    poll.get(`${target.id}/${pid}`, qmpReader(qmp, qmpTimeoutMs)),
    readProcStat(pid),
    readResidentBytes(pid),
  ]);
  const vcpus = await Promise.all(
    cpus.map(async (c): Promise<VcpuFigures> => {
      const [t, waitSeconds] = await Promise.all([readThreadCpu(pid, c['thread-id']), readThreadWaitSeconds(pid, c['thread-id']).catch(() => undefined)]);
      return {
        id: c['cpu-index'],
        runSeconds: t.runNs / 1e9,
        ...(t.waitNs === undefined ? {} : { delaySeconds: t.waitNs / 1e9 }),
        ...(waitSeconds === undefined ? {} : { waitSeconds }),
      };
    }),
  );
  const memory = guestMemory(guestStats);
  return {
    cpuUserSeconds: stat.utimeTicks / CLOCK_TICKS_PER_SECOND,
    cpuSystemSeconds: stat.stimeTicks / CLOCK_TICKS_PER_SECOND,
    vcpus: vcpus.sort((a, b) => a.id - b.id),
    residentBytes,
    // vmlet never inflates the balloon, so its size is the guest's memory: no query-balloon
    // round trip, which a busy QEMU answers only between its vCPU's time slices.
    ...(guestStats === undefined ? {} : { balloonActualBytes: target.memoryBytes }),
    ...(memory === undefined ? {} : { guestMemory: memory }),
    drives: driveCounters(blockstats, target.disks),
  };
}

interface VmResult {
  target: ScrapeTarget;
  namespace: string;
  base: Labels;
  figures?: VmFigures;
  nics: { name: string; counters: GuestNicCounters }[];
  diskSizes: Map<string, DiskSize>;
}

/** Output order: KubeVirt's table, minus what prom-client renders (the histograms, the panic counter). */
const FAMILY_KEYS = (Object.keys(KUBEVIRT_SERIES) as SeriesKey[]).filter((k) => KUBEVIRT_SERIES[k].type !== 'histogram' && k !== 'guestPanics');

const TRAFFIC: [keyof Traffic, SeriesKey, SeriesKey][] = [
  ['bytes', 'rxBytes', 'txBytes'],
  ['packets', 'rxPackets', 'txPackets'],
  ['errors', 'rxErrors', 'txErrors'],
  ['dropped', 'rxDropped', 'txDropped'],
];

const DRIVE: [keyof DriveCounters, SeriesKey][] = [
  ['readOps', 'iopsRead'],
  ['writeOps', 'iopsWrite'],
  ['readBytes', 'readBytes'],
  ['writeBytes', 'writeBytes'],
  ['readSeconds', 'readTimes'],
  ['writeSeconds', 'writeTimes'],
  ['flushOps', 'flushRequests'],
  ['flushSeconds', 'flushTimes'],
];

const GUEST_MEMORY: [keyof GuestMemory, SeriesKey][] = [
  ['availableBytes', 'memAvailable'],
  ['usableBytes', 'memUsable'],
  ['unusedBytes', 'memUnused'],
  ['cachedBytes', 'memCached'],
  ['swapInBytes', 'memSwapIn'],
  ['swapOutBytes', 'memSwapOut'],
  ['majorFaults', 'memMajorFaults'],
  ['minorFaults', 'memMinorFaults'],
];

export class VmiCollector {
  private readonly concurrency: number;
  private readonly vmDeadlineMs: number;
  private readonly qmpTimeoutMs: number;
  private readonly namespace: string;
  private inFlight: Promise<Family[]> | undefined;
  private readonly diskSizes = new DiskSizes();
  private readonly qmpPoll: QmpPoll<QmpFigures>;
  private readonly readNetDev: (pid: number) => Promise<string>;
  migrations: MigrationFiguresSource | undefined;

  constructor(private readonly options: VmiCollectorOptions) {
    this.concurrency = options.concurrency ?? DEFAULT_SCRAPE_CONCURRENCY;
    this.vmDeadlineMs = options.vmDeadlineMs ?? 2000;
    this.qmpTimeoutMs = options.qmpTimeoutMs ?? 1000;
    this.namespace = options.namespace ?? DEFAULT_METRICS_NAMESPACE;
    const pollMs = options.qmpPollMs ?? BALLOON_STATS_INTERVAL_SECONDS * 1000;
    this.qmpPoll = new QmpPoll(pollMs, Math.max(QMP_POLL_IDLE_MS, 2 * pollMs));
    this.readNetDev = options.readNetDev ?? ((pid) => readFile(`/proc/${pid}/net/dev`, 'utf8'));
    this.migrations = options.migrations;
  }

  /** The `namespace` label of a VM with these labels. */
  namespaceOf(labels: Readonly<Record<string, string>>): string {
    return vmNamespace(labels, this.namespace);
  }

  /** Reads every VM; scrapes that arrive while one runs share its result. */
  collect(): Promise<Family[]> {
    this.inFlight ??= this.read().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  async render(): Promise<string> {
    return renderFamilies(await this.collect());
  }

  /** Ends the QMP polls; the daemon need not (their timers do not keep the process up). */
  stop(): void {
    this.qmpPoll.stop();
  }

  private async read(): Promise<Family[]> {
    const targets = this.options.targets().sort((a, b) => a.id.localeCompare(b.id));
    const running = new Set(targets.flatMap((t) => (t.qemu ? [`${t.id}/${t.qemu.pid}`] : [])));
    this.qmpPoll.keepOnly(running);
    this.diskSizes.keepOnly(new Set(targets.flatMap((t) => t.diskFiles.map((d) => d.path))));
    const results = await mapBounded(targets, this.concurrency, async (target): Promise<VmResult> => {
      const namespace = this.namespaceOf(target.labels);
      const result: VmResult = { target, namespace, base: vmLabelSet(target.id, this.options.node, target.labels, namespace), nics: [], diskSizes: new Map() };
      const qemu = target.qemu;
      await Promise.all([
        withDeadline(this.readDiskSizes(target, result.diskSizes), this.vmDeadlineMs, `reading the disk sizes of VM ${target.id}`).catch((err: unknown) => this.options.onError(err, target.id)),
        qemu && target.nics.length > 0 ? this.readNics(target, qemu.pid, result) : undefined,
        qemu ? this.readFigures(target, result) : undefined,
      ]);
      return result;
    });
    return this.families(results);
  }

  /** The TAP counters come from the kernel, not from QEMU: a QEMU that does not answer keeps them. */
  private async readNics(target: ScrapeTarget, pid: number, into: VmResult): Promise<void> {
    try {
      const byTap = guestCountersByTap(await withDeadline(this.readNetDev(pid), this.vmDeadlineMs, `reading the TAP counters of VM ${target.id}`));
      for (const nic of target.nics) {
        const counters = byTap.get(nic.tap);
        if (counters) into.nics.push({ name: nic.name, counters });
      }
    } catch (err) {
      this.options.onError(err, target.id);
    }
  }

  private async readFigures(target: ScrapeTarget, into: VmResult): Promise<void> {
    try {
      into.figures = await withDeadline(readVmFigures(target, this.qmpPoll, this.qmpTimeoutMs), this.vmDeadlineMs, `reading VM ${target.id}`);
    } catch (err) {
      this.options.onError(err, target.id);
    }
  }

  private async readDiskSizes(target: ScrapeTarget, into: Map<string, DiskSize>): Promise<void> {
    await Promise.all(
      target.diskFiles.map(async (d) => {
        into.set(d.name, await this.diskSizes.read(d.path, d.format));
      }),
    );
  }

  private families(results: VmResult[]): Family[] {
    const samples = Object.fromEntries(FAMILY_KEYS.map((k) => [k, [] as Sample[]])) as Record<SeriesKey, Sample[]>;
    const add = (key: SeriesKey, labels: Labels, value: number): void => {
      samples[key].push({ labels, value });
    };
    for (const { target, namespace, base, figures, nics, diskSizes } of results) {
      for (const s of vmFamilySamples({ ...target, namespace, diskSizes })) add(s.key, s.labels, s.value);
      const phase = vmiPhase(target.phase);
      if (phase !== undefined) {
        add(
          'vmiInfo',
          {
            ...base,
            phase,
            ...systemInfo(target.labels),
            instance_type: NONE,
            preference: NONE,
            // From the guest agent, as virt-handler fills them; empty without one. KubeVirt's
            // guest_os_machine is the VMI's machine type, guest_os_arch the guest's `uname -m`.
            guest_os_kernel_release: target.guestOs?.kernelRelease || NONE,
            guest_os_machine: MACHINE_TYPE,
            guest_os_arch: target.guest?.arch || NONE,
            guest_os_name: target.guestOs?.name || NONE,
            guest_os_version_id: target.guestOs?.versionId || NONE,
            // No eviction strategy: KubeVirt calls such a VMI evictable.
            evictable: 'true',
            outdated: 'false',
            vmi_pod: NONE,
          },
          1,
        );
        add('nonEvictable', base, 0);
        const overhead = this.options.memoryOverheadBytes?.({ memoryMib: target.memoryBytes / MIB, vcpus: target.vcpus });
        if (overhead !== undefined) add('launcherOverhead', { namespace, name: target.id }, overhead);
      }
      const migration = this.migrations?.migrationFigures(target.id);
      if (migration) this.addMigration(add, base, namespace, target.id, migration);
      if (!target.qemu) continue;
      for (const a of vmiAddresses(target.nics, target.guestInterfaces ?? [])) add('statusAddresses', { ...base, ...a }, 1);
      add('memDomain', base, target.memoryBytes);
      if (target.guest) this.addGuestAgent(add, base, target.guest);
      for (const { name, counters } of nics) {
        const labels = { ...base, interface: name };
        for (const [field, rx, tx] of TRAFFIC) {
          add(rx, labels, counters.receive[field]);
          add(tx, labels, counters.transmit[field]);
        }
      }
      if (!figures) continue;
      add('cpuUsage', base, figures.cpuUserSeconds + figures.cpuSystemSeconds);
      add('cpuUser', base, figures.cpuUserSeconds);
      add('cpuSystem', base, figures.cpuSystemSeconds);
      for (const v of figures.vcpus) {
        add('vcpuSeconds', { ...base, id: String(v.id), state: 'running' }, v.runSeconds);
        if (v.waitSeconds !== undefined) add('vcpuWait', { ...base, id: String(v.id) }, v.waitSeconds);
        if (v.delaySeconds !== undefined) add('vcpuDelay', { ...base, id: String(v.id) }, v.delaySeconds);
      }
      add('memResident', base, figures.residentBytes);
      if (figures.balloonActualBytes !== undefined) add('memBalloon', base, figures.balloonActualBytes);
      for (const [field, key] of GUEST_MEMORY) {
        const v = figures.guestMemory?.[field];
        if (v !== undefined) add(key, base, v);
      }
      for (const [drive, counters] of figures.drives) {
        for (const [field, key] of DRIVE) add(key, { ...base, drive }, counters[field]);
      }
    }
    return FAMILY_KEYS.map((k) => ({ name: KUBEVIRT_SERIES[k].name, help: KUBEVIRT_SERIES[k].help, type: (KUBEVIRT_SERIES[k].exposedType ?? KUBEVIRT_SERIES[k].type) as Family['type'], samples: samples[k] }));
  }

  /** virt-handler's series from the guest agent: no I/O, what the agent told in its last round. */
  private addGuestAgent(add: (key: SeriesKey, labels: Labels, value: number) => void, base: Labels, guest: GuestFigures): void {
    for (const fs of guest.filesystems) {
      const labels = { ...base, disk_name: fs.device, mount_point: fs.mountPoint, file_system_type: fs.type };
      add('fsCapacity', labels, fs.totalBytes);
      add('fsUsed', labels, fs.usedBytes);
    }
    if (guest.load) {
      add('guestLoad1m', base, guest.load.load1m);
      add('guestLoad5m', base, guest.load.load5m);
      add('guestLoad15m', base, guest.load.load15m);
    }
  }

  /** virt-handler's figures of the stream, and virt-controller's outcome and times with its labels. */
  private addMigration(add: (key: SeriesKey, labels: Labels, value: number) => void, base: Labels, namespace: string, id: string, m: MigrationFigures): void {
    add('migDataTotal', base, m.dataTotalBytes);
    add('migProcessed', base, m.dataProcessedBytes);
    add('migRemaining', base, m.dataRemainingBytes);
    // KubeVirt has these for a finished migration only, always 1.
    if (m.succeeded) add('migrationSucceeded', { vmi: id, vmim: m.uid, namespace }, 1);
    if (m.failed) add('migrationFailed', { vmi: id, vmim: m.uid, namespace }, 1);
    add('migrationStart', { ...base, migration_name: m.uid }, m.startedAtSeconds);
    if (m.endedAtSeconds !== undefined) add('migrationEnd', { ...base, migration_name: m.uid, status: m.succeeded ? 'succeeded' : 'failed' }, m.endedAtSeconds);
  }
}
