import { describe, expect, it } from 'vitest';
import { buildQemuArgv } from '../../src/qemu/argv.js';
import { statusFromArgv } from '../../src/qemu/recover.js';
import { vmPaths } from '../../src/state/paths.js';
import type { DiskStatus, NicStatus, VmSpec } from '../../src/model/vm.js';

const spec: VmSpec = {
  id: 'web,1',
  labels: {},
  vcpus: 2,
  memoryMib: 256,
  disks: [
    { name: 'root', imagePath: '/images/root.qcow2', overlay: true, readonly: false },
    { name: 'data', imagePath: '/images/data,raw', overlay: false, readonly: true },
  ],
  nics: [
    { name: 'eth0', bridge: 'br0', mac: '' },
    { name: 'eth1', bridge: 'br1', mac: '' },
  ],
};

describe('statusFromArgv', () => {
  it('reads back the NICs, disks, accelerator and root ports vmlet started QEMU with', () => {
    const disks: DiskStatus[] = [
      { name: 'root', path: '/state/vms/web,1/disks/root.qcow2', format: 'qcow2' },
      { name: 'data', path: '/images/data,raw', format: 'raw' },
    ];
    const nics: NicStatus[] = [
      { name: 'eth0', tap: 'vml0123456789ab', mac: '02:00:00:00:00:01', bridge: 'br0' },
      { name: 'eth1', tap: 'vmlba9876543210', mac: '02:00:00:00:00:02', bridge: 'br1', port: 2 },
    ];
    const argv = buildQemuArgv({
      spec,
      paths: vmPaths('/state', '/run', spec.id),
      accelerator: 'tcg',
      disks,
      nics,
      vhostNet: true,
      startPaused: true,
      hotplugPorts: 4,
      nicPorts: { eth1: 2 },
    });
    expect(statusFromArgv(argv, spec)).toEqual({ nics, disks, accelerator: 'tcg', pciPorts: 4 });
  });

  it('leaves out what the command line does not have (a NIC hot-plugged later)', () => {
    const argv = buildQemuArgv({
      spec: { ...spec, nics: [spec.nics[0]!] },
      paths: vmPaths('/state', '/run', spec.id),
      accelerator: 'kvm',
      disks: [
        { name: 'root', path: '/r.qcow2', format: 'qcow2' },
        { name: 'data', path: '/d', format: 'raw' },
      ],
      nics: [{ name: 'eth0', tap: 'vml0123456789ab', mac: '02:00:00:00:00:01', bridge: 'br0' }],
      vhostNet: false,
      startPaused: true,
    });
    const found = statusFromArgv(argv, spec);
    expect(found.nics?.map((n) => n.name)).toEqual(['eth0']);
    expect(found.accelerator).toBe('kvm');
    expect(statusFromArgv([], spec)).toEqual({ nics: [], disks: [], accelerator: '', pciPorts: 0 });
  });

  it('scsi disks are read back like the others, and the scsi controller root port is not a hotplug port', () => {
    const scsiSpec: VmSpec = { ...spec, disks: spec.disks.map((d) => ({ ...d, bus: 'scsi' as const })) };
    const disks: DiskStatus[] = [
      { name: 'root', path: '/r.qcow2', format: 'qcow2' },
      { name: 'data', path: '/d', format: 'raw' },
    ];
    const argv = buildQemuArgv({ spec: { ...scsiSpec, nics: [] }, paths: vmPaths('/state', '/run', spec.id), accelerator: 'tcg', disks, nics: [], vhostNet: false, startPaused: true, hotplugPorts: 3 });
    expect(argv.filter((a) => a.includes('"pcie-root-port"'))).toHaveLength(4);
    expect(statusFromArgv(argv, scsiSpec)).toMatchObject({ disks, pciPorts: 3 });
  });
});
