import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { VmletError, errorMessage, failedPrecondition } from '../model/errors.js';
import type { TlsConfig } from '../config.js';
import type { VmManager, VmRecord } from '../vm/manager.js';
import type { QmpClient, QmpEvent } from '../qemu/qmp.js';
import { diskNodeName } from '../qemu/argv.js';
import { killHard } from '../qemu/launcher.js';
import { specToProto } from '../api/grpc/convert.js';
import type { MigrationAgentServiceClient } from '../api/grpc/generated/vmlet/v1/MigrationAgentService.js';
import type { PrepareIncomingResponse__Output } from '../api/grpc/generated/vmlet/v1/PrepareIncomingResponse.js';
import { call, connectAgent } from './agent-client.js';
import { type MigrationInfo, type MigrationRegistry } from './registry.js';
import type { QueryMigrate } from '../qemu/migration-info.js';

export interface MigrationOptions {
  maxBandwidthBytesPerSecond: number;
  downtimeLimitMs: number;
  allowAutoConverge: boolean;
  allowPostCopy: boolean;
  completionTimeoutPerGibSeconds: number;
  progressTimeoutSeconds: number;
}

/** KubeVirt's defaults. */
export const DEFAULT_PROGRESS_TIMEOUT_S = 150;
export const DEFAULT_COMPLETION_TIMEOUT_PER_GIB_S = 150;

const PROGRESS_POLL_MS = 250;
const AGENT_CALL_MS = 60_000;
/** How long a committed source keeps telling the target to run the guest before it gives up trying (it never resumes). */
const FINISH_RETRY_MS = 10 * 60_000;

class Cancelled extends VmletError {
  constructor(message: string) {
    super('CANCELLED', message);
  }
}

const GRPC_TO_CODE: Partial<Record<number, VmletError['code']>> = {
  [grpcStatus.INVALID_ARGUMENT]: 'INVALID_ARGUMENT',
  [grpcStatus.NOT_FOUND]: 'NOT_FOUND',
  [grpcStatus.ALREADY_EXISTS]: 'ALREADY_EXISTS',
  [grpcStatus.FAILED_PRECONDITION]: 'FAILED_PRECONDITION',
  [grpcStatus.RESOURCE_EXHAUSTED]: 'RESOURCE_EXHAUSTED',
  [grpcStatus.UNAVAILABLE]: 'UNAVAILABLE',
  [grpcStatus.DEADLINE_EXCEEDED]: 'DEADLINE_EXCEEDED',
  [grpcStatus.UNAUTHENTICATED]: 'UNAUTHENTICATED',
  [grpcStatus.PERMISSION_DENIED]: 'PERMISSION_DENIED',
};

/** A gRPC error from the target keeps its code, prefixed so the caller knows which node said it. */
function fromRemote(err: unknown): unknown {
  const e = err as Partial<ServiceError>;
  if (err instanceof VmletError || typeof e.code !== 'number') return err;
  return new VmletError(GRPC_TO_CODE[e.code] ?? 'UNAVAILABLE', `target node: ${e.details ?? e.message}`, { cause: err });
}

export interface SourceContext {
  manager: VmManager;
  registry: MigrationRegistry;
  tls?: TlsConfig;
  nodeName: string;
}

/** The source side of live migrations: one run per VM at a time, inside the VM's queue. */
export class OutgoingMigrations {
  private readonly cancels = new Map<string, AbortController>();

  constructor(private readonly ctx: SourceContext) {}

