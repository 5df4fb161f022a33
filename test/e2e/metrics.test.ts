/**
 * Metrics end to end: a real daemon in a test network namespace, a real TCG guest with a NIC on
 * a bridge and a disk, /metrics checked by promtool, and a real Prometheus server scraping the
 * daemon every second and answering queries about the guest's CPU and network.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { TestDaemon } from '../support/daemon.js';
import { guestSpec, READY_LINE, waitForFileText } from '../support/guest.js';
import { expectCode, rpc } from '../support/rpc.js';
import { TestNetns } from '../support/netns.js';
import { parseMetrics, type MetricLine } from '../support/metrics-text.js';
import { until } from '../support/poll.js';
import { promtoolCheckMetrics, TestPrometheus, type PromSample } from '../support/prometheus.js';

const ID = 'met-1';
const GUEST_IP = '10.77.0.2';


/** The one value of a series, selected by name and labels; undefined when absent. */
function value(lines: MetricLine[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hits = lines.filter((l) => l.name === name && Object.entries(labels).every(([k, v]) => l.labels[k] === v));
  if (hits.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${hits.length} series`);
  return hits[0]?.value;
}


describe('metrics with a real guest, promtool and a real Prometheus', () => {
  let ns: TestNetns;
  let d: TestDaemon;
  let api: ReturnType<typeof rpc>;
  let prom: TestPrometheus | undefined;
  let tap = '';

  const scrape = async (): Promise<string> => {
    const res = await fetch(`${d.httpAddress}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return res.text();
  };
  const tapStats = async () => {
    const [link] = JSON.parse((await ns.exec('ip', ['-json', '-s', 'link', 'show', 'dev', tap])).stdout) as { stats64: { rx: { bytes: number; packets: number }; tx: { bytes: number; packets: number } } }[];
    return link!.stats64;
  };

  beforeAll(async () => {
    ns = await TestNetns.create('vmlet-m');
    await ns.addBridge('br0', '10.77.0.1/24');
    d = await TestDaemon.start({ extraArgs: ['--netns', ns.name, '--node-name', 'node-m'] });
    api = rpc(d.clients);
    expect(d.httpAddress).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    prom = await TestPrometheus.start([d.httpAddress.slice('http://'.length)]);
  });
  afterAll(async () => {
    await prom?.stop();
    for (const id of [ID, 'met-off']) await api?.delete(id, true).catch(() => undefined);
    await d?.cleanup();
    await ns?.delete();
  });

  it('/healthz and /readyz answer 200 on loopback', async () => {
    const health = await fetch(`${d.httpAddress}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`${d.httpAddress}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
  });

  it('boots a guest on a bridge; the namespace pings it', async () => {
    const image = join(d.root, 'images', 'data.raw');
    await writeFile(image, Buffer.alloc(1024 * 1024));
    const base = guestSpec(ID);
    const vm = await api.create(
      {
        ...base,
        labels: { 'app.kubernetes.io/name': 'metrics-e2e', tier: 'web' },
        kernel: { ...base.kernel!, cmdline: `console=ttyS0 panic=-1 vmlet.ip=${GUEST_IP}/24` },
        nics: [{ name: 'eth0', bridge: 'br0', mac: '' }],
        disks: [{ name: 'data', imagePath: image, overlay: true, readonly: false }],
      },
      true,
    );
    expect(vm.status?.phase).toBe('PHASE_RUNNING');
    tap = vm.status!.nics[0]!.tap;
    await waitForFileText(join(d.stateDir, 'vms', ID, 'console.log'), READY_LINE, 120_000);
    await until('the guest answering ping from the namespace', async () => (await ns.exec('ping', ['-c', '3', '-W', '1', GUEST_IP]), true), 120_000);
  });

  it('/metrics has every per-VM series with KubeVirt names and labels, and passes promtool', async () => {
    const before = (await api.get(ID)).status!.generation;
    const text = await scrape();
    expect(await promtoolCheckMetrics(text)).toEqual({ code: 0, problems: '' });
    const lines = parseMetrics(text);
    const vmLabels = { name: ID, namespace: 'default', node: 'node-m', kubernetes_vmi_label_app_kubernetes_io_name: 'metrics-e2e', kubernetes_vmi_label_tier: 'web' };
    // virt-controller's overhead estimate has KubeVirt's two labels only; the rest are virt-handler's or the VMI's.
    const overhead = 'kubevirt_vmi_launcher_memory_overhead_bytes';
    for (const l of lines.filter((x) => x.labels.name === ID && x.name.startsWith('kubevirt_vmi_') && x.name !== overhead)) expect(l.labels).toMatchObject(vmLabels);
    expect(lines.filter((l) => l.name === overhead).map((l) => l.labels)).toEqual([{ namespace: 'default', name: ID }]);
    expect(value(lines, overhead, { name: ID })).toBeGreaterThan(64 * 1024 * 1024);
    expect(value(lines, 'kubevirt_vm_info', { name: ID, namespace: 'default', status: 'running', status_group: 'running' })).toBe(1);
    expect(value(lines, 'kubevirt_vm_disk_allocated_size_bytes', { name: ID, device: 'data', volume_mode: 'Filesystem' })).toBe(1024 * 1024);

    expect(value(lines, 'kubevirt_vmi_info', { name: ID, phase: 'running' })).toBe(1);
    const cpu = value(lines, 'kubevirt_vmi_cpu_usage_seconds_total', { name: ID })!;
    expect(cpu).toBeGreaterThan(0);
    expect(cpu).toBeCloseTo(value(lines, 'kubevirt_vmi_cpu_user_usage_seconds_total', { name: ID })! + value(lines, 'kubevirt_vmi_cpu_system_usage_seconds_total', { name: ID })!, 6);
    const vcpu = value(lines, 'kubevirt_vmi_vcpu_seconds_total', { name: ID, id: '0', state: 'running' })!;
    expect(vcpu).toBeGreaterThan(0);
    expect(vcpu).toBeLessThanOrEqual(cpu + 0.05);
    expect(value(lines, 'kubevirt_vmi_memory_resident_bytes', { name: ID })).toBeGreaterThan(16 * 1024 * 1024);
    expect(value(lines, 'kubevirt_vmi_memory_domain_bytes', { name: ID })).toBe(128 * 1024 * 1024);
    const balloon = value(lines, 'kubevirt_vmi_memory_actual_balloon_bytes', { name: ID })!;
    expect(balloon).toBeGreaterThan(0);
    expect(balloon).toBeLessThanOrEqual(128 * 1024 * 1024);
    // The guest's kernel read the partition table of the disk.
    expect(value(lines, 'kubevirt_vmi_storage_iops_read_total', { name: ID, drive: 'data' })).toBeGreaterThan(0);
    expect(value(lines, 'kubevirt_vmi_storage_read_traffic_bytes_total', { name: ID, drive: 'data' })).toBeGreaterThan(0);
    for (const k of ['iops_write', 'write_traffic_bytes', 'read_times_seconds', 'write_times_seconds', 'flush_requests', 'flush_times_seconds']) {
      expect(value(lines, `kubevirt_vmi_storage_${k}_total`, { name: ID, drive: 'data' }), k).toBeGreaterThanOrEqual(0);
    }
    // 3 echo requests in, 3 replies out at least.
    expect(value(lines, 'kubevirt_vmi_network_receive_packets_total', { name: ID, interface: 'eth0' })).toBeGreaterThanOrEqual(3);
    expect(value(lines, 'kubevirt_vmi_network_transmit_packets_total', { name: ID, interface: 'eth0' })).toBeGreaterThanOrEqual(3);
    for (const k of ['receive_errors', 'receive_packets_dropped', 'transmit_errors', 'transmit_packets_dropped']) {
      expect(value(lines, `kubevirt_vmi_network_${k}_total`, { name: ID, interface: 'eth0' }), k).toBeGreaterThanOrEqual(0);
    }
    expect(lines.some((l) => l.name.startsWith('kubevirt_vmi_migration_'))).toBe(false);
    expect(value(lines, 'vmlet_scrape_errors_total')).toBe(0);
    expect(value(lines, 'vmlet_vms', { phase: 'Running' })).toBe(1);
    expect(value(lines, 'vmlet_build_info', { accelerator: 'tcg' }) ?? value(lines, 'vmlet_build_info', { accelerator: 'kvm' })).toBe(1);
    expect(value(lines, 'vmlet_qmp_command_duration_seconds_count', { command: 'query-cpus-fast' })).toBeGreaterThanOrEqual(1);
    expect(value(lines, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    // A scrape changes nothing about the VM.
    const after = await api.get(ID);
    expect(after.status?.phase).toBe('PHASE_RUNNING');
    expect(after.status?.generation).toBe(before);
  });

  it('network direction: traffic the guest only receives shows up as receive, not transmit', async () => {
    const m1 = parseMetrics(await scrape());
    const rx1 = value(m1, 'kubevirt_vmi_network_receive_bytes_total', { name: ID, interface: 'eth0' })!;
    const tx1 = value(m1, 'kubevirt_vmi_network_transmit_bytes_total', { name: ID, interface: 'eth0' })!;
    const tap1 = await tapStats();
    // Broadcast echo requests: the guest ignores them (icmp_echo_ignore_broadcasts), so traffic is one way.
    await ns.exec('ping', ['-b', '-c', '5', '-i', '0.2', '-w', '2', '-s', '1000', '10.77.0.255']).catch(() => undefined);
    const tap2 = await tapStats();
    expect(tap2.tx.bytes - tap1.tx.bytes).toBeGreaterThanOrEqual(5 * 1000);
    const m2 = parseMetrics(await scrape());
    const rx2 = value(m2, 'kubevirt_vmi_network_receive_bytes_total', { name: ID, interface: 'eth0' })!;
    const tx2 = value(m2, 'kubevirt_vmi_network_transmit_bytes_total', { name: ID, interface: 'eth0' })!;
    expect(rx2 - rx1).toBeGreaterThanOrEqual(5 * 1000);
    expect(tx2 - tx1).toBeLessThan(1000);
    // And the figures are the TAP's, turned around.
    const tap3 = await tapStats();
    expect(rx2).toBeGreaterThanOrEqual(tap2.tx.bytes);
    expect(rx2).toBeLessThanOrEqual(tap3.tx.bytes);
    expect(tx2).toBeGreaterThanOrEqual(tap2.rx.bytes);
    expect(tx2).toBeLessThanOrEqual(tap3.rx.bytes);
  });

  it('operations are timed with their result; VMs without QEMU have only the kubevirt_vm_* family', async () => {
    await api.create(guestSpec('met-off'));
    await expectCode(() => api.pause('met-off'), status.FAILED_PRECONDITION);
    const lines = parseMetrics(await scrape());
    expect(value(lines, 'vmlet_operation_duration_seconds_count', { operation: 'create', result: 'ok' })).toBe(2);
    expect(value(lines, 'vmlet_operation_duration_seconds_count', { operation: 'start', result: 'ok' })).toBe(1);
    expect(value(lines, 'vmlet_operation_duration_seconds_count', { operation: 'pause', result: 'FAILED_PRECONDITION' })).toBe(1);
    const off = lines.filter((l) => l.labels.name === 'met-off');
    expect(off.filter((l) => !l.name.startsWith('kubevirt_vm_'))).toEqual([]);
    expect(value(off, 'kubevirt_vm_info', { status: 'stopped', status_group: 'non_running' })).toBe(1);
    expect(value(lines, 'vmlet_grpc_requests_total', { method: 'PauseVm', code: 'FAILED_PRECONDITION' })).toBe(1);
    await api.delete('met-off');
  });

  it('every phase change is logged as JSON with from, to and reason', async () => {
    const log = await readFile(join(d.root, 'daemon-1.log'), 'utf8');
    const entries = log
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const transitions = entries.filter((e) => e.vm === ID && 'from' in e);
    expect(transitions.map((e) => [e.from, e.to, e.reason])).toEqual([
      ['Pending', 'Starting', 'start requested'],
      ['Starting', 'Running', 'started'],
    ]);
    for (const e of transitions) expect(e.level).toBe(30);
  });

  it('Prometheus scrapes the daemon and answers for the guest\'s CPU rate and network bytes', async () => {
    const p = prom!;
    const cpu = await p.waitFor(`rate(kubevirt_vmi_cpu_usage_seconds_total{name="${ID}"}[5s])`, (r) => r.length === 1 && Number(r[0]!.value[1]) > 0, 60_000);
    expect(cpu[0]!.metric).toMatchObject({ name: ID, node: 'node-m', kubernetes_vmi_label_tier: 'web' });
    await ns.exec('ping', ['-c', '3', '-W', '1', GUEST_IP]);
    const want = (r: PromSample[]) => r.length === 1 && Number(r[0]!.value[1]) > 0;
    const rx = await p.waitFor(`kubevirt_vmi_network_receive_bytes_total{name="${ID}",interface="eth0"}`, want, 30_000);
    const tx = await p.waitFor(`kubevirt_vmi_network_transmit_bytes_total{name="${ID}",interface="eth0"}`, want, 30_000);
    const targets = await p.targets();
    expect(targets.map((t) => [t.health, t.lastError])).toEqual([['up', '']]);
    console.log(
      `Prometheus: rate(cpu[5s])=${cpu[0]!.value[1]} receive_bytes=${rx[0]!.value[1]} transmit_bytes=${tx[0]!.value[1]}`,
    );
  });
});
