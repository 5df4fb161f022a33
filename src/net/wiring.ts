import type { IpTool } from './ip.js';
import { createTap, deleteTap, getBridge, linkExists } from './tap.js';
import { stableMac, tapName } from './names.js';
import { VmletError } from '../model/errors.js';
import type { NicSpec, NicStatus } from '../model/vm.js';

/** The MAC a NIC gets: the caller's, or the stable one derived from VM id and NIC name. */
export const effectiveMac = (vmId: string, nic: NicSpec): string => nic.mac || stableMac(vmId, nic.name);

const MAX_NAME_ATTEMPTS = 8;

/** A TAP name for this NIC that no other interface on the node uses (hash collisions are re-rolled). */
async function freeTapName(ip: IpTool, vmId: string, nic: string, taken: ReadonlySet<string>): Promise<string> {
  for (let attempt = 0; attempt < MAX_NAME_ATTEMPTS; attempt++) {
    const name = tapName(vmId, nic, attempt);
    if (!taken.has(name) && !(await linkExists(ip, name))) return name;
  }
  throw new VmletError('ALREADY_EXISTS', `no free TAP name for ${vmId}/${nic} after ${MAX_NAME_ATTEMPTS} attempts`);
}

export interface WireOptions {
  vmId: string;
  vcpus: number;
  /** Who may open the TAP (the VM's QEMU user); absent: root only. */
  owner?: { uid: number; gid: number };
  /** TAP names other VMs hold (recorded in their status), besides what exists on the host. */
  taken: ReadonlySet<string>;
}

/** Creates the TAP of one NIC, enslaved to its bridge and up. */
export async function wireNic(ip: IpTool, nic: NicSpec, port: number, o: WireOptions): Promise<NicStatus> {
  const bridge = await getBridge(ip, nic.bridge);
  const tap = await freeTapName(ip, o.vmId, nic.name, o.taken);
  await createTap(ip, tap, bridge, o.vcpus > 1, o.owner);
  return { name: nic.name, tap, bridge: nic.bridge, mac: effectiveMac(o.vmId, nic), port, ...(nic.model ? { model: nic.model } : {}) };
}

export async function unwireNics(ip: IpTool, nics: readonly NicStatus[]): Promise<void> {
  for (const nic of nics) await deleteTap(ip, nic.tap);
}
