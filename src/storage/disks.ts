import { join } from 'node:path';
import { errorMessage, failedPrecondition, invalidArgument } from '../model/errors.js';
import { mkdir } from 'node:fs/promises';
import { ImageRoots } from './image-roots.js';
import { createOverlay, inspectImage } from './qemu-img.js';
import type { DiskStatus, VmPaths, VmSpec } from '../model/vm.js';

export interface StorageOptions {
  imageRoots: ImageRoots;
  qemuImgBinary: string;
}

/**
 * Checks every path the spec names against the image roots and makes the per-VM overlays.
 * Returns what QEMU will open, in spec order. Files it made are inside paths.disksDir,
 * which the caller removes when creation fails.
 */
export async function prepareDisks(spec: VmSpec, paths: VmPaths, options: StorageOptions): Promise<DiskStatus[]> {
  const [, ...resolved] = await allInSpecOrder<string | void>([
    checkBootFiles(spec, options.imageRoots),
    ...spec.disks.map((d, i) => options.imageRoots.resolve(d.imagePath, `spec.disks[${i}].image_path`)),
  ]);
  const disks: DiskStatus[] = [];
  for (const [i, disk] of spec.disks.entries()) {
    const image = resolved[i] as string;
    const field = `spec.disks[${i}].image_path`;
    const { format, backingFiles } = await inspectImage(options.qemuImgBinary, image).catch((err: unknown) => {
      throw invalidArgument(field, `${disk.imagePath} is not a readable disk image with all its backing files (${errorMessage(err)})`);
    });
    // QEMU opens the backing files too: they are held to the image roots like the image itself.
    for (const backing of backingFiles) await options.imageRoots.resolve(backing, `${field} (backing file ${backing})`);
    if (!disk.overlay) {
      disks.push({ name: disk.name, path: image, format });
      continue;
    }
    await mkdir(paths.disksDir, { recursive: true, mode: 0o750 });
    const overlay = join(paths.disksDir, `${disk.name}.qcow2`);
    await createOverlay(options.qemuImgBinary, overlay, image, format).catch((err: unknown) => {
      throw failedPrecondition(`spec.disks[${i}]: could not create its overlay on ${disk.imagePath} (${errorMessage(err)})`);
    });
    disks.push({ name: disk.name, path: overlay, format: 'qcow2' });
  }
  return disks;
}

/** Kernel and initrd stay as the spec names them; they are checked at create and again at every start. */
export async function checkBootFiles(spec: VmSpec, imageRoots: ImageRoots): Promise<void> {
  if (!spec.kernel) return;
  const { kernelPath, initrdPath } = spec.kernel;
  const checks = [imageRoots.resolve(kernelPath, 'spec.kernel.kernel_path')];
  if (initrdPath) checks.push(imageRoots.resolve(initrdPath, 'spec.kernel.initrd_path'));
  await allInSpecOrder(checks);
}

/** Path checks run all at once; when several fail, the one first in spec order is reported. */
async function allInSpecOrder<T>(checks: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(checks);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

/** Disk images and boot files, held to the image roots. */
export class ImageStorage {
  constructor(private readonly options: StorageOptions) {}

  prepareDisks(spec: VmSpec, paths: VmPaths): Promise<DiskStatus[]> {
    return prepareDisks(spec, paths, this.options);
  }

  checkBootFiles(spec: VmSpec): Promise<void> {
    return checkBootFiles(spec, this.options.imageRoots);
  }
}
