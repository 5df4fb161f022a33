/**
 * Per-VM series with KubeVirt's names (virt-handler's domainstats), read on demand at scrape time.
 *
 * One scrape: a list of targets (what the VM manager knows, no I/O), one `ip -json -s link show`
 * for every TAP, then each VM with a QEMU read with bounded concurrency and a per-VM deadline:
 * three QMP queries (`query-cpus-fast`, `query-blockstats`, `query-balloon`, each with a short
 * timeout) and /proc (stat, status, the vCPU threads' schedstat). A VM whose figures cannot be
 * read in time loses its QEMU and /proc series for this scrape and counts one scrape error; the
 * scrape itself goes on. Only query commands are sent: a scrape never changes a VM.
 */
import type { Family, Labels, Sample } from './exposition.js';
import { renderFamilies } from './exposition.js';
import { vmLabelSet } from './labels.js';
import { CLOCK_TICKS_PER_SECOND, readProcStat, readResidentBytes, readThreadCpu } from './procfs.js';
import { guestCountersByTap, type GuestNicCounters, type IpLinkStats, type Traffic } from './netdev.js';
import { driveCounters, type DriveCounters } from './blockstats.js';
import { mapBounded, withDeadline } from './bounded.js';

/** The part of a QMP client a scrape uses (QmpClient satisfies it). */
export interface QmpQuerier {
  execute<T = unknown>(command: string, args?: Record<string, unknown>, options?: { timeoutMs?: number }): Promise<T>;
}

/** A VM as a scrape sees it; built from the manager without I/O. */
export interface ScrapeTarget {
  id: string;
  labels: Readonly<Record<string, string>>;
  /** vmlet's phase (`Running`); lower-cased in `kubevirt_vmi_info`. */
  phase: string;
  memoryBytes: number;
  /** Present while the VM has a QEMU process with a QMP connection. */
  qemu?: { pid: number; qmp: QmpQuerier };
  nics: readonly { name: string; tap: string }[];
  disks: readonly string[];
}

/**
 * Migration figures of a VM, for `kubevirt_vmi_migration_*`. Whatever knows about migrations
 * implements MigrationFiguresSource and is handed to the collector (AgentMetrics.setMigrationSource;
 * the daemon plugs in the migration registry through migration-figures.ts). Without a source, or
 * for a VM it knows nothing about, these series are not emitted.
 */
export interface MigrationFigures {
  dataProcessedBytes: number;
  dataRemainingBytes: number;
  /** Outcome of the VM's last finished migration; both false while one runs. */
  succeeded: boolean;
  failed: boolean;
}

export interface MigrationFiguresSource {
  /** The current or last migration of a VM; undefined if it never migrated. Must not do I/O. */
  migrationFigures(id: string): MigrationFigures | undefined;
}

export interface VcpuFigures {
  id: number;
  runSeconds: number;
  delaySeconds?: number;
}

/** What one VM's read gives. */
export interface VmFigures {
  cpuUserSeconds: number;
  cpuSystemSeconds: number;
  vcpus: VcpuFigures[];
  residentBytes: number;
  balloonActualBytes?: number;
  drives: Map<string, DriveCounters>;
}

export interface VmiCollectorOptions {
  node: string;
  targets: () => ScrapeTarget[];
  /** `ip -json -s link show` (IpTool.json, so it runs in the daemon's --netns). */
  readLinks: () => Promise<IpLinkStats[]>;
  /** Told about each VM (its id) or TAP listing (no id) that could not be read: vmlet_scrape_errors_total. */
  onError: (err: unknown, vm?: string) => void;
  migrations?: MigrationFiguresSource;
  /** VMs read at once; default DEFAULT_SCRAPE_CONCURRENCY. */
  concurrency?: number;
  /** Everything of one VM must be read within this. Default 2000 ms. */
  vmDeadlineMs?: number;
  /** Each QMP query. Default 1000 ms. */
  qmpTimeoutMs?: number;
}

/** VMs a scrape reads at once: it then takes about as long as its slowest VM, not rounds of them. */
export const DEFAULT_SCRAPE_CONCURRENCY = 64;

/** QMP error class of `query-balloon` when the VM has no balloon device. */
const NO_BALLOON = 'DeviceNotActive';

