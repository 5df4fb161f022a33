import { describe, expect, it } from 'vitest';
import { buildQemuArgv, escapeOptValue, toQemuOpts, type QemuLaunchPlan } from '../../src/qemu/argv.js';
import { diskDeviceId, diskFileNodeName, diskNodeName, hotplugPortId, netdevId, nicDeviceId } from '../../src/model/qemu-ids.js';
import type { VmPaths, VmSpec } from '../../src/model/vm.js';

const paths: VmPaths = {
  stateDir: '/var/lib/vmlet/vms/web-1',
  specFile: '/var/lib/vmlet/vms/web-1/spec.json',
  statusFile: '/var/lib/vmlet/vms/web-1/status.json',
  disksDir: '/var/lib/vmlet/vms/web-1/disks',
  runDir: '/run/vmlet/vms/web-1',
  runtimeStatusFile: '/run/vmlet/vms/web-1/status.json',
  qmpSocket: '/run/vmlet/vms/web-1/qmp.sock',
  serialSocket: '/run/vmlet/vms/web-1/serial.sock',
  migrationSocket: '/run/vmlet/vms/web-1/mig.sock',
  consoleLog: '/run/vmlet/vms/web-1/console.log',
  pidFile: '/run/vmlet/vms/web-1/qemu.pid',
  qemuLog: '/run/vmlet/vms/web-1/qemu.log',
  efiVars: '/var/lib/vmlet/vms/web-1/efi-vars.fd',
  cloudInitSeed: '/var/lib/vmlet/vms/web-1/cidata.iso',
  guestAgentSocket: '/run/vmlet/vms/web-1/qga.sock',
};

const baseSpec: VmSpec = {
  id: 'web-1',
  labels: {},
  vcpus: 1,
  memoryMib: 512,
  disks: [{ name: 'root', imagePath: '/images/root.qcow2', overlay: true, readonly: false }],
  nics: [],
};

function plan(over: Partial<QemuLaunchPlan> = {}, spec: Partial<VmSpec> = {}): QemuLaunchPlan {
  const s = { ...baseSpec, ...spec };
  return {
    spec: s,
    paths,
    accelerator: 'tcg',
    disks: s.disks.map((d) => ({ name: d.name, path: `/var/lib/vmlet/vms/web-1/disks/${d.name}.qcow2`, format: 'qcow2' as const })),
    nics: s.nics.map((n, i) => ({ name: n.name, tap: `vml00000000000${i}`, mac: `02:00:00:00:00:0${i}`, bridge: n.bridge })),
    vhostNet: false,
    startPaused: false,
    ...over,
  };
}

/** Every value that directly follows `flag`. */
function valuesOf(argv: string[], flag: string): string[] {
  return argv.flatMap((a, i) => (a === flag && i + 1 < argv.length ? [argv[i + 1] as string] : []));
}

const jsonValues = (argv: string[], flag: string): Record<string, unknown>[] =>
  valuesOf(argv, flag)
    .filter((v) => v.startsWith('{'))
    .map((v) => JSON.parse(v) as Record<string, unknown>);

const twoNics: Partial<VmSpec> = {
  nics: [
    { name: 'eth0', bridge: 'br0', mac: '' },
    { name: 'eth1', bridge: 'br1', mac: '' },
  ],
};

describe('escapeOptValue / toQemuOpts', () => {
  it.each([
    ['/run/a.sock', '/run/a.sock'],
    ['/run/a,b.sock', '/run/a,,b.sock'],
    [',,', ',,,,'],
    ['', ''],
  ])('escapes %j as %j', (input, out) => {
    expect(escapeOptValue(input)).toBe(out);
  });

  it('renders booleans as on/off and escapes values', () => {
    expect(toQemuOpts('socket', { id: 'x', path: '/a,b', server: true, wait: false, n: 3 })).toBe('socket,id=x,path=/a,,b,server=on,wait=off,n=3');
  });
});

