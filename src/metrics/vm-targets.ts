/** The VM manager's records as scrape targets: no I/O, nothing changed. */
import type { VmManager } from '../vm/manager.js';
import type { QmpQuerier, ScrapeTarget } from './vmi-collector.js';
import type { Machine } from '../vm/ports.js';

export function scrapeTargets(manager: VmManager): ScrapeTarget[] {
  const targets: ScrapeTarget[] = [];
  for (const { spec } of manager.list()) {
    if (!manager.has(spec.id)) continue; // deleted since list()
    const { status, machine } = manager.record(spec.id);
    targets.push({
      id: spec.id,
      labels: spec.labels,
      phase: status.phase,
      memoryBytes: spec.memoryMib * 1024 * 1024,
      // A closed QMP connection is a QEMU that exited; the manager has not processed it yet.
      ...(machine && !machine.closed ? { qemu: { pid: machine.pid, qmp: querier(machine) } } : {}),
      nics: status.nics.map((n) => ({ name: n.name, tap: n.tap })),
      disks: spec.disks.map((d) => d.name),
    });
  }
  return targets;
}

/** The machine's read-only queries in the shape the collector asks them. */
function querier(machine: Machine): QmpQuerier {
  return {
    execute: <T>(command: string, _args?: Record<string, unknown>, options?: { timeoutMs?: number }) =>
      machine.query<T>(command as Parameters<Machine['query']>[0], options?.timeoutMs ?? 1000),
  };
}
