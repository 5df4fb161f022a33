/** The VM manager's records as scrape targets: no I/O, nothing changed. */
import type { VmManager } from '../vm/manager.js';
import type { QmpQuerier, ScrapeTarget } from './vmi-collector.js';
import type { Machine } from '../vm/ports.js';
import type { MetricsQuery } from '../model/machine.js';
import type { GuestFigures } from '../model/guest-figures.js';

export function scrapeTargets(manager: VmManager): ScrapeTarget[] {
  const targets: ScrapeTarget[] = [];
  for (const { spec } of manager.list()) {
    if (!manager.has(spec.id)) continue; // deleted since list()
    const { status, machine } = manager.record(spec.id);
    targets.push({
      id: spec.id,
      labels: spec.labels,
      phase: status.phase,
      vcpus: spec.vcpus,
      memoryBytes: spec.memoryMib * 1024 * 1024,
      ...(spec.cpuLimitMillicores ? { cpuLimitCores: spec.cpuLimitMillicores / 1000 } : {}),
      createdAt: status.createdAt,
      lastTransitionAt: status.lastTransitionAt,
      // A closed QMP connection is a QEMU that exited; the manager has not processed it yet.
      ...(machine && !machine.closed ? { qemu: { pid: machine.pid, qmp: querier(machine) } } : {}),
      nics: status.nics.map((n) => ({ name: n.name, tap: n.tap, mac: n.mac })),
      disks: spec.disks.map((d) => d.name),
      diskFiles: status.disks.map((d) => ({ name: d.name, path: d.path, format: d.format })),
      ...(status.guest?.agentConnected ? { guestOs: { name: status.guest.osName, versionId: status.guest.osVersion, kernelRelease: status.guest.kernelRelease } } : {}),
      ...(status.guest?.agentConnected ? { guestInterfaces: status.guest.interfaces } : {}),
      ...guestFigures(machine, status.guest?.agentConnected),
    });
  }
  return targets;
}

function guestFigures(machine: Machine | undefined, agentConnected: boolean | undefined): { guest?: GuestFigures } {
  const guest = agentConnected && machine && !machine.closed ? machine.guestFigures() : undefined;
  return guest ? { guest } : {};
}

/** The machine's read-only queries in the shape the collector asks them. */
function querier(machine: Machine): QmpQuerier {
  return {
    execute: <T>(command: string, args?: Record<string, unknown>, options?: { timeoutMs?: number }) => {
      const what: MetricsQuery = command === 'qom-get' && args?.property === 'guest-stats' ? 'balloon-guest-stats' : (command as MetricsQuery);
      return machine.query<T>(what, options?.timeoutMs ?? 1000);
    },
  };
}
