import { renderFamilies } from '../../src/metrics/exposition.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpClient } from '../../src/qemu/qmp.js';
import { AgentMetrics } from '../../src/metrics/agent-metrics.js';
import { mapBounded, withDeadline } from '../../src/metrics/bounded.js';
import { migrationFiguresFrom, type MigrationRecordLike } from '../../src/metrics/migration-figures.js';
import type { MigrationFiguresSource, ScrapeTarget } from '../../src/metrics/vmi-collector.js';
import { FakeQmpServer, type FakeQmpHandler } from '../support/fake-qmp-server.js';
import { parseMetrics, type MetricLine } from '../support/metrics-text.js';
import { promtoolCheckMetrics } from '../support/prometheus.js';
import { until } from '../support/poll.js';


const series = (lines: MetricLine[], name: string, vm?: string) => lines.filter((l) => l.name === name && (vm === undefined || l.labels.name === vm));
const scrapeErrors = (lines: MetricLine[]) => series(lines, 'vmlet_scrape_errors_total')[0]!.value;

/** 2^64-1 as JSON.parse reads QEMU's 18446744073709551615. */
const UNSET = 2 ** 64;
/** What QEMU 7.2 answers once a Linux guest reported (the figures it never sends are 2^64-1). */
const GUEST_STATS = {
  stats: {
    'stat-htlb-pgalloc': 0,
    'stat-swap-out': 4096,
    'stat-available-memory': 80 * 1024 * 1024,
    'stat-htlb-pgfail': 0,
    'stat-free-memory': 60 * 1024 * 1024,
    'stat-minor-faults': 12345,
    'stat-major-faults': 67,
    'stat-total-memory': 120 * 1024 * 1024,
    'stat-swap-in': 0,
    'stat-disk-caches': UNSET,
  },
  'last-update': 1796447889,
};

/** A QEMU that answers like 7.2 does; the vCPU thread is this test's main thread, so /proc reads work. */
const answering =
  (balloon: boolean): FakeQmpHandler =>
  (cmd) => {
    switch (cmd.execute) {
      case 'qmp_capabilities':
        return { return: {} };
      case 'query-cpus-fast':
        return { return: [{ 'cpu-index': 0, 'thread-id': process.pid, target: 'x86_64' }] };
      case 'query-blockstats':
        return {
          return: [
            {
              device: '',
              'node-name': 'drive-root',
              qdev: '/machine/peripheral/disk-root/virtio-backend',
              stats: { rd_operations: 7, wr_operations: 3, rd_bytes: 4096, wr_bytes: 1024, rd_total_time_ns: 2e9, wr_total_time_ns: 1e9, flush_operations: 1, flush_total_time_ns: 5e6 },
            },
          ],
        };
      case 'query-balloon':
        return balloon ? { return: { actual: 100 * 1024 * 1024 } } : { error: { class: 'DeviceNotActive', desc: 'No balloon device has been activated' } };
      case 'qom-get':
        return balloon ? { return: GUEST_STATS } : { error: { class: 'DeviceNotFound', desc: "Device '/machine/peripheral/balloon0' not found" } };
      default:
        return { error: { class: 'CommandNotFound', desc: `The command ${cmd.execute} has not been found` } };
    }
  };

/** A QEMU whose monitor accepted the connection and then stopped answering. */
const hung: FakeQmpHandler = (cmd) => (cmd.execute === 'qmp_capabilities' ? { return: {} } : undefined);

