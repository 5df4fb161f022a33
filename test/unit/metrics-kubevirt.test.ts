/** The pure parts behind the series vmlet shares with KubeVirt: status mapping, guest memory, the VM family, disk sizes, panics. */
import { EventEmitter } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseDaemonArgs } from '../../src/config.js';
import { AgentMetrics } from '../../src/metrics/agent-metrics.js';
import { DiskSizes, devNumbers, qcow2VirtualSize } from '../../src/metrics/disk-size.js';
import { guestMemory } from '../../src/metrics/guest-memory.js';
import { panicLabels } from '../../src/metrics/guest-panic.js';
import { statusGroup, vmiPhase, vmStatus } from '../../src/metrics/kubevirt-status.js';
import { parseSchedWaitSeconds } from '../../src/metrics/procfs.js';
import { vmFamilySamples, type VmFacts } from '../../src/metrics/vm-family.js';
import { PHASES, type Phase } from '../../src/model/vm.js';
import type { VmManager } from '../../src/vm/manager.js';
import { parseMetrics } from '../support/metrics-text.js';

describe('vmlet phases in KubeVirt\'s words', () => {
  it.each<[Phase, string | undefined, string, string | undefined]>([
    ['Pending', 'stopped', 'non_running', undefined],
    ['Starting', 'starting', 'starting', 'scheduled'],
    ['Running', 'running', 'running', 'running'],
    ['Paused', 'paused', 'non_running', 'running'],
    ['Stopping', 'stopping', 'non_running', 'running'],
    ['Stopped', 'stopped', 'non_running', undefined],
    ['Migrating', 'migrating', 'migrating', 'running'],
    ['Incoming', undefined, '', undefined],
    ['Failed', 'stopped', 'non_running', 'failed'],
    ['Deleting', 'terminating', 'non_running', undefined],
  ])('%s → VM status %s (%s), VMI phase %s', (phase, status, group, vmi) => {
    expect(vmStatus(phase)).toBe(status);
    if (status !== undefined) expect(statusGroup(status)).toBe(group);
    expect(vmiPhase(phase)).toBe(vmi);
  });

  it('covers every phase; KubeVirt statuses vmlet never has still fall in their groups', () => {
    expect(PHASES.length).toBe(10);
    expect(statusGroup('crashloopbackoff')).toBe('error');
    expect(statusGroup('provisioning')).toBe('starting');
    expect(statusGroup('whatever')).toBe('<unknown>');
  });
});

describe('guestMemory (the balloon\'s guest-stats)', () => {
  it('maps QEMU\'s names to KubeVirt\'s figures and leaves out what the guest did not report (2^64-1)', () => {
    const answer = JSON.parse(
      '{"stats": {"stat-htlb-pgalloc": 0, "stat-swap-out": 8192, "stat-available-memory": 73400320, "stat-htlb-pgfail": 0, "stat-free-memory": 52428800, "stat-minor-faults": 1234, "stat-major-faults": 5, "stat-total-memory": 125829120, "stat-swap-in": 4096, "stat-disk-caches": 18446744073709551615}, "last-update": 1796447889}',
    ) as unknown;
    expect(guestMemory(answer)).toEqual({
      availableBytes: 125829120,
      usableBytes: 73400320,
      unusedBytes: 52428800,
      swapInBytes: 4096,
      swapOutBytes: 8192,
      majorFaults: 5,
      minorFaults: 1234,
    });
  });

  it('nothing before the guest\'s first report, nor from a wrong answer', () => {
    expect(guestMemory({ stats: { 'stat-total-memory': 1 }, 'last-update': 0 })).toBeUndefined();
    expect(guestMemory(undefined)).toBeUndefined();
    expect(guestMemory('x')).toBeUndefined();
    expect(guestMemory({ 'last-update': 5 })).toBeUndefined();
  });
});

