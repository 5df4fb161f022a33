/**
 * A UEFI guest moves between two nodes with what is only in its state dir: the EFI variables
 * store (a variable the guest wrote reaches the target's file before the guest runs there, and
 * the guest reads it back after a restart on the target), the cloud-init seed (made by the
 * target), and the guest agent (the client on the target connects to the moved guest's agent).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TwoNodes } from '../support/two-nodes.js';
import { guestSpec, waitForFileText } from '../support/guest.js';
import { rpc } from '../support/rpc.js';
import { until } from '../support/poll.js';
import { SHELL_AGENT } from '../support/shell-agent.js';
import { unary } from '../../src/api/grpc/client.js';
import { OVMF } from '../../src/model/firmware.js';
import type { Migration__Output } from '../../src/api/grpc/generated/vmlet/v1/Migration.js';
import type { MigrationOptions } from '../../src/api/grpc/generated/vmlet/v1/MigrationOptions.js';

const exec = promisify(execFile);
const ID = 'uefi-mover';
/** A vendor GUID of the test's own: OVMF and the kernel leave its variables alone. */
const VAR = 'VmletMarker-6f3a7a1e-8d0c-4c55-9d59-1c9b2a3e7f10';

/**
 * At every boot: reads the test's EFI variable if it is there, else writes it (attributes
 * non-volatile, boot service and runtime access, then the value), then plays the guest agent.
 */
const guestScript = (marker: string): string => `
modprobe efivarfs && mount -t efivarfs efivarfs /sys/firmware/efi/efivars
v=/sys/firmware/efi/efivars/${VAR}
if [ -e $v ]; then echo "EFIVAR-FOUND $(tail -c +5 $v)"; else printf '\\007\\000\\000\\000%s' ${marker} >$v && echo EFIVAR-WRITTEN; fi
${SHELL_AGENT}`;

describe('migrating a UEFI guest carries its EFI variables, seed and guest agent', () => {
  let nodes: TwoNodes;
  let base: string;

  beforeAll(async () => {
    nodes = await TwoNodes.start();
    base = join(nodes.images, 'data-base.raw');
    await exec('truncate', ['-s', '16M', base]);
    await exec('mkfs.ext2', ['-q', '-F', base]);
  });
  afterAll(async () => {
    for (const n of [nodes?.a, nodes?.b]) await rpc(n!.daemon.clients).delete(ID, true).catch(() => undefined);
    await nodes?.cleanup();
  });

  it('a variable written on the source is in the target vars file while paused, and the guest reads it after a restart there', async () => {
    const a = rpc(nodes.a.daemon.clients);
    const b = rpc(nodes.b.daemon.clients);
    const marker = `m${randomBytes(8).toString('hex')}`;
    const run = `echo ${Buffer.from(guestScript(marker)).toString('base64')} | base64 -d | sh`;
    const spec = guestSpec(ID, {
      memoryMib: 256,
      firmware: { type: 'FIRMWARE_TYPE_UEFI', secureBoot: false },
      cloudInit: { userData: '#cloud-config\n', metaData: '', networkConfig: '' },
      // On scsi: the overlay is mirrored through the same node names as on virtio.
      disks: [{ name: 'data', imagePath: base, overlay: true, readonly: false, bus: 'DISK_BUS_SCSI' }],
      kernel: { ...guestSpec('x').kernel!, cmdline: `console=ttyS0 panic=-1 vmlet.hostname=${ID} vmlet.run="${run}"` },
    });
    await a.create(spec, true);
    const srcDir = join(nodes.a.daemon.stateDir, 'vms', ID);
    const dstDir = join(nodes.b.daemon.stateDir, 'vms', ID);
    await waitForFileText(join(srcDir, 'console.log'), /EFIVAR-WRITTEN\r?$/m, 240_000);
    await until('the agent on the source', async () => ((await a.get(ID)).status?.guest?.agentConnected ? true : undefined), 60_000, 200);
    // QEMU's pflash writes through to the file: the source's copy has the variable.
    const template = await readFile(OVMF.plain.varsTemplate);
    const srcVars = await readFile(join(srcDir, 'efi-vars.fd'));
    expect(srcVars.includes(marker)).toBe(true);
    expect(template.includes(marker)).toBe(false);

    // Paused: QEMU's pflash would write what it received to the file only once the guest runs.
    await a.pause(ID);
    const m = nodes.a.daemon.clients.migrations;
    await unary<{ id: string; target: string; options: MigrationOptions }, Migration__Output>(m.migrateVm.bind(m), { id: ID, target: nodes.b.address, options: {} });
    const final = await new Promise<Migration__Output>((resolve, reject) => {
      let last: Migration__Output | undefined;
      const s = m.watchMigration({ id: ID });
      s.on('data', (x: Migration__Output) => (last = x));
      s.on('end', () => resolve(last!));
      s.on('error', reject);
    });
    expect(final.phase, final.reason).toBe('MIGRATION_PHASE_SUCCEEDED');
    expect(await a.list()).toEqual([]);
    expect((await b.get(ID)).status!.phase).toBe('PHASE_PAUSED');
    const dstVars = await readFile(join(dstDir, 'efi-vars.fd'));
    expect(dstVars.equals(srcVars)).toBe(true);

    // The target made its own seed, and its QEMU has it.
    const seed = join(dstDir, 'cidata.iso');
    expect((await stat(seed)).size).toBeGreaterThan(0);
    const moved = await b.get(ID);
    expect((await readFile(`/proc/${moved.status!.pid}/cmdline`, 'utf8')).includes(seed)).toBe(true);

    // Running on the target, the agent client there connects to the moved guest's agent.
    await b.resume(ID);
    const guest = await until('the agent on the target', async () => {
      const g = (await b.get(ID)).status?.guest;
      return g?.agentConnected ? g : undefined;
    }, 60_000, 200);
    expect(guest).toMatchObject({ agentConnected: true, hostname: ID, osName: 'BusyBox' });

    // A restart on the target boots from its vars file: the guest finds its variable.
    await b.stop(ID, 10);
    await b.start(ID);
    await waitForFileText(join(dstDir, 'console.log'), new RegExp(`EFIVAR-FOUND ${marker}\\r?$`, 'm'), 240_000);
  }, 600_000);
});