/** The /proc/<pid>/net/dev of the network namespace the fake QEMUs run in. */
const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3293      31    0    0    0     0          0         0     3293      31    0    0    0     0       0          0
tap-good:     100       1    0    0    0     0          0         0      900       9    0    1    0     0       0          0
tap-hung:       5       1    0    0    0     0          0         0        6       1    0    0    0     0       0          0
`;

describe('per-VM collector against fake QMP servers', () => {
  const servers: Record<string, FakeQmpServer> = {};
  const clients: Record<string, QmpClient> = {};

  beforeAll(async () => {
    servers.good = await FakeQmpServer.start({ handler: answering(true) });
    servers.noballoon = await FakeQmpServer.start({ handler: answering(false) });
    servers.hung = await FakeQmpServer.start({ handler: hung });
    for (const [name, s] of Object.entries(servers)) clients[name] = await QmpClient.connect(s.path);
  });
  afterAll(async () => {
    for (const c of Object.values(clients)) c.close();
    for (const s of Object.values(servers)) await s.stop();
  });

  const target = (id: string, over: Partial<ScrapeTarget> = {}): ScrapeTarget => ({
    id,
    labels: { 'app.kubernetes.io/name': 'web' },
    phase: 'Running',
    vcpus: 1,
    memoryBytes: 128 * 1024 * 1024,
    createdAt: '2026-01-02T03:04:05.678Z',
    lastTransitionAt: '2026-01-02T03:05:00.000Z',
    qemu: { pid: process.pid, qmp: clients[id]! },
    nics: [{ name: 'eth0', tap: `tap-${id}`, mac: '02:00:00:00:00:01' }],
    disks: ['root'],
    diskFiles: [],
    ...over,
  });
  const targets = (): ScrapeTarget[] => [target('good'), target('noballoon'), target('hung'), target('off', { phase: 'Stopped', qemu: undefined, nics: [] })];

  function metricsWith(over: { targets?: () => ScrapeTarget[]; readNetDev?: (pid: number) => Promise<string>; migrations?: MigrationFiguresSource; qmpPollMs?: number } = {}) {
    const metrics = new AgentMetrics();
    metrics.collectVms({
      node: 'node-a',
      targets: over.targets ?? targets,
      readNetDev: over.readNetDev ?? (async () => NET_DEV),
      migrations: over.migrations,
      ...(over.qmpPollMs === undefined ? {} : { qmpPollMs: over.qmpPollMs }),
      concurrency: 2,
      vmDeadlineMs: 300,
      // Far beyond the VM deadline: only the per-VM deadline can keep the scrape short.
      qmpTimeoutMs: 10_000,
    });
    return metrics;
  }

  it('kubevirt_vmi_info carries the guest OS the agent reports, and empty labels without an agent', async () => {
    const guestOs = { name: 'Debian GNU/Linux', versionId: '12', kernelRelease: '6.1.0-57-cloud-amd64' };
    const metrics = metricsWith({ targets: () => [target('good', { guestOs }), target('noballoon')] });
    const info = series(parseMetrics(await metrics.render()), 'kubevirt_vmi_info');
    expect(info.map((l) => [l.labels.name, l.labels.guest_os_name, l.labels.guest_os_version_id, l.labels.guest_os_kernel_release])).toEqual([
      ['good', 'Debian GNU/Linux', '12', '6.1.0-57-cloud-amd64'],
      ['noballoon', '', '', ''],
    ]);
  });

  it('guest-agent series: file systems and load for VMs whose agent answered, from its last round, also when QMP hangs', async () => {
    const guest = {
      arch: 'x86_64',
      filesystems: [
        { device: 'vda1', mountPoint: '/', type: 'ext4', totalBytes: 2_000_000_000, usedBytes: 1_200_000_000 },
        { device: 'vda15', mountPoint: '/boot/efi', type: 'vfat', totalBytes: 130_000_000, usedBytes: 6_000_000 },
      ],
      load: { load1m: 1.5, load5m: 0.75, load15m: 0.25 },
    };
    const metrics = metricsWith({
      targets: () => [
        target('good', { guest }),
        // An agent without guest-get-load (qemu-ga before 10.0).
        target('hung', { guest: { arch: 'aarch64', filesystems: guest.filesystems.slice(0, 1) } }),
        target('noballoon'),
      ],
    });
    const lines = parseMetrics(await metrics.render());
    const fs = (name: string) => series(lines, name).map((l) => [l.labels.name, l.labels.disk_name, l.labels.mount_point, l.labels.file_system_type, l.value]);
    expect(fs('kubevirt_vmi_filesystem_capacity_bytes')).toEqual([
      ['good', 'vda1', '/', 'ext4', 2_000_000_000],
      ['good', 'vda15', '/boot/efi', 'vfat', 130_000_000],
      ['hung', 'vda1', '/', 'ext4', 2_000_000_000],
    ]);
    expect(fs('kubevirt_vmi_filesystem_used_bytes')).toEqual([
      ['good', 'vda1', '/', 'ext4', 1_200_000_000],
      ['good', 'vda15', '/boot/efi', 'vfat', 6_000_000],
      ['hung', 'vda1', '/', 'ext4', 1_200_000_000],
    ]);
    for (const [window, value] of [['1m', 1.5], ['5m', 0.75], ['15m', 0.25]] as const) {
      expect(series(lines, `kubevirt_vmi_guest_load_${window}`).map((l) => [l.labels.name, l.labels.namespace, l.value])).toEqual([['good', 'default', value]]);
    }
    const info = series(lines, 'kubevirt_vmi_info').map((l) => [l.labels.name, l.labels.guest_os_arch, l.labels.guest_os_machine]);
    expect(info).toEqual([
      ['good', 'x86_64', 'q35'],
      ['hung', 'aarch64', 'q35'],
      ['noballoon', '', 'q35'],
    ]);
  });

  it('kubevirt_vmi_status_addresses: each NIC with the IP the agent reports for its MAC, and the guest-only interfaces', async () => {
    const metrics = metricsWith({
      targets: () => [
        target('good', {
          guestInterfaces: [
            { name: 'enp1s0', mac: '02:00:00:00:00:01', ipAddresses: ['10.0.0.5', 'fe80::1'] },
            { name: 'docker0', mac: '02:42:00:00:00:01', ipAddresses: ['172.17.0.1'] },
            { name: 'dummy0', mac: '', ipAddresses: [] },
          ],
        }),
        target('noballoon'),
      ],
    });
    const lines = series(parseMetrics(await metrics.render()), 'kubevirt_vmi_status_addresses');
    expect(lines.map((l) => [l.labels.name, l.labels.vnic_name, l.labels.interface_name, l.labels.address, l.labels.type, l.value])).toEqual([
      ['good', 'eth0', 'enp1s0', '10.0.0.5', 'ExternalInterface', 1],
      ['good', '', 'docker0', '172.17.0.1', 'ExternalInterface', 1],
      ['good', '', 'dummy0', '', 'SystemInterface', 1],
      // Without an agent KubeVirt still lists the spec's interface, without an address.
      ['noballoon', 'eth0', '', '', 'SystemInterface', 1],
    ]);
  });

  it('a VM whose QMP never answers costs only its own series and one scrape error per scrape', async () => {
    const metrics = metricsWith();
    const started = Date.now();
    const text = await metrics.render();
    expect(Date.now() - started).toBeLessThan(5000);
    const lines = parseMetrics(text);

    // A stopped VM has no VMI in KubeVirt's terms: kubevirt_vm_info only.
    expect(series(lines, 'kubevirt_vmi_info').map((l) => [l.labels.name, l.labels.phase])).toEqual([
      ['good', 'running'],
      ['hung', 'running'],
      ['noballoon', 'running'],
    ]);
    expect(series(lines, 'kubevirt_vm_info').map((l) => [l.labels.name, l.labels.status, l.labels.status_group])).toEqual([
      ['good', 'running', 'running'],
      ['hung', 'running', 'running'],
      ['noballoon', 'running', 'running'],
      ['off', 'stopped', 'non_running'],
    ]);
    for (const vm of ['good', 'noballoon']) {
      expect(series(lines, 'kubevirt_vmi_cpu_usage_seconds_total', vm)).toHaveLength(1);
      expect(series(lines, 'kubevirt_vmi_memory_resident_bytes', vm)[0]!.value).toBeGreaterThan(0);
      expect(series(lines, 'kubevirt_vmi_vcpu_seconds_total', vm).map((l) => [l.labels.id, l.labels.state])).toEqual([['0', 'running']]);
      expect(series(lines, 'kubevirt_vmi_storage_iops_read_total', vm).map((l) => [l.labels.drive, l.value])).toEqual([['root', 7]]);
    }
    expect(lines.filter((l) => l.labels.name === 'hung' && l.name.startsWith('kubevirt_vmi_')).map((l) => l.name).sort()).toEqual(
      [
        'kubevirt_vmi_info',
        'kubevirt_vmi_non_evictable',
        'kubevirt_vmi_memory_domain_bytes',
        'kubevirt_vmi_status_addresses',
        // TAP counters come from the kernel, not from QEMU: they stay.
        ...['receive', 'transmit'].flatMap((d) => ['bytes', 'packets', 'errors', 'packets_dropped'].map((k) => `kubevirt_vmi_network_${d}_${k}_total`)),
      ].sort(),
    );
    expect(lines.filter((l) => l.labels.name === 'off' && !l.name.startsWith('kubevirt_vm_'))).toEqual([]);
    expect(scrapeErrors(lines)).toBe(1);

    expect(scrapeErrors(parseMetrics(await metrics.render()))).toBe(2);
    expect(await promtoolCheckMetrics(text)).toEqual({ code: 0, problems: '' });
  });

  it('every per-VM series carries name, namespace, node and the sanitised VM labels; units as KubeVirt has them', async () => {
    const lines = parseMetrics(await metricsWith().render());
    const good = lines.filter((l) => l.labels.name === 'good' && l.name.startsWith('kubevirt_vmi_'));
    expect(good.length).toBeGreaterThan(20);
    for (const l of good) {
      expect(l.labels).toMatchObject({ name: 'good', namespace: 'default', node: 'node-a', kubernetes_vmi_label_app_kubernetes_io_name: 'web' });
    }
    // virt-controller's VM family has KubeVirt's label set, nothing more.
    for (const l of lines.filter((x) => x.labels.name === 'good' && x.name.startsWith('kubevirt_vm_'))) {
      expect(l.labels).toMatchObject({ name: 'good', namespace: 'default' });
      expect(l.labels).not.toHaveProperty('node');
    }
    const one = (name: string, extra: Record<string, string> = {}) =>
      series(lines, name, 'good').filter((l) => Object.entries(extra).every(([k, v]) => l.labels[k] === v))[0]?.value;
    expect(one('kubevirt_vmi_memory_domain_bytes')).toBe(128 * 1024 * 1024);
    // The balloon is never inflated: its size is the guest's memory, without a query-balloon.
    expect(one('kubevirt_vmi_memory_actual_balloon_bytes')).toBe(128 * 1024 * 1024);
    expect(one('kubevirt_vmi_storage_read_times_seconds_total', { drive: 'root' })).toBe(2);
    expect(one('kubevirt_vmi_storage_flush_times_seconds_total', { drive: 'root' })).toBe(0.005);
    expect(one('kubevirt_vmi_storage_read_traffic_bytes_total', { drive: 'root' })).toBe(4096);
    // The TAP transmitted 900 bytes: the guest received them.
    expect(one('kubevirt_vmi_network_receive_bytes_total', { interface: 'eth0' })).toBe(900);
    expect(one('kubevirt_vmi_network_transmit_bytes_total', { interface: 'eth0' })).toBe(100);
    expect(one('kubevirt_vmi_network_receive_packets_dropped_total', { interface: 'eth0' })).toBe(1);
    const user = one('kubevirt_vmi_cpu_user_usage_seconds_total')!;
    const system = one('kubevirt_vmi_cpu_system_usage_seconds_total')!;
    expect(one('kubevirt_vmi_cpu_usage_seconds_total')).toBeCloseTo(user + system, 6);
  });

  it('no balloon device is not an error: the balloon series is just absent', async () => {
    const lines = parseMetrics(await metricsWith({ targets: () => [target('noballoon')] }).render());
    expect(series(lines, 'kubevirt_vmi_memory_actual_balloon_bytes')).toEqual([]);
    expect(series(lines, 'kubevirt_vmi_memory_resident_bytes', 'noballoon')).toHaveLength(1);
    expect(scrapeErrors(lines)).toBe(0);
  });

  it('unreadable TAP counters are one scrape error; the QEMU figures stay', async () => {
    const lines = parseMetrics(
      await metricsWith({
        targets: () => [target('good')],
        readNetDev: () => Promise.reject(new Error("ENOENT: no such file or directory, open '/proc/1234/net/dev'")),
      }).render(),
    );
    expect(lines.filter((l) => l.name.startsWith('kubevirt_vmi_network_'))).toEqual([]);
    expect(series(lines, 'kubevirt_vmi_cpu_usage_seconds_total', 'good')).toHaveLength(1);
    expect(scrapeErrors(lines)).toBe(1);
  });

  it('a scrape sends only query commands (it never changes a VM)', async () => {
    await metricsWith().render();
    for (const s of Object.values(servers)) {
      for (const name of s.commandNames()) expect(name).toMatch(/^(qmp_capabilities|query-[a-z-]+|qom-get)$/);
    }
    expect(servers.good!.commandNames()).toEqual(expect.arrayContaining(['query-cpus-fast', 'query-blockstats', 'qom-get']));
    expect(servers.good!.commandNames()).not.toContain('query-balloon');
  });

  it('only the first scrape of a QEMU waits for QMP; later ones show what the poll read, the vCPU threads asked once', async () => {
    const metrics = metricsWith({ targets: () => [target('good')] });
    const count = (command: string) => servers.good!.commandNames().filter((c) => c === command).length;
    const [cpus, blocks, stats] = [count('query-cpus-fast'), count('query-blockstats'), count('qom-get')];
    await metrics.vmi!.collect();
    expect([count('query-cpus-fast'), count('query-blockstats'), count('qom-get')]).toEqual([cpus + 1, blocks + 1, stats + 1]);
    const second = await metrics.vmi!.collect();
    // The poll interval (10 s) has not passed: nothing more was sent.
    expect([count('query-cpus-fast'), count('query-blockstats'), count('qom-get')]).toEqual([cpus + 1, blocks + 1, stats + 1]);
    expect(renderFamilies(second)).toMatch(/kubevirt_vmi_vcpu_seconds_total\{[^}]*name="good"/);
    expect(renderFamilies(second)).toMatch(/kubevirt_vmi_memory_usable_bytes\{[^}]*name="good"/);
    expect(renderFamilies(second)).toMatch(/kubevirt_vmi_storage_iops_read_total\{[^}]*name="good"[^}]*\} 7/);
    metrics.vmi!.stop();
  });

  it('the poll keeps reading each QEMU at its interval, and a scrape shows its latest figures', async () => {
    let reads = 0;
    const server = await FakeQmpServer.start({
      handler: (cmd, conn) =>
        cmd.execute === 'query-blockstats'
          ? { return: [{ device: '', qdev: '/machine/peripheral/disk-root/virtio-backend', stats: { rd_operations: ++reads } }] }
          : answering(true)(cmd, conn),
    });
    const qmp = await QmpClient.connect(server.path);
    try {
      const metrics = metricsWith({ targets: () => [target('good', { qemu: { pid: process.pid, qmp } })], qmpPollMs: 20 });
      const iops = async () => series(parseMetrics(await metrics.render()), 'kubevirt_vmi_storage_iops_read_total')[0]!.value;
      expect(await iops()).toBe(1);
      await until('the poll read again', async () => (reads >= 3 ? true : undefined), 10_000, 10);
      expect(await iops()).toBeGreaterThanOrEqual(3);
      expect(server.commandNames().filter((c) => c === 'query-cpus-fast')).toHaveLength(1);
      metrics.vmi!.stop();
    } finally {
      qmp.close();
      await server.stop();
    }
  });

  it('scrapes that overlap share one read', async () => {
    const metrics = metricsWith({ targets: () => [target('good')] });
    const before = servers.good!.commandNames().filter((c) => c === 'query-cpus-fast').length;
    const [a, b] = await Promise.all([metrics.vmi!.collect(), metrics.vmi!.collect()]);
    expect(a).toBe(b);
    expect(servers.good!.commandNames().filter((c) => c === 'query-cpus-fast').length).toBe(before + 1);
  });

  it('migration series appear only when a migration source is plugged in and knows the VM', async () => {
    const names = (text: string) => parseMetrics(text).filter((l) => l.name.startsWith('kubevirt_vmi_migration_'));
    expect(names(await metricsWith().render())).toEqual([]);
    const source: MigrationFiguresSource = {
      migrationFigures: (id) =>
        id === 'off'
          ? { uid: 'mig-1', dataTotalBytes: 15, dataProcessedBytes: 10, dataRemainingBytes: 5, succeeded: true, failed: false, startedAtSeconds: 1000, endedAtSeconds: 1007 }
          : undefined,
    };
    const metrics = metricsWith({ migrations: source });
    const text = await metrics.render();
    const migrationLines = names(text);
    expect(migrationLines.map((l) => [l.name, l.labels.name ?? l.labels.vmi, l.value])).toEqual([
      ['kubevirt_vmi_migration_start_time_seconds', 'off', 1000],
      ['kubevirt_vmi_migration_end_time_seconds', 'off', 1007],
      ['kubevirt_vmi_migration_succeeded', 'off', 1],
      ['kubevirt_vmi_migration_data_bytes_total', 'off', 15],
      ['kubevirt_vmi_migration_data_processed_bytes', 'off', 10],
      ['kubevirt_vmi_migration_data_remaining_bytes', 'off', 5],
    ]);
    // virt-controller's labels on the outcome, and on the times the migration's name.
    expect(migrationLines[2]!.labels).toEqual({ vmi: 'off', vmim: 'mig-1', namespace: 'default' });
    expect(migrationLines[1]!.labels).toMatchObject({ name: 'off', namespace: 'default', node: 'node-a', migration_name: 'mig-1', status: 'succeeded' });
    expect(await promtoolCheckMetrics(text)).toEqual({ code: 0, problems: '' });
  });

  it('the whole exposition, default process metrics included, passes promtool', async () => {
    const metrics = metricsWith();
    metrics.buildInfo.set({ version: '0.1.0', qemu_version: '7.2.22', accelerator: 'tcg' }, 1);
    metrics.observeGrpc('/vmlet.v1.VmService/GetVm', 'OK', 0.002);
    metrics.observeQmp('query-status', 0.001);
    metrics.operationDuration.observe({ operation: 'start', result: 'ok' }, 1.5);
    const text = await metrics.render();
    expect(text).toContain('process_cpu_seconds_total');
    expect(text).not.toContain('nodejs_active_handles_total');
    expect(await promtoolCheckMetrics(text)).toEqual({ code: 0, problems: '' });
  });
});

describe('migrationFiguresFrom', () => {
  const common = { dataTotalBytes: 100, startedAt: 1_000_500, totalTimeMs: 2_000 };
  const records: Record<string, MigrationRecordLike> = {
    a: { uid: 'u-a', phase: 'Running', dataProcessedBytes: 10, dataRemainingBytes: 90, ...common },
    b: { uid: 'u-b', phase: 'Succeeded', dataProcessedBytes: 100, dataRemainingBytes: 0, ...common },
    c: { uid: 'u-c', phase: 'Failed', dataProcessedBytes: 5, dataRemainingBytes: 95, ...common },
    d: { uid: 'u-d', phase: 'Cancelled', dataProcessedBytes: 1, dataRemainingBytes: 2, ...common },
  };
  const source = migrationFiguresFrom({ get: (id) => records[id] });
  const figures = { dataTotalBytes: 100, startedAtSeconds: 1000 };

  it.each([
    ['a', { uid: 'u-a', dataProcessedBytes: 10, dataRemainingBytes: 90, succeeded: false, failed: false, ...figures }],
    ['b', { uid: 'u-b', dataProcessedBytes: 100, dataRemainingBytes: 0, succeeded: true, failed: false, endedAtSeconds: 1002, ...figures }],
    ['c', { uid: 'u-c', dataProcessedBytes: 5, dataRemainingBytes: 95, succeeded: false, failed: true, endedAtSeconds: 1002, ...figures }],
    ['d', { uid: 'u-d', dataProcessedBytes: 1, dataRemainingBytes: 2, succeeded: false, failed: false, endedAtSeconds: 1002, ...figures }],
  ])('%s → %j', (id, figures) => {
    expect(source.migrationFigures(id)).toEqual(figures);
  });

  it('a VM that never migrated has no figures', () => {
    expect(source.migrationFigures('never')).toBeUndefined();
  });
});

describe('mapBounded / withDeadline', () => {
  it('never runs more than the limit at once, and keeps the input order', async () => {
    let active = 0;
    let max = 0;
    const out = await mapBounded([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 3, async (n) => {
      active++;
      max = Math.max(max, active);
      await new Promise((r) => setImmediate(r));
      active--;
      return n * 2;
    });
    expect(max).toBe(3);
    expect(out).toEqual([2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
  });

  it('handles no items and a limit beyond the items', async () => {
    expect(await mapBounded([], 4, async () => 1)).toEqual([]);
    expect(await mapBounded([1], 4, async (n) => n)).toEqual([1]);
  });

  it('withDeadline gives up with DEADLINE_EXCEEDED on a promise that never settles', async () => {
    await expect(withDeadline(new Promise(() => undefined), 20, 'reading VM x')).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED', message: expect.stringContaining('reading VM x') });
    expect(await withDeadline(Promise.resolve(5), 1000, 'x')).toBe(5);
  });
});