describe('vmFamilySamples (kubevirt_vm_*)', () => {
  const vm: VmFacts = {
    id: 'web-1',
    namespace: 'team-a',
    labels: { 'vm.kubevirt.io/os': 'fedora', tier: 'web' },
    phase: 'Paused',
    vcpus: 4,
    memoryBytes: 2 * 1024 ** 3,
    cpuLimitCores: 2.5,
    createdAt: '2026-01-02T03:04:05.900Z',
    lastTransitionAt: '2026-01-02T04:00:00.000Z',
    diskSizes: new Map([['root', { bytes: 10 * 1024 ** 3, volumeMode: 'Filesystem' as const }]]),
  };
  const byKey = (facts: VmFacts) => {
    const out = new Map<string, { labels: Record<string, string>; value: number }[]>();
    for (const s of vmFamilySamples(facts)) out.set(s.key, [...(out.get(s.key) ?? []), { labels: { ...s.labels }, value: s.value }]);
    return out;
  };

  it('info, requests, limits, timestamps and disks with KubeVirt\'s labels', () => {
    const s = byKey(vm);
    const id = { name: 'web-1', namespace: 'team-a' };
    expect(s.get('vmInfo')).toEqual([
      { labels: { ...id, os: 'fedora', workload: '', flavor: '', machine_type: 'q35', instance_type: '', preference: '', status: 'paused', status_group: 'non_running' }, value: 1 },
    ]);
    const requests = s.get('vmResourceRequests')!.map((r) => [r.labels.resource, r.labels.unit, r.labels.source, r.value]);
    expect(requests).toEqual([
      ['cpu', 'cores', 'domain', 1],
      ['cpu', 'threads', 'domain', 1],
      ['cpu', 'sockets', 'domain', 4],
      ['cpu', 'cores', 'guest_effective', 4],
      ['memory', 'bytes', 'guest', 2 * 1024 ** 3],
      ['memory', 'bytes', 'guest_effective', 2 * 1024 ** 3],
    ]);
    expect(s.get('vmResourceLimits')).toEqual([{ labels: { ...id, resource: 'cpu', unit: 'cores' }, value: 2.5 }]);
    const entered = Date.parse(vm.lastTransitionAt) / 1000;
    expect(s.get('vmNonRunningSince')).toEqual([{ labels: id, value: entered }]);
    for (const k of ['vmStartingSince', 'vmRunningSince', 'vmMigratingSince', 'vmErrorSince']) expect(s.get(k)).toEqual([{ labels: id, value: 0 }]);
    expect(s.get('vmCreated')).toEqual([{ labels: id, value: Math.floor(Date.parse(vm.createdAt) / 1000) }]);
    expect(s.get('vmDiskAllocated')).toEqual([{ labels: { ...id, persistentvolumeclaim: '', volume_mode: 'Filesystem', device: 'root' }, value: 10 * 1024 ** 3 }]);
  });

  it('no CPU limit, no limit series; an Incoming VM is left to its source node', () => {
    expect(byKey({ ...vm, cpuLimitCores: undefined }).get('vmResourceLimits')).toBeUndefined();
    expect(vmFamilySamples({ ...vm, phase: 'Incoming' })).toEqual([]);
  });
});

