/**
 * vmlet's typed QMP: one method per QMP command vmlet sends, with QEMU's own argument names and
 * the part of each result vmlet reads, plus a few helpers for sequences that are one step to the
 * caller, each undoing its own partial work when it fails. Ids come from ids.ts only. A QMP error
 * reply rejects with a QmpError whose code is that of its class (qmpErrorCode); connection loss
 * and timeouts stay UNAVAILABLE and DEADLINE_EXCEEDED.
 */
import type { EventEmitter } from 'node:events';
import { VmletError } from '../model/errors.js';
import type { NicStatus } from '../model/vm.js';
import { nicDevice, tapNetdevProps, type TapNetdevProps } from './argv.js';
import { BALLOON_QOM_PATH, hotplugPortId, mirroredNode, mirrorJobId, mirrorTargetNode, nbdExportId, nbdExportName, netdevId, nicDeviceId } from '../model/qemu-ids.js';
import type { MigrationCapability, MigrationParameters, MigrationStatus, QueryMigrate } from './migration-info.js';
import { classifyQmpError, QmpError, type QmpClient, type QmpClientEvents, type QmpEvent, type WaitForEventOptions } from './qmp.js';

/** The QMP events vmlet waits for or reacts to. */
export const QmpEvents = {
  STOP: 'STOP',
  RESUME: 'RESUME',
  SHUTDOWN: 'SHUTDOWN',
  RESET: 'RESET',
  GUEST_PANICKED: 'GUEST_PANICKED',
  DEVICE_DELETED: 'DEVICE_DELETED',
  BLOCK_IO_ERROR: 'BLOCK_IO_ERROR',
  BLOCK_JOB_READY: 'BLOCK_JOB_READY',
  BLOCK_JOB_COMPLETED: 'BLOCK_JOB_COMPLETED',
  BLOCK_JOB_CANCELLED: 'BLOCK_JOB_CANCELLED',
  MIGRATION: 'MIGRATION',
} as const;

/** The name of one of QmpEvents. */
export type QmpEventName = (typeof QmpEvents)[keyof typeof QmpEvents];

/** QEMU's RunState, as `query-status` reports it. */
export type RunState =
  | 'debug'
  | 'inmigrate'
  | 'internal-error'
  | 'io-error'
  | 'paused'
  | 'postmigrate'
  | 'prelaunch'
  | 'finish-migrate'
  | 'restore-vm'
  | 'running'
  | 'save-vm'
  | 'shutdown'
  | 'suspended'
  | 'watchdog'
  | 'guest-panicked'
  | 'colo';

/** `query-status`'s StatusInfo. */
export interface StatusInfo {
  status: RunState;
  running: boolean;
}

/** `netdev_add` arguments: a tap netdev, the only kind vmlet plugs in. */
export type NetdevAddArgs = { type: 'tap' } & TapNetdevProps;

/** `device_add` arguments: the driver and id, then the device's own properties. */
export type DeviceAddArgs = { driver: string; id: string; bus?: string } & Readonly<Record<string, string | number | boolean | undefined>>;

/** An inet address in the flat form `blockdev-add`'s nbd `server` takes (the port is a string). */
export interface InetSocketAddress {
  type: 'inet';
  host: string;
  port: string;
}

/** `blockdev-add` arguments vmlet sends: an NBD client node. */
export interface BlockdevAddArgs {
  driver: 'nbd';
  'node-name': string;
  server: InetSocketAddress;
  export: string;
  /** A tls-creds-x509 object (endpoint client) and the name the server's certificate must carry. */
  'tls-creds'?: string;
  'tls-hostname'?: string;
}

/** `object-add` arguments vmlet sends: TLS credentials and who may use them. */
export type ObjectAddArgs =
  | { 'qom-type': 'tls-creds-x509'; id: string; dir: string; endpoint: 'server' | 'client'; 'verify-peer': boolean }
  | { 'qom-type': 'authz-list'; id: string; policy: 'allow' | 'deny'; rules: { match: string; policy: 'allow' | 'deny'; format: 'exact' | 'glob' }[] };

/** TLS of a server vmlet starts in QEMU (NBD): credentials, and the authz object naming who may connect. */
export interface ServerTls {
  'tls-creds': string;
  'tls-authz': string;
}

/** `blockdev-mirror` arguments vmlet sends. */
export interface BlockdevMirrorArgs {
  'job-id': string;
  /** The node to copy from. */
  device: string;
  /** The node to copy into. */
  target: string;
  sync: 'top' | 'full' | 'none';
  'copy-mode'?: 'background' | 'write-blocking';
}

