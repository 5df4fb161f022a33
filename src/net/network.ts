import type { NicSpec, NicStatus } from '../model/vm.js';
import type { IpTool } from './ip.js';
import { getBridge, listTaps } from './tap.js';
import { isVmletTapName } from './names.js';
import { effectiveMac, unwireNics, wireNic } from './wiring.js';

/** The node's TAPs on Linux bridges, through `ip` (optionally inside a network namespace). */
export class TapNetwork {
  constructor(private readonly ip: IpTool) {}

  macOf(vmId: string, nic: NicSpec): string {
    return effectiveMac(vmId, nic);
  }

  async checkBridge(name: string): Promise<void> {
    await getBridge(this.ip, name);
  }

  plug(vm: { id: string; vcpus: number; owner?: { uid: number; gid: number } }, nic: NicSpec, port: number, taken: ReadonlySet<string>): Promise<NicStatus> {
    return wireNic(this.ip, nic, port, { vmId: vm.id, vcpus: vm.vcpus, taken, ...(vm.owner ? { owner: vm.owner } : {}) });
  }

  unplug(nics: readonly NicStatus[]): Promise<void> {
    return unwireNics(this.ip, nics);
  }

  async strayTaps(held: ReadonlySet<string>): Promise<string[]> {
    return listTaps(this.ip, (t) => isVmletTapName(t) && !held.has(t));
  }
}
