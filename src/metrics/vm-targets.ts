/** The VM manager's records as scrape targets: no I/O, nothing changed. */
import type { VmManager } from '../vm/manager.js';
import type { ScrapeTarget } from './vmi-collector.js';

export function scrapeTargets(manager: VmManager): ScrapeTarget[] {
  const targets: ScrapeTarget[] = [];
  for (const { spec } of manager.list()) {
    if (!manager.has(spec.id)) continue; // deleted since list()
    const { status, instance } = manager.record(spec.id);
    targets.push({
      id: spec.id,
      labels: spec.labels,
      phase: status.phase,
      memoryBytes: spec.memoryMib * 1024 * 1024,
      // A closed QMP connection is a QEMU that exited; the manager has not processed it yet.
      ...(instance && !instance.qmp.closed ? { qemu: { pid: instance.pid, qmp: instance.qmp } } : {}),
      nics: status.nics.map((n) => ({ name: n.name, tap: n.tap })),
      disks: spec.disks.map((d) => d.name),
    });
  }
  return targets;
}