describe('naming helpers', () => {
  it.each([
    [diskFileNodeName, 'root', 'file-root'],
    [diskNodeName, 'root', 'drive-root'],
    [diskDeviceId, 'root', 'disk-root'],
    [netdevId, 'eth0', 'net-eth0'],
    [nicDeviceId, 'eth0', 'nic-eth0'],
  ])('%o(%s) = %s', (fn, input, out) => {
    expect(fn(input)).toBe(out);
  });
  it('hotplugPortId', () => expect(hotplugPortId(2)).toBe('hotplug-2'));
});

describe('buildQemuArgv: fixed options', () => {
  const argv = buildQemuArgv(plan());
  it.each([
    ['-name', 'guest=web-1,debug-threads=on'],
    ['-machine', 'q35'],
    ['-accel', 'tcg,tb-size=128'],
    ['-cpu', 'Nehalem'],
    ['-m', '512M'],
    ['-smp', '1'],
    ['-display', 'none'],
    ['-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny'],
    ['-msg', 'timestamp=on'],
    ['-mon', 'chardev=qmp,mode=control'],
    ['-serial', 'chardev:serial0'],
    ['-pidfile', '/run/vmlet/vms/web-1/qemu.pid'],
  ])('%s %s', (flag, value) => {
    expect(valuesOf(argv, flag)).toEqual([value]);
  });

  it.each(['-nodefaults', '-no-user-config'])('has %s', (flag) => expect(argv).toContain(flag));

  it('has the QMP, serial and guest agent chardevs', () => {
    expect(valuesOf(argv, '-chardev')).toEqual([
      'socket,id=qmp,path=/run/vmlet/vms/web-1/qmp.sock,server=on,wait=off',
      'socket,id=serial0,path=/run/vmlet/vms/web-1/serial.sock,server=on,wait=off',
      'socket,id=qga0,path=/run/vmlet/vms/web-1/qga.sock,server=on,wait=off',
    ]);
  });

  it.each(['-S', '-incoming', '-kernel', '-initrd', '-append', '-netdev'])('has no %s by default', (flag) => {
    expect(argv).not.toContain(flag);
  });
});

describe('buildQemuArgv: variants', () => {
  it.each([
    [{ accelerator: 'kvm' as const }, '-accel', 'kvm'],
    [{ accelerator: 'kvm' as const }, '-cpu', 'host'],
    [{ accelerator: 'kvm' as const, cpu: 'host,-arch-capabilities' }, '-cpu', 'host,-arch-capabilities'],
    [{ incoming: true }, '-incoming', 'defer'],
  ])('%j gives %s %s', (over, flag, value) => {
    expect(valuesOf(buildQemuArgv(plan(over)), flag)).toEqual([value]);
  });

  it('every VM has a pvpanic device that shuts QEMU down; a watchdog only when the spec asks, with its action', () => {
    const plain = buildQemuArgv(plan());
    expect(valuesOf(plain, '-action')).toEqual(['panic=shutdown']);
    expect(valuesOf(plain, '-device')).toContain('pvpanic');
    expect(plain.join(' ')).not.toContain('i6300esb');
    const watched = buildQemuArgv(plan({}, { watchdog: { action: 'poweroff' } }));
    expect(valuesOf(watched, '-action')).toEqual(['panic=shutdown', 'watchdog=poweroff']);
    expect(valuesOf(watched, '-device').map((d) => (d.startsWith('{') ? (JSON.parse(d) as { driver: string }).driver : d))).toContain('i6300esb');
  });

  it('-S only when startPaused', () => {
    expect(buildQemuArgv(plan({ startPaused: true }))).toContain('-S');
  });

  it('uses vcpus and memory', () => {
    const argv = buildQemuArgv(plan({}, { vcpus: 4, memoryMib: 2048 }));
    expect(valuesOf(argv, '-smp')).toEqual(['4']);
    expect(valuesOf(argv, '-m')).toEqual(['2048M']);
  });

  it('escapes commas in socket and log paths but not in -pidfile', () => {
    const p = { ...paths, qmpSocket: '/run/a,b/qmp.sock', serialSocket: '/run/a,b/s.sock', consoleLog: '/run/a,b/c.log', pidFile: '/run/a,b/q.pid', guestAgentSocket: '/run/a,b/qga.sock' };
    const argv = buildQemuArgv(plan({ paths: p }));
    expect(valuesOf(argv, '-chardev')).toEqual([
      'socket,id=qmp,path=/run/a,,b/qmp.sock,server=on,wait=off',
      'socket,id=serial0,path=/run/a,,b/s.sock,server=on,wait=off',
      'socket,id=qga0,path=/run/a,,b/qga.sock,server=on,wait=off',
    ]);
    expect(valuesOf(argv, '-pidfile')).toEqual(['/run/a,b/q.pid']);
  });
});

