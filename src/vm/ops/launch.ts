import type { NicSpec, NicStatus } from '../../model/vm.js';
import type { Machine } from '../ports.js';
import { together, type Step } from '../plan.js';
import type { VmRecord } from '../registry.js';
import type { OpEnv } from './env.js';
import { ownerOf, reserveUid } from './owner.js';
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
  /** The VM's cgroup once made. */
  cell?: string;
  machine?: Machine;
}

/** A start's wiring: NIC i on root port i, and spares behind them for hotplug. */
export function startLaunch(env: OpEnv, record: VmRecord): Launch {
  const wiring = record.spec.nics.map((nic, port) => ({ nic, port }));
  return { env, record, wiring, pciPorts: wiring.length + HOTPLUG_SPARE_PORTS, incoming: false, nics: [] };
}

/** The VM's QEMU user from its status; a VM made while QEMU ran as root gets one now. */
async function assignUser(l: Launch): Promise<void> {
  if (l.record.status.uid || !l.env.settings.qemuUids) return;
  const { uid, release } = reserveUid(l.env);
  try {
    await l.env.storage.own(l.record.paths, l.record.status.disks, { uid: uid!, gid: uid! });
    l.env.vms.update(l.record, { uid });
  } finally {
    release();
  }
}

/**
 * Its user, then the files QEMU opens from the state dir, owned by that user: the cloud-init
 * seed is remade when the spec's cloud_init is not what it was made from.
 */
const userAndFiles: Step<Launch> = {
  name: 'assign user, prepare VM files',
  async run(l) {
    await assignUser(l);
    const owner = ownerOf(l.record.status);
    await l.env.storage.prepareVmFiles(l.record.spec, l.record.paths, owner);
  },
};

/** What a launch needs before QEMU, independent of each other. */
export const prepareSteps: readonly Step<Launch>[] = [userAndFiles];

/** Its own cgroup, made while QEMU starts (off the start's critical path). */
const makeCell: Step<Launch> = {
  name: 'make cell',
  async run(l) {
    if (l.env.cells) l.cell = await l.env.cells.create(l.record.spec);
  },
  async undo(l) {
    if (l.cell) await l.env.cells!.remove(l.cell);
  },
};

const launchQemu: Step<Launch> = {
  name: 'launch QEMU',
  async run(l) {
    const { spec, paths, status } = l.record;
    const owner = ownerOf(status);
    l.machine = await l.env.hypervisor.launch({
      ...(owner ? { owner } : {}),
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
    await l.env.hypervisor.clearRunFiles(l.record.paths);
  },
};

/** TAPs, QEMU and its cell, its pid on record, its monitor watched, QEMU moved into its cell. */
export const runSteps: readonly Step<Launch>[] = [
  {
    name: 'plug NICs',
    async run(l) {
      const taken = l.env.vms.tapsInUse(l.record);
      const owner = ownerOf(l.record.status);
      const vm = { id: l.record.id, vcpus: l.record.spec.vcpus, ...(owner ? { owner } : {}) };
      for (const { nic, port } of l.wiring) l.nics.push(await l.env.network.plug(vm, nic, port, taken));
    },
    async undo(l) {
      await l.env.network.unplug(l.nics);
    },
  },
  together('launch QEMU, make its cell', [launchQemu, makeCell]),
  {
    // Recorded before the handshake: the console connects while QEMU initialises, so it has the
    // guest's output from its first byte, and a restarted vmlet knows this QEMU, TAPs and cell.
    name: 'record QEMU',
    run(l) {
      l.env.vms.update(l.record, { pid: l.machine!.pid, nics: l.nics, pciPorts: l.pciPorts, accelerator: l.env.hypervisor.accelerator, cgroup: l.cell });
    },
  },
  {
    name: 'watch QEMU',
    run(l) {
      watchMachine(l.env, l.record, l.machine!);
    },
  },
  {
    // QEMU waits with -S: nothing of the guest has run when it enters its cell, and its own
    // start-up (the monitor's greeting) goes on meanwhile.
    name: 'enter cell',
    async run(l) {
      if (!l.cell) return;
      try {
        await l.env.cells!.enter(l.cell, l.machine!.pid);
      } catch (err) {
        // A QEMU that exited over its configuration cannot be moved: its own words are the reason.
        await l.machine!.ready();
        throw err;
      }
    },
  },
];

/** The cell's own CPU weight, once QEMU's initialisation no longer needs the start-up one. */
export const settleCell: Step<Launch> = {
  name: 'settle cell',
  async run(l) {
    if (l.cell) await l.env.cells!.settle(l.cell, l.record.spec);
  },
};

/** User, then QEMU and its cell: shared by a start and an incoming migration. */
export const launchSteps: readonly Step<Launch>[] = [together('prepare', prepareSteps), ...runSteps];

