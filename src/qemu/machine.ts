import { setTimeout as delay } from 'node:timers/promises';
import { VmletError } from '../model/errors.js';
import type { DiskExport, MachineEvent, MetricsQuery, MigrationCapabilities, MigrationProgress, RunState, ShutdownCause, StreamTls } from '../model/machine.js';
import { MIGRATION_AUTHZ_ID, MIGRATION_TLS_ID } from '../model/qemu-ids.js';
import type { GuestInfo, NicStatus, VmPaths } from '../model/vm.js';
import type { GuestFigures } from '../model/guest-figures.js';
import { watchGuestAgent, type GuestAgentWatch } from './guest-agent-watch.js';
import { waitForExit } from '../host/process.js';
import type { QmpClient, QmpEvent } from './qmp.js';
import { QemuMonitor, QmpEvents } from './monitor.js';
import { explainFailedHandshake } from './launcher.js';
import { writeTlsDir } from './stream-tls.js';

/** How long QEMU may take to settle after migrate_cancel. */
const CANCEL_SETTLE_MS = 10_000;

/** One running QEMU of a VM and its monitor, in the domain's terms (the Machine port). */
export class QemuMachine {
  readonly exited: Promise<void>;
  shutdown: ShutdownCause | undefined;
  private readonly monitor: QemuMonitor;
  private detaching = false;
  /** Set by secureStreams: what the NBD exports or the mirror's NBD client use. */
  private streamTls: StreamTls | undefined;

  constructor(
    readonly pid: number,
    qmp: QmpClient,
    private readonly paths: VmPaths,
    private readonly vhostNet: boolean,
    /** The run state QEMU gave a connection opened before this machine (see qmp-prefetch.ts). */
    private earlyRunState?: RunState,
  ) {
    this.monitor = new QemuMonitor(qmp);
    this.exited = new Promise((resolve) => {
      qmp.once('close', () => {
        if (!this.detaching) resolve();
      });
    });
    this.monitor.on('event', (e: QmpEvent) => {
      if (e.event === QmpEvents.SHUTDOWN) this.shutdown = { guest: e.data.guest === true, reason: String(e.data.reason ?? 'unknown') };
    });
  }

  get closed(): boolean {
    return this.monitor.closed;
  }

  async ready(): Promise<void> {
    try {
      await this.monitor.ready;
    } catch (err) {
      throw await explainFailedHandshake(this.pid, this.paths, err);
    }
  }

  onEvent(listener: (event: MachineEvent) => void): void {
    this.monitor.on('event', (e: QmpEvent) => {
      const event = toMachineEvent(e);
      if (event) listener(event);
    });
  }

  async waitExit(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const ac = new AbortController();
    const eof = await Promise.race([this.exited.then(() => true), delay(timeoutMs, false, { signal: ac.signal }).catch(() => false)]);
    ac.abort();
    if (!eof) return false;
    return waitForExit(this.pid, Math.max(0, deadline - Date.now()) + 2000);
  }

  detach(): void {
    this.detaching = true;
    this.guestWatch?.stop();
    this.monitor.close();
  }

  private guestWatch: GuestAgentWatch | undefined;
  private lastGuestFigures: GuestFigures | undefined;

  /** Follows the guest agent until QEMU exits or vmlet detaches (qemu/guest-agent-watch.ts). */
  watchGuest(onInfo: (info: GuestInfo) => void): void {
    if (this.guestWatch || this.closed) return;
    this.guestWatch = watchGuestAgent(this.paths.guestAgentSocket, onInfo, { onFigures: (f) => (this.lastGuestFigures = f) });
    void this.exited.then(() => {
      this.guestWatch?.stop();
      this.lastGuestFigures = undefined;
    });
  }

  guestFigures(): GuestFigures | undefined {
    return this.lastGuestFigures;
  }

  guestShutdown(): Promise<boolean> {
    return this.guestWatch?.shutdown() ?? Promise.resolve(false);
  }

