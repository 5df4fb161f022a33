import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDaemon } from '../support/daemon.js';
import { guestSpec, READY_LINE, waitForFileText } from '../support/guest.js';
import { rpc } from '../support/rpc.js';
import { OVMF } from '../../src/model/firmware.js';

describe('UEFI firmware: OVMF with a per-VM variables store', () => {
  let d: TestDaemon;
  let api: ReturnType<typeof rpc>;
  const vmFile = (id: string, name: string): string => join(d.stateDir, 'vms', id, name);

  beforeAll(async () => {
    d = await TestDaemon.start();
    api = rpc(d.clients);
  });
  afterAll(async () => {
    for (const id of ['uefi-1', 'uefi-sb']) await api?.delete(id, true).catch(() => undefined);
    await d?.cleanup();
  });

  it.each([
    { id: 'uefi-1', secureBoot: false, code: OVMF.plain.code, kernelSays: /secureboot: Secure boot disabled/ },
    { id: 'uefi-sb', secureBoot: true, code: OVMF.secureBoot.code, kernelSays: /secureboot: Secure boot enabled/ },
  ])('$id (secure boot $secureBoot) boots the test guest through OVMF to its ready line, on its own vars; delete removes them', async ({ id, secureBoot, code, kernelSays }) => {
    // OVMF, then the kernel and initrd it loads, do not fit the test guest's usual 128 MiB.
    const created = await api.create(guestSpec(id, { memoryMib: 256, firmware: { type: 'FIRMWARE_TYPE_UEFI', secureBoot } }), true);
    expect(created.spec!.firmware).toMatchObject({ type: 'FIRMWARE_TYPE_UEFI', secureBoot });
    const vars = vmFile(id, 'efi-vars.fd');
    const info = await stat(vars);
    expect(info.mode & 0o777).toBe(0o600);
    expect(info.uid).toBe(created.status!.uid);

    const console = await waitForFileText(vmFile(id, 'console.log'), READY_LINE, 180_000);
    // The kernel found EDK II's system table (it was started by OVMF, not SeaBIOS) and the Secure Boot state asked for.
    expect(console).toMatch(/efi: EFI v2\.\d+ by EDK II/);
    expect(console).toMatch(kernelSays);
    const { pid } = (await api.get(id)).status!;
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    expect(cmdline.some((a) => a.includes(code))).toBe(true);
    expect(cmdline.some((a) => a.includes(vars))).toBe(true);

    await api.delete(id, true);
    await expect(stat(vars)).rejects.toThrow(/ENOENT/);
  }, 240_000);
});