/** A vCPU and the host thread that runs it. */
type VcpuThread = { 'cpu-index': number; 'thread-id': number };

/**
 * Reads one VM's QEMU and /proc figures. Throws on anything missing. A QEMU answers its monitor
 * one command at a time, beside its vCPUs, so `knownVcpus` (a QEMU's vCPU threads never change:
 * vmlet hot-plugs no vCPU) spares a round trip on every scrape after its first.
 */
async function readVmFigures(target: ScrapeTarget, qmpTimeoutMs: number, knownVcpus?: VcpuThread[]): Promise<VmFigures & { vcpuThreads: VcpuThread[] }> {
  const qemu = target.qemu;
  if (!qemu) throw new Error(`VM ${target.id} has no QEMU`);
  const { pid, qmp } = qemu;
  const opts = { timeoutMs: qmpTimeoutMs };
  const [cpus, blockstats, balloon, stat, residentBytes] = await Promise.all([
    knownVcpus ?? qmp.execute<VcpuThread[]>('query-cpus-fast', undefined, opts),
    qmp.execute<unknown>('query-blockstats', undefined, opts),
    qmp.execute<{ actual: number }>('query-balloon', undefined, opts).catch((err: unknown) => {
      if ((err as { qmpClass?: string }).qmpClass === NO_BALLOON) return undefined;
      throw err;
    }),
    readProcStat(pid),
    readResidentBytes(pid),
  ]);
  const vcpus = await Promise.all(
    cpus.map(async (c): Promise<VcpuFigures> => {
      const t = await readThreadCpu(pid, c['thread-id']);
      return { id: c['cpu-index'], runSeconds: t.runNs / 1e9, ...(t.waitNs === undefined ? {} : { delaySeconds: t.waitNs / 1e9 }) };
    }),
  );
  return {
    cpuUserSeconds: stat.utimeTicks / CLOCK_TICKS_PER_SECOND,
    cpuSystemSeconds: stat.stimeTicks / CLOCK_TICKS_PER_SECOND,
    vcpus: vcpus.sort((a, b) => a.id - b.id),
    residentBytes,
    ...(balloon === undefined ? {} : { balloonActualBytes: balloon.actual }),
    drives: driveCounters(blockstats, target.disks),
    vcpuThreads: cpus,
  };
}

interface VmResult {
  target: ScrapeTarget;
  base: Labels;
  figures?: VmFigures;
  nics: { name: string; counters: GuestNicCounters }[];
}

type FamilyKey = keyof typeof FAMILIES;

