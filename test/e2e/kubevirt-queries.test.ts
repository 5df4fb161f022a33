/**
 * KubeVirt's own queries on vmlet's metrics: a real daemon with two running TCG guests (a disk
 * and a NIC each) and a stopped VM, a real Prometheus scraping it with KubeVirt's recording rules
 * and its memory-pressure alert loaded, and a representative set of KubeVirt's dashboard and alert
 * expressions evaluated as KubeVirt publishes them (dashboard variables set to "All").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TestDaemon } from '../support/daemon.js';
import { guestSpec, READY_LINE, waitForFileText } from '../support/guest.js';
import { rpc } from '../support/rpc.js';
import { TestNetns } from '../support/netns.js';
import { TestPrometheus, type PromSample } from '../support/prometheus.js';

const RUNNING = ['kv-a', 'kv-b'];
const STOPPED = 'kv-off';
/** kv-a says its namespace; the others take --metrics-namespace. */
const NAMESPACE: Record<string, string> = { 'kv-a': 'team-a', 'kv-b': 'vms', 'kv-off': 'vms' };
const GUEST_MEMORY = 128 * 1024 * 1024;

/** kubevirt/kubevirt pkg/monitoring/rules/recordingrules (vmi.go, vm.go): the rules these queries read. */
const RECORDING_RULES: Record<string, string> = {
  'vmi:kubevirt_vmi_memory_used_bytes:sum': 'kubevirt_vmi_memory_available_bytes-kubevirt_vmi_memory_usable_bytes',
  'vmi:kubevirt_vmi_memory_headroom_ratio:sum':
    'sum by (name, namespace) (kubevirt_vmi_memory_usable_bytes) / sum by (name, namespace) (kubevirt_vmi_memory_available_bytes)',
  'vmi:kubevirt_vmi_pgmajfaults:rate5m': 'sum by (name, namespace) (rate(kubevirt_vmi_memory_pgmajfault_total[5m]))',
  'vmi:kubevirt_vmi_swap_traffic_bytes:rate5m':
    'sum by (name, namespace) (rate(kubevirt_vmi_memory_swap_in_traffic_bytes[5m])) + sum by (name, namespace) (rate(kubevirt_vmi_memory_swap_out_traffic_bytes[5m]))',
  'vmi:kubevirt_vmi_memory_available_bytes:sum': 'sum by (name, namespace) (kubevirt_vmi_memory_available_bytes)',
  'vmi:kubevirt_vmi_vcpu:count': 'count by (namespace, name, node) (kubevirt_vmi_vcpu_seconds_total)',
  'node:kubevirt_vmi_phase:sum':
    'sum by (node, phase, os, workload, flavor, instance_type, preference, guest_os_kernel_release, guest_os_machine, guest_os_arch, guest_os_name, guest_os_version_id) (kubevirt_vmi_info)',
  'namespace:kubevirt_vm:sum': 'sum by (namespace) (count by (name, namespace) (kubevirt_vm_info))',
};

/** pkg/monitoring/rules/alerts/vms.go: KubeVirtVMGuestMemoryPressure. */
const MEMORY_PRESSURE =
  '(((vmi:kubevirt_vmi_memory_headroom_ratio:sum < 0.05) and (vmi:kubevirt_vmi_pgmajfaults:rate5m > 5 ' +
  'or (vmi:kubevirt_vmi_swap_traffic_bytes:rate5m > 1048576)) and (vmi:kubevirt_vmi_memory_available_bytes:sum > 0)) ' +
  '* on(name, namespace) group_left(vm) topk by(name, namespace) (1, ' +
  "label_replace(label_replace(kubevirt_vmi_info{phase='running'}, 'vm', '$1', 'name', '(.+)'), 'name', '$1', 'vmi_pod', '(.+)')))";

/** kubevirt/monitoring dashboards/perses/cnv-virtual-machines-inventory.yaml: VMs by status group. */
const INVENTORY_BY_STATUS = `sum by (namespace, name, status) (
  label_replace(label_replace(label_replace(label_replace(label_replace(
    kubevirt_vm_info{name=~".*", namespace=~".*", status_group=~".*"} > 0,
    "status", "Running",   "status_group", "running"),
    "status", "Stopped",   "status_group", "non_running"),
    "status", "Starting",  "status_group", "starting"),
    "status", "Migrating", "status_group", "migrating"),
    "status", "Error",     "status_group", "error")
)
+on(namespace, name) group_left()(0*sum by (namespace, name)(kubevirt_vm_info{name=~".*", namespace=~".*",flavor=~".*",workload=~".*", instance_type=~".*", preference=~".*",guest_os_name=~".*" ,guest_os_version_id=~".*"} or kubevirt_vmi_info{name=~".*", namespace=~".*",flavor=~".*",workload=~".*", instance_type=~".*", preference=~".*",guest_os_name=~".*" ,guest_os_version_id=~".*"}))`;

