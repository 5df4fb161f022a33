import { describe, expect, it } from 'vitest';
import { vmletV1 } from '../../src/api/grpc/proto.js';
import { vmToProto } from '../../src/api/grpc/convert.js';
import { VmWire } from '../../src/api/grpc/vm-wire.js';
import type { Vm, VmStatus } from '../../src/model/vm.js';

const methods = vmletV1.VmService.service;
const t = '2025-06-01T00:00:00.000Z';

function vm(id: string, over: Partial<VmStatus> = {}): Vm {
  return {
    spec: Object.freeze({ id, labels: { app: id }, vcpus: 2, memoryMib: 256, disks: [], nics: [], cpuLimitMillicores: 500 }),
    status: Object.freeze({ phase: 'Running', reason: 'started', pid: 4242, nics: [], disks: [], accelerator: 'tcg', createdAt: t, startedAt: t, lastTransitionAt: t, generation: 3, uid: 2000001, cgroup: 'vmlet.slice/vmlet-x.scope', ...over }),
  };
}

describe('VmWire: Vm messages kept in wire form', () => {
  it('ListVms and GetVm decode to what encoding each VM on the spot gives', () => {
    const wire = new VmWire('node-1');
    const vms = [vm('a'), vm('b', { phase: 'Failed', reason: 'guest panicked', pid: 0 }), vm('c')];
    const list = methods.ListVms;
    const expected = list.responseDeserialize(list.responseSerialize({ vms: vms.map((v) => vmToProto(v, 'node-1')) }));
    expect(list.responseDeserialize(list.responseSerialize(wire.list(vms).as()))).toEqual(expected);
    expect(expected.vms.map((v) => v.status?.phase)).toEqual(['PHASE_RUNNING', 'PHASE_FAILED', 'PHASE_RUNNING']);

    const get = methods.GetVm;
    expect(get.responseDeserialize(get.responseSerialize(wire.vm(vms[1]!).as()))).toEqual(expected.vms[1]);
  });

  it('an empty list is an empty message', () => {
    const list = methods.ListVms;
    expect(list.responseSerialize(new VmWire('n').list([]).as())).toHaveLength(0);
    expect(list.responseDeserialize(list.responseSerialize(new VmWire('n').list([]).as()))).toEqual({ vms: [] });
  });

  it('encodes a VM again only when its status or spec object was replaced', () => {
    const wire = new VmWire('node-1');
    const first = vm('a');
    const bytes = wire.vm(first).bytes;
    expect(wire.vm({ spec: first.spec, status: first.status }).bytes).toBe(bytes);

    const stopped = { spec: first.spec, status: Object.freeze({ ...first.status, phase: 'Stopped' as const, pid: 0 }) };
    const get = methods.GetVm;
    expect(wire.vm(stopped).bytes).not.toBe(bytes);
    expect(get.responseDeserialize(wire.vm(stopped).bytes).status?.phase).toBe('PHASE_STOPPED');

    const relabelled = { spec: Object.freeze({ ...first.spec, labels: { app: 'other' } }), status: first.status };
    expect(get.responseDeserialize(wire.vm(relabelled).bytes).spec?.labels).toEqual({ app: 'other' });
    expect(get.responseDeserialize(wire.vm(first).bytes).spec?.labels).toEqual({ app: 'a' });
  });

  it('names the node it was made for', () => {
    expect(methods.GetVm.responseDeserialize(new VmWire('node-7').vm(vm('a')).bytes).status?.node).toBe('node-7');
  });
});