describe('buildQemuArgv: kernel boot', () => {
  it.each([
    [{ kernelPath: '/k/vmlinuz', initrdPath: '/k/initrd,1', cmdline: 'console=ttyS0 a=b,c' }, ['/k/vmlinuz'], ['/k/initrd,1'], ['console=ttyS0 a=b,c']],
    [{ kernelPath: '/k/vmlinuz', initrdPath: '', cmdline: '' }, ['/k/vmlinuz'], [], []],
    [{ kernelPath: '/k/vmlinuz', initrdPath: '', cmdline: 'quiet' }, ['/k/vmlinuz'], [], ['quiet']],
  ])('%j', (kernel, k, i, a) => {
    const argv = buildQemuArgv(plan({}, { kernel }));
    expect(valuesOf(argv, '-kernel')).toEqual(k);
    expect(valuesOf(argv, '-initrd')).toEqual(i);
    expect(valuesOf(argv, '-append')).toEqual(a);
  });

  it('boots from the kernel: no bootindex on disks', () => {
    const argv = buildQemuArgv(plan({}, { kernel: { kernelPath: '/k', initrdPath: '', cmdline: '' } }));
    expect(jsonValues(argv, '-device').filter((d) => 'bootindex' in d)).toEqual([]);
  });
});

describe('buildQemuArgv: disks', () => {
  const spec: Partial<VmSpec> = {
    disks: [
      { name: 'root', imagePath: '/i/root.qcow2', overlay: true, readonly: false },
      { name: 'data', imagePath: '/i/data,1.raw', overlay: false, readonly: true },
    ],
  };
  const p = plan({}, spec);
  p.disks = [
    { name: 'root', path: '/s/disks/root.qcow2', format: 'qcow2' },
    { name: 'data', path: '/i/data,1.raw', format: 'raw' },
  ];
  const argv = buildQemuArgv(p);

  it('has file and format blockdevs per disk, in order, read-only as in the spec', () => {
    expect(jsonValues(argv, '-blockdev')).toEqual([
      { driver: 'file', filename: '/s/disks/root.qcow2', 'node-name': 'file-root', 'read-only': false },
      { driver: 'qcow2', file: 'file-root', 'node-name': 'drive-root', 'read-only': false },
      { driver: 'file', filename: '/i/data,1.raw', 'node-name': 'file-data', 'read-only': true },
      { driver: 'raw', file: 'file-data', 'node-name': 'drive-data', 'read-only': true },
    ]);
  });

  it('has a virtio-blk-pci device per disk, bootindex 1 on the first', () => {
    expect(jsonValues(argv, '-device').filter((d) => d['driver'] === 'virtio-blk-pci')).toEqual([
      { driver: 'virtio-blk-pci', drive: 'drive-root', id: 'disk-root', serial: 'root', bootindex: 1 },
      { driver: 'virtio-blk-pci', drive: 'drive-data', id: 'disk-data', serial: 'data' },
    ]);
  });

  it('puts each disk device right after its blockdevs', () => {
    const i = argv.indexOf('{"driver":"raw","file":"file-data","node-name":"drive-data","read-only":true}');
    expect(argv[i + 1]).toBe('-device');
    expect(JSON.parse(argv[i + 2] as string)).toMatchObject({ id: 'disk-data' });
  });
});