/** Every per-VM family with KubeVirt's name and help, in output order. */
const FAMILIES = {
  info: { name: 'kubevirt_vmi_info', type: 'gauge', help: 'Information about the VM; always 1. `phase` is the vmlet phase, lower-cased.' },
  cpuUsage: { name: 'kubevirt_vmi_cpu_usage_seconds_total', type: 'counter', help: 'CPU time of the VM\'s QEMU process (vCPUs and emulator threads), user plus system.' },
  cpuUser: { name: 'kubevirt_vmi_cpu_user_usage_seconds_total', type: 'counter', help: 'User CPU time of the VM\'s QEMU process.' },
  cpuSystem: { name: 'kubevirt_vmi_cpu_system_usage_seconds_total', type: 'counter', help: 'System CPU time of the VM\'s QEMU process.' },
  vcpuSeconds: { name: 'kubevirt_vmi_vcpu_seconds_total', type: 'counter', help: 'CPU time of each vCPU thread (from schedstat), by vCPU `id` and `state`.' },
  vcpuDelay: { name: 'kubevirt_vmi_vcpu_delay_seconds_total', type: 'counter', help: 'Time each vCPU thread was runnable but waiting for a host CPU.' },
  memResident: { name: 'kubevirt_vmi_memory_resident_bytes', type: 'gauge', help: 'Resident set size of the VM\'s QEMU process (VmRSS).' },
  memDomain: { name: 'kubevirt_vmi_memory_domain_bytes', type: 'gauge', help: 'Memory the VM was given (spec.memory_mib).' },
  memBalloon: { name: 'kubevirt_vmi_memory_actual_balloon_bytes', type: 'gauge', help: 'Memory the guest has according to its virtio balloon (query-balloon actual).' },
  rxBytes: { name: 'kubevirt_vmi_network_receive_bytes_total', type: 'counter', help: 'Bytes the guest NIC received (its TAP transmitted).' },
  rxPackets: { name: 'kubevirt_vmi_network_receive_packets_total', type: 'counter', help: 'Packets the guest NIC received (its TAP transmitted).' },
  rxErrors: { name: 'kubevirt_vmi_network_receive_errors_total', type: 'counter', help: 'Receive errors of the guest NIC (transmit errors of its TAP).' },
  rxDropped: { name: 'kubevirt_vmi_network_receive_packets_dropped_total', type: 'counter', help: 'Packets for the guest NIC dropped (transmit drops of its TAP).' },
  txBytes: { name: 'kubevirt_vmi_network_transmit_bytes_total', type: 'counter', help: 'Bytes the guest NIC transmitted (its TAP received).' },
  txPackets: { name: 'kubevirt_vmi_network_transmit_packets_total', type: 'counter', help: 'Packets the guest NIC transmitted (its TAP received).' },
  txErrors: { name: 'kubevirt_vmi_network_transmit_errors_total', type: 'counter', help: 'Transmit errors of the guest NIC (receive errors of its TAP).' },
  txDropped: { name: 'kubevirt_vmi_network_transmit_packets_dropped_total', type: 'counter', help: 'Packets from the guest NIC dropped (receive drops of its TAP).' },
  iopsRead: { name: 'kubevirt_vmi_storage_iops_read_total', type: 'counter', help: 'Read requests of a drive.' },
  iopsWrite: { name: 'kubevirt_vmi_storage_iops_write_total', type: 'counter', help: 'Write requests of a drive.' },
  readBytes: { name: 'kubevirt_vmi_storage_read_traffic_bytes_total', type: 'counter', help: 'Bytes read from a drive.' },
  writeBytes: { name: 'kubevirt_vmi_storage_write_traffic_bytes_total', type: 'counter', help: 'Bytes written to a drive.' },
  readTimes: { name: 'kubevirt_vmi_storage_read_times_seconds_total', type: 'counter', help: 'Time spent on reads of a drive.' },
  writeTimes: { name: 'kubevirt_vmi_storage_write_times_seconds_total', type: 'counter', help: 'Time spent on writes of a drive.' },
  flushRequests: { name: 'kubevirt_vmi_storage_flush_requests_total', type: 'counter', help: 'Flush requests of a drive.' },
  flushTimes: { name: 'kubevirt_vmi_storage_flush_times_seconds_total', type: 'counter', help: 'Time spent on flushes of a drive.' },
  migProcessed: { name: 'kubevirt_vmi_migration_data_processed_bytes', type: 'gauge', help: 'Bytes of guest memory and state sent by the current or last migration.' },
  migRemaining: { name: 'kubevirt_vmi_migration_data_remaining_bytes', type: 'gauge', help: 'Bytes the current or last migration still had to send.' },
  migSucceeded: { name: 'kubevirt_vmi_migration_succeeded', type: 'gauge', help: '1 if the VM\'s last migration succeeded.' },
  migFailed: { name: 'kubevirt_vmi_migration_failed', type: 'gauge', help: '1 if the VM\'s last migration failed.' },
} as const satisfies Record<string, Omit<Family, 'samples'>>;

const TRAFFIC: [keyof Traffic, FamilyKey, FamilyKey][] = [
  ['bytes', 'rxBytes', 'txBytes'],
  ['packets', 'rxPackets', 'txPackets'],
  ['errors', 'rxErrors', 'txErrors'],
  ['dropped', 'rxDropped', 'txDropped'],
];

const DRIVE: [keyof DriveCounters, FamilyKey][] = [
  ['readOps', 'iopsRead'],
  ['writeOps', 'iopsWrite'],
  ['readBytes', 'readBytes'],
  ['writeBytes', 'writeBytes'],
  ['readSeconds', 'readTimes'],
  ['writeSeconds', 'writeTimes'],
  ['flushOps', 'flushRequests'],
  ['flushSeconds', 'flushTimes'],
];

