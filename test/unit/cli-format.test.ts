import { describe, expect, it } from 'vitest';
import type { NodeInfo__Output } from '../../src/api/grpc/generated/vmlet/v1/NodeInfo.js';
import type { Vm__Output } from '../../src/api/grpc/generated/vmlet/v1/Vm.js';
import {
  actionLine,
  alignTable,
  formatAge,
  formatMemoryMib,
  formatNodeInfo,
  formatVmDetail,
  formatVmList,
  phaseName,
  StreamTable,
  toJson,
} from '../../src/cli/format.js';

const NOW = new Date('2025-06-01T00:00:00Z');
const ts = (msAgo: number) => ({ seconds: Math.floor((NOW.getTime() - msAgo) / 1000), nanos: 0 });

function vm(id: string, over: Partial<Vm__Output['status'] & object> = {}): Vm__Output {
  return {
    spec: { id, labels: {}, vcpus: 1, memoryMib: 256, kernel: null, disks: [], nics: [], cpuLimitMillicores: 0, runStrategy: 'RUN_STRATEGY_MANUAL', watchdog: null, firmware: null, cloudInit: null },
    status: {
      phase: 'PHASE_RUNNING',
      reason: '',
      pid: 0,
      nics: [],
      createdAt: ts(90_000),
      startedAt: null,
      stoppedAt: null,
      lastTransitionAt: null,
      disks: [],
      accelerator: '',
      node: '',
      generation: 1,
      uid: 0,
      cgroup: '',
      restartCount: 0,
      nextRestartAt: null,
      guest: null,
      ...over,
    },
  };
}

describe('alignTable', () => {
  it('pads every column but the last to its widest cell, three spaces apart', () => {
    expect(alignTable([['A', 'BB', 'C'], ['long', 'x', 'tail text'], ['m', '', '']])).toBe('A      BB   C\nlong   x    tail text\nm\n');
  });
});

describe('StreamTable', () => {
  it('grows columns as wider cells arrive and never shrinks them', () => {
    const t = new StreamTable([4, 2]);
    expect(t.line(['T', 'ID', 'P'])).toBe('T      ID   P\n');
    expect(t.line(['T', 'longer-id', 'P'])).toBe('T      longer-id   P\n');
    expect(t.line(['T', 'x', 'P'])).toBe('T      x           P\n');
  });
});

describe('formatAge', () => {
  it.each([
    [0, '0s'],
    [59_000, '59s'],
    [119_000, '119s'],
    [125_000, '2m5s'],
    [180_000, '3m'],
    [47 * 60_000, '47m'],
    [(5 * 60 + 12) * 60_000, '5h12m'],
    [30 * 3600_000, '30h'],
    [(3 * 24 + 4) * 3600_000, '3d4h'],
    [12 * 86400_000, '12d'],
    [1100 * 86400_000, '3y'],
    [-5000, '0s'],
  ])('%i ms → %s', (ms, text) => {
    expect(formatAge(ms)).toBe(text);
  });
});

describe('small formatters', () => {
  it('memory, phases and action lines', () => {
    expect(formatMemoryMib(512)).toBe('512MiB');
    expect(formatMemoryMib(2048)).toBe('2GiB');
    expect(formatMemoryMib(1536)).toBe('1536MiB');
    expect(formatMemoryMib(24103)).toBe('23.5GiB');
    expect(phaseName('PHASE_MIGRATING')).toBe('Migrating');
    expect(actionLine('a', 'started', vm('a', { pid: 12 }))).toBe('a started: Running (pid 12)\n');
    expect(actionLine('a', 'stopped', vm('a', { phase: 'PHASE_STOPPED', reason: 'guest\npowered off' }))).toBe('a stopped: Stopped (guest powered off)\n');
  });
});

describe('formatVmList', () => {
  it('prints ID PHASE VCPUS MEMORY PID AGE REASON, sorted, aligned', () => {
    const out = formatVmList([vm('zeta', { pid: 31337 }), vm('alpha', { phase: 'PHASE_FAILED', reason: 'QEMU exited', createdAt: ts(3 * 86400_000) })], NOW);
    expect(out).toBe(
      ['ID      PHASE     VCPUS   MEMORY   PID     AGE   REASON', 'alpha   Failed    1       256MiB   -       3d    QEMU exited', 'zeta    Running   1       256MiB   31337   90s', ''].join('\n'),
    );
  });
});

