import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OVMF } from '../../src/model/firmware.js';
import type { VmSpec } from '../../src/model/vm.js';
import { vmPaths } from '../../src/state/paths.js';
import { prepareEfiVars } from '../../src/storage/vm-files.js';

const noSync = async (): Promise<void> => undefined;

describe('the UEFI variables store of a VM', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-vmfiles-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const spec = (firmware?: VmSpec['firmware']): VmSpec => ({ id: 'vm-1', labels: {}, vcpus: 1, memoryMib: 64, disks: [], nics: [], ...(firmware ? { firmware } : {}) });
  const paths = () => vmPaths(join(dir, 'state'), join(dir, 'run'), 'vm-1');

  it('a UEFI VM gets its own 0600 copy of the template of its OVMF build', async () => {
    await prepareEfiVars(spec({ type: 'uefi', secureBoot: true }), paths(), noSync);
    const copy = await readFile(paths().efiVars);
    expect(copy.equals(await readFile(OVMF.secureBoot.varsTemplate))).toBe(true);
    expect((await stat(paths().efiVars)).mode & 0o777).toBe(0o600);
  });

  it('keeps a store the guest has written to', async () => {
    await prepareEfiVars(spec({ type: 'uefi', secureBoot: false }), paths(), noSync);
    await writeFile(paths().efiVars, 'written by the guest');
    await prepareEfiVars(spec({ type: 'uefi', secureBoot: false }), paths(), noSync);
    expect(await readFile(paths().efiVars, 'utf8')).toBe('written by the guest');
  });

  it('a BIOS VM has none', async () => {
    await prepareEfiVars(spec(), paths(), noSync);
    await expect(stat(paths().efiVars)).rejects.toThrow(/ENOENT/);
  });
});
