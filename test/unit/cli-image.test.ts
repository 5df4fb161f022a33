import { describe, expect, it } from 'vitest';
import { ProgressMeter, specYaml } from '../../src/cli/image-format.js';
import { parseSpecText, enumName, parseNicFlag, SpecInputError } from '../../src/cli/spec-input.js';
import type { VmSpec__Output } from '../../src/api/grpc/generated/vmlet/v1/VmSpec.js';

const proposed: VmSpec__Output = {
  id: 'web',
  labels: {},
  vcpus: 2,
  memoryMib: 1024,
  kernel: null,
  cpuLimitMillicores: 0,
  runStrategy: 'RUN_STRATEGY_MANUAL',
  watchdog: null,
  firmware: { type: 'FIRMWARE_TYPE_UEFI', secureBoot: false },
  cloudInit: null,
  disks: [{ name: 'root', imagePath: '/img/store/web.qcow2', overlay: true, readonly: false, format: 'qcow2', bus: 'DISK_BUS_SATA', bootOrder: 1, cdrom: false }],
  nics: [{ name: 'net0', bridge: 'br0', mac: '00:50:56:aa:bb:01', model: 'NIC_MODEL_VMXNET3' }],
};

describe('specYaml: the proposed spec as vmlet create -f reads it', () => {
  it('enums as words, defaults left out', () => {
    expect(specYaml(proposed)).toBe(`id: web
vcpus: 2
memory_mib: 1024
firmware:
  type: uefi
disks:
  - name: root
    image_path: /img/store/web.qcow2
    overlay: true
    format: qcow2
    bus: sata
    boot_order: 1
nics:
  - name: net0
    bridge: br0
    mac: 00:50:56:aa:bb:01
    model: vmxnet3
`);
  });

  it('round-trips through parseSpecText into the request create sends', () => {
    expect(parseSpecText(specYaml(proposed), 'p.yaml')).toEqual({
      id: 'web',
      labels: {},
      vcpus: 2,
      memoryMib: 1024,
      firmware: { type: 'FIRMWARE_TYPE_UEFI' },
      disks: [{ name: 'root', imagePath: '/img/store/web.qcow2', overlay: true, readonly: false, format: 'qcow2', bus: 'DISK_BUS_SATA', bootOrder: 1 }],
      nics: [{ name: 'net0', bridge: 'br0', mac: '00:50:56:aa:bb:01', model: 'NIC_MODEL_VMXNET3' }],
    });
  });

  it('enum words and full names alike; an unknown word is refused (the proto would send 0)', () => {
    expect(enumName('NIC_MODEL_', 'E1000E', 'f')).toBe('NIC_MODEL_E1000E');
    expect(enumName('NIC_MODEL_', 'NIC_MODEL_E1000E', 'f')).toBe('NIC_MODEL_E1000E');
    expect(() => enumName('DISK_BUS_', 'ide', 'spec.disks[0].bus')).toThrow(/spec\.disks\[0\]\.bus: "ide" is not one of virtio, scsi, sata/);
    expect(parseNicFlag('name=e,bridge=br0,model=e1000e')).toEqual({ name: 'e', bridge: 'br0', model: 'NIC_MODEL_E1000E' });
    expect(() => parseNicFlag('name=e,bridge=br0,model=rtl8139')).toThrow(SpecInputError);
  });
});

describe('ProgressMeter', () => {
  it('rate and time left from the first message on; a bar only on a terminal', () => {
    let now = 0;
    const meter = new ProgressMeter(() => now);
    expect(meter.line(0, 0, 100 * 1024 * 1024, 'disk.vmdk', true)).toBe(`[${'.'.repeat(30)}]    0.0%  - MiB/s  -:-- left  disk.vmdk`);
    now = 2000;
    expect(meter.line(50, 50 * 1024 * 1024, 100 * 1024 * 1024, 'disk.vmdk', false)).toBe(' 50.0%  25.0 MiB/s  0:02 left  disk.vmdk');
  });
});