/** `block-export-add` arguments vmlet sends: an NBD export of a node. */
export interface BlockExportAddArgs {
  type: 'nbd';
  id: string;
  'node-name': string;
  /** The export name NBD clients ask for. */
  name: string;
  writable: boolean;
}

/** `query-cpus-fast`'s CpuInfoFast, the part vmlet reads. */
export interface CpuInfoFast {
  'cpu-index': number;
  'thread-id': number;
  'qom-path'?: string;
  target?: string;
}

/** `query-blockstats`'s BlockDeviceStats: the counters vmlet reads, and the rest. */
export interface BlockDeviceStats {
  rd_bytes?: number;
  wr_bytes?: number;
  rd_operations?: number;
  wr_operations?: number;
  flush_operations?: number;
  rd_total_time_ns?: number;
  wr_total_time_ns?: number;
  flush_total_time_ns?: number;
  [counter: string]: unknown;
}

/** `query-blockstats`'s BlockStats, the part vmlet reads. */
export interface BlockStats {
  device?: string;
  'node-name'?: string;
  qdev?: string;
  stats?: BlockDeviceStats;
}

/** `query-balloon`'s BalloonInfo. */
export interface BalloonInfo {
  /** Bytes of memory the guest has. */
  actual: number;
}

/** The balloon's `guest-stats` QOM property: what the guest last reported (unset figures are 2^64-1). */
export interface BalloonGuestStats {
  stats: Record<string, number>;
  /** Seconds since the epoch of the guest's last report; 0 before the first. */
  'last-update': number;
}

/** Where a migration target's NBD server exports a disk. */
export interface NbdExport {
  host: string;
  port: number;
  exportName: string;
}

/** A copy of a large disk over a slow link may take this long to catch up. */
const MIRROR_READY_TIMEOUT_MS = 30 * 60_000;
/** Completing a READY mirror only flushes what is in flight. */
const MIRROR_FINISH_TIMEOUT_MS = 120_000;
/** A force-cancelled job ends at its next I/O completion. */
const JOB_END_TIMEOUT_MS = 10_000;
/** How long a guest gets to release an unplugged NIC: PCIe hotplug alone waits 5 s for the attention button. */
const DEVICE_DELETED_TIMEOUT_MS = 30_000;

/**
 * True when QEMU says there is no such device, netdev, block job or node: what undo and abandon
 * steps may ignore. QEMU gives these no class of their own: a missing block job is
 * DeviceNotActive, a missing node a GenericError.
 */
export function isGone(err: unknown): boolean {
  if (!(err instanceof QmpError)) return false;
  const desc = err.desc ?? '';
  switch (err.qmpClass) {
    case 'DeviceNotFound':
      return true;
    case 'DeviceNotActive':
      return /not found/i.test(desc);
    case 'GenericError':
      return /^(Failed to find|Cannot find) node/.test(desc);
    default:
      return false;
  }
}

/** The typed QMP monitor of one QEMU, over a connected QmpClient. */
export class QemuMonitor {
  constructor(readonly qmp: QmpClient) {}

  /** The connection's 'event' (every QMP event) and 'close' (once, with the reason) emitter. */
  get events(): EventEmitter<QmpClientEvents> {
    return this.qmp;
  }

  /** True once the connection is gone; every command then fails with UNAVAILABLE. */
  get closed(): boolean {
    return this.qmp.closed;
  }

  /** Settles when capabilities are negotiated (see QmpClient.open); commands may be sent before. */
  get ready(): Promise<void> {
    return this.qmp.ready;
  }

  /** Closes the connection (QEMU keeps running). Idempotent. */
  close(): void {
    this.qmp.close();
  }

  /** Listens to the connection's 'event' or 'close'. */
  on<K extends keyof QmpClientEvents>(name: K, listener: (...args: QmpClientEvents[K]) => void): this {
    // TypeScript cannot match a generic listener to EventEmitter's conditional listener type.
    this.qmp.on(name, listener as never);
    return this;
  }

  /** The first of these events that matches; subscribe before sending what triggers it. */
  waitForEvent(name: QmpEventName | readonly QmpEventName[], options: WaitForEventOptions = {}): Promise<QmpEvent> {
    return this.qmp.waitForEvent(name, options);
  }

  /** `cont`: runs the vCPUs. */
  async cont(): Promise<void> {
    await this.execute('cont');
  }

  /** `stop`: pauses the vCPUs. */
  async stop(): Promise<void> {
    await this.execute('stop');
  }

  /** `system_powerdown`: presses the ACPI power button. */
  async systemPowerdown(timeoutMs?: number): Promise<void> {
    await this.execute('system_powerdown', undefined, timeoutMs);
  }

