import { join } from 'node:path';
import { VmletError, errorMessage, failedPrecondition, invalidArgument } from '../model/errors.js';
import { dirWithMode } from '../host/dir-mode.js';
import { fsyncPath } from '../host/fsync.js';
import { chmodSync, chownSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { ImageRoots } from './image-roots.js';
import { ownVmStateFiles, prepareEfiVars } from './vm-files.js';
import { writeSeed } from './cloud-init.js';
import { createOverlay, inspectImage } from './qemu-img.js';
import { checkQcow2Chain, dataFileRefusal, noBackingFormatRefusal, type CheckTime } from './chain.js';
import { headerBytes, headerFormat, type ImageFormat } from './image-header.js';
import type { DiskSpec, DiskStatus, VmPaths, VmSpec } from '../model/vm.js';

export interface StorageOptions {
  imageRoots: ImageRoots;
  qemuImgBinary: string;
  /** How a new overlay and its directory reach the disk; fsync unless a test says otherwise. */
  sync?: (path: string) => Promise<void>;
}

/**
 * Checks every path the spec names against the image roots, settles each disk's format (the
 * spec's, else the file's header: docs/disk-formats.md), checks the backing chains and makes the
 * per-VM overlays. Returns what QEMU will open, in spec order, each with the format QEMU is told.
 * Files it made are inside paths.disksDir, which the caller removes when creation fails. The
 * overlays and the directory's entries are fsynced before it returns: the VM is recorded next,
 * and a recorded VM whose overlay a power loss took (or left empty) would boot from nothing.
 */
export async function prepareDisks(spec: VmSpec, paths: VmPaths, options: StorageOptions): Promise<DiskStatus[]> {
  const [, ...resolved] = await allInSpecOrder<string | void>([
    checkKernelFiles(spec, options.imageRoots),
    ...spec.disks.map((d, i) => options.imageRoots.resolve(d.imagePath, `spec.disks[${i}].image_path`)),
  ]);
  const disks: DiskStatus[] = [];
  for (const [i, disk] of spec.disks.entries()) {
    const image = resolved[i] as string;
    // At create a missing file is refused, never undefined.
    const format = (await checkImage(disk, i, image, options.imageRoots, 'create')) as ImageFormat;
    if (format === 'qcow2') await inspectChain(disk, i, image, options);
    if (!disk.overlay) {
      disks.push({ name: disk.name, path: image, format });
      continue;
    }
    await mkdir(paths.disksDir, { recursive: true, mode: 0o750 });
    const overlay = join(paths.disksDir, `${disk.name}.qcow2`);
    // The overlay records the base's format (-F), so QEMU opens the base as that, never probing it.
    await createOverlay(options.qemuImgBinary, overlay, image, format).catch((err: unknown) => {
      throw failedPrecondition(`spec.disks[${i}]: could not create its overlay on ${disk.imagePath} (${errorMessage(err)})`);
    });
    disks.push({ name: disk.name, path: overlay, format: 'qcow2' });
  }
  const made = disks.filter((d) => d.path.startsWith(paths.disksDir + '/')).map((d) => d.path);
  if (made.length) {
    const sync = options.sync ?? fsyncPath;
    try {
      await Promise.all(made.map(sync));
      await sync(paths.disksDir);
    } catch (err) {
      throw new VmletError('UNAVAILABLE', `the overlays of VM ${spec.id} could not be synced to disk (${errorMessage(err)}); nothing was created`, { cause: err });
    }
  }
  return disks;
}

/**
 * The format of a disk's image (`image`, its real path): the spec's when given, else what the
 * file's header says (qcow2 magic, else raw). A qcow2 one has its backing chain checked. A raw
 * one is never looked into: whatever its first bytes are (a guest may write a qcow2 header), QEMU
 * opens it as raw. With `when` 'start', undefined when the file has vanished (QEMU will say so).
 */
async function checkImage(disk: DiskSpec, i: number, image: string, roots: ImageRoots, when: CheckTime): Promise<ImageFormat | undefined> {
  if (disk.format === 'raw') return 'raw';
  const field = `spec.disks[${i}].image_path`;
  let head: Buffer;
  try {
    head = await headerBytes(image);
  } catch (err) {
    if (when === 'start' && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw invalidArgument(field, `${disk.imagePath} could not be read (${errorMessage(err)})`);
  }
  const found = headerFormat(head);
  if (disk.format === 'qcow2' && found !== 'qcow2') {
    throw invalidArgument(`spec.disks[${i}].format`, `is qcow2, but ${disk.imagePath} has no qcow2 header; give format raw, or leave format empty for vmlet to read it from the file's header`);
  }
  const format = disk.format ?? found;
  if (format === 'qcow2') await checkQcow2Chain(image, head, { roots, field, imagePath: disk.imagePath, when });
  return format;
}

/**
 * Second opinion on a qcow2 chain at create: qemu-img opens it (the image with -f qcow2, so
 * nothing is probed) and must agree with what the headers said, and the chain must open at all.
 */
async function inspectChain(disk: DiskSpec, i: number, image: string, options: StorageOptions): Promise<void> {
  const field = `spec.disks[${i}].image_path`;
  const chain = await inspectImage(options.qemuImgBinary, image, 'qcow2').catch((err: unknown) => {
    throw invalidArgument(field, `${disk.imagePath} is not a readable disk image with all its backing files (${errorMessage(err)})`);
  });
  for (const [k, link] of chain.entries()) {
    const linkField = k === 0 ? field : `${field} (backing file ${link.filename})`;
    const label = k === 0 ? disk.imagePath : link.filename;
    if (link.dataFile !== undefined) throw dataFileRefusal(linkField, label, link.dataFile);
    if (link.backingFilename !== undefined && !link.backingFormat) throw noBackingFormatRefusal(linkField, label, link.backingFilename);
    // QEMU opens the backing files too: they are held to the image roots like the image itself.
    if (k > 0) await options.imageRoots.resolve(link.filename, linkField);
  }
}

/** Kernel and initrd stay as the spec names them; they are checked at create and again at every start. */
async function checkKernelFiles(spec: VmSpec, imageRoots: ImageRoots): Promise<void> {
  if (!spec.kernel) return;
  const { kernelPath, initrdPath } = spec.kernel;
  const checks = [imageRoots.resolve(kernelPath, 'spec.kernel.kernel_path')];
  if (initrdPath) checks.push(imageRoots.resolve(initrdPath, 'spec.kernel.initrd_path'));
  await allInSpecOrder(checks);
}

/**
 * At every start, every file the spec names is checked again, all at once: kernel and initrd,
 * each disk image and the backing chain of each qcow2 one, under the image roots and by the same
 * rules as at create, so a symlink re-pointed since create is refused (INVALID_ARGUMENT). A disk
 * image or backing file that has vanished is left to QEMU, which fails the start saying so.
 * Overlays are vmlet's own files in the VM's state dir; what they sit on is checked here.
 */
export async function checkBootFiles(spec: VmSpec, imageRoots: ImageRoots): Promise<void> {
  await allInSpecOrder<unknown>([
    checkKernelFiles(spec, imageRoots),
    ...spec.disks.map(async (disk, i) => {
      const image = await imageRoots.resolveIfPresent(disk.imagePath, `spec.disks[${i}].image_path`);
      if (image !== undefined) await checkImage(disk, i, image, imageRoots, 'start');
    }),
  ]);
}

/** Path checks run all at once; when several fail, the one first in spec order is reported. */
async function allInSpecOrder<T>(checks: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(checks);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

/**
 * Hands a VM's files to its QEMU user: the VM's state dir may be entered by its group only, its
 * disks dir and overlays belong to the user. Base images are not touched: QEMU opens them
 * read-only, and other VMs' users cannot reach this VM's overlays.
 */
export async function ownVmFiles(paths: VmPaths, disks: readonly DiskStatus[], owner: { uid: number; gid: number }): Promise<void> {
  dirWithMode(paths.stateDir, 0o710, { uid: 0, gid: owner.gid });
  dirWithMode(paths.disksDir, 0o700, owner);
  for (const disk of disks) {
    if (!disk.path.startsWith(paths.disksDir + '/')) continue;
    chownSync(disk.path, owner.uid, owner.gid);
    chmodSync(disk.path, 0o600);
  }
}

/** Disk images and boot files, held to the image roots. */
export class ImageStorage {
  constructor(private readonly options: StorageOptions) {}

  prepareDisks(spec: VmSpec, paths: VmPaths): Promise<DiskStatus[]> {
    return prepareDisks(spec, paths, this.options);
  }

  /** The UEFI variables store (storage/vm-files.ts) and the cloud-init seed (storage/cloud-init.ts). */
  async prepareVmFiles(spec: VmSpec, paths: VmPaths, owner?: { uid: number; gid: number }): Promise<void> {
    const [vars, seed] = await Promise.all([
      prepareEfiVars(spec, paths, this.options.sync),
      writeSeed(spec, paths, this.options.sync ? { sync: this.options.sync } : {}),
    ]);
    // Only what was made now: the files made before are the owner's already.
    const made = [...(vars ? [paths.efiVars] : []), ...(seed ? [paths.cloudInitSeed] : [])];
    if (owner && made.length > 0) await ownVmStateFiles(paths, owner, made);
  }

  async own(paths: VmPaths, disks: readonly DiskStatus[], owner: { uid: number; gid: number }): Promise<void> {
    await ownVmFiles(paths, disks, owner);
    await ownVmStateFiles(paths, owner);
  }

  /** At every start: kernel, initrd, disk images and their backing chains, checked again (see checkBootFiles). */
  checkBootFiles(spec: VmSpec): Promise<void> {
    return checkBootFiles(spec, this.options.imageRoots);
  }
}
