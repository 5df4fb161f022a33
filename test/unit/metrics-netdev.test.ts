import { describe, expect, it } from 'vitest';
import { guestCountersByTap, type IpLinkStats } from '../../src/metrics/netdev.js';

// `ip -json -s link show` as iproute2 6.1 prints it (trimmed), with rx and tx deliberately different.
const LINKS = JSON.parse(`[
  {"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP"],"stats64":{"rx":{"bytes":3293,"packets":31,"errors":0,"dropped":0,"over_errors":0,"multicast":0},"tx":{"bytes":3293,"packets":31,"errors":0,"dropped":0,"carrier_errors":0,"collisions":0}}},
  {"ifindex":7,"ifname":"vmt0a1b2c3d4e5f","master":"br0","stats64":{"rx":{"bytes":1000,"packets":10,"errors":1,"dropped":2,"over_errors":0,"multicast":0},"tx":{"bytes":5000,"packets":50,"errors":3,"dropped":4,"carrier_errors":0,"collisions":0}}},
  {"ifindex":8,"ifname":"old","stats":{"rx":{"bytes":7,"packets":1},"tx":{"bytes":9,"packets":2}}},
  {"ifindex":9,"ifname":"nostats"}
]`) as IpLinkStats[];

describe('guestCountersByTap', () => {
  const byTap = guestCountersByTap(LINKS);

  it('what the TAP transmits the guest receives; what the TAP receives the guest transmitted', () => {
    expect(byTap.get('vmt0a1b2c3d4e5f')).toEqual({
      receive: { bytes: 5000, packets: 50, errors: 3, dropped: 4 },
      transmit: { bytes: 1000, packets: 10, errors: 1, dropped: 2 },
    });
  });

  it('falls back to 32-bit stats and missing fields to 0', () => {
    expect(byTap.get('old')).toEqual({
      receive: { bytes: 9, packets: 2, errors: 0, dropped: 0 },
      transmit: { bytes: 7, packets: 1, errors: 0, dropped: 0 },
    });
  });

  it('skips links without statistics', () => {
    expect(byTap.has('nostats')).toBe(false);
    expect([...byTap.keys()].sort()).toEqual(['lo', 'old', 'vmt0a1b2c3d4e5f']);
  });
});
