/** TAP counters from `ip -json -s link show`, turned around to the guest's point of view. Pure. */

interface Dir {
  bytes?: number;
  packets?: number;
  errors?: number;
  dropped?: number;
}

/** The part of an `ip -json -s link show` entry that is used. */
export interface IpLinkStats {
  ifname: string;
  stats64?: { rx?: Dir; tx?: Dir };
  stats?: { rx?: Dir; tx?: Dir };
}

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

const traffic = (d: Dir | undefined): Traffic => ({
  bytes: d?.bytes ?? 0,
  packets: d?.packets ?? 0,
  errors: d?.errors ?? 0,
  dropped: d?.dropped ?? 0,
});

/**
 * TAP name → the guest NIC's counters. A TAP is the host end of the guest's NIC: what the TAP
 * transmits the guest receives, and what the guest transmits the TAP receives.
 */
export function guestCountersByTap(links: readonly IpLinkStats[]): Map<string, GuestNicCounters> {
  const out = new Map<string, GuestNicCounters>();
  for (const link of links) {
    const s = link.stats64 ?? link.stats;
    if (!s || typeof link.ifname !== 'string') continue;
    out.set(link.ifname, { receive: traffic(s.tx), transmit: traffic(s.rx) });
  }
  return out;
}
