import { describe, expect, it } from 'vitest';
import type { Vm__Output } from '../../src/api/grpc/generated/vmlet/v1/Vm.js';
import type { VmSpec__Output } from '../../src/api/grpc/generated/vmlet/v1/VmSpec.js';
import { vmletV1 } from '../../src/api/grpc/proto.js';
import { specFromProto, specToProto, vmToProto } from '../../src/api/grpc/convert.js';
import { formatVmDetail } from '../../src/cli/format.js';
import type { DiskSpec, DiskStatus, VmSpec } from '../../src/model/vm.js';
import { validateSpec } from '../../src/vm/validate.js';

const methods = vmletV1.VmService.service;

/** Domain spec → the bytes a client sends → what the server decodes. */
function overTheWire(spec: VmSpec): VmSpec__Output {
  const create = methods.CreateVm;
  return create.requestDeserialize(create.requestSerialize({ spec: specToProto(spec), start: false })).spec!;
}

/** A VM as `vmlet get` receives it. */
function gotten(spec: VmSpec, disks: DiskStatus[]): Vm__Output {
  const get = methods.GetVm;
  const t = '2025-06-01T00:00:00.000Z';
  const vm = vmToProto({ spec, status: { phase: 'Pending', reason: '', pid: 0, nics: [], disks, accelerator: '', createdAt: t, lastTransitionAt: t, generation: 1 } }, 'node-1');
  return get.responseDeserialize(get.responseSerialize(vm));
}

const spec = (...disks: DiskSpec[]): VmSpec => ({ id: 'web', labels: {}, vcpus: 1, memoryMib: 256, disks, nics: [] });
const disk = (name: string, over: Partial<DiskSpec> = {}): DiskSpec => ({ name, imagePath: `/img/${name}`, overlay: false, readonly: false, ...over });

describe('Disk.format through the API', () => {
  it('round-trips raw, qcow2 and none (absent in the domain, "" on the wire)', () => {
    const sent = spec(disk('a', { format: 'raw' }), disk('b', { format: 'qcow2', overlay: true }), disk('c'));
    const decoded = overTheWire(sent);
    expect(decoded.disks.map((d) => d.format)).toEqual(['raw', 'qcow2', '']);
    expect(validateSpec(specFromProto(decoded))).toEqual(sent);
    expect(specFromProto(decoded).disks[2]).not.toHaveProperty('format');
  });

  it('a format vmlet does not open arrives as sent, for validation to refuse naming the field', () => {
    const decoded = overTheWire(spec(disk('a'), disk('b', { format: 'vmdk' as DiskSpec['format'] })));
    expect(specFromProto(decoded).disks[1]?.format).toBe('vmdk');
    expect(() => validateSpec(specFromProto(decoded))).toThrow(/^spec\.disks\[1\]\.format: "vmdk" is not a disk format/);
  });
});

describe('vmlet get shows the format QEMU is given', () => {
  const table = (out: string) => out.slice(out.indexOf('Disks:'), out.indexOf('NICs:'));

  it('the recorded format; for an overlay with a given format, also what it sits on', () => {
    const vm = gotten(spec(disk('a', { format: 'raw' }), disk('b', { overlay: true, format: 'raw' }), disk('c'), disk('d', { overlay: true })), [
      { name: 'a', path: '/img/a', format: 'raw' },
      { name: 'b', path: '/s/b.qcow2', format: 'qcow2' },
      { name: 'c', path: '/img/c', format: 'qcow2' },
      { name: 'd', path: '/s/d.qcow2', format: 'qcow2' },
    ]);
    const rows = table(formatVmDetail(vm, new Date('2025-06-01T00:01:00Z'))).split('\n').slice(2, 6);
    expect(rows.map((r) => r.trim().split(/\s{2,}/)[5])).toEqual(['raw', 'qcow2 on raw', 'qcow2', 'qcow2']);
  });
});
