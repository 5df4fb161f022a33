import { describe, expect, it } from 'vitest';
import { scrapeTargets } from '../../src/metrics/vm-targets.js';
import type { VmManager } from '../../src/vm/manager.js';
import type { GuestFigures } from '../../src/model/guest-figures.js';

const FIGURES: GuestFigures = { arch: 'x86_64', filesystems: [{ device: 'vda1', mountPoint: '/', type: 'ext4', totalBytes: 2, usedBytes: 1 }] };

/** A manager with one running VM; the agent's state and the machine's as given. */
function managerWith(agentConnected: boolean | undefined, closed: boolean): VmManager {
  const spec = { id: 'vm', labels: {}, vcpus: 1, memoryMib: 64, disks: [], nics: [] };
  const status = {
    phase: 'Running',
    createdAt: '2026-01-01T00:00:00Z',
    lastTransitionAt: '2026-01-01T00:00:00Z',
    nics: [],
    disks: [],
    ...(agentConnected === undefined ? {} : { guest: { agentConnected, osName: 'Debian GNU/Linux', osVersion: '12', kernelRelease: '6.1', hostname: 'h', interfaces: [] } }),
  };
  const machine = { pid: 42, closed, guestFigures: () => FIGURES, query: async () => undefined };
  return { list: () => [{ spec, status }], has: () => true, record: () => ({ spec, status, machine }) } as unknown as VmManager;
}

describe('scrape targets', () => {
  it('carry the guest agent\'s figures only while the agent is connected and QEMU runs', () => {
    expect(scrapeTargets(managerWith(true, false))[0]!.guest).toEqual(FIGURES);
    expect(scrapeTargets(managerWith(false, false))[0]!.guest).toBeUndefined();
    expect(scrapeTargets(managerWith(undefined, false))[0]!.guest).toBeUndefined();
    expect(scrapeTargets(managerWith(true, true))[0]!.guest).toBeUndefined();
  });
});
