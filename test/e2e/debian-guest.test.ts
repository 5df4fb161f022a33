import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDaemon } from '../support/daemon.js';
import { waitForFileText } from '../support/guest.js';
import { rpc } from '../support/rpc.js';
import { DEBIAN_BOOT_MS, debianSpec, seed, SSH_KEY, untilGuest } from '../support/debian.js';

describe('the Debian 12 cloud image, booted from disk (no kernel in the spec)', () => {
  let d: TestDaemon;
  let api: ReturnType<typeof rpc>;

  beforeAll(async () => {
    d = await TestDaemon.start();
    api = rpc(d.clients);
  });
  afterAll(async () => {
    for (const vm of (await api?.list().catch(() => [])) ?? []) await api.delete(vm.spec!.id, true).catch(() => undefined);
    await d?.cleanup();
  });

  it('SeaBIOS: GRUB boots it to a login prompt and its guest agent reports Debian 12', async () => {
    await api.create(debianSpec('deb-bios'), true);
    const vm = await untilGuest(api, 'deb-bios', (g) => g.agentConnected && g.osName !== '');
    expect(vm.status!.guest!.osName).toMatch(/Debian/);
    expect(vm.status!.guest!.osVersion).toMatch(/12/);
    expect(vm.status!.guest!.kernelRelease).toMatch(/-cloud-amd64$/);
    await waitForFileText(join(d.stateDir, 'vms', 'deb-bios', 'console.log'), / login:/, DEBIAN_BOOT_MS);
    await api.delete('deb-bios', true);
  }, DEBIAN_BOOT_MS + 60_000);

  it('UEFI with a NoCloud seed: cloud-init names the host, adds the user with the key and runs runcmd', async () => {
    await api.create(debianSpec('deb-uefi', { firmware: { type: 'FIRMWARE_TYPE_UEFI', secureBoot: false }, cloudInit: seed('seeded-host') }), true);
    const log = join(d.stateDir, 'vms', 'deb-uefi', 'console.log');
    const text = await waitForFileText(log, /VMLET-RUNCMD .*\r?\n/, DEBIAN_BOOT_MS);
    const proof = /VMLET-RUNCMD host=(\S+) uid=(\d+) key=(\S+)/.exec(text)!;
    expect(proof[1]).toBe('seeded-host');
    expect(Number(proof[2])).toBeGreaterThanOrEqual(1000);
    expect(proof[3]).toBe(SSH_KEY.split(' ')[1]);
    const vm = await untilGuest(api, 'deb-uefi', (g) => g.agentConnected && g.hostname === 'seeded-host');
    expect(vm.status!.guest!.osName).toMatch(/Debian/);
    await waitForFileText(log, /seeded-host login:/, DEBIAN_BOOT_MS);
  }, 2 * DEBIAN_BOOT_MS);
});