  /** `system_reset`: resets the machine. */
  async systemReset(): Promise<void> {
    await this.execute('system_reset');
  }

  /** `quit`: QEMU exits at once. */
  async quit(timeoutMs?: number): Promise<void> {
    await this.execute('quit', undefined, timeoutMs);
  }

  /** `query-status`: the run state. */
  queryStatus(): Promise<StatusInfo> {
    return this.execute<StatusInfo>('query-status');
  }

  /** `netdev_add` of a tap netdev. */
  async netdevAdd(args: NetdevAddArgs): Promise<void> {
    await this.execute('netdev_add', { ...args });
  }

  /** `netdev_del`. NOT_FOUND if there is no such netdev. */
  async netdevDel(id: string): Promise<void> {
    await this.execute('netdev_del', { id });
  }

  /** `device_add`. */
  async deviceAdd(args: DeviceAddArgs): Promise<void> {
    await this.execute('device_add', { ...args });
  }

  /** `device_del`: asks the guest to release the device; DEVICE_DELETED says when it did. NOT_FOUND if there is no such device. */
  async deviceDel(id: string): Promise<void> {
    await this.execute('device_del', { id });
  }

  /** `blockdev-add`. */
  async blockdevAdd(args: BlockdevAddArgs): Promise<void> {
    await this.execute('blockdev-add', { ...args });
  }

  /** `blockdev-del`. */
  async blockdevDel(nodeName: string): Promise<void> {
    await this.execute('blockdev-del', { 'node-name': nodeName });
  }

  /** `blockdev-mirror`: starts a mirror job; BLOCK_JOB_READY says when the copy caught up. */
  async blockdevMirror(args: BlockdevMirrorArgs): Promise<void> {
    await this.execute('blockdev-mirror', { ...args });
  }

  /** `block-job-cancel`: on a READY mirror without force, completes it without pivoting. */
  async blockJobCancel(device: string, force?: boolean): Promise<void> {
    await this.execute('block-job-cancel', force === undefined ? { device } : { device, force });
  }

  /** `migrate-set-capabilities`, each capability on or off. */
  async migrateSetCapabilities(capabilities: Partial<Record<MigrationCapability, boolean>>): Promise<void> {
    const list = Object.entries(capabilities)
      .filter((entry): entry is [string, boolean] => entry[1] !== undefined)
      .map(([capability, state]) => ({ capability, state }));
    await this.execute('migrate-set-capabilities', { capabilities: list });
  }

  /** `migrate-set-parameters`. */
  async migrateSetParameters(parameters: MigrationParameters): Promise<void> {
    await this.execute('migrate-set-parameters', { ...parameters });
  }

  /** `migrate`: starts sending the VM to uri. */
  async migrate(uri: string): Promise<void> {
    await this.execute('migrate', { uri });
  }

  /** `migrate-incoming`: a QEMU started with `-incoming defer` starts listening on uri. */
  async migrateIncoming(uri: string): Promise<void> {
    await this.execute('migrate-incoming', { uri });
  }

  /** `migrate-continue`: goes on from a pause state (`pre-switchover`). */
  async migrateContinue(state: MigrationStatus): Promise<void> {
    await this.execute('migrate-continue', { state });
  }

  /** `migrate-start-postcopy`: switches a running migration to post-copy. */
  async migrateStartPostcopy(): Promise<void> {
    await this.execute('migrate-start-postcopy');
  }

  /** `migrate_cancel`: QEMU passes through `cancelling` to `cancelled`. */
  async migrateCancel(): Promise<void> {
    await this.execute('migrate_cancel');
  }

  /** `query-migrate`. */
  queryMigrate(): Promise<QueryMigrate> {
    return this.execute<QueryMigrate>('query-migrate');
  }

  /** `nbd-server-start` on host:port, with TLS when given. */
  async nbdServerStart(host: string, port: number, tls?: ServerTls): Promise<void> {
    await this.execute('nbd-server-start', { addr: { type: 'inet', data: { host, port: String(port) } }, ...tls });
  }

  /** `object-add`. */
  async objectAdd(args: ObjectAddArgs): Promise<void> {
    await this.execute('object-add', { ...args });
  }

  /** `object-del`. */
  async objectDel(id: string): Promise<void> {
    await this.execute('object-del', { id });
  }

  /** `nbd-server-stop`: also removes its exports. */
  async nbdServerStop(): Promise<void> {
    await this.execute('nbd-server-stop');
  }

  /** `block-export-add`. */
  async blockExportAdd(args: BlockExportAddArgs): Promise<void> {
    await this.execute('block-export-add', { ...args });
  }

