import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { VmletError, errorMessage, failedPrecondition } from '../model/errors.js';
import { MAX_MIGRATIONS_IN_FLIGHT, boundExceeded } from '../model/bounds.js';
import type { TlsFiles } from '../model/machine.js';
import { hostOf, isLoopbackAddress } from '../host/addresses.js';
import type { Machine } from '../vm/ports.js';
import type { VmSpec } from '../model/vm.js';
import { EFI_VARS_MIRROR } from '../model/qemu-ids.js';
import { ownerOf } from '../vm/ops/owner.js';
import type { VmManager, VmRecord } from '../vm/manager.js';
import { FORCE, retire } from '../vm/ops/delete.js';
import type { IncomingReady, MigrationPeer, PeerConnector } from './ports.js';
import type { MigrationInfo, MigrationRegistry } from './registry.js';

export interface MigrationOptions {
  maxBandwidthBytesPerSecond: number;
  downtimeLimitMs: number;
  allowAutoConverge: boolean;
  allowPostCopy: boolean;
  completionTimeoutPerGibSeconds: number;
  progressTimeoutSeconds: number;
}

/** KubeVirt's defaults. */
const DEFAULT_PROGRESS_TIMEOUT_S = 150;
const DEFAULT_COMPLETION_TIMEOUT_PER_GIB_S = 150;

const PROGRESS_POLL_MS = 250;
/** How long a committed source keeps telling the target to run the guest before it gives up trying (it never resumes). */
const FINISH_RETRY_MS = 10 * 60_000;

const cancelled = (message = 'cancelled by request'): VmletError => new VmletError('CANCELLED', message);

export interface SourceContext {
  manager: VmManager;
  registry: MigrationRegistry;
  connect: PeerConnector;
  nodeName: string;
  /** The node's certificate: the streams run over TLS to the target's certificate. Absent: plaintext. */
  streamTls?: TlsFiles;
}

/** One outgoing migration as it runs. */
interface Outgoing {
  record: VmRecord;
  machine: Machine;
  peer: MigrationPeer;
  uid: string;
  target: string;
  options: MigrationOptions;
  signal: AbortSignal;
  wasRunning: boolean;
  mirrored: string[];
  prepared: boolean;
  streaming: boolean;
}

/** The source side of live migrations: one run per VM at a time, inside the VM's queue. */
export class OutgoingMigrations {
  private readonly cancels = new Map<string, AbortController>();

  constructor(private readonly ctx: SourceContext) {}

  /** Starts a migration; resolves once QEMU streams (phase Running), the rest goes on in the VM's queue. */
  async start(id: string, target: string, options: MigrationOptions): Promise<MigrationInfo> {
    const record = this.ctx.manager.record(id);
    if (!/^[^\s:]+:\d+$|^\[[0-9a-fA-F:]+\]:\d+$/.test(target)) throw new VmletError('INVALID_ARGUMENT', `target: "${target}" must be HOST:PORT of the target node's vmlet`);
    if (this.cancels.has(id)) throw failedPrecondition(`VM ${id} is already migrating`);
    if (this.cancels.size >= MAX_MIGRATIONS_IN_FLIGHT) {
      throw boundExceeded('migrations_in_flight', 'RESOURCE_EXHAUSTED', `${this.cancels.size} migrations are leaving this node, the most it runs at once; retry when one has ended`);
    }
    const peer = this.ctx.connect(target);
    const abort = new AbortController();
    let started!: (m: MigrationInfo) => void;
    let failedEarly!: (e: unknown) => void;
    const running = new Promise<MigrationInfo>((res, rej) => ((started = res), (failedEarly = rej)));
    this.cancels.set(id, abort);
    void record.queue
      .run(() => this.run(record, peer, { uid: randomUUID(), target, options, signal: abort.signal }, started))
      .catch(failedEarly)
      .finally(() => {
        this.cancels.delete(id);
        peer.close();
      });
    return running;
  }

  cancel(id: string): boolean {
    const abort = this.cancels.get(id);
    if (!abort) return false;
    abort.abort();
    return true;
  }

