import { chmod, copyFile, mkdir, rm } from 'node:fs/promises';
import { chownSync, constants } from 'node:fs';
import { ovmfFilesOf } from '../model/firmware.js';
import { errorMessage, failedPrecondition } from '../model/errors.js';
import { fsyncPath } from '../host/fsync.js';
import type { VmPaths, VmSpec } from '../model/vm.js';

/**
 * A UEFI VM's own copy of OVMF's variables store, made once at create (boot entries the guest
 * writes live there and outlive restarts); a BIOS VM has none. A copy already there is kept.
 * Returns whether it made one.
 */
export async function prepareEfiVars(spec: VmSpec, paths: VmPaths, sync: (path: string) => Promise<void> = fsyncPath): Promise<boolean> {
  const ovmf = ovmfFilesOf(spec.firmware);
  if (!ovmf) {
    await rm(paths.efiVars, { force: true });
    return false;
  }
  await mkdir(paths.stateDir, { recursive: true, mode: 0o710 });
  try {
    await copyFile(ovmf.varsTemplate, paths.efiVars, constants.COPYFILE_EXCL);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw failedPrecondition(`UEFI firmware is not installed on this node: ${ovmf.varsTemplate} is missing (Debian package ovmf)`);
    }
    throw failedPrecondition(`cannot copy the UEFI variables store ${ovmf.varsTemplate}: ${errorMessage(err)}`);
  }
  await chmod(paths.efiVars, 0o600);
  await sync(paths.efiVars);
  return true;
}

/** The per-VM files QEMU opens from the state dir (or those of `files`), handed to the VM's QEMU user; absent ones are skipped. */
export async function ownVmStateFiles(paths: VmPaths, owner: { uid: number; gid: number }, files = [paths.efiVars, paths.cloudInitSeed]): Promise<void> {
  for (const file of files) {
    try {
      chownSync(file, owner.uid, owner.gid);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
