import type { ServerWritableStream } from '@grpc/grpc-js';
import { VmletError } from '../../model/errors.js';
import { MAX_WATCHERS } from '../../model/bounds.js';
import { Slots } from '../../model/slots.js';
import type { VmManager } from '../../vm/manager.js';
import { validateVmId } from '../../vm/validate.js';
import { matchesSelector, parseLabelSelector } from '../../vm/label-selector.js';
import { allocatable } from '../../vm/capacity.js';
import type { VmChange } from '../../model/events.js';
import type { VmServiceHandlers } from './generated/vmlet/v1/VmService.js';
import type { WatchVmsRequest__Output } from './generated/vmlet/v1/WatchVmsRequest.js';
import type { VmEvent } from './generated/vmlet/v1/VmEvent.js';
import type { NodeInfo } from './generated/vmlet/v1/NodeInfo.js';
import { nicFromProto, specFromProto, vmToProto } from './convert.js';
import { type CallContext, streamHandler, unaryHandler } from './observe.js';
import { consoleHandlers } from './console-service.js';
import { VmWire } from './vm-wire.js';
import type { Vm } from './generated/vmlet/v1/Vm.js';
import type { ListVmsResponse } from './generated/vmlet/v1/ListVmsResponse.js';
import type { ConsoleHub } from '../../console/hub.js';

export interface NodeFacts {
  hostname: string;
  accelerator: string;
  acceleratorReason: string;
  qemuVersion: string;
  vmletVersion: string;
}

/**
 * A watcher this many events behind is cut off rather than buffered without bound. grpc-js's
 * server stream is in object mode, so its writableLength counts messages, not bytes: at a few KiB
 * per event this is some tens of MiB, far beyond what a healthy client lets pile up.
 */
export const WATCH_MAX_QUEUED_EVENTS = 4096;

/** `watchers`: WatchVms streams (and, shared, WatchMigration's) open at once. */
export function vmServiceHandlers(manager: VmManager, consoles: ConsoleHub, node: NodeFacts, ctx: CallContext, watchers = watchSlots(MAX_WATCHERS)): VmServiceHandlers {
  const out = (vm: Parameters<typeof vmToProto>[0]) => vmToProto(vm, node.hostname);
  const wire = new VmWire(node.hostname);
  const id = (req: { id: string }) => validateVmId(req.id, 'id');

  return {
    CreateVm: unaryHandler(ctx, 'CreateVm', async (req) => {
      if (!req.spec) throw new VmletError('INVALID_ARGUMENT', 'spec: required');
      return out(await manager.create(specFromProto(req.spec), req.start));
    }),
    GetVm: unaryHandler(ctx, 'GetVm', async (req) => wire.vm(manager.get(id(req))).as<Vm>()),
    ListVms: unaryHandler(ctx, 'ListVms', async (req) => wire.list(manager.list(req.labelSelector)).as<ListVmsResponse>()),
    StartVm: unaryHandler(ctx, 'StartVm', async (req) => out(await manager.start(id(req)))),
    StopVm: unaryHandler(ctx, 'StopVm', async (req) => out(await manager.stop(id(req), req.gracePeriodSeconds, req.force))),
    PauseVm: unaryHandler(ctx, 'PauseVm', async (req) => out(await manager.pause(id(req)))),
    ResumeVm: unaryHandler(ctx, 'ResumeVm', async (req) => out(await manager.resume(id(req)))),
    RebootVm: unaryHandler(ctx, 'RebootVm', async (req) => out(await manager.reboot(id(req)))),
    DeleteVm: unaryHandler(ctx, 'DeleteVm', async (req) => {
      await manager.delete(id(req), req.force);
      return {};
    }),
    GetNodeInfo: unaryHandler(ctx, 'GetNodeInfo', async () => nodeInfo(manager, node)),
    WatchVms: streamHandler(ctx, 'WatchVms', (call) => watchers.hold(() => watch(manager, call, out))),
    ...consoleHandlers(consoles, ctx),
    AttachNic: unaryHandler(ctx, 'AttachNic', async (req) => {
      if (!req.nic) throw new VmletError('INVALID_ARGUMENT', 'nic: required');
      return out(await manager.attachNic(id(req), nicFromProto(req.nic)));
    }),
    DetachNic: unaryHandler(ctx, 'DetachNic', async (req) => {
      if (!req.nicName) throw new VmletError('INVALID_ARGUMENT', 'nic_name: required');
      return out(await manager.detachNic(id(req), req.nicName));
    }),
  };
}

/** The places for watch streams (WatchVms, WatchMigration), `--max-watchers`. */
export const watchSlots = (max: number): Slots => new Slots('watchers', max, 'watch streams (WatchVms, WatchMigration)');

function nodeInfo(manager: VmManager, node: NodeFacts): NodeInfo {
  const policy = manager.env.settings.capacity;
  const free = allocatable(policy);
  const used = manager.allocated();
  return {
    hostname: node.hostname,
    accelerator: node.accelerator,
    acceleratorReason: node.acceleratorReason,
    qemuVersion: node.qemuVersion,
    vmletVersion: node.vmletVersion,
    capacity: policy.capacity,
    allocatable: free,
    allocated: used,
    cpuOvercommitRatio: policy.cpuOvercommit,
    memoryOvercommitRatio: policy.memoryOvercommit,
    vmCount: manager.list().length,
  };
}

/** First the current VMs as ADDED, then every change, until the client goes away. */
function watch(
  manager: VmManager,
  call: ServerWritableStream<WatchVmsRequest__Output, VmEvent>,
  out: (vm: VmChange['vm']) => VmEvent['vm'],
): Promise<void> {
  const { id, labelSelector } = call.request;
  if (id) validateVmId(id, 'id');
  const selector = parseLabelSelector(labelSelector);
  const wanted = (vm: VmChange['vm']) => (!id || vm.spec.id === id) && matchesSelector(selector, vm.spec.labels);
  return new Promise((resolve, reject) => {
    const onChange = (change: VmChange) => {
      if (!wanted(change.vm)) return;
      if (call.writableLength >= WATCH_MAX_QUEUED_EVENTS) {
        done();
        reject(new VmletError('RESOURCE_EXHAUSTED', `watch client is too slow: it fell ${WATCH_MAX_QUEUED_EVENTS} events behind; watch again`));
        return;
      }
      call.write({ type: `VM_EVENT_TYPE_${change.type}`, vm: out(change.vm) });
    };
    const done = () => {
      manager.off('change', onChange);
      call.off('cancelled', onCancel);
    };
    const onCancel = () => {
      done();
      resolve();
    };
    // Subscribing and listing in the same tick: no change can fall between them.
    manager.on('change', onChange);
    call.on('cancelled', onCancel);
    for (const vm of manager.list(labelSelector)) {
      if (wanted(vm)) call.write({ type: 'VM_EVENT_TYPE_ADDED', vm: out(vm) });
    }
  });
}