  run = (): Promise<void> => this.monitor.cont();
  pause = (): Promise<void> => this.monitor.stop();
  reset = (): Promise<void> => this.monitor.systemReset();
  powerDown = (timeoutMs: number): Promise<void> => this.monitor.systemPowerdown(timeoutMs);
  quit = (timeoutMs: number): Promise<void> => this.monitor.quit(timeoutMs);

  async runState(): Promise<RunState> {
    const early = this.earlyRunState;
    this.earlyRunState = undefined;
    return early ?? (await this.monitor.queryStatus()).status;
  }

  plugNic(nic: NicStatus, vcpus: number, port: number): Promise<void> {
    return this.monitor.hotplugNic(nic, { port, vcpus, vhostNet: this.vhostNet });
  }

  unplugNic(name: string, timeoutMs: number): Promise<void> {
    return this.monitor.unplugNic(name, timeoutMs);
  }

  query<T>(what: MetricsQuery, timeoutMs: number): Promise<T> {
    const m = this.monitor;
    const answers: Record<MetricsQuery, () => Promise<unknown>> = {
      'query-cpus-fast': () => m.queryCpusFast(timeoutMs),
      'query-blockstats': () => m.queryBlockstats(timeoutMs),
      'query-balloon': () => m.queryBalloon(timeoutMs),
      'balloon-guest-stats': () => m.balloonGuestStats(timeoutMs),
    };
    return answers[what]() as Promise<T>;
  }

  // ---- migration, both sides ----

  async secureStreams(tls: StreamTls, owner: { uid: number; gid: number } | undefined): Promise<void> {
    const dir = await writeTlsDir(this.paths.runDir, tls.files, tls.role, owner);
    // A source whose earlier migration failed still has them.
    for (const id of [MIGRATION_AUTHZ_ID, MIGRATION_TLS_ID]) await this.monitor.objectDel(id).catch(() => undefined);
    await this.monitor.objectAdd({ 'qom-type': 'tls-creds-x509', id: MIGRATION_TLS_ID, dir, endpoint: tls.role, 'verify-peer': true });
    if (tls.role === 'server') {
      // Exact subjects only: the default is deny, and a peer is let in by what its certificate names.
      const rules = tls.peerSubjects.map((match) => ({ match, policy: 'allow' as const, format: 'exact' as const }));
      await this.monitor.objectAdd({ 'qom-type': 'authz-list', id: MIGRATION_AUTHZ_ID, policy: 'deny', rules });
      await this.monitor.migrateSetParameters({ 'tls-creds': MIGRATION_TLS_ID, 'tls-authz': MIGRATION_AUTHZ_ID });
    } else {
      await this.monitor.migrateSetParameters({ 'tls-creds': MIGRATION_TLS_ID, 'tls-hostname': tls.hostname });
    }
    this.streamTls = tls;
  }

  // ---- migration, source side ----

  async mirrorDisk(target: DiskExport, signal: AbortSignal): Promise<void> {
    const tls = this.streamTls?.role === 'client' ? { 'tls-creds': MIGRATION_TLS_ID, 'tls-hostname': this.streamTls.hostname } : undefined;
    try {
      await this.monitor.mirrorDiskTo(target.disk, { host: target.host, port: target.port, exportName: target.name }, { signal, ...(tls ? { tls } : {}) });
    } catch (err) {
      if (signal.aborted) throw new VmletError('CANCELLED', 'cancelled by request', { cause: err });
      throw err;
    }
  }

  async finishMirrors(disks: readonly string[]): Promise<void> {
    for (const disk of disks) await this.monitor.finishMirror(disk);
  }

  async abandonMirrors(disks: readonly string[]): Promise<void> {
    for (const disk of disks) await this.monitor.abandonMirror(disk).catch(() => undefined);
  }

  async setMigrationCapabilities(c: MigrationCapabilities): Promise<void> {
    await this.monitor.migrateSetCapabilities({
      events: c.events,
      ...(c.pauseBeforeSwitchover === undefined ? {} : { 'pause-before-switchover': c.pauseBeforeSwitchover }),
      ...(c.autoConverge === undefined ? {} : { 'auto-converge': c.autoConverge }),
      'postcopy-ram': c.postcopyRam,
    });
  }