  /** Starts a migration; resolves once QEMU streams (phase Running), the rest goes on in the VM's queue. */
  async start(id: string, target: string, options: MigrationOptions): Promise<MigrationInfo> {
    const { manager, registry } = this.ctx;
    const record = manager.record(id);
    if (!/^[^\s:]+:\d+$|^\[[0-9a-fA-F:]+\]:\d+$/.test(target)) throw new VmletError('INVALID_ARGUMENT', `target: "${target}" must be HOST:PORT of the target node's vmlet`);
    if (this.cancels.has(id)) throw failedPrecondition(`VM ${id} is already migrating`);
    const agent = connectAgent(target, this.ctx.tls);
    const uid = randomUUID();
    const abort = new AbortController();
    let started!: (m: MigrationInfo) => void;
    let failedEarly!: (e: unknown) => void;
    const running = new Promise<MigrationInfo>((res, rej) => ((started = res), (failedEarly = rej)));
    this.cancels.set(id, abort);
    void record.queue
      .run(() => this.run(record, agent, { uid, target, options, signal: abort.signal, onRunning: started }))
      .catch((err: unknown) => failedEarly(fromRemote(err)))
      .finally(() => {
        this.cancels.delete(id);
        agent.close();
      });
    void registry.get(id);
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
    agent: MigrationAgentServiceClient,
    o: { uid: string; target: string; options: MigrationOptions; signal: AbortSignal; onRunning: (m: MigrationInfo) => void },
  ): Promise<void> {
    const { manager, registry, nodeName } = this.ctx;
    const id = record.spec.id;
    const phase = record.status.phase;
    if ((phase !== 'Running' && phase !== 'Paused') || !record.instance) {
      throw failedPrecondition(`VM ${id} is ${phase}; only a Running or Paused VM can be migrated`);
    }
    const qmp = record.instance.qmp;
    const wasRunning = phase === 'Running';
    const mirrored = record.spec.disks.filter((d) => d.overlay && !d.readonly).map((d) => d.name);
    registry.begin({ id, uid: o.uid, source: nodeName, target: o.target });
    manager.setPhase(record, 'Migrating', `migrating to ${o.target}`, { migration: { uid: o.uid, role: 'source', peer: o.target, wasRunning } });
    await record.saving;

    let prepared: PrepareIncomingResponse__Output | undefined;
    let streaming = false;
    try {
      const response: PrepareIncomingResponse__Output = await call(agent.prepareIncoming.bind(agent), {
        uid: o.uid,
        spec: specToProto(record.spec),
        nics: record.status.nics.map((n) => ({ name: n.name, tap: n.tap, mac: n.mac, bridge: n.bridge, pciPort: n.port ?? 0 })),
        pciPorts: record.status.pciPorts ?? 0,
        disks: record.spec.disks.map((d) => ({ name: d.name, mirror: mirrored.includes(d.name) })),
        sourceNode: nodeName,
        allowPostCopy: o.options.allowPostCopy,
      }, AGENT_CALL_MS);
      prepared = response;
      registry.update(id, { phase: 'Running' });
      o.onRunning(registry.get(id)!);
      await this.mirrorDisks(qmp, response, o.signal);
      await qmp.execute('migrate-set-capabilities', {
        capabilities: [
          { capability: 'events', state: true },
          { capability: 'pause-before-switchover', state: mirrored.length > 0 },
          { capability: 'auto-converge', state: o.options.allowAutoConverge },
          { capability: 'postcopy-ram', state: o.options.allowPostCopy },
        ],
      });
      await qmp.execute('migrate-set-parameters', {
        ...(o.options.maxBandwidthBytesPerSecond ? { 'max-bandwidth': o.options.maxBandwidthBytesPerSecond } : {}),
        ...(o.options.downtimeLimitMs ? { 'downtime-limit': o.options.downtimeLimitMs } : {}),
      });
      streaming = true;
      await qmp.execute('migrate', { uri: response.migrationUri });
      await this.monitor(record, qmp, mirrored, o);
    } catch (err) {
      await this.rollback(record, agent, { uid: o.uid, wasRunning, streaming, mirrored, prepared: prepared !== undefined, err });
      throw err;
    }

    // The commit point: from here the target may run the guest, so the source never resumes.
    manager.update(record, { migration: { ...record.status.migration!, committed: true } });
    await record.saving;
    await this.finishOnTarget(record, agent, o.uid, wasRunning);
    // Succeeded is reported once the source is gone: a watcher then finds the VM on exactly one node.
    await this.retireSource(record, `migrated to ${o.target}`);
  }

  private async mirrorDisks(qmp: QmpClient, prepared: PrepareIncomingResponse__Output, signal: AbortSignal): Promise<void> {
    for (const e of prepared.exports) {
      await qmp.execute('blockdev-add', { driver: 'nbd', 'node-name': `mig-${e.disk}`, server: { type: 'inet', host: e.host, port: String(e.port) }, export: e.name });
      const ready = qmp.waitForEvent('BLOCK_JOB_READY', { timeoutMs: 30 * 60_000, predicate: (ev) => ev.data.device === `mig-${e.disk}` });
      ready.catch(() => undefined);
      // sync top: the base image is on both nodes at the same path; only the per-VM overlay travels.
      await qmp.execute('blockdev-mirror', { 'job-id': `mig-${e.disk}`, device: diskNodeName(e.disk), target: `mig-${e.disk}`, sync: 'top', 'copy-mode': 'write-blocking' });
      await Promise.race([ready, abortPromise(signal)]);
    }
  }

