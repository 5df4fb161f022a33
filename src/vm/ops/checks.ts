import { VmletError, invalidArgument } from '../../model/errors.js';
import type { NicSpec, VmSpec } from '../../model/vm.js';
import { checkFits } from '../capacity.js';
import type { OpEnv } from './env.js';

type FieldOf = (index: number) => string;
const nicField: FieldOf = (i) => `spec.nics[${i}]`;

/** RESOURCE_EXHAUSTED when starting this VM now would exceed allocatable × overcommit. */
export function checkCapacity(env: OpEnv, spec: VmSpec): void {
  checkFits(env.settings.capacity, env.vms.allocated(), { cpus: spec.vcpus, memoryMib: spec.memoryMib }, spec.id);
}

/** RESOURCE_EXHAUSTED when this VM could never fit the node, even empty. */
export function checkCouldFit(env: OpEnv, spec: VmSpec): void {
  checkFits(env.settings.capacity, { cpus: 0, memoryMib: 0 }, { cpus: spec.vcpus, memoryMib: spec.memoryMib }, spec.id);
}

/** ALREADY_EXISTS when another VM on this node has one of these MACs. */
export function checkMacsFree(env: OpEnv, id: string, nics: readonly NicSpec[], field: FieldOf = nicField): void {
  const owners = new Map<string, string>();
  for (const r of env.vms.all()) {
    if (r.id === id) continue;
    for (const n of r.spec.nics) owners.set(env.network.macOf(r.id, n), r.id);
  }
  for (const [i, nic] of nics.entries()) {
    const mac = env.network.macOf(id, nic);
    const owner = owners.get(mac);
    if (owner) throw new VmletError('ALREADY_EXISTS', `${field(i)}.mac: ${mac} is already used by VM ${owner} on this node`);
  }
}

/** The allow-list, then the existence of every bridge the NICs name. */
export async function checkBridges(env: OpEnv, nics: readonly NicSpec[], field: FieldOf = nicField): Promise<void> {
  const allowed = env.settings.allowedBridges;
  for (const [i, nic] of nics.entries()) {
    if (allowed.length && !allowed.includes(nic.bridge)) {
      throw invalidArgument(`${field(i)}.bridge`, `${nic.bridge} is not an allowed bridge (allowed: ${allowed.join(', ')})`);
    }
    await env.network.checkBridge(nic.bridge);
  }
}