  async setMigrationLimits(l: { maxBandwidthBytesPerSecond?: number; downtimeLimitMs?: number }): Promise<void> {
    await this.monitor.migrateSetParameters({
      ...(l.maxBandwidthBytesPerSecond ? { 'max-bandwidth': l.maxBandwidthBytesPerSecond } : {}),
      ...(l.downtimeLimitMs ? { 'downtime-limit': l.downtimeLimitMs } : {}),
    });
  }

  migrate = (uri: string): Promise<void> => this.monitor.migrate(uri);

  async migrationProgress(): Promise<MigrationProgress> {
    const info = await this.monitor.queryMigrate();
    return {
      status: info.status ?? 'none',
      totalBytes: info.ram?.total,
      transferredBytes: info.ram?.transferred,
      remainingBytes: info.ram?.remaining,
      downtimeMs: info.downtime,
      totalTimeMs: info['total-time'],
      error: info['error-desc'],
    };
  }

  async nextMigrationEvent(ms: number): Promise<void> {
    await this.monitor.waitForEvent(QmpEvents.MIGRATION, { timeoutMs: ms }).catch(() => undefined);
  }

  continueAfterSwitchover = (): Promise<void> => this.monitor.migrateContinue('pre-switchover');
  startPostcopy = (): Promise<void> => this.monitor.migrateStartPostcopy();

  async cancelMigration(): Promise<void> {
    await this.monitor.migrateCancel().catch(() => undefined);
    // QEMU passes through 'cancelling'; wait (bounded) until it settles.
    const deadline = Date.now() + CANCEL_SETTLE_MS;
    while (Date.now() < deadline) {
      const { status } = await this.monitor.queryMigrate().catch(() => ({ status: 'failed' as const }));
      if (!status || ['completed', 'failed', 'cancelled', 'none'].includes(status)) return;
      await delay(50);
    }
  }

  // ---- migration, target side ----

  async exportDisks(host: string, port: number, disks: readonly string[]): Promise<DiskExport[]> {
    if (!disks.length) return [];
    const tls = this.streamTls?.role === 'server' ? { 'tls-creds': MIGRATION_TLS_ID, 'tls-authz': MIGRATION_AUTHZ_ID } : undefined;
    await this.monitor.nbdServerStart(host, port, tls);
    const exports: DiskExport[] = [];
    for (const disk of disks) exports.push({ disk, host, port, name: await this.monitor.exportDisk(disk) });
    return exports;
  }

  async stopExports(): Promise<void> {
    await this.monitor.nbdServerStop().catch(() => undefined);
  }

  listenForMigration = (uri: string): Promise<void> => this.monitor.migrateIncoming(uri);

  async incomingComplete(timeoutMs: number): Promise<void> {
    const event = this.monitor.waitForEvent(QmpEvents.MIGRATION, { timeoutMs, predicate: (e) => e.data.status === 'completed' || e.data.status === 'failed' });
    event.catch(() => undefined);
    const { status } = await this.monitor.queryMigrate();
    if (status === 'completed') return;
    if (status === 'failed') throw new VmletError('ABORTED', 'the incoming migration failed on the target');
    const e = await event;
    if (e.data.status !== 'completed') throw new VmletError('ABORTED', 'the incoming migration failed on the target');
  }
}

function toMachineEvent(e: QmpEvent): MachineEvent | undefined {
  switch (e.event) {
    case 'STOP':
      return { kind: 'paused' };
    case 'RESUME':
      return { kind: 'resumed' };
    case 'RESET':
      return { kind: 'reset', guest: e.data.guest === true };
    case 'BLOCK_IO_ERROR':
      return { kind: 'io-error', detail: e.data };
    case 'GUEST_PANICKED':
      return { kind: 'panicked', detail: e.data };
    case 'SHUTDOWN':
      return { kind: 'shutdown', guest: e.data.guest === true, reason: String(e.data.reason ?? 'unknown') };
    default:
      return undefined;
  }
}