describe('disk sizes', () => {
  it('a qcow2 header gives its virtual size; anything else is refused', () => {
    const header = Buffer.alloc(32);
    header.writeUInt32BE(0x514649fb, 0);
    header.writeBigUInt64BE(5n * 1024n ** 3n, 24);
    expect(qcow2VirtualSize(header)).toBe(5 * 1024 ** 3);
    expect(() => qcow2VirtualSize(Buffer.alloc(32))).toThrow(/not a qcow2/);
  });

  it('dev_t → major:minor as Linux encodes it', () => {
    expect(devNumbers(0x0801)).toEqual({ major: 8, minor: 1 });
    expect(devNumbers(259 * 256 + 3)).toEqual({ major: 259, minor: 3 });
  });

  it('reads a raw file\'s size and a qcow2\'s virtual size, and again after a change', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vmlet-disk-size-'));
    try {
      const raw = join(dir, 'a.raw');
      await writeFile(raw, Buffer.alloc(8192));
      const qcow = join(dir, 'b.qcow2');
      const header = Buffer.alloc(512);
      header.writeUInt32BE(0x514649fb, 0);
      header.writeBigUInt64BE(3n * 1024n ** 3n, 24);
      await writeFile(qcow, header);
      const sizes = new DiskSizes();
      expect(await sizes.read(raw, 'raw')).toEqual({ bytes: 8192, volumeMode: 'Filesystem' });
      expect(await sizes.read(qcow, 'qcow2')).toEqual({ bytes: 3 * 1024 ** 3, volumeMode: 'Filesystem' });
      await writeFile(raw, Buffer.alloc(16384));
      expect((await sizes.read(raw, 'raw')).bytes).toBe(16384);
      await expect(sizes.read(join(dir, 'gone'), 'raw')).rejects.toThrow(/ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('guest panics and vCPU wait', () => {
  it('panic labels: the info type and Hyper-V\'s bugcheck code, else unknown', () => {
    expect(panicLabels({ id: 'w', detail: { action: 'pause' } }, 'ns')).toEqual({ namespace: 'ns', name: 'w', type: 'unknown', bugcheck_code: 'unknown' });
    expect(panicLabels({ id: 'w', detail: { action: 'pause', info: { type: 'hyper-v', arg1: 0x9f, arg2: 3 } } }, 'ns')).toEqual({
      namespace: 'ns',
      name: 'w',
      type: 'hyper-v',
      bugcheck_code: '0x9f',
    });
  });

  it('wait_sum of a sched file in seconds; 0 when the kernel keeps no schedstats', () => {
    expect(parseSchedWaitSeconds('qemu (1, #threads: 3)\n---\nse.exec_start   :   1.0\nse.statistics.wait_sum   :   2500.250000\n')).toBeCloseTo(2.50025, 9);
    expect(parseSchedWaitSeconds('wait_sum                                     :          1000.000000\n')).toBe(1);
    expect(parseSchedWaitSeconds('se.exec_start : 44747634.225227\nse.vruntime : 10388.021599\n')).toBe(0);
  });
});

describe('phase transition histograms with KubeVirt\'s semantics', () => {
  it('a run is a VMI: phase is the VMI phase entered, last_phase the one left; from creation counts from the start of the run', async () => {
    const m = new AgentMetrics();
    const t = (id: string, from: Phase, to: Phase, now: number) => m.observeTransition({ id, from, to, reason: '', seconds: 999 }, now);
    t('a', 'Pending', 'Starting', 10_000);
    t('a', 'Starting', 'Running', 11_500);
    t('a', 'Running', 'Paused', 20_000); // still a Running VMI
    t('a', 'Paused', 'Running', 30_000);
    t('a', 'Running', 'Stopped', 71_500);
    // A new run starts its own clock; its VMI leaves this node by migration: no end observed.
    t('a', 'Stopped', 'Starting', 171_500);
    t('a', 'Starting', 'Running', 172_200);
    t('a', 'Running', 'Migrating', 180_000);
    t('a', 'Migrating', 'Deleting', 190_000);
    // The target side continues the source's run; a start that fails ends Failed.
    t('b', 'Incoming', 'Running', 0);
    t('c', 'Stopped', 'Starting', 0);
    t('c', 'Starting', 'Failed', 2_000);
    const lines = parseMetrics(await m.registry.metrics());
    const sums = (name: string) => lines.filter((l) => l.name === name).map((l) => [l.labels.phase, l.labels.last_phase, l.value]);
    expect(sums('kubevirt_vmi_phase_transition_time_seconds_sum')).toEqual([
      ['Running', 'Scheduled', 2.2],
      ['Succeeded', 'Running', 60],
      ['Failed', 'Scheduled', 2],
    ]);
    expect(sums('kubevirt_vmi_phase_transition_time_seconds_count').map((x) => x[2])).toEqual([2, 1, 1]);
    expect(sums('kubevirt_vmi_phase_transition_time_from_creation_seconds_sum')).toEqual([
      ['Running', undefined, 2.2],
      ['Succeeded', undefined, 61.5],
      ['Failed', undefined, 2],
    ]);
  });
});

describe('guest panics from the manager\'s panic events', () => {
  it('count per VM with the VM\'s namespace', async () => {
    const manager = Object.assign(new EventEmitter(), {
      phaseCounts: () => new Map(),
      list: () => [],
      has: (id: string) => id === 'w',
      record: () => ({ spec: { labels: { 'vmlet.io/namespace': 'team-a' } } }),
      log: undefined,
    });
    const m = new AgentMetrics();
    m.watchManager(manager as unknown as VmManager, { node: 'n', namespace: 'vms' });
    manager.emit('panic', { id: 'w', detail: { action: 'pause' } });
    manager.emit('panic', { id: 'w', detail: { action: 'pause' } });
    manager.emit('panic', { id: 'gone', detail: { action: 'run', info: { type: 'hyper-v', arg1: 0x1e } } });
    const lines = parseMetrics(await m.registry.metrics()).filter((l) => l.name === 'kubevirt_vmi_guest_os_panic_total');
    expect(lines.map((l) => [l.labels.namespace, l.labels.name, l.labels.type, l.labels.bugcheck_code, l.value])).toEqual([
      ['team-a', 'w', 'unknown', 'unknown', 2],
      ['vms', 'gone', 'hyper-v', '0x1e', 1],
    ]);
  });
});

describe('--metrics-namespace', () => {
  it('defaults to default; takes a Kubernetes namespace name; refuses anything else', () => {
    expect(parseDaemonArgs([]).metricsNamespace).toBe('default');
    expect(parseDaemonArgs(['--metrics-namespace', 'team-a']).metricsNamespace).toBe('team-a');
    for (const bad of ['Team', '-a', 'a_b', '', 'x'.repeat(64)]) expect(() => parseDaemonArgs([`--metrics-namespace=${bad}`]), bad).toThrow(ConfigError);
  });
});
