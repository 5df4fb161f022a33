import { chmod, chown, copyFile, mkdir, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { ovmfFilesOf } from '../model/firmware.js';
import { errorMessage, failedPrecondition } from '../model/errors.js';
import { fsyncPath } from '../host/fsync.js';
import type { VmPaths, VmSpec } from '../model/vm.js';

/**
 * A UEFI VM's own copy of OVMF's variables store, made once at create (boot entries the guest
 * writes live there and outlive restarts); a BIOS VM has none. A copy already there is kept.
 */
export async function prepareEfiVars(spec: VmSpec, paths: VmPaths, sync: (path: string) => Promise<void> = fsyncPath): Promise<void> {
  const ovmf = ovmfFilesOf(spec.firmware);
  if (!ovmf) {
    await rm(paths.efiVars, { force: true });
    return;
  }
  await mkdir(paths.stateDir, { recursive: true, mode: 0o710 });
  try {
    await copyFile(ovmf.varsTemplate, paths.efiVars, constants.COPYFILE_EXCL);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw failedPrecondition(`UEFI firmware is not installed on this node: ${ovmf.varsTemplate} is missing (Debian package ovmf)`);
    }
    throw failedPrecondition(`cannot copy the UEFI variables store ${ovmf.varsTemplate}: ${errorMessage(err)}`);
  }
  await chmod(paths.efiVars, 0o600);
  await sync(paths.efiVars);
}

/** The per-VM files QEMU opens from the state dir, handed to the VM's QEMU user; absent ones are skipped. */
export async function ownVmStateFiles(paths: VmPaths, owner: { uid: number; gid: number }): Promise<void> {
  for (const file of [paths.efiVars, paths.cloudInitSeed]) {
    try {
      await chown(file, owner.uid, owner.gid);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
