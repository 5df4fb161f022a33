import type { NicSpec, NicStatus } from '../../model/vm.js';
import type { Machine } from '../ports.js';
import type { Step } from '../plan.js';
import type { VmRecord } from '../registry.js';
import type { OpEnv } from './env.js';
import { releaseHost } from './release.js';
import { unwatchMachine, watchMachine } from './machine-watch.js';

/** Spare pcie-root-ports a started VM gets for NIC hotplug. */
const HOTPLUG_SPARE_PORTS = 4;

/** A QEMU being launched for a VM: what it is wired with, and the machine once it runs. */
export interface Launch {
  env: OpEnv;
  record: VmRecord;
  /** Each NIC with the root port it sits on. */
  wiring: { nic: NicSpec; port: number }[];
  pciPorts: number;
  incoming: boolean;
  nics: NicStatus[];
  machine?: Machine;
}

/** A start's wiring: NIC i on root port i, and spares behind them for hotplug. */
export function startLaunch(env: OpEnv, record: VmRecord): Launch {
  const wiring = record.spec.nics.map((nic, port) => ({ nic, port }));
  return { env, record, wiring, pciPorts: wiring.length + HOTPLUG_SPARE_PORTS, incoming: false, nics: [] };
}

/** TAPs, QEMU, its pid on record, its monitor watched: shared by a start and an incoming migration. */
export const launchSteps: readonly Step<Launch>[] = [
  {
    name: 'plug NICs',
    async run(l) {
      const taken = l.env.vms.tapsInUse(l.record);
      const vm = { id: l.record.id, vcpus: l.record.spec.vcpus };
      for (const { nic, port } of l.wiring) l.nics.push(await l.env.network.plug(vm, nic, port, taken));
    },
    async undo(l) {
      await l.env.network.unplug(l.nics);
    },
  },
  {
    name: 'launch QEMU',
    async run(l) {
      const { spec, paths, status } = l.record;
      l.machine = await l.env.hypervisor.launch({
        spec,
        paths,
        disks: [...status.disks],
        nics: l.nics,
        pciPorts: l.pciPorts,
        nicPorts: Object.fromEntries(l.nics.map((n) => [n.name, n.port ?? 0])),
        incoming: l.incoming,
      });
    },
    async undo(l) {
      const machine = unwatchMachine(l.record) ?? l.machine;
      machine?.detach();
      if (machine) await l.env.hypervisor.kill(machine.pid);
      await releaseHost(l.env, l.record, []);
    },
  },
  {
    // Recorded before the handshake: the console connects while QEMU initialises, so it has the
    // guest's output from its first byte, and a restarted vmlet knows this QEMU and its TAPs.
    name: 'record QEMU',
    run(l) {
      l.env.vms.update(l.record, { pid: l.machine!.pid, nics: l.nics, pciPorts: l.pciPorts, accelerator: l.env.hypervisor.accelerator });
    },
  },
  {
    name: 'watch QEMU',
    run(l) {
      watchMachine(l.env, l.record, l.machine!);
    },
  },
];
