import type { IpTool } from './ip.js';
import { createTap, deleteTap, getBridge } from './tap.js';
import { stableMac, tapName } from './names.js';
import type { NicStatus, VmSpec } from '../vm/types.js';

/**
 * Creates one TAP per NIC on its bridge before QEMU starts. All or nothing: a failure removes
 * the TAPs this call made and rethrows.
 */
export async function wireNics(ip: IpTool, spec: VmSpec): Promise<NicStatus[]> {
  const made: NicStatus[] = [];
  try {
    for (const nic of spec.nics) {
      const bridge = await getBridge(ip, nic.bridge);
      const tap = tapName(spec.id, nic.name);
      await createTap(ip, tap, bridge, spec.vcpus > 1);
      made.push({ name: nic.name, tap, bridge: nic.bridge, mac: nic.mac || stableMac(spec.id, nic.name) });
    }
    return made;
  } catch (err) {
    await unwireNics(ip, made).catch(() => undefined);
    throw err;
  }
}

export async function unwireNics(ip: IpTool, nics: readonly NicStatus[]): Promise<void> {
  for (const nic of nics) await deleteTap(ip, nic.tap);
}