  private async run(
    record: VmRecord,
    peer: MigrationPeer,
    o: { uid: string; target: string; options: MigrationOptions; signal: AbortSignal },
    onRunning: (m: MigrationInfo) => void,
  ): Promise<void> {
    const { manager, registry, nodeName } = this.ctx;
    const { phase } = record.status;
    const machine = record.machine;
    if ((phase !== 'Running' && phase !== 'Paused') || !machine) {
      throw failedPrecondition(`VM ${record.id} is ${phase}; only a Running or Paused VM can be migrated`);
    }
    const m: Outgoing = {
      record,
      machine,
      peer,
      ...o,
      wasRunning: phase === 'Running',
      mirrored: mirroredOf(record.spec),
      prepared: false,
      streaming: false,
    };
    registry.begin({ id: record.id, uid: m.uid, source: nodeName, target: m.target });
    manager.transition(record, 'Migrating', `migrating to ${m.target}`, { migration: { uid: m.uid, role: 'source', peer: m.target, wasRunning: m.wasRunning } });
    await record.saving;
    try {
      const ready = await peer.prepareIncoming({
        uid: m.uid,
        spec: record.spec,
        nics: [...record.status.nics],
        pciPorts: record.status.pciPorts ?? 0,
        mirroredDisks: m.mirrored,
        sourceNode: nodeName,
        allowPostCopy: m.options.allowPostCopy,
      });
      m.prepared = true;
      const targetHost = checkReady(ready, m.target, m.mirrored);
      if (this.ctx.streamTls) await machine.secureStreams({ role: 'client', files: this.ctx.streamTls, hostname: targetHost }, ownerOf(record.status));
      registry.update(record.id, { phase: 'Running' });
      onRunning(registry.get(record.id)!);
      for (const e of ready.exports) await machine.mirrorDisk(e, m.signal);
      await machine.setMigrationCapabilities({ events: true, pauseBeforeSwitchover: m.mirrored.length > 0, autoConverge: m.options.allowAutoConverge, postcopyRam: m.options.allowPostCopy });
      await machine.setMigrationLimits({ maxBandwidthBytesPerSecond: m.options.maxBandwidthBytesPerSecond, downtimeLimitMs: m.options.downtimeLimitMs });
      m.streaming = true;
      await machine.migrate(ready.migrationUri);
      await this.follow(m);
    } catch (err) {
      await this.rollback(m, err);
      throw err;
    }
    // The commit point: from here the target may run the guest, so the source never resumes. The
    // marker is on disk (fsynced) before the target hears of it; if it cannot be written, a
    // restarted vmlet would not know the guest may run elsewhere, so the migration is rolled back.
    manager.update(record, { migration: { ...record.status.migration!, committed: true } });
    try {
      await manager.commit(record);
    } catch (err) {
      const failure = new VmletError('ABORTED', `the migration's commit marker could not be written (${errorMessage(err)}); the guest stays on this node`, { cause: err });
      await this.rollback(m, failure);
      throw failure;
    }
    await this.finishOnTarget(record, peer, m.uid, m.wasRunning);
    // Succeeded is reported once the source is gone: a watcher then finds the VM on exactly one node.
    await this.retireSource(record, `migrated to ${m.target}`);
  }

  /** Follows the migration to completion, enforcing the progress and completion timeouts. */
  private async follow(m: Outgoing): Promise<void> {
    const { registry } = this.ctx;
    const id = m.record.id;
    const progressTimeoutMs = (m.options.progressTimeoutSeconds || DEFAULT_PROGRESS_TIMEOUT_S) * 1000;
    const perGib = m.options.completionTimeoutPerGibSeconds || DEFAULT_COMPLETION_TIMEOUT_PER_GIB_S;
    const completionMs = Math.max(1, m.record.spec.memoryMib / 1024) * perGib * 1000;
    const startedAt = Date.now();
    let lowestRemaining = Number.POSITIVE_INFINITY;
    let lastProgress = Date.now();
    let postCopy = false;
    for (;;) {
      if (m.signal.aborted) throw cancelled();
      const p = await m.machine.migrationProgress();
      registry.update(id, {
        dataTotalBytes: p.totalBytes ?? 0,
        dataProcessedBytes: p.transferredBytes ?? 0,
        dataRemainingBytes: p.remainingBytes ?? 0,
        ...(p.downtimeMs !== undefined ? { downtimeMs: p.downtimeMs } : {}),
      });
      switch (p.status) {
        case 'completed':
          registry.update(id, { downtimeMs: p.downtimeMs ?? 0, totalTimeMs: p.totalTimeMs ?? Date.now() - startedAt });
          return;
        case 'failed':
          throw new VmletError('ABORTED', `QEMU reports the migration failed${p.error ? `: ${p.error}` : ''}`);
        case 'cancelled':
          throw cancelled('cancelled');
        case 'pre-switchover':
          await m.machine.finishMirrors(m.mirrored);
          await m.machine.continueAfterSwitchover();
          break;
      }
      const remaining = p.remainingBytes ?? Number.POSITIVE_INFINITY;
      if (remaining < lowestRemaining) {
        lowestRemaining = remaining;
        lastProgress = Date.now();
      }
      const stalled = Date.now() - lastProgress > progressTimeoutMs;
      const tooLong = Date.now() - startedAt > completionMs;
      if ((stalled || tooLong) && !postCopy) {
        if (!m.options.allowPostCopy || p.status !== 'active') {
          throw new VmletError('DEADLINE_EXCEEDED', stalled ? `no progress for ${progressTimeoutMs / 1000} s` : `not complete within ${Math.round(completionMs / 1000)} s (${perGib} s per GiB)`);
        }
        m.record.log.info({ stalled, tooLong }, 'switching migration to post-copy');
        await m.machine.startPostcopy();
        postCopy = true;
        registry.update(id, { postCopy: true });
      }
      await m.machine.nextMigrationEvent(PROGRESS_POLL_MS);
    }
  }