describe('buildQemuArgv: NICs', () => {
  it('one vCPU: single queue, vhost as planned', () => {
    const argv = buildQemuArgv(plan({ vhostNet: true }, twoNics));
    expect(valuesOf(argv, '-netdev')).toEqual([
      'tap,id=net-eth0,ifname=vml000000000000,script=no,downscript=no,vhost=on',
      'tap,id=net-eth1,ifname=vml000000000001,script=no,downscript=no,vhost=on',
    ]);
    expect(jsonValues(argv, '-device').filter((d) => d['driver'] === 'virtio-net-pci')).toEqual([
      { driver: 'virtio-net-pci', netdev: 'net-eth0', id: 'nic-eth0', mac: '02:00:00:00:00:00' },
      { driver: 'virtio-net-pci', netdev: 'net-eth1', id: 'nic-eth1', mac: '02:00:00:00:00:01' },
    ]);
  });

  it('several vCPUs: a queue pair per vCPU', () => {
    const argv = buildQemuArgv(plan({}, { ...twoNics, vcpus: 4 }));
    expect(valuesOf(argv, '-netdev')[0]).toBe('tap,id=net-eth0,ifname=vml000000000000,script=no,downscript=no,vhost=off,queues=4');
    expect(jsonValues(argv, '-device').find((d) => d['id'] === 'nic-eth0')).toEqual({
      driver: 'virtio-net-pci',
      netdev: 'net-eth0',
      id: 'nic-eth0',
      mac: '02:00:00:00:00:00',
      mq: true,
      vectors: 10,
    });
  });

  it('puts NICs listed in nicPorts on their hotplug port, after the ports', () => {
    const argv = buildQemuArgv(plan({ nicPorts: { eth0: 2 } }, twoNics));
    const devices = jsonValues(argv, '-device');
    expect(devices.map((d) => d['id'])).toEqual(['disk-root', 'nic-eth1', 'hotplug-0', 'hotplug-1', 'hotplug-2', 'hotplug-3', 'nic-eth0', 'balloon0', 'vserial0', 'qga0-port']);
    expect(devices.at(-4)).toMatchObject({ id: 'nic-eth0', bus: 'hotplug-2' });
    expect(valuesOf(argv, '-netdev').map((n) => n.split(',')[1])).toEqual(['id=net-eth1', 'id=net-eth0']);
  });
});

describe('buildQemuArgv: hotplug ports', () => {
  const ports = (p: QemuLaunchPlan): Record<string, unknown>[] => jsonValues(buildQemuArgv(p), '-device').filter((d) => d['driver'] === 'pcie-root-port');

  it('defaults to 4 ports with unique chassis and port numbers', () => {
    expect(ports(plan())).toEqual([0, 1, 2, 3].map((i) => ({ driver: 'pcie-root-port', id: `hotplug-${i}`, bus: 'pcie.0', chassis: i + 1, port: i + 1 })));
  });

  it.each([0, 1, 7])('hotplugPorts %i', (n) => {
    expect(ports(plan({ hotplugPorts: n }))).toHaveLength(n);
  });

  it('orders devices disks, NICs, ports, balloon, guest agent serial (QEMU assigns pcie.0 slots in that order)', () => {
    const ids = jsonValues(buildQemuArgv(plan({ hotplugPorts: 1 }, twoNics)), '-device').map((d) => d['id']);
    expect(ids).toEqual(['disk-root', 'nic-eth0', 'nic-eth1', 'hotplug-0', 'balloon0', 'vserial0', 'qga0-port']);
  });
});

