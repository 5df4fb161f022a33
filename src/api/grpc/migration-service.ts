import type { ServerUnaryCall } from '@grpc/grpc-js';
import { callerAddress, callerSubjects } from './peer-identity.js';
import { VmletError, notFound } from '../../model/errors.js';
import type { MigrationServiceHandlers } from './generated/vmlet/v1/MigrationService.js';
import type { MigrationAgentServiceHandlers } from './generated/vmlet/v1/MigrationAgentService.js';
import type { Migration } from './generated/vmlet/v1/Migration.js';
import type { MigrationPhase } from './generated/vmlet/v1/MigrationPhase.js';
import { type CallContext, streamHandler, unaryHandler } from './observe.js';
import { watchSlots } from './vm-service.js';
import { MAX_WATCHERS } from '../../model/bounds.js';
import { validateVmId } from '../../vm/validate.js';
import type { VmManager } from '../../vm/manager.js';
import { TERMINAL, type MigrationInfo, type MigrationRegistry } from '../../migration/registry.js';
import type { OutgoingMigrations } from '../../migration/source.js';
import type { IncomingMigrations } from '../../migration/target.js';
import { nicFromProto, specFromProto, vmToProto } from './convert.js';
import type { NicSpec } from '../../model/vm.js';
import { EFI_VARS_MIRROR } from '../../model/qemu-ids.js';

const PHASE: Record<MigrationInfo['phase'], MigrationPhase> = {
  Pending: 'MIGRATION_PHASE_PENDING',
  Running: 'MIGRATION_PHASE_RUNNING',
  Succeeded: 'MIGRATION_PHASE_SUCCEEDED',
  Failed: 'MIGRATION_PHASE_FAILED',
  Cancelled: 'MIGRATION_PHASE_CANCELLED',
};

function migrationToProto(m: MigrationInfo): Migration {
  return {
    id: m.id,
    uid: m.uid,
    phase: PHASE[m.phase],
    source: m.source,
    target: m.target,
    dataTotalBytes: m.dataTotalBytes,
    dataProcessedBytes: m.dataProcessedBytes,
    dataRemainingBytes: m.dataRemainingBytes,
    diskTotalBytes: m.diskTotalBytes,
    diskProcessedBytes: m.diskProcessedBytes,
    downtimeMs: m.downtimeMs,
    totalTimeMs: m.totalTimeMs,
    reason: m.reason,
    postCopy: m.postCopy,
  };
}

export interface MigrationDeps {
  registry: MigrationRegistry;
  outgoing: OutgoingMigrations;
  incoming: IncomingMigrations;
  manager: VmManager;
  nodeName: string;
}

export function migrationServiceHandlers(d: MigrationDeps, ctx: CallContext, watchers = watchSlots(MAX_WATCHERS)): MigrationServiceHandlers {
  const current = (id: string): MigrationInfo => {
    validateVmId(id, 'id');
    const m = d.registry.get(id);
    if (!m) throw notFound(`migration of VM ${id}`);
    return m;
  };
  return {
    MigrateVm: unaryHandler(ctx, 'MigrateVm', async (req) => {
      validateVmId(req.id, 'id');
      if (!req.target) throw new VmletError('INVALID_ARGUMENT', 'target: required (HOST:PORT of the target node vmlet)');
      const o = req.options;
      const started = await d.outgoing.start(req.id, req.target, {
        maxBandwidthBytesPerSecond: o?.maxBandwidthBytesPerSecond ?? 0,
        downtimeLimitMs: o?.downtimeLimitMs ?? 0,
        allowAutoConverge: o?.allowAutoConverge ?? false,
        allowPostCopy: o?.allowPostCopy ?? false,
        completionTimeoutPerGibSeconds: o?.completionTimeoutPerGibSeconds ?? 0,
        progressTimeoutSeconds: o?.progressTimeoutSeconds ?? 0,
      });
      return migrationToProto(started);
    }),
    GetMigration: unaryHandler(ctx, 'GetMigration', async (req) => migrationToProto(current(req.id))),
    CancelMigration: unaryHandler(ctx, 'CancelMigration', async (req) => {
      const m = current(req.id);
      if (TERMINAL.has(m.phase)) throw new VmletError('FAILED_PRECONDITION', `the migration of VM ${req.id} already ended (${m.phase})`);
      d.outgoing.cancel(req.id);
      const ended = await untilTerminal(d.registry, req.id);
      return migrationToProto(ended);
    }),
    WatchMigration: streamHandler(ctx, 'WatchMigration', async (call) => {
      const first = current(call.request.id);
      const release = watchers.take();
      await new Promise<void>((resolve) => {
        const send = (m: MigrationInfo) => {
          if (m.id !== first.id) return;
          call.write(migrationToProto(m));
          if (TERMINAL.has(m.phase)) done();
        };
        const done = () => {
          release();
          d.registry.off('update', send);
          call.off('cancelled', done);
          resolve();
        };
        d.registry.on('update', send);
        call.on('cancelled', done);
        send(d.registry.get(first.id)!);
      });
    }),
  };
}

