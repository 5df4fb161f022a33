/** Rules for names and addresses a spec may carry: interface names and MACs. */
import { invalidArgument } from './errors.js';

/** Linux interface names: at most 15 bytes (IFNAMSIZ less the NUL). */
const MAX_IFNAME_BYTES = 15;

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