describe('buildQemuArgv: balloon', () => {
  it('has exactly one virtio balloon, balloon0, on pcie.0', () => {
    expect(jsonValues(buildQemuArgv(plan()), '-device').filter((d) => d['driver'] === 'virtio-balloon-pci')).toEqual([{ driver: 'virtio-balloon-pci', id: 'balloon0', 'guest-stats-polling-interval': 10 }]);
  });

  it('counts the balloon and the guest agent serial in the pcie.0 slots', () => {
    // 1 disk + 27 ports + the balloon + the virtio-serial = 30 slots fits; one port more does not.
    expect(() => buildQemuArgv(plan({ hotplugPorts: 27 }))).not.toThrow();
    expect(() => buildQemuArgv(plan({ hotplugPorts: 28 }))).toThrow(/31 PCI devices on pcie.0, at most 30/);
  });
});

describe('buildQemuArgv: inconsistent plans are bugs', () => {
  it.each<[string, QemuLaunchPlan]>([
    ['disks out of step with the spec', { ...plan(), disks: [] }],
    ['nics out of step with the spec', { ...plan({}, twoNics), nics: plan({}, twoNics).nics.reverse() }],
    ['negative hotplugPorts', plan({ hotplugPorts: -1 })],
    ['nicPorts naming an unknown NIC', plan({ nicPorts: { eth9: 0 } }, twoNics)],
    ['nicPorts beyond the ports', plan({ nicPorts: { eth0: 4 } }, twoNics)],
    ['two NICs on one port', plan({ nicPorts: { eth0: 1, eth1: 1 } }, twoNics)],
    ['more devices than pcie.0 slots', plan({ hotplugPorts: 30 })],
  ])('%s', (_name, p) => {
    expect(() => buildQemuArgv(p)).toThrow(/launch plan of web-1/);
  });
});

describe('buildQemuArgv: QEMU never probes a disk format', () => {
  it('each format node names its driver from the recorded format, whatever the file is called or starts with', () => {
    const p = plan({}, {
      disks: [
        { name: 'a', imagePath: '/i/a.qcow2', overlay: false, readonly: false, format: 'raw' },
        { name: 'b', imagePath: '/i/b.img', overlay: true, readonly: false, format: 'raw' },
        { name: 'c', imagePath: '/i/c.raw', overlay: false, readonly: false },
      ],
    });
    p.disks = [
      { name: 'a', path: '/i/a.qcow2', format: 'raw' },
      { name: 'b', path: '/s/disks/b.qcow2', format: 'qcow2' },
      { name: 'c', path: '/i/c.raw', format: 'qcow2' },
    ];
    const argv = buildQemuArgv(p);
    const nodes = jsonValues(argv, '-blockdev');
    expect(nodes.filter((n) => n['driver'] !== 'file').map((n) => [n['node-name'], n['driver']])).toEqual([
      ['drive-a', 'raw'],
      ['drive-b', 'qcow2'],
      ['drive-c', 'qcow2'],
    ]);
    expect(nodes.filter((n) => n['driver'] === 'file').map((n) => n['filename'])).toEqual(['/i/a.qcow2', '/s/disks/b.qcow2', '/i/c.raw']);
    // The legacy options that probe a format are never used.
    for (const probing of ['-drive', '-hda', '-hdb', '-cdrom', '-snapshot']) expect(argv).not.toContain(probing);
  });
});

