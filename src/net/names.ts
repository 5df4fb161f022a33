/**
 * Host-side names and addresses for a VM's NICs: TAP device names and stable MACs. Pure.
 */
import { createHash } from 'node:crypto';

/** Every TAP vmlet creates is named `vml` + 12 lowercase hex digits (15 bytes, the Linux limit). */
const TAP_PREFIX = 'vml';
const TAP_RE = /^vml[0-9a-f]{12}$/;

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * The TAP device name of a VM's NIC: `vml` + the first 12 hex digits of sha256("<vmId>/<nicName>").
 * Stable (the same VM and NIC always get the same name, so a restarted vmlet finds its TAPs),
 * 15 bytes, and recognisable: vmlet treats every interface matching `isVmletTapName` as its own.
 */
export function tapName(vmId: string, nicName: string, attempt = 0): string {
  // `attempt` > 0 only when the first name is already taken on the node (a hash collision).
  const key = attempt ? `${vmId}/${nicName}#${attempt}` : `${vmId}/${nicName}`;
  return TAP_PREFIX + sha256(key).toString('hex').slice(0, 12);
}

export function isVmletTapName(name: string): boolean {
  return TAP_RE.test(name);
}

/**
 * A stable, locally administered unicast MAC for a VM's NIC: `02:` + 5 bytes of
 * sha256("mac:<vmId>/<nicName>"), lowercase. The same on every node, so it survives migration.
 */
export function stableMac(vmId: string, nicName: string): string {
  const bytes = [...sha256(`mac:${vmId}/${nicName}`).subarray(0, 5)];
  return ['02', ...bytes.map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