/** The same dashboard: memory (in bytes) of each VM. */
const INVENTORY_MEMORY = `(
sum by (namespace, name)(kubevirt_vm_resource_requests{name=~".*", namespace=~".*", resource="memory", source="guest_effective"})
or
max by (namespace, name)(kubevirt_vm_resource_requests{name=~".*", namespace=~".*", resource="memory", source=~"default|domain"})
)
+on(name,namespace) group_left()(0*(sum by (namespace,name)(kubevirt_vm_info{status_group=~".*"})))`;

/** cnv-virtual-machines-top-consumers.yaml: Top Consumers of CPU, and of vCPU wait. */
const TOP_CPU = 'topk(5, sum by (namespace,name)(rate(kubevirt_vmi_cpu_usage_seconds_total{namespace=~".*", name=~".*"}[10m])) > 0)';
const TOP_VCPU_WAIT = 'topk(5, sum by (namespace,name)(rate(kubevirt_vmi_vcpu_wait_seconds_total{namespace=~".*", name=~".*"}[10m])))';
/** Top Consumers of Memory. */
const TOP_MEMORY = 'topk(5, avg by (namespace,name)(avg_over_time(vmi:kubevirt_vmi_memory_used_bytes:sum{namespace=~".*", name=~".*"}[10m])) > 0)';

function rulesYaml(): string {
  const lines = ['groups:', '  - name: kubevirt', '    rules:'];
  for (const [record, expr] of Object.entries(RECORDING_RULES)) lines.push(`      - record: ${JSON.stringify(record)}`, `        expr: ${JSON.stringify(expr)}`);
  lines.push('      - alert: KubeVirtVMGuestMemoryPressure', `        expr: ${JSON.stringify(MEMORY_PRESSURE)}`, '        for: 5m');
  return `${lines.join('\n')}\n`;
}

const byVm = (r: PromSample[], label = 'name') => Object.fromEntries(r.map((s) => [s.metric[label]!, Number(s.value[1])]));
const oneEach = (names: string[]) => (r: PromSample[]) => r.length === names.length && names.every((n) => r.some((s) => s.metric.name === n));