describe('buildQemuArgv: NIC models, SATA disks, boot order', () => {
  it('e1000e and vmxnet3 NICs are QEMU emulations without virtio queue pairs', () => {
    const nics = [
      { name: 'eth0', bridge: 'br0', mac: '', model: 'e1000e' as const },
      { name: 'eth1', bridge: 'br0', mac: '', model: 'vmxnet3' as const },
      { name: 'eth2', bridge: 'br0', mac: '' },
    ];
    const p = plan({}, { nics, vcpus: 2 });
    p.nics = p.nics.map((n, i) => ({ ...n, ...(nics[i]!.model ? { model: nics[i]!.model } : {}) }));
    const devices = jsonValues(buildQemuArgv(p), '-device').filter((d) => String(d['id']).startsWith('nic-'));
    expect(devices).toEqual([
      { driver: 'e1000e', netdev: 'net-eth0', id: 'nic-eth0', mac: '02:00:00:00:00:00' },
      { driver: 'vmxnet3', netdev: 'net-eth1', id: 'nic-eth1', mac: '02:00:00:00:00:01' },
      { driver: 'virtio-net-pci', netdev: 'net-eth2', id: 'nic-eth2', mac: '02:00:00:00:00:02', mq: true, vectors: 6 },
    ]);
  });

  it('sata disks are ide-hd devices on the AHCI ports in order; boot_order is bootindex', () => {
    const disks = [
      { name: 'root', imagePath: '/i/r.qcow2', overlay: false, readonly: false, bus: 'sata' as const, bootOrder: 1 },
      { name: 'data', imagePath: '/i/d.qcow2', overlay: false, readonly: false, bootOrder: 3 },
      { name: 'logs', imagePath: '/i/l.qcow2', overlay: false, readonly: false, bus: 'sata' as const },
    ];
    const devices = jsonValues(buildQemuArgv(plan({}, { disks })), '-device').filter((d) => String(d['id']).startsWith('disk-'));
    expect(devices).toEqual([
      { driver: 'ide-hd', drive: 'drive-root', id: 'disk-root', serial: 'root', bootindex: 1, bus: 'ide.0' },
      { driver: 'virtio-blk-pci', drive: 'drive-data', id: 'disk-data', serial: 'data', bootindex: 3 },
      { driver: 'ide-hd', drive: 'drive-logs', id: 'disk-logs', serial: 'logs', bus: 'ide.1' },
    ]);
  });
});

describe('buildQemuArgv: firmware', () => {
  it('BIOS (the default): plain q35, no flash', () => {
    const argv = buildQemuArgv(plan());
    expect(valuesOf(argv, '-machine')).toEqual(['q35']);
    expect(jsonValues(argv, '-blockdev').some((b) => String(b['node-name']).startsWith('fw-'))).toBe(false);
  });

  it('UEFI: OVMF code read-only and the VM own vars store writable, as pflash0 and pflash1', () => {
    const argv = buildQemuArgv(plan({}, { firmware: { type: 'uefi', secureBoot: false } }));
    expect(valuesOf(argv, '-machine')).toEqual(['q35,pflash0=fw-code,pflash1=fw-vars']);
    expect(valuesOf(argv, '-global')).toEqual([]);
    const flash = jsonValues(argv, '-blockdev').filter((b) => String(b['node-name']).startsWith('fw-'));
    expect(flash).toEqual([
      { driver: 'file', filename: '/usr/share/OVMF/OVMF_CODE_4M.fd', 'node-name': 'fw-code-file', 'read-only': true },
      { driver: 'raw', file: 'fw-code-file', 'node-name': 'fw-code', 'read-only': true },
      { driver: 'file', filename: paths.efiVars, 'node-name': 'fw-vars-file', 'read-only': false },
      { driver: 'raw', file: 'fw-vars-file', 'node-name': 'fw-vars', 'read-only': false },
    ]);
  });

  it('Secure Boot: the enrolled-keys build, SMM, and the flash locked to SMM', () => {
    const argv = buildQemuArgv(plan({}, { firmware: { type: 'uefi', secureBoot: true } }));
    expect(valuesOf(argv, '-machine')).toEqual(['q35,pflash0=fw-code,pflash1=fw-vars,smm=on']);
    expect(valuesOf(argv, '-global')).toEqual(['driver=cfi.pflash01,property=secure,value=on']);
    const files = jsonValues(argv, '-blockdev').map((b) => b['filename']);
    expect(files).toContain('/usr/share/OVMF/OVMF_CODE_4M.ms.fd');
  });

  it('adds no PCI device: the slots of disks, NICs and ports stay where BIOS has them', () => {
    const devices = (s: Partial<VmSpec>): string[] => valuesOf(buildQemuArgv(plan({}, { ...twoNics, ...s })), '-device');
    expect(devices({ firmware: { type: 'uefi', secureBoot: true } })).toEqual(devices({}));
  });
});

