import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDaemon } from '../support/daemon.js';
import { guestSpec, READY_LINE, waitForFileText } from '../support/guest.js';
import { rpc, watchVms } from '../support/rpc.js';
import { until } from '../support/poll.js';
import { SHELL_AGENT } from '../support/shell-agent.js';
import { parseMetrics } from '../support/metrics-text.js';

describe('guest agent channel', () => {
  let d: TestDaemon;
  let api: ReturnType<typeof rpc>;

  beforeAll(async () => {
    d = await TestDaemon.start();
    api = rpc(d.clients);
  });
  afterAll(async () => {
    for (const id of ['no-agent', 'shell-agent']) await api?.delete(id, true).catch(() => undefined);
    await d?.cleanup();
  });

  it('a guest without an agent: the channel exists, agent_connected stays false, stop and delete work as ever', async () => {
    await api.create(guestSpec('no-agent'), true);
    await waitForFileText(join(d.stateDir, 'vms', 'no-agent', 'console.log'), READY_LINE, 120_000);
    const vm = await api.get('no-agent');
    const argv = (await readFile(`/proc/${vm.status!.pid}/cmdline`, 'utf8')).split('\0');
    expect(argv).toContain(JSON.stringify({ driver: 'virtserialport', id: 'qga0-port', chardev: 'qga0', name: 'org.qemu.guest_agent.0', bus: 'vserial0.0' }));
    const socket = join(d.runDir, 'vms', 'no-agent', 'qga.sock');
    expect((await stat(socket)).isSocket()).toBe(true);
    expect(vm.status!.guest?.agentConnected ?? false).toBe(false);
    const stopped = await api.stop('no-agent', 10);
    expect(stopped.status!.phase).toBe('PHASE_STOPPED');
    expect(stopped.status!.guest).toBeNull();
    await expect(stat(socket)).rejects.toThrow(/ENOENT/);
  }, 180_000);

  it('an agent on the channel: status.guest gets its hostname and OS, announced by a MODIFIED event', async () => {
    const run = `echo ${Buffer.from(SHELL_AGENT).toString('base64')} | base64 -d | sh`;
    const spec = guestSpec('shell-agent');
    const watch = watchVms(d.clients, { id: 'shell-agent' });
    try {
      await api.create({ ...spec, kernel: { ...spec.kernel!, cmdline: `${spec.kernel!.cmdline} vmlet.hostname=agent-host vmlet.run="${run}"` } }, true);
      const event = await watch.until((e) => e.vm?.status?.guest?.agentConnected === true, 120_000);
      expect(event.type).toBe('VM_EVENT_TYPE_MODIFIED');
      expect(event.vm!.status!.guest).toMatchObject({ agentConnected: true, hostname: 'agent-host', osName: 'BusyBox', osVersion: '1.35', interfaces: [] });
      expect(event.vm!.status!.guest!.kernelRelease).toMatch(/cloud-amd64$/);
      const vm = await until('GetVm shows it too', async () => ((await api.get('shell-agent')).status?.guest?.agentConnected ? true : undefined));
      expect(vm).toBe(true);
      expect((await api.get('shell-agent')).status!.phase).toBe('PHASE_RUNNING');
    } finally {
      watch.close();
    }
  }, 180_000);

  it("/metrics: the agent's file systems, load and architecture, for the VM whose agent answers", async () => {
    // Runs after the test above: shell-agent's agent answers. The figures come in the same round as the status.
    const lines = await until('the guest agent series', async () => {
      const parsed = parseMetrics(await (await fetch(`${d.httpAddress}/metrics`)).text());
      return parsed.some((l) => l.name === 'kubevirt_vmi_guest_load_1m' && l.labels.name === 'shell-agent') ? parsed : undefined;
    });
    const of = (name: string) => lines.filter((l) => l.name === name);
    for (const name of ['kubevirt_vmi_guest_load_1m', 'kubevirt_vmi_guest_load_5m', 'kubevirt_vmi_guest_load_15m']) {
      expect(of(name).map((l) => l.labels.name), name).toEqual(['shell-agent']);
      // A one-vCPU guest that runs its init and this shell: a load, not a made-up figure.
      expect(of(name)[0]!.value, name).toBeGreaterThanOrEqual(0);
      expect(of(name)[0]!.value, name).toBeLessThan(50);
    }
    const capacity = of('kubevirt_vmi_filesystem_capacity_bytes');
    const used = of('kubevirt_vmi_filesystem_used_bytes');
    expect(capacity.map((l) => [l.labels.name, l.labels.namespace, l.labels.disk_name, l.labels.mount_point, l.labels.file_system_type])).toEqual([
      ['shell-agent', 'default', 'tmpfs', '/tmp', 'tmpfs'],
    ]);
    // tmpfs takes half the guest's memory by default: the guest's statfs, seen through the agent.
    const mib = 1024 * 1024;
    expect(capacity[0]!.value).toBeGreaterThan(32 * mib);
    expect(capacity[0]!.value).toBeLessThanOrEqual(64 * mib);
    expect(used[0]!.value).toBeLessThanOrEqual(capacity[0]!.value);
    const info = of('kubevirt_vmi_info').find((l) => l.labels.name === 'shell-agent')!;
    expect(info.labels).toMatchObject({ guest_os_name: 'BusyBox', guest_os_version_id: '1.35', guest_os_arch: 'x86_64', guest_os_machine: 'q35' });
  }, 60_000);
});
