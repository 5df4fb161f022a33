import { VmletError, failedPrecondition, notFound } from '../../model/errors.js';
import type { NicSpec, NicStatus, VmSpec } from '../../model/vm.js';
import { validateSpec } from '../validate.js';
import type { VmRecord } from '../registry.js';
import type { Machine } from '../ports.js';
import { runPlan, type Step } from '../plan.js';
import { checkBridges, checkMacsFree } from './checks.js';
import { ownerOf } from './owner.js';
import type { OpEnv } from './env.js';

/** How long a guest gets to release an unplugged NIC (PCIe hotplug waits for the attention button). */
const DEVICE_DELETED_TIMEOUT_MS = 30_000;
const HOTPLUG_PHASES = new Set(['Running', 'Paused']);
const COLD_PHASES = new Set(['Stopped', 'Pending', 'Failed']);

/**
 * AttachNic. On a running (or paused) VM: TAP, netdev and device on a free root port; on a
 * stopped one, only the spec. Persisted in the spec either way. All or nothing.
 */
export async function attachNic(env: OpEnv, record: VmRecord, raw: NicSpec): Promise<void> {
  const { spec, status } = record;
  if (spec.nics.some((n) => n.name === raw.name)) throw new VmletError('ALREADY_EXISTS', `VM ${spec.id} already has a NIC named ${raw.name}`);
  const newSpec = withNic(spec, raw);
  const nic = newSpec.nics[newSpec.nics.length - 1]!;
  checkMacsFree(env, spec.id, [nic], () => 'nic');
  await checkBridges(env, [nic], () => 'nic');
  const machine = record.machine;
  if (!HOTPLUG_PHASES.has(status.phase) || !machine) {
    if (!COLD_PHASES.has(status.phase)) throw failedPrecondition(`VM ${spec.id} is ${status.phase}; NICs can be attached when it is Running, Paused or Stopped`);
    await env.vms.replaceSpec(record, newSpec);
    env.vms.update(record, { reason: `NIC ${nic.name} added; it is plugged in at the next start` });
    return;
  }
  const port = freePort(status.nics, status.pciPorts ?? 0);
  if (port === undefined) throw new VmletError('RESOURCE_EXHAUSTED', `VM ${spec.id} has no free PCIe hotplug port; stop and start it to plug in more NICs`);
  await runPlan(hotplugSteps, { env, record, machine, nic, port, newSpec }, record.log);
  record.log.info({ nic: nic.name, port }, 'NIC attached');
}

interface Hotplug {
  env: OpEnv;
  record: VmRecord;
  machine: Machine;
  nic: NicSpec;
  port: number;
  newSpec: VmSpec;
  plugged?: NicStatus;
}

/** A NIC into a running VM: its TAP, the device on a free root port, then the spec. */
const hotplugSteps: readonly Step<Hotplug>[] = [
  {
    name: 'plug TAP',
    async run(h) {
      const owner = ownerOf(h.record.status);
      const vm = { id: h.record.id, vcpus: h.record.spec.vcpus, ...(owner ? { owner } : {}) };
      h.plugged = await h.env.network.plug(vm, h.nic, h.port, h.env.vms.tapsInUse());
    },
    undo: (h) => h.env.network.unplug(h.plugged ? [h.plugged] : []),
  },
  { name: 'plug device', run: (h) => h.machine.plugNic(h.plugged!, h.record.spec.vcpus, h.port) },
  {
    name: 'record',
    async run(h) {
      await h.env.vms.replaceSpec(h.record, h.newSpec);
      h.env.vms.update(h.record, { nics: [...h.record.status.nics, h.plugged!], reason: `NIC ${h.nic.name} attached` });
    },
  },
];

/** DetachNic: the guest releases the device, then its netdev and TAP go; the spec loses the NIC only once it is gone. */
export async function detachNic(env: OpEnv, record: VmRecord, name: string): Promise<void> {
  const { spec, status } = record;
  if (!spec.nics.some((n) => n.name === name)) throw notFound(`NIC ${name} of VM ${spec.id}`);
  const newSpec = { ...spec, nics: spec.nics.filter((n) => n.name !== name) };
  const plugged = status.nics.find((n) => n.name === name);
  const machine = record.machine;
  if (!HOTPLUG_PHASES.has(status.phase) || !machine || !plugged) {
    if (!COLD_PHASES.has(status.phase)) throw failedPrecondition(`VM ${spec.id} is ${status.phase}; NICs can be detached when it is Running, Paused or Stopped`);
    await env.vms.replaceSpec(record, newSpec);
    env.vms.update(record, { reason: `NIC ${name} removed` });
    return;
  }
  await machine.unplugNic(name, DEVICE_DELETED_TIMEOUT_MS);
  await env.network.unplug([plugged]);
  await env.vms.replaceSpec(record, newSpec);
  env.vms.update(record, { nics: status.nics.filter((n) => n.name !== name), reason: `NIC ${name} detached` });
  record.log.info({ nic: name }, 'NIC detached');
}

/** The spec with the NIC added, validated; errors name `nic.<field>` as the request does. */
function withNic(spec: VmSpec, nic: NicSpec): VmSpec {
  const prefix = `spec.nics[${spec.nics.length}]`;
  try {
    return validateSpec({ ...spec, nics: [...spec.nics, nic] });
  } catch (err) {
    if (err instanceof VmletError && err.message.startsWith(prefix)) throw new VmletError(err.code, 'nic' + err.message.slice(prefix.length));
    throw err;
  }
}

function freePort(nics: readonly NicStatus[], total: number): number | undefined {
  const used = new Set(nics.map((n) => n.port));
  for (let p = 0; p < total; p++) if (!used.has(p)) return p;
  return undefined;
}