export class VmiCollector {
  private readonly concurrency: number;
  private readonly vmDeadlineMs: number;
  private readonly qmpTimeoutMs: number;
  private inFlight: Promise<Family[]> | undefined;
  /** vCPU threads by VM and QEMU pid, from the first scrape of that QEMU. */
  private readonly vcpuThreads = new Map<string, VcpuThread[]>();
  migrations: MigrationFiguresSource | undefined;

  constructor(private readonly options: VmiCollectorOptions) {
    this.concurrency = options.concurrency ?? DEFAULT_SCRAPE_CONCURRENCY;
    this.vmDeadlineMs = options.vmDeadlineMs ?? 2000;
    this.qmpTimeoutMs = options.qmpTimeoutMs ?? 1000;
    this.migrations = options.migrations;
  }

  /** Reads every VM; scrapes that arrive while one runs share its result. */
  collect(): Promise<Family[]> {
    this.inFlight ??= this.read().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  async render(): Promise<string> {
    return renderFamilies(await this.collect());
  }

  private async read(): Promise<Family[]> {
    const targets = this.options.targets().sort((a, b) => a.id.localeCompare(b.id));
    const withTaps = targets.some((t) => t.qemu && t.nics.length > 0);
    let byTap = new Map<string, GuestNicCounters>();
    if (withTaps) {
      try {
        byTap = guestCountersByTap(await withDeadline(this.options.readLinks(), this.vmDeadlineMs, 'ip -json -s link show'));
      } catch (err) {
        this.options.onError(err);
      }
    }
    const running = new Set(targets.flatMap((t) => (t.qemu ? [`${t.id}/${t.qemu.pid}`] : [])));
    for (const key of this.vcpuThreads.keys()) if (!running.has(key)) this.vcpuThreads.delete(key);
    const results = await mapBounded(targets, this.concurrency, async (target): Promise<VmResult> => {
      const result: VmResult = { target, base: vmLabelSet(target.id, this.options.node, target.labels), nics: [] };
      if (!target.qemu) return result;
      for (const nic of target.nics) {
        const counters = byTap.get(nic.tap);
        if (counters) result.nics.push({ name: nic.name, counters });
      }
      try {
        const key = `${target.id}/${target.qemu.pid}`;
        const { vcpuThreads, ...figures } = await withDeadline(readVmFigures(target, this.qmpTimeoutMs, this.vcpuThreads.get(key)), this.vmDeadlineMs, `reading VM ${target.id}`);
        this.vcpuThreads.set(key, vcpuThreads);
        result.figures = figures;
      } catch (err) {
        this.options.onError(err, target.id);
      }
      return result;
    });
    return this.families(results);
  }

  private families(results: VmResult[]): Family[] {
    const samples = Object.fromEntries(Object.keys(FAMILIES).map((k) => [k, [] as Sample[]])) as Record<FamilyKey, Sample[]>;
    const add = (key: FamilyKey, labels: Labels, value: number): void => {
      samples[key].push({ labels, value });
    };
    for (const { target, base, figures, nics } of results) {
      add('info', { ...base, phase: target.phase.toLowerCase() }, 1);
      const migration = this.migrations?.migrationFigures(target.id);
      if (migration) {
        add('migProcessed', base, migration.dataProcessedBytes);
        add('migRemaining', base, migration.dataRemainingBytes);
        add('migSucceeded', base, migration.succeeded ? 1 : 0);
        add('migFailed', base, migration.failed ? 1 : 0);
      }
      if (!target.qemu) continue;
      add('memDomain', base, target.memoryBytes);
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
        if (v.delaySeconds !== undefined) add('vcpuDelay', { ...base, id: String(v.id) }, v.delaySeconds);
      }
      add('memResident', base, figures.residentBytes);
      if (figures.balloonActualBytes !== undefined) add('memBalloon', base, figures.balloonActualBytes);
      for (const [drive, counters] of figures.drives) {
        for (const [field, key] of DRIVE) add(key, { ...base, drive }, counters[field]);
      }
    }
    return (Object.keys(FAMILIES) as FamilyKey[]).map((k) => ({ ...FAMILIES[k], samples: samples[k] }));
  }
}