describe('buildQemuArgv: cloud-init seed', () => {
  const cloudInit = { userData: '#cloud-config\n', metaData: '', networkConfig: '' };

  it('is a read-only virtio disk, which cloud kernels without AHCI see', () => {
    const disks = [
      { name: 'root', imagePath: '/i/r.qcow2', overlay: false, readonly: false, bus: 'sata' as const },
      { name: 'data', imagePath: '/i/d.qcow2', overlay: false, readonly: false },
    ];
    const argv = buildQemuArgv(plan({}, { disks, cloudInit }));
    expect(jsonValues(argv, '-blockdev').filter((b) => String(b['node-name']).startsWith('cidata'))).toEqual([
      { driver: 'file', filename: paths.cloudInitSeed, 'node-name': 'cidata-file', 'read-only': true },
      { driver: 'raw', file: 'cidata-file', 'node-name': 'cidata', 'read-only': true },
    ]);
    expect(jsonValues(argv, '-device').filter((d) => d['drive'] === 'cidata')).toEqual([{ driver: 'virtio-blk-pci', drive: 'cidata', id: 'cidata', serial: 'cidata' }]);
  });

  it('is absent without cloud_init, and with it every other device keeps its place', () => {
    expect(buildQemuArgv(plan()).some((a) => a.includes('cidata'))).toBe(false);
    const devices = (s: Partial<VmSpec>): string[] => valuesOf(buildQemuArgv(plan({}, { ...twoNics, ...s })), '-device');
    const withSeed = devices({ cloudInit });
    expect(withSeed.filter((d) => !d.includes('cidata'))).toEqual(devices({}));
    expect(withSeed.indexOf(withSeed.find((d) => d.includes('cidata'))!)).toBeGreaterThan(withSeed.findIndex((d) => d.includes('virtserialport')));
  });
});

describe('buildQemuArgv: guest agent channel', () => {
  it('every VM gets org.qemu.guest_agent.0 on a virtio-serial, its socket in the run dir with QEMU listening', () => {
    const argv = buildQemuArgv(plan());
    const devices = jsonValues(argv, '-device');
    expect(devices.filter((d) => d['driver'] === 'virtio-serial-pci' || d['driver'] === 'virtserialport')).toEqual([
      { driver: 'virtio-serial-pci', id: 'vserial0' },
      { driver: 'virtserialport', id: 'qga0-port', chardev: 'qga0', name: 'org.qemu.guest_agent.0', bus: 'vserial0.0' },
    ]);
    expect(valuesOf(argv, '-chardev')).toContain(`socket,id=qga0,path=${paths.guestAgentSocket},server=on,wait=off`);
  });
});

describe('buildQemuArgv: CD-ROM disks', () => {
  it('a cdrom disk is a read-only ide-cd on its SATA port, bootable by boot_order', () => {
    const disks = [
      { name: 'root', imagePath: '/i/r.qcow2', overlay: false, readonly: false, bootOrder: 2 },
      { name: 'install', imagePath: '/i/debian.iso', overlay: false, readonly: true, bus: 'sata' as const, cdrom: true, bootOrder: 1 },
    ];
    const argv = buildQemuArgv(plan({}, { disks, cloudInit: { userData: '', metaData: '', networkConfig: '' } }));
    const devices = jsonValues(argv, '-device').filter((d) => String(d['driver']).startsWith('ide-'));
    expect(devices).toEqual([
      { driver: 'ide-cd', drive: 'drive-install', id: 'disk-install', serial: 'install', bootindex: 1, bus: 'ide.0' },
    ]);
    expect(jsonValues(argv, '-blockdev').filter((b) => b['node-name'] === 'drive-install')).toEqual([
      { driver: 'qcow2', file: 'file-install', 'node-name': 'drive-install', 'read-only': true },
    ]);
  });
});