describe('KubeVirt\'s dashboards and alerts on vmlet\'s metrics, in a real Prometheus', () => {
  let ns: TestNetns;
  let d: TestDaemon;
  let api: ReturnType<typeof rpc>;
  let prom: TestPrometheus | undefined;

  beforeAll(async () => {
    ns = await TestNetns.create('vmlet-kq');
    await ns.addBridge('br0', '10.78.0.1/24');
    d = await TestDaemon.start({ extraArgs: ['--netns', ns.name, '--node-name', 'node-k', '--metrics-namespace', 'vms'] });
    api = rpc(d.clients);
    prom = await TestPrometheus.start([d.httpAddress.slice('http://'.length)], { rules: rulesYaml() });
    for (const [i, id] of [...RUNNING, STOPPED].entries()) {
      const image = join(d.root, 'images', `${id}.raw`);
      await writeFile(image, Buffer.alloc(2 * 1024 * 1024));
      const base = guestSpec(id);
      await api.create(
        {
          ...base,
          labels: id === 'kv-a' ? { 'vmlet.io/namespace': 'team-a', 'vm.kubevirt.io/os': 'linux' } : {},
          kernel: { ...base.kernel!, cmdline: `console=ttyS0 panic=-1 vmlet.ip=10.78.0.${i + 2}/24` },
          nics: [{ name: 'eth0', bridge: 'br0', mac: '' }],
          disks: [{ name: 'data', imagePath: image, overlay: true, readonly: false }],
        },
        RUNNING.includes(id),
      );
    }
    for (const id of RUNNING) await waitForFileText(join(d.stateDir, 'vms', id, 'console.log'), READY_LINE, 180_000);
  }, 300_000);
  afterAll(async () => {
    await prom?.stop();
    for (const id of [...RUNNING, STOPPED]) await api?.delete(id, true).catch(() => undefined);
    await d?.cleanup();
    await ns?.delete();
  });

  it('inventory by status_group: one series per VM, the stopped one included, in its namespace', async () => {
    const r = await prom!.waitFor(INVENTORY_BY_STATUS, (x) => x.length === 3, 60_000);
    expect(r.map((s) => [s.metric.name, s.metric.namespace, s.metric.status, Number(s.value[1])]).sort()).toEqual([
      ['kv-a', 'team-a', 'Running', 1],
      ['kv-b', 'vms', 'Running', 1],
      ['kv-off', 'vms', 'Stopped', 1],
    ]);
    expect(byVm(await prom!.query(INVENTORY_MEMORY))).toEqual({ 'kv-a': GUEST_MEMORY, 'kv-b': GUEST_MEMORY, 'kv-off': GUEST_MEMORY });
    const perNamespace = await prom!.waitFor('namespace:kubevirt_vm:sum', (x) => x.length === 2, 30_000);
    expect(byVm(perNamespace, 'namespace')).toEqual({ 'team-a': 1, vms: 2 });
    const phases = await prom!.waitFor('node:kubevirt_vmi_phase:sum', (x) => x.length > 0, 30_000);
    expect(phases.map((s) => [s.metric.node, s.metric.phase, s.metric.os ?? '', Number(s.value[1])]).sort()).toEqual([
      ['node-k', 'running', '', 1],
      ['node-k', 'running', 'linux', 1],
    ]);
  });

  it('top consumers of CPU: one series per running VM, a plausible share of a core', async () => {
    const r = await prom!.waitFor(TOP_CPU, oneEach(RUNNING), 60_000);
    for (const [name, cores] of Object.entries(byVm(r))) {
      expect(cores, name).toBeGreaterThan(0);
      expect(cores, name).toBeLessThanOrEqual(2.5);
    }
    console.log(`top consumers of CPU (cores) ${JSON.stringify(byVm(r))}`);
    // vCPU wait: a series per running VM (0 when the kernel keeps no schedstats, as libvirt reports).
    const wait = await prom!.waitFor(TOP_VCPU_WAIT, oneEach(RUNNING), 30_000);
    for (const v of Object.values(byVm(wait))) expect(v).toBeGreaterThanOrEqual(0);
    expect(byVm(await prom!.query('vmi:kubevirt_vmi_vcpu:count'))).toEqual({ 'kv-a': 1, 'kv-b': 1 });
  });

  it('vmi:kubevirt_vmi_memory_used_bytes:sum from the balloon\'s guest statistics: used memory within the guest\'s', async () => {
    // The guest reports every 10 s once its balloon driver is up.
    const r = await prom!.waitFor('vmi:kubevirt_vmi_memory_used_bytes:sum', oneEach(RUNNING), 90_000);
    for (const [name, used] of Object.entries(byVm(r))) {
      expect(used, name).toBeGreaterThan(1024 * 1024);
      expect(used, name).toBeLessThan(GUEST_MEMORY);
    }
    console.log(`vmi:kubevirt_vmi_memory_used_bytes:sum ${JSON.stringify(byVm(r))}`);
    const top = await prom!.waitFor(TOP_MEMORY, oneEach(RUNNING), 30_000);
    expect(Object.keys(byVm(top)).sort()).toEqual(RUNNING);
  });

  it('VMI phase histograms in KubeVirt\'s phases, as the control-plane dashboard filters them', async () => {
    const counts = await prom!.waitFor('sum by (phase, last_phase) (kubevirt_vmi_phase_transition_time_seconds_count)', (x) => x.length > 0, 30_000);
    expect(counts.map((s) => [s.metric.phase, s.metric.last_phase, Number(s.value[1])])).toEqual([['Running', 'Scheduled', RUNNING.length]]);
    const [p95] = await prom!.query('histogram_quantile(0.95, sum by (le, phase) (kubevirt_vmi_phase_transition_time_seconds_bucket{phase="Running", instance=~".*"}))');
    expect(Number(p95!.value[1])).toBeGreaterThan(0);
    expect(Number(p95!.value[1])).toBeLessThanOrEqual(60);
    const fromCreation = await prom!.query('sum by (phase) (kubevirt_vmi_phase_transition_time_from_creation_seconds_count{phase="Running", instance=~".*"})');
    expect(fromCreation.map((s) => Number(s.value[1]))).toEqual([RUNNING.length]);
  });

  it('memory-pressure alert: evaluated cleanly, quiet for idle guests; without its thresholds, one series per VM', async () => {
    const unthresholded = MEMORY_PRESSURE.replace('< 0.05', '<= 1').replace('> 5 ', '>= 0 ').replace('> 1048576', '>= 0');
    expect(unthresholded).not.toBe(MEMORY_PRESSURE);
    const r = await prom!.waitFor(unthresholded, oneEach(RUNNING), 90_000);
    for (const s of r) {
      expect(s.metric.vm).toBe(s.metric.name);
      expect(s.metric.namespace).toBe(NAMESPACE[s.metric.name!]);
      const headroom = Number(s.value[1]);
      expect(headroom).toBeGreaterThan(0.05);
      expect(headroom).toBeLessThan(1);
    }
    expect(await prom!.query(MEMORY_PRESSURE)).toEqual([]);
    const rules = await prom!.rules();
    expect(rules.filter((x) => x.health !== 'ok').map((x) => [x.name, x.lastError])).toEqual([]);
    expect(rules.find((x) => x.name === 'KubeVirtVMGuestMemoryPressure')?.state).toBe('inactive');
    expect((await prom!.targets()).map((t) => [t.health, t.lastError])).toEqual([['up', '']]);
  });
});
