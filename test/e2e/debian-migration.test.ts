import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TwoNodes } from '../support/two-nodes.js';
import { migrations } from '../support/migrations.js';
import { rpc } from '../support/rpc.js';
import { qemuPidsOf } from '../support/processes.js';
import { DEBIAN_BOOT_MS, debianSpec, seed, untilGuest } from '../support/debian.js';

describe('live migration of the Debian 12 cloud image (UEFI, cloud-init seed, guest agent)', () => {
  let nodes: TwoNodes;

  beforeAll(async () => {
    nodes = await TwoNodes.start();
  });
  afterAll(async () => {
    await nodes?.cleanup();
  });

  it('moves without a reboot; the target has the seed and EFI vars, and its agent reports the same host', async () => {
    const id = 'deb-mover';
    const a = rpc(nodes.a.daemon.clients);
    const b = rpc(nodes.b.daemon.clients);
    await a.create(debianSpec(id, { firmware: { type: 'FIRMWARE_TYPE_UEFI', secureBoot: false }, cloudInit: seed('mover-host') }), true);
    const before = await untilGuest(a, id, (g) => g.agentConnected && g.hostname === 'mover-host');

    const mig = migrations(nodes.a);
    await mig.migrate(id, nodes.b.address);
    const done = await mig.watch(id);
    expect(done[done.length - 1]!.phase).toBe('MIGRATION_PHASE_SUCCEEDED');
    expect(await a.list()).toEqual([]);
    expect((await qemuPidsOf([id])).length).toBe(1);

    // The agent's channel is a new socket on the target: vmlet reconnects and asks again.
    const after = await untilGuest(b, id, (g) => g.agentConnected && g.hostname === 'mover-host', 120_000);
    expect(after.status!.phase).toBe('PHASE_RUNNING');
    expect(after.status!.guest!.kernelRelease).toBe(before.status!.guest!.kernelRelease);
    const vmDir = join(nodes.b.daemon.stateDir, 'vms', id);
    expect((await stat(join(vmDir, 'cidata.iso'))).size).toBeGreaterThan(0);
    expect((await stat(join(vmDir, 'efi-vars.fd'))).size).toBeGreaterThan(0);
    // A reboot would print the kernel's banner again on the target's console.
    expect(await readFile(join(vmDir, 'console.log'), 'utf8')).not.toMatch(/Linux version/);
  }, 2 * DEBIAN_BOOT_MS);
});
