/**
 * Host-side names and addresses for a VM's NICs: TAP device names, stable MACs, and the
 * syntax checks for MACs and Linux interface names. Pure.
 */
import { createHash } from 'node:crypto';
import { invalidArgument } from '../model/errors.js';

/** Every TAP vmlet creates is named `vml` + 12 lowercase hex digits (15 bytes, the Linux limit). */
export const TAP_PREFIX = 'vml';
const TAP_RE = /^vml[0-9a-f]{12}$/;

/** Linux IFNAMSIZ is 16 including the terminating NUL. */
export const MAX_IFNAME_BYTES = 15;

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

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/**
 * Checks a caller-given MAC and returns it in lowercase. It must be six colon-separated hex
 * octets, unicast (lowest bit of the first octet clear) and not all zeros.
 */
export function validateMac(mac: string, field: string): string {
  const m = mac.toLowerCase();
  if (!MAC_RE.test(m)) {
    throw invalidArgument(field, `"${mac}" is not a MAC address: use six hex octets separated by colons, e.g. 02:00:00:00:00:01`);
  }
  if ((parseInt(m.slice(0, 2), 16) & 1) === 1) {
    throw invalidArgument(field, `"${mac}" is a multicast address: the lowest bit of the first octet must be 0 (e.g. 02:...)`);
  }
  if (m === '00:00:00:00:00:00') {
    throw invalidArgument(field, 'the all-zero MAC is not a valid NIC address');
  }
  return m;
}

/**
 * Why `name` cannot be a Linux interface name (the kernel's dev_valid_name rules: 1-15 bytes,
 * not "." or "..", no '/', ':' or whitespace; NUL is rejected too), or undefined when it can.
 */
export function ifNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'must not be empty';
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_IFNAME_BYTES) return `"${name}" is ${bytes} bytes long: interface names have at most ${MAX_IFNAME_BYTES}`;
  if (name === '.' || name === '..') return `"${name}" is not a valid interface name`;
  if (/[/:\s\0]/.test(name)) return `"${name}" contains '/', ':', NUL or whitespace, which interface names cannot`;
  return undefined;
}
