/**
 * TAP counters from `/proc/<qemu pid>/net/dev` (the table of the network namespace QEMU runs in,
 * which holds its TAPs), turned around to the guest's point of view. A file read, where
 * `ip -s link show` would be a process spawned on every scrape. Pure.
 */

export interface Traffic {
  bytes: number;
  packets: number;
  errors: number;
  dropped: number;
}

/** What the guest's NIC received and transmitted. */
export interface GuestNicCounters {
  receive: Traffic;
  transmit: Traffic;
}

/**
 * `/proc/net/dev`: two header lines, then `name: ` and 8 receive columns (bytes packets errs
 * drop fifo frame compressed multicast) and 8 transmit ones (bytes packets errs drop fifo colls
 * carrier compressed). Lines that do not have them are skipped.
 */
export function parseProcNetDev(text: string): Map<string, { rx: Traffic; tx: Traffic }> {
  const out = new Map<string, { rx: Traffic; tx: Traffic }>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const f = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    if (name === '' || f.length < 16 || f.some((n) => !Number.isFinite(n))) continue;
    out.set(name, {
      rx: { bytes: f[0]!, packets: f[1]!, errors: f[2]!, dropped: f[3]! },
      tx: { bytes: f[8]!, packets: f[9]!, errors: f[10]!, dropped: f[11]! },
    });
  }
  return out;
}

/**
 * TAP name → the guest NIC's counters. A TAP is the host end of the guest's NIC: what the TAP
 * transmits the guest receives, and what the guest transmits the TAP receives.
 */
export function guestCountersByTap(netDev: string): Map<string, GuestNicCounters> {
  const out = new Map<string, GuestNicCounters>();
  for (const [name, { rx, tx }] of parseProcNetDev(netDev)) out.set(name, { receive: tx, transmit: rx });
  return out;
}
