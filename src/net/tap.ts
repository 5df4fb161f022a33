import { access, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { failedPrecondition } from '../model/errors.js';
import { CommandError } from '../host/run.js';
import { type IpTool, isNoSuchDevice } from './ip.js';

interface IpLink {
  ifname: string;
  mtu?: number;
  operstate?: string;
  master?: string;
  linkinfo?: { info_kind?: string };
}

export interface BridgeInfo {
  name: string;
  mtu: number;
}

/** The bridge must exist and be a bridge; FAILED_PRECONDITION names it otherwise. */
export async function getBridge(ip: IpTool, bridge: string): Promise<BridgeInfo> {
  let links: IpLink[];
  try {
    links = await ip.json<IpLink[]>(['-details', 'link', 'show', 'dev', bridge]);
  } catch (err) {
    if (isNoSuchDevice(err)) throw failedPrecondition(`bridge ${bridge} does not exist on this node${ip.netns ? ` (netns ${ip.netns})` : ''}`);
    throw err;
  }
  const link = links[0];
  if (!link || link.linkinfo?.info_kind !== 'bridge') throw failedPrecondition(`${bridge} is not a bridge`);
  return { name: bridge, mtu: link.mtu ?? 1500 };
}

/** A persistent TAP on the bridge, up; `owner` may open it without capabilities (its QEMU). */
export async function createTap(ip: IpTool, name: string, bridge: BridgeInfo, multiQueue: boolean, owner?: { uid: number; gid: number }): Promise<void> {
  const ownedBy = owner ? ['user', String(owner.uid), 'group', String(owner.gid)] : [];
  try {
    await ip.exec(['tuntap', 'add', 'dev', name, 'mode', 'tap', 'vnet_hdr', ...(multiQueue ? ['multi_queue'] : []), ...ownedBy]);
  } catch (err) {
    // Killed at its deadline, the command may have made the TAP before it hung: the name is
    // this NIC's (plug picked one nobody holds), so it is removed rather than left behind.
    if (err instanceof CommandError && err.timedOut) await deleteTap(ip, name).catch(() => undefined);
    throw err;
  }
  try {
    await ip.exec(['link', 'set', 'dev', name, 'mtu', String(bridge.mtu), 'master', bridge.name, 'up']);
  } catch (err) {
    await deleteTap(ip, name).catch(() => undefined);
    throw err;
  }
}

/** Idempotent: a TAP that is already gone is fine. */
export async function deleteTap(ip: IpTool, name: string): Promise<void> {
  try {
    await ip.exec(['link', 'del', 'dev', name]);
  } catch (err) {
    if (!isNoSuchDevice(err)) throw err;
  }
}

export async function linkExists(ip: IpTool, name: string): Promise<boolean> {
  try {
    await ip.json<IpLink[]>(['link', 'show', 'dev', name]);
    return true;
  } catch (err) {
    if (isNoSuchDevice(err)) return false;
    throw err;
  }
}

/** Creates the bridge if it is missing (`--bridge`), and brings it up. */
export async function ensureBridge(ip: IpTool, name: string): Promise<boolean> {
  const existed = await linkExists(ip, name);
  if (!existed) await ip.exec(['link', 'add', 'name', name, 'type', 'bridge']);
  await getBridge(ip, name);
  await ip.exec(['link', 'set', 'dev', name, 'up']);
  return !existed;
}

/** Where the kernel lists the network devices of the namespace sysfs was mounted in. */
export const SYS_CLASS_NET = '/sys/class/net';

/**
 * The TAP/TUN devices of the namespace whose names pass `wanted`. In vmlet's own namespace read
 * from sysfs (a tun device has `tun_flags`): a daemon restarted while its guests are busy would
 * otherwise fork for it before it serves. In another (--netns) through `ip -n`.
 */
export async function listTaps(ip: IpTool, wanted: (name: string) => boolean, sysClassNet = SYS_CLASS_NET): Promise<string[]> {
  const names = ip.netns ? undefined : await readdir(sysClassNet).catch(() => undefined);
  if (!names) {
    const links = await ip.json<IpLink[]>(['-details', 'link', 'show', 'type', 'tun']);
    return links.map((l) => l.ifname).filter(wanted);
  }
  const taps = await Promise.all(names.filter(wanted).map((n) => access(join(sysClassNet, n, 'tun_flags')).then(() => n, () => undefined)));
  return taps.filter((n) => n !== undefined);
}