function untilTerminal(registry: MigrationRegistry, id: string): Promise<MigrationInfo> {
  return new Promise((resolve) => {
    const check = (m: MigrationInfo) => {
      if (m.id === id && TERMINAL.has(m.phase)) {
        registry.off('update', check);
        resolve(m);
      }
    };
    registry.on('update', check);
    check(registry.get(id)!);
  });
}

export function migrationAgentHandlers(d: MigrationDeps, ctx: CallContext): MigrationAgentServiceHandlers {
  return {
    PrepareIncoming: unaryHandler(ctx, 'PrepareIncoming', async (req, call) => {
      const spec = specFromProto(req.spec);
      const res = await d.incoming.prepare({
        uid: req.uid,
        spec,
        // The NIC's model travels in the spec; the target must make the same device.
        nics: req.nics.map((n) => ({ ...nicFromProto({ name: n.name, bridge: n.bridge, mac: n.mac }), ...modelOf(spec, n.name), tap: n.tap, port: n.pciPort })),
        pciPorts: req.pciPorts,
        mirroredDisks: [...req.disks.filter((x) => x.mirror).map((x) => x.name), ...(req.mirrorEfiVars ? [EFI_VARS_MIRROR] : [])],
        sourceNode: req.sourceNode,
        allowPostCopy: req.allowPostCopy,
        // Who may connect to the streams: the caller's own certificate, never a field it sends.
        sourceSubjects: callerSubjects(call),
        sourceAddress: callerAddress(call),
      });
      return { migrationUri: res.migrationUri, exports: res.exports, targetNode: d.nodeName };
    }),
    FinishIncoming: unaryHandler(ctx, 'FinishIncoming', async (req, call) => {
      const record = await d.incoming.finish(req.uid, validateVmId(req.vmId, 'vm_id'), req.resume, peerCaller(ctx, call));
      return { vm: vmToProto({ spec: record.spec, status: record.status }, d.nodeName) };
    }),
    AbortIncoming: unaryHandler(ctx, 'AbortIncoming', async (req, call) => {
      await d.incoming.abort(req.uid, validateVmId(req.vmId, 'vm_id'), req.reason || 'aborted by the source', peerCaller(ctx, call));
      return {};
    }),
  };
}

/** A caller with the peer role may act only on migrations with itself: its certificate's subjects. */
function peerCaller(ctx: CallContext, call: ServerUnaryCall<unknown, unknown>): string[] | undefined {
  return ctx.roleOf?.(call) === 'peer' ? callerSubjects(call) : undefined;
}

const modelOf = (spec: { nics: NicSpec[] }, name: string): Partial<Pick<NicSpec, 'model'>> => {
  const model = spec.nics.find((n) => n.name === name)?.model;
  return model ? { model } : {};
};