  /** `query-cpus-fast`: the vCPUs and their host threads. */
  queryCpusFast(timeoutMs?: number): Promise<CpuInfoFast[]> {
    return this.execute<CpuInfoFast[]>('query-cpus-fast', undefined, timeoutMs);
  }

  /** `query-blockstats`: I/O counters of every block node. */
  queryBlockstats(timeoutMs?: number): Promise<BlockStats[]> {
    return this.execute<BlockStats[]>('query-blockstats', undefined, timeoutMs);
  }

  /** `query-balloon`. FAILED_PRECONDITION with qmpClass DeviceNotActive when the VM has no balloon. */
  queryBalloon(timeoutMs?: number): Promise<BalloonInfo> {
    return this.execute<BalloonInfo>('query-balloon', undefined, timeoutMs);
  }

  /** The balloon's `guest-stats` (qom-get): the guest's memory statistics, as often as it reports them. */
  balloonGuestStats(timeoutMs?: number): Promise<BalloonGuestStats> {
    return this.execute<BalloonGuestStats>('qom-get', { path: BALLOON_QOM_PATH, property: 'guest-stats' }, timeoutMs);
  }

  /** Plugs a NIC into hotplug port `port`: its tap netdev, then its device; no netdev is left behind if the device fails. */
  async hotplugNic(nic: NicStatus, o: { port: number; vcpus: number; vhostNet: boolean }): Promise<void> {
    await this.netdevAdd({ type: 'tap', ...tapNetdevProps(nic, o.vcpus, o.vhostNet) });
    try {
      await this.deviceAdd(nicDevice(nic, o.vcpus, hotplugPortId(o.port)));
    } catch (err) {
      await this.netdevDel(netdevId(nic.name)).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Unplugs a NIC: its device, once the guest released it (DEVICE_DELETED), then its netdev.
   * Either already gone counts as done, so an unplug that timed out can be repeated.
   * DEADLINE_EXCEEDED if the guest does not let go in time (the NIC then stays).
   */
  async unplugNic(nic: string, timeoutMs = DEVICE_DELETED_TIMEOUT_MS): Promise<void> {
    const id = nicDeviceId(nic);
    const stopWaiting = new AbortController();
    const deleted = this.waitForEvent(QmpEvents.DEVICE_DELETED, { timeoutMs, predicate: (e) => e.data.device === id, signal: stopWaiting.signal });
    deleted.catch(() => undefined);
    let plugged = true;
    try {
      await this.deviceDel(id);
    } catch (err) {
      stopWaiting.abort();
      if (!isGone(err)) throw err;
      plugged = false;
    }
    if (plugged) {
      await deleted.catch((err: unknown) => {
        throw timedOut(err, `the guest did not release NIC ${nic} within ${timeoutMs / 1000} s; it stays attached (the unplug request is still pending in the guest)`);
      });
    }
    await this.netdevDel(netdevId(nic)).catch((err: unknown) => {
      if (!isGone(err)) throw err;
    });
  }

  /**
   * Mirrors a disk (or, as EFI_VARS_MIRROR, the EFI variables store) into a migration target's
   * NBD export: adds the NBD node, starts the mirror (only the top layer: the base image is on
   * both nodes; the vars store has none, so all of it) with every guest write copied
   * synchronously, and resolves once it is READY. On failure, timeout or abort (rejecting with
   * the signal's reason) the job and the node are gone again.
   */
  async mirrorDiskTo(disk: string, nbd: NbdExport, o: { readyTimeoutMs?: number; signal?: AbortSignal; tls?: { 'tls-creds': string; 'tls-hostname': string } } = {}): Promise<void> {
    o.signal?.throwIfAborted();
    const job = mirrorJobId(disk);
    const node = mirrorTargetNode(disk);
    await this.blockdevAdd({ driver: 'nbd', 'node-name': node, server: { type: 'inet', host: nbd.host, port: String(nbd.port) }, export: nbd.exportName, ...o.tls });
    const stopWaiting = new AbortController();
    const signal = o.signal ? AbortSignal.any([o.signal, stopWaiting.signal]) : stopWaiting.signal;
    const timeoutMs = o.readyTimeoutMs ?? MIRROR_READY_TIMEOUT_MS;
    // A mirror that fails before it is ready ends without ever being READY.
    const settled = this.waitForEvent([QmpEvents.BLOCK_JOB_READY, QmpEvents.BLOCK_JOB_COMPLETED, QmpEvents.BLOCK_JOB_CANCELLED], {
      timeoutMs,
      predicate: (e) => e.data.device === job,
      signal,
    });
    settled.catch(() => undefined);
    try {
      await this.blockdevMirror({ 'job-id': job, device: mirroredNode(disk), target: node, sync: 'top', 'copy-mode': 'write-blocking' });
      const e = await settled.catch((err: unknown) => {
        throw timedOut(err, `the mirror of disk ${disk} did not catch up within ${timeoutMs / 1000} s`);
      });
      if (e.event !== QmpEvents.BLOCK_JOB_READY) {
        throw new VmletError('ABORTED', `the mirror of disk ${disk} ended before it was ready: ${jobEndReason(e)}`);
      }
    } catch (err) {
      stopWaiting.abort();
      await this.abandonMirror(disk).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Completes a READY mirror without pivoting (the guest's vCPUs must be stopped, so the copy is
   * exact) and removes its NBD node. ABORTED if the job failed; the caller then abandons it.
   */
  async finishMirror(disk: string, timeoutMs = MIRROR_FINISH_TIMEOUT_MS): Promise<void> {
    const job = mirrorJobId(disk);
    const stopWaiting = new AbortController();
    const ended = this.waitForEvent([QmpEvents.BLOCK_JOB_COMPLETED, QmpEvents.BLOCK_JOB_CANCELLED], {
      timeoutMs,
      predicate: (e) => e.data.device === job,
      signal: stopWaiting.signal,
    });
    ended.catch(() => undefined);
    try {
      await this.blockJobCancel(job);
    } catch (err) {
      stopWaiting.abort();
      throw err;
    }
    const e = await ended.catch((err: unknown) => {
      throw timedOut(err, `the mirror of disk ${disk} did not complete within ${timeoutMs / 1000} s`);
    });
    if (e.event !== QmpEvents.BLOCK_JOB_COMPLETED || typeof e.data.error === 'string') {
      throw new VmletError('ABORTED', `the mirror of disk ${disk} did not complete: ${jobEndReason(e)}`);
    }
    await this.blockdevDel(mirrorTargetNode(disk));
  }

  /**
   * Drops a disk's mirror, whatever state it is in: force-cancels the job, waits for it to end
   * (its NBD node cannot be deleted while the job holds it), deletes the node. What is already
   * gone is skipped; any other failure is thrown after both steps were tried.
   */
  async abandonMirror(disk: string, timeoutMs = JOB_END_TIMEOUT_MS): Promise<void> {
    const job = mirrorJobId(disk);
    const stopWaiting = new AbortController();
    const ended = this.waitForEvent([QmpEvents.BLOCK_JOB_COMPLETED, QmpEvents.BLOCK_JOB_CANCELLED], {
      timeoutMs,
      predicate: (e) => e.data.device === job,
      signal: stopWaiting.signal,
    });
    ended.catch(() => undefined);
    let failure: unknown;
    try {
      await this.blockJobCancel(job, true);
      // Past the deadline, the delete below is tried anyway and says what holds the node.
      await ended.catch(() => undefined);
    } catch (err) {
      stopWaiting.abort();
      if (!isGone(err)) failure = err;
    }
    try {
      await this.blockdevDel(mirrorTargetNode(disk));
    } catch (err) {
      if (!isGone(err)) failure ??= err;
    }
    if (failure !== undefined) throw failure;
  }

  /** Exports a disk's node (or the EFI variables store's, as EFI_VARS_MIRROR), writable, on the running NBD server, for the source to mirror into; returns the export name. */
  async exportDisk(disk: string): Promise<string> {
    const name = nbdExportName(disk);
    await this.blockExportAdd({ type: 'nbd', id: nbdExportId(disk), 'node-name': mirroredNode(disk), name, writable: true });
    return name;
  }

  private async execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<T> {
    try {
      return await this.qmp.execute<T>(command, args, timeoutMs === undefined ? {} : { timeoutMs });
    } catch (err) {
      throw classifyQmpError(err);
    }
  }
}

/** A wait that ran out of time as DEADLINE_EXCEEDED saying what did not happen; any other error as it is. */
function timedOut(err: unknown, message: string): unknown {
  return err instanceof QmpError && err.code === 'DEADLINE_EXCEEDED' ? new VmletError('DEADLINE_EXCEEDED', message, { cause: err }) : err;
}

/** Why a block job ended, from its BLOCK_JOB_COMPLETED or BLOCK_JOB_CANCELLED event. */
function jobEndReason(e: QmpEvent): string {
  if (e.event === QmpEvents.BLOCK_JOB_CANCELLED) return 'it was cancelled';
  return typeof e.data.error === 'string' ? e.data.error : 'it completed';
}