  /** Follows the migration to completion, enforcing the progress and completion timeouts. */
  private async monitor(record: VmRecord, qmp: QmpClient, mirrored: string[], o: { options: MigrationOptions; signal: AbortSignal }): Promise<void> {
    const { registry } = this.ctx;
    const id = record.spec.id;
    const progressTimeoutMs = (o.options.progressTimeoutSeconds || DEFAULT_PROGRESS_TIMEOUT_S) * 1000;
    const gib = record.spec.memoryMib / 1024;
    const completionMs = Math.max(1, gib) * (o.options.completionTimeoutPerGibSeconds || DEFAULT_COMPLETION_TIMEOUT_PER_GIB_S) * 1000;
    const startedAt = Date.now();
    let lowestRemaining = Number.POSITIVE_INFINITY;
    let lastProgress = Date.now();
    let postCopy = false;
    const switchover = mirrored.length
      ? qmp.waitForEvent('MIGRATION', { timeoutMs: 24 * 3600_000, predicate: (e: QmpEvent) => e.data.status === 'pre-switchover' })
      : undefined;
    switchover?.catch(() => undefined);
    for (;;) {
      if (o.signal.aborted) throw new Cancelled('cancelled by request');
      const info = await qmp.execute<QueryMigrate>('query-migrate');
      const ram = info.ram ?? {};
      registry.update(id, {
        dataTotalBytes: ram.total ?? 0,
        dataProcessedBytes: ram.transferred ?? 0,
        dataRemainingBytes: ram['remaining'] ?? 0,
        ...(info.downtime !== undefined ? { downtimeMs: info.downtime } : {}),
      });
      switch (info.status) {
        case 'completed':
          registry.update(id, { downtimeMs: info.downtime ?? 0, totalTimeMs: info['total-time'] ?? Date.now() - startedAt });
          return;
        case 'failed':
          throw new VmletError('ABORTED', `QEMU reports the migration failed${info['error-desc'] ? `: ${info['error-desc']}` : ''}`);
        case 'cancelled':
          throw new Cancelled('cancelled');
        case 'pre-switchover':
          await this.completeMirrors(qmp, mirrored);
          await qmp.execute('migrate-continue', { state: 'pre-switchover' });
          break;
      }
      const remaining = ram.remaining ?? Number.POSITIVE_INFINITY;
      if (remaining < lowestRemaining) {
        lowestRemaining = remaining;
        lastProgress = Date.now();
      }
      const stalled = Date.now() - lastProgress > progressTimeoutMs;
      const tooLong = Date.now() - startedAt > completionMs;
      if ((stalled || tooLong) && !postCopy) {
        if (o.options.allowPostCopy && info.status === 'active') {
          record.log.info({ stalled, tooLong }, 'switching migration to post-copy');
          await qmp.execute('migrate-start-postcopy');
          postCopy = true;
          registry.update(id, { postCopy: true });
        } else {
          throw new VmletError('DEADLINE_EXCEEDED', stalled ? `no progress for ${progressTimeoutMs / 1000} s` : `not complete within ${Math.round(completionMs / 1000)} s (${o.options.completionTimeoutPerGibSeconds || DEFAULT_COMPLETION_TIMEOUT_PER_GIB_S} s per GiB)`);
        }
      }
      await nextMigrationEvent(qmp, PROGRESS_POLL_MS);
    }
  }

  /** At the switch-over point (vCPUs stopped): finish the disk mirrors so the target's disks are exact. */
  private async completeMirrors(qmp: QmpClient, mirrored: string[]): Promise<void> {
    for (const disk of mirrored) {
      const done = qmp.waitForEvent('BLOCK_JOB_COMPLETED', { timeoutMs: 120_000, predicate: (e) => e.data.device === `mig-${disk}` });
      done.catch(() => undefined);
      // Cancelling a READY mirror completes it without pivoting: the target holds a consistent copy.
      await qmp.execute('block-job-cancel', { device: `mig-${disk}` });
      await done;
      await qmp.execute('blockdev-del', { 'node-name': `mig-${disk}` });
    }
  }