describe('buildQemuArgv: scsi disks', () => {
  const disks = [
    { name: 'root', imagePath: '/i/r.qcow2', overlay: true, readonly: false, bus: 'scsi' as const, bootOrder: 1 },
    { name: 'data', imagePath: '/i/d.qcow2', overlay: false, readonly: false },
    { name: 'ro', imagePath: '/i/ro.qcow2', overlay: false, readonly: true, bus: 'scsi' as const },
  ];

  it('are scsi-hd targets in spec order on one virtio-scsi controller, which sits on a root port of its own', () => {
    const argv = buildQemuArgv(plan({}, { disks }));
    const devices = jsonValues(argv, '-device');
    expect(devices.filter((d) => d['driver'] === 'virtio-scsi-pci' || d['id'] === 'scsi0-port')).toEqual([
      { driver: 'pcie-root-port', id: 'scsi0-port', bus: 'pcie.0', chassis: 100, port: 100 },
      { driver: 'virtio-scsi-pci', id: 'scsi0', bus: 'scsi0-port' },
    ]);
    expect(devices.filter((d) => String(d['id']).startsWith('disk-'))).toEqual([
      { driver: 'virtio-blk-pci', drive: 'drive-data', id: 'disk-data', serial: 'data' },
      { driver: 'scsi-hd', drive: 'drive-root', id: 'disk-root', serial: 'root', bootindex: 1, bus: 'scsi0.0', channel: 0, 'scsi-id': 0, lun: 0 },
      { driver: 'scsi-hd', drive: 'drive-ro', id: 'disk-ro', serial: 'ro', bus: 'scsi0.0', channel: 0, 'scsi-id': 1, lun: 0 },
    ]);
    // Each device comes after the controller whose bus it names.
    const at = (id: string): number => devices.findIndex((d) => d['id'] === id);
    expect(at('scsi0-port')).toBeLessThan(at('scsi0'));
    expect(at('scsi0')).toBeLessThan(at('disk-root'));
    expect(jsonValues(argv, '-blockdev').filter((b) => b['node-name'] === 'drive-ro' || b['node-name'] === 'file-ro').map((b) => b['read-only'])).toEqual([true, true]);
  });

  it('the controller comes last on pcie.0: the other devices keep the slots they have without scsi', () => {
    const pci = (s: Partial<VmSpec>): string[] =>
      jsonValues(buildQemuArgv(plan({}, { ...twoNics, ...s })), '-device')
        .filter((d) => !['scsi-hd', 'virtio-scsi-pci'].includes(String(d['driver'])) && d['id'] !== 'scsi0-port')
        .map((d) => String(d['id']));
    expect(pci({ disks })).toEqual(pci({ disks: disks.map((d) => ({ ...d, bus: 'sata' as const })) }).filter((id) => id !== 'disk-root' && id !== 'disk-ro'));
  });

  it('there is no controller without a scsi disk; its root port counts against the pcie.0 slots', () => {
    expect(buildQemuArgv(plan()).some((a) => a.includes('scsi'))).toBe(false);
    const scsiOnly = [{ name: 'root', imagePath: '/i/r.qcow2', overlay: false, readonly: false, bus: 'scsi' as const }];
    // 0 virtio disks + 28 ports + balloon + serial + the scsi port = 31.
    expect(() => buildQemuArgv(plan({ hotplugPorts: 28 }, { disks: scsiOnly }))).toThrow(/31 PCI devices on pcie.0, at most 30/);
    expect(() => buildQemuArgv(plan({ hotplugPorts: 27 }, { disks: scsiOnly }))).not.toThrow();
  });
});
