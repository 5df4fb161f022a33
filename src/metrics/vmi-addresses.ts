/**
 * `kubevirt_vmi_status_addresses` of one VM: KubeVirt writes one per entry of the VMI's interface
 * status, which joins the spec's NICs with what the guest agent reports (by MAC) and adds the
 * interfaces only the guest knows. `address` is an interface's first IP; `type` is
 * ExternalInterface with one, SystemInterface without. Pure.
 */
export interface AddressLabels {
  vnic_name: string;
  interface_name: string;
  address: string;
  type: 'ExternalInterface' | 'SystemInterface';
}

export interface AgentInterface {
  name: string;
  mac: string;
  ipAddresses: readonly string[];
}

export function vmiAddresses(nics: readonly { name: string; mac: string }[], agent: readonly AgentInterface[]): AddressLabels[] {
  const byMac = new Map(agent.filter((i) => i.mac !== '').map((i) => [i.mac.toLowerCase(), i]));
  const seen = new Set<string>();
  const out: AddressLabels[] = [];
  const push = (vnic: string, guest: AgentInterface | undefined): void => {
    const address = guest?.ipAddresses[0] ?? '';
    const labels: AddressLabels = { vnic_name: vnic, interface_name: guest?.name ?? '', address, type: address ? 'ExternalInterface' : 'SystemInterface' };
    // KubeVirt skips an entry that would say nothing (and clash with another such one).
    if (!address && !labels.vnic_name && !labels.interface_name) return;
    const key = JSON.stringify(labels);
    if (seen.has(key)) return;
    seen.add(key);
    out.push(labels);
  };
  const matched = new Set<AgentInterface>();
  for (const nic of nics) {
    const guest = byMac.get(nic.mac.toLowerCase());
    if (guest) matched.add(guest);
    push(nic.name, guest);
  }
  for (const guest of agent) if (!matched.has(guest)) push('', guest);
  return out;
}