describe('formatVmDetail', () => {
  it('names each disk bus: scsi, sata, cdrom, virtio by default', () => {
    const v = vm('web', {});
    const disk = { imagePath: '/img/x', overlay: false, readonly: false, format: '', bus: 'DISK_BUS_UNSPECIFIED' as const, bootOrder: 0, cdrom: false };
    v.spec!.disks = [
      { ...disk, name: 'a', bus: 'DISK_BUS_SCSI' },
      { ...disk, name: 'b', bus: 'DISK_BUS_SATA' },
      { ...disk, name: 'c', bus: 'DISK_BUS_SATA', cdrom: true, readonly: true },
      { ...disk, name: 'd' },
    ];
    const rows = formatVmDetail(v, NOW).split('\n').filter((l) => /^ {2}[abcd] /.test(l));
    expect(rows.map((l) => l.trim().split(/\s+/)[4])).toEqual(['scsi', 'sata', 'cdrom', 'virtio']);
  });

  it('shows status, disks and NICs joined by name', () => {
    const v = vm('web', { pid: 9, accelerator: 'tcg', disks: [{ name: 'root', path: '/run/web/root.qcow2', format: 'qcow2' }], nics: [{ name: 'eth0', tap: 'tap9', mac: '52:54:00:00:00:09', bridge: 'br0', pciPort: 0 }] });
    v.spec!.labels = { b: '2', a: '1' };
    v.spec!.disks = [{ name: 'root', imagePath: '/img/base.qcow2', overlay: true, readonly: false, format: '', bus: 'DISK_BUS_UNSPECIFIED', bootOrder: 0, cdrom: false }];
    v.spec!.nics = [{ name: 'eth0', bridge: 'br0', mac: '', model: 'NIC_MODEL_UNSPECIFIED' }];
    const out = formatVmDetail(v, NOW);
    expect(out).toMatch(/^Labels:\s+a=1,b=2$/m);
    expect(out).toMatch(/^Boot:\s+first disk$/m);
    expect(out).toMatch(/^Accelerator:\s+tcg$/m);
    expect(out).toMatch(/^Started:\s+-$/m);
    expect(out).toContain('Disks:\n  NAME   IMAGE             OVERLAY   READONLY   BUS      FORMAT   PATH\n  root   /img/base.qcow2   yes       no         virtio   qcow2    /run/web/root.qcow2\n');
    expect(out).toContain('NICs:\n  NAME   BRIDGE   MAC                 TAP\n  eth0   br0      52:54:00:00:00:09   tap9\n');
    expect(out).toMatch(/^Firmware:\s+BIOS$/m);
    expect(out).toMatch(/^Guest agent:\s+not connected$/m);
    expect(out).not.toContain('Guest interfaces');
  });

  it('shows the firmware, and what the guest agent reports with the guest IPs', () => {
    const guest = {
      agentConnected: true,
      osName: 'Debian GNU/Linux',
      osVersion: '12',
      kernelRelease: '6.1.0-57-cloud-amd64',
      hostname: 'web',
      interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:01', ipAddresses: ['10.0.0.5', 'fe80::1'] }],
    };
    const v = vm('web', { guest });
    v.spec!.firmware = { type: 'FIRMWARE_TYPE_UEFI', secureBoot: true };
    const out = formatVmDetail(v, NOW);
    expect(out).toMatch(/^Firmware:\s+UEFI, Secure Boot$/m);
    expect(out).toMatch(/^Guest agent:\s+connected$/m);
    expect(out).toMatch(/^Guest OS:\s+Debian GNU\/Linux 12$/m);
    expect(out).toMatch(/^Guest hostname:\s+web$/m);
    expect(out).toContain('Guest interfaces:\n  NAME   MAC                 IP ADDRESSES\n  eth0   02:00:00:00:00:01   10.0.0.5,fe80::1\n');
  });
});

describe('formatNodeInfo', () => {
  it('shows accelerator with reason and the resource table', () => {
    const info: NodeInfo__Output = {
      hostname: 'h1',
      accelerator: 'tcg',
      acceleratorReason: '/dev/kvm is missing',
      qemuVersion: '8.2.2',
      vmletVersion: '0.1.0',
      capacity: { cpus: 4, memoryMib: 8192 },
      allocatable: { cpus: 40, memoryMib: 7680 },
      allocated: { cpus: 2, memoryMib: 1024 },
      cpuOvercommitRatio: 10,
      memoryOvercommitRatio: 1,
      vmCount: 2,
    };
    const out = formatNodeInfo(info);
    expect(out).toMatch(/^Accelerator:\s+tcg \(\/dev\/kvm is missing\)$/m);
    expect(out).toMatch(/^QEMU version:\s+8\.2\.2$/m);
    expect(out).toContain('RESOURCE   CAPACITY   ALLOCATABLE   ALLOCATED\nCPUs       4          40            2\nMemory     8GiB       7680MiB       1GiB\n');
  });
});

describe('toJson', () => {
  it('turns Timestamps into RFC 3339 strings and leaves other fields alone', () => {
    const parsed = JSON.parse(toJson({ status: { createdAt: { seconds: 1735732800, nanos: 500_000_000 }, startedAt: null, pid: 3 } })) as Record<string, Record<string, unknown>>;
    expect(parsed.status).toEqual({ createdAt: '2025-01-01T12:00:00.500Z', startedAt: null, pid: 3 });
    expect(toJson({ t: { seconds: 1735732800, nanos: 1 } }, false)).toBe('{"t":"2025-01-01T12:00:00.000000001Z"}\n');
  });
});
