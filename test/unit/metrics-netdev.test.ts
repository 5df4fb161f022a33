import { describe, expect, it } from 'vitest';
import { guestCountersByTap, parseProcNetDev } from '../../src/metrics/netdev.js';

// /proc/net/dev as Linux 6.1 prints it, with rx and tx deliberately different.
const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3293      31    0    0    0     0          0         0     3293      31    0    0    0     0       0          0
vmt0a1b2c3d4e5f:    1000      10    1    2    0     0          0         0     5000      50    3    4    0     0       0          0
   br0: 18446744073709551615 2 0 0 0 0 0 0 9 2 0 0 0 0 0 0
 short: 1 2 3
`;

describe('/proc/net/dev', () => {
  it('reads each device with its receive and transmit columns, however wide the name', () => {
    const devs = parseProcNetDev(NET_DEV);
    expect([...devs.keys()]).toEqual(['lo', 'vmt0a1b2c3d4e5f', 'br0']);
    expect(devs.get('vmt0a1b2c3d4e5f')).toEqual({
      rx: { bytes: 1000, packets: 10, errors: 1, dropped: 2 },
      tx: { bytes: 5000, packets: 50, errors: 3, dropped: 4 },
    });
  });

  it('what the TAP transmits the guest receives; what the TAP receives the guest transmitted', () => {
    expect(guestCountersByTap(NET_DEV).get('vmt0a1b2c3d4e5f')).toEqual({
      receive: { bytes: 5000, packets: 50, errors: 3, dropped: 4 },
      transmit: { bytes: 1000, packets: 10, errors: 1, dropped: 2 },
    });
  });

  it('reads the real file of this process', async () => {
    const { readFile } = await import('node:fs/promises');
    const devs = parseProcNetDev(await readFile('/proc/self/net/dev', 'utf8'));
    expect(devs.get('lo')?.rx.bytes).toBeGreaterThanOrEqual(0);
  });
});
