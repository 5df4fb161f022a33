import { readFile } from 'node:fs/promises';
import type { DiskStatus, NicStatus, VmSpec, VmStatus } from '../model/vm.js';
import { processCmdline } from '../host/process.js';
import { diskFileNodeName, diskNodeName, netdevId } from '../model/qemu-ids.js';

/** `driver,key=value,...` with `,,` for a literal comma (argv.ts toQemuOpts), as a map. */
function parseOpts(value: string): Map<string, string> {
  const parts = value.replaceAll(',,', '\0').split(',').map((p) => p.replaceAll('\0', ','));
  const props = new Map<string, string>();
  for (const part of parts.slice(1)) {
    const eq = part.indexOf('=');
    if (eq > 0) props.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return props;
}

const parseJson = (value: string): Record<string, unknown> | undefined => {
  try {
    const v = JSON.parse(value) as unknown;
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
};

/** Every value of an option (`-device X -device Y` → [X, Y]). */
const valuesOf = (argv: readonly string[], option: string): string[] => argv.flatMap((a, i) => (a === option && i + 1 < argv.length ? [argv[i + 1]!] : []));

/**
 * What vmlet's own command line (argv.ts) says of a running VM: its NICs with TAP, MAC and root
 * port, its disks as QEMU opened them, the accelerator and the number of hotplug root ports.
 * Pure. NICs hot-plugged after the start are not on the command line and are not found.
 */
export function statusFromArgv(argv: readonly string[], spec: VmSpec): Partial<VmStatus> {
  const devices = valuesOf(argv, '-device').map(parseJson).filter((d) => d !== undefined);
  const taps = new Map(valuesOf(argv, '-netdev').map(parseOpts).map((o) => [o.get('id'), o.get('ifname')]));
  const nics: NicStatus[] = [];
  for (const nic of spec.nics) {
    const tap = taps.get(netdevId(nic.name));
    const device = devices.find((d) => d.driver === 'virtio-net-pci' && d.netdev === netdevId(nic.name));
    if (!tap || !device) continue;
    const port = /^hotplug-(\d+)$/.exec(String(device.bus ?? ''))?.[1];
    nics.push({ name: nic.name, tap, mac: String(device.mac ?? ''), bridge: nic.bridge, ...(port === undefined ? {} : { port: Number(port) }) });
  }
  const blockdevs = valuesOf(argv, '-blockdev').map(parseJson).filter((b) => b !== undefined);
  const disks: DiskStatus[] = [];
  for (const disk of spec.disks) {
    const file = blockdevs.find((b) => b['node-name'] === diskFileNodeName(disk.name));
    const format = blockdevs.find((b) => b['node-name'] === diskNodeName(disk.name));
    if (typeof file?.filename !== 'string' || (format?.driver !== 'qcow2' && format?.driver !== 'raw')) continue;
    disks.push({ name: disk.name, path: file.filename, format: format.driver });
  }
  const accel = valuesOf(argv, '-accel')[0]?.split(',')[0] ?? '';
  // Only the NIC hotplug ports: the scsi controller's root port is not one.
  const pciPorts = devices.filter((d) => d.driver === 'pcie-root-port' && /^hotplug-\d+$/.test(String(d.id))).length;
  return { nics, disks, accelerator: accel, pciPorts };
}

/** The real uid of a process; undefined for root or when it cannot be read. */
async function uidOf(pid: number): Promise<number | undefined> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const uid = Number(/^Uid:\s+(\d+)/m.exec(text)?.[1]);
  return Number.isInteger(uid) && uid > 0 ? uid : undefined;
}

/** A running QEMU's status as its command line and /proc tell it (see statusFromArgv). */
export async function recoverStatus(pid: number, spec: VmSpec): Promise<Partial<VmStatus>> {
  const argv = (await processCmdline(pid)) ?? [];
  const uid = await uidOf(pid);
  return { ...statusFromArgv(argv, spec), ...(uid === undefined ? {} : { uid }) };
}