  private async rollback(
    record: VmRecord,
    agent: MigrationAgentServiceClient,
    r: { uid: string; wasRunning: boolean; streaming: boolean; mirrored: string[]; prepared: boolean; err: unknown },
  ): Promise<void> {
    const { manager, registry } = this.ctx;
    const id = record.spec.id;
    const cancelled = r.err instanceof Cancelled;
    const reason = cancelled ? 'cancelled by request' : errorMessage(r.err);
    record.log.warn({ reason }, 'migration failed; rolling back to the source');
    const qmp = record.instance?.qmp;
    if (qmp && !qmp.closed) {
      if (r.streaming) await qmp.execute('migrate_cancel').catch(() => undefined);
      await waitNotActive(qmp);
      for (const disk of r.mirrored) {
        await qmp.execute('block-job-cancel', { device: `mig-${disk}`, force: true }).catch(() => undefined);
        await qmp.execute('blockdev-del', { 'node-name': `mig-${disk}` }).catch(() => undefined);
      }
    }
    if (r.prepared) await this.abortOnTarget(agent, r.uid, id, reason);
    if (qmp && !qmp.closed && r.wasRunning) {
      const { status } = await qmp.execute<{ status: string }>('query-status').catch(() => ({ status: 'unknown' }));
      if (status !== 'running') await qmp.execute('cont').catch((err: unknown) => record.log.error({ err }, 'could not resume the source'));
    }
    manager.setPhase(record, record.instance ? (r.wasRunning ? 'Running' : 'Paused') : 'Failed', `migration ${cancelled ? 'cancelled' : 'failed'}: ${reason}`, { migration: undefined });
    registry.update(id, { phase: cancelled ? 'Cancelled' : 'Failed', reason });
  }

  async abortOnTarget(agent: MigrationAgentServiceClient, uid: string, id: string, reason: string): Promise<void> {
    try {
      await call(agent.abortIncoming.bind(agent), { uid, vmId: id, reason }, AGENT_CALL_MS);
    } catch (err) {
      this.ctx.manager.log.warn({ err, vm: id }, 'could not tell the target to discard the incoming VM; it discards it itself when its QEMU fails');
    }
  }

  /** Tells the target to run the guest, retrying while it is unreachable (e.g. restarting). */
  async finishOnTarget(record: VmRecord, agent: MigrationAgentServiceClient, uid: string, resume: boolean): Promise<void> {
    const deadline = Date.now() + FINISH_RETRY_MS;
    for (;;) {
      try {
        await call(agent.finishIncoming.bind(agent), { uid, vmId: record.spec.id, resume }, AGENT_CALL_MS);
        return;
      } catch (err) {
        const code = (err as ServiceError).code;
        const retry = code === grpcStatus.UNAVAILABLE || code === grpcStatus.DEADLINE_EXCEEDED;
        if (!retry || Date.now() > deadline) {
          record.log.error({ err }, 'the target did not confirm running the guest; the source stays stopped (never two copies)');
          throw err;
        }
        await delay(500);
      }
    }
  }

  /** The guest runs on the target: the source QEMU quits and every local trace goes. */
  async retireSource(record: VmRecord, reason: string): Promise<void> {
    const { manager, registry } = this.ctx;
    const instance = record.instance;
    if (instance) {
      await instance.qmp.execute('quit').catch(() => undefined);
      if (!(await instance.waitExit(5000))) await killHard(instance.pid);
      instance.detach();
      record.instance = undefined;
    }
    await manager.lifecycle.cleanupHost(record, record.status.nics);
    manager.update(record, { phase: 'Deleting', reason, pid: 0, nics: [] });
    await manager.removeEverything(record);
    registry.update(record.spec.id, { phase: 'Succeeded' });
  }
}

function abortPromise(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(new Cancelled('cancelled by request'));
    signal.addEventListener('abort', () => reject(new Cancelled('cancelled by request')), { once: true });
  });
}

/** Waits for the next poll, or less when QEMU reports a MIGRATION status change first. */
async function nextMigrationEvent(qmp: QmpClient, ms: number): Promise<void> {
  await qmp.waitForEvent('MIGRATION', { timeoutMs: ms }).catch(() => undefined);
}

/** After migrate_cancel QEMU passes through 'cancelling'; wait (bounded) until it settles. */
async function waitNotActive(qmp: QmpClient): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const { status } = await qmp.execute<QueryMigrate>('query-migrate').catch(() => ({ status: 'failed' }));
    if (!status || ['completed', 'failed', 'cancelled', 'none'].includes(status)) return;
    await delay(50);
  }
}