  /** Before the commit point: the target discards its copy and the guest goes on here. */
  private async rollback(m: Outgoing, err: unknown): Promise<void> {
    const { manager, registry } = this.ctx;
    const { record, machine } = m;
    const wasCancelled = err instanceof VmletError && err.code === 'CANCELLED';
    const reason = wasCancelled ? 'cancelled by request' : errorMessage(err);
    record.log.warn({ reason }, 'migration failed; rolling back to the source');
    const alive = record.machine === machine && !machine.closed;
    if (alive) {
      if (m.streaming) await machine.cancelMigration();
      await machine.abandonMirrors(m.mirrored);
    }
    if (m.prepared) await this.abortOnTarget(m.peer, m.uid, record.id, reason);
    if (alive && m.wasRunning) {
      const state = await machine.runState().catch(() => 'unknown');
      if (state !== 'running') await machine.run().catch((e: unknown) => record.log.error({ err: e }, 'could not resume the source'));
    }
    const phase = record.machine ? (m.wasRunning ? 'Running' : 'Paused') : 'Failed';
    manager.transition(record, phase, `migration ${wasCancelled ? 'cancelled' : 'failed'}: ${reason}`, { migration: undefined });
    registry.update(record.id, { phase: wasCancelled ? 'Cancelled' : 'Failed', reason });
  }

  async abortOnTarget(peer: MigrationPeer, uid: string, id: string, reason: string): Promise<void> {
    try {
      await peer.abortIncoming(uid, id, reason);
    } catch (err) {
      this.ctx.manager.log.warn({ err, vm: id }, 'could not tell the target to discard the incoming VM; it discards it itself when its QEMU fails');
    }
  }

  /** Tells the target to run the guest, retrying while it is unreachable (e.g. restarting). */
  async finishOnTarget(record: VmRecord, peer: MigrationPeer, uid: string, resume: boolean): Promise<void> {
    const deadline = Date.now() + FINISH_RETRY_MS;
    for (;;) {
      try {
        await peer.finishIncoming(uid, record.id, resume);
        return;
      } catch (err) {
        const code = err instanceof VmletError ? err.code : undefined;
        if ((code !== 'UNAVAILABLE' && code !== 'DEADLINE_EXCEEDED') || Date.now() > deadline) {
          record.log.error({ err }, 'the target did not confirm running the guest; the source stays stopped (never two copies)');
          throw err;
        }
        await delay(500);
      }
    }
  }

  /** The guest runs on the target: the source QEMU quits and every local trace goes. */
  async retireSource(record: VmRecord, reason: string): Promise<void> {
    await retire(this.ctx.manager.env, record, reason, FORCE);
    this.ctx.registry.update(record.id, { phase: 'Succeeded' });
  }
}

/**
 * What goes to the target over NBD: the per-VM overlays of writable disks (base images are on
 * both nodes), and a UEFI VM's variables store, so that it is there as it was at switchover
 * whether or not the guest runs on the target (QEMU's pflash writes what it received back to the
 * file only when the guest starts running).
 */
export function mirroredOf(spec: VmSpec): string[] {
  const overlays = spec.disks.filter((d) => d.overlay && !d.readonly).map((d) => d.name);
  return spec.firmware?.type === 'uefi' ? [...overlays, EFI_VARS_MIRROR] : overlays;
}

/**
 * What the target answered must point at the target itself: a `tcp:` stream on the host this
 * node dialled, and one NBD export there per mirrored disk, nothing else. Anything else (an
 * `exec:` or `unix:` URI, a third host, an export of a disk not mirrored) aborts the migration
 * before a byte of the guest leaves. Returns the target's host.
 */
export function checkReady(ready: IncomingReady, target: string, mirrored: readonly string[]): string {
  const host = hostOf(target)!;
  const bare = (h: string): string => h.replace(/^\[(.*)\]$/, '$1');
  const loopback = (h: string): boolean => isLoopbackAddress(`${h}:0`);
  const same = (h: string): boolean => bare(h) === bare(host) || (loopback(h) && loopback(host));
  const uri = /^tcp:(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d+)$/.exec(ready.migrationUri);
  if (!uri || !same(uri[1]!)) {
    throw new VmletError('ABORTED', `the target answered migration URI "${ready.migrationUri}"; only tcp: on the target's own address ${host} is accepted`);
  }
  const disks = ready.exports.map((e) => e.disk);
  const wrongHost = ready.exports.find((e) => !same(e.host));
  if (wrongHost) throw new VmletError('ABORTED', `the target exports disk ${wrongHost.disk} on ${wrongHost.host}, not on its own address ${host}`);
  if (disks.length !== new Set(disks).size || disks.length !== mirrored.length || disks.some((d) => !mirrored.includes(d))) {
    throw new VmletError('ABORTED', `the target exports disks [${disks.join(', ')}], but this node mirrors [${mirrored.join(', ')}]`);
  }
  return bare(uri[1]!);
}
