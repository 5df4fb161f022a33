import { invalidArgument, type VmletError } from '../model/errors.js';
import { headerBytes, headerFormat, parseQcow2Header, Qcow2HeaderError } from './image-header.js';
import type { ImageRoots } from './image-roots.js';

/** Longest backing chain vmlet lets QEMU open (the image not counted). */
export const MAX_BACKING_CHAIN = 32;

/** The backing formats vmlet lets QEMU open: a raw file names no other file, a qcow2 one only what is checked here. */
const BACKING_FORMATS: readonly string[] = ['raw', 'qcow2'];

/**
 * When a check runs. At create every file must be there. At a start a file that has vanished
 * since is left to QEMU, which then fails the start with its own error (nothing is opened in its
 * place); everything that exists is held to the same rules as at create.
 */
export type CheckTime = 'create' | 'start';

export interface ChainCheck {
  roots: ImageRoots;
  /** The image's field, e.g. `spec.disks[0].image_path`. */
  field: string;
  /** The image as the spec names it, for messages. */
  imagePath: string;
  when: CheckTime;
}

/** QEMU's path_has_protocol: a colon before the first slash (`nbd:…`, `json:{…}`) makes a name a protocol, not a file. */
export function hasProtocol(name: string): boolean {
  return /^[^/]*:/.test(name);
}

/**
 * The file QEMU opens for a backing file name (block.c, path_combine): an absolute name as it is,
 * a relative one appended to the directory of the image that names it, as QEMU named that image.
 */
export function backingPath(image: string, backing: string): string {
  return backing.startsWith('/') ? backing : image.slice(0, image.lastIndexOf('/') + 1) + backing;
}

/** An image QEMU would make open a file no spec names. */
export function dataFileRefusal(field: string, image: string, dataFile: string | undefined): VmletError {
  const named = dataFile ? ` (${dataFile})` : '';
  return invalidArgument(
    field,
    `${image} keeps its data in an external data file${named}, which QEMU would open as well; vmlet refuses such images: make a self-contained copy with qemu-img convert -O qcow2`,
  );
}

/** A backing file QEMU would have to probe. */
export function noBackingFormatRefusal(field: string, image: string, backing: string): VmletError {
  return invalidArgument(
    field,
    `${image} names its backing file ${backing} without a backing format, so QEMU would guess the format from the file's contents; record it with qemu-img rebase -u -F raw|qcow2 -b ${backing} ${image}`,
  );
}

const isMissing = (err: unknown): boolean => (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';

/**
 * Walks the backing chain of the qcow2 image `image` (a real path under the roots; `head` its
 * first bytes, from headerBytes) the way QEMU will open it, from the headers alone: QEMU never
 * probes, so every qcow2 in the chain must record its backing file's format (raw or qcow2), none
 * may have an external data file, and every backing file must resolve under the image roots.
 * Returns the backing files in chain order, named as QEMU names them. INVALID_ARGUMENT otherwise,
 * naming `check.field` (and the backing file concerned).
 */
export async function checkQcow2Chain(image: string, head: Buffer, check: ChainCheck): Promise<string[]> {
  const { roots, field, imagePath, when } = check;
  const unreadable = (problem: string): VmletError =>
    invalidArgument(field, `${imagePath} is not a readable disk image with all its backing files (${problem})`);
  const backings: string[] = [];
  const seen = new Set([image]);
  let name = image;
  let label = imagePath;
  let labelField = field;
  let buf = head;
  for (;;) {
    let header;
    try {
      header = parseQcow2Header(buf);
    } catch (err) {
      if (err instanceof Qcow2HeaderError) throw unreadable(name === image ? err.message : `backing file ${name}: ${err.message}`);
      throw err;
    }
    if (header.externalDataFile || header.dataFile !== undefined) throw dataFileRefusal(labelField, label, header.dataFile);
    if (header.backingFile === '') return backings;
    if (hasProtocol(header.backingFile)) {
      throw invalidArgument(labelField, `${label} names its backing file as ${header.backingFile}, which QEMU reads as a protocol, not a file under the image roots`);
    }
    if (header.backingFormat === '') throw noBackingFormatRefusal(labelField, label, header.backingFile);
    if (!BACKING_FORMATS.includes(header.backingFormat)) {
      throw invalidArgument(labelField, `${label} records its backing file ${header.backingFile} as ${header.backingFormat}; vmlet opens only raw and qcow2`);
    }
    if (backings.length === MAX_BACKING_CHAIN) throw invalidArgument(field, `${imagePath} has a backing chain of more than ${MAX_BACKING_CHAIN} files`);
    const next = backingPath(name, header.backingFile);
    const nextField = `${field} (backing file ${next})`;
    const real = await roots.resolveIfPresent(next, nextField);
    if (real === undefined) {
      if (when === 'start') return backings;
      throw unreadable(`backing file ${next} does not exist`);
    }
    if (seen.has(real)) throw invalidArgument(nextField, `the backing chain of ${imagePath} loops back to ${next}`);
    seen.add(real);
    backings.push(next);
    if (header.backingFormat === 'raw') return backings;
    let nextHead: Buffer;
    try {
      nextHead = await headerBytes(real);
    } catch (err) {
      if (when === 'start' && isMissing(err)) return backings;
      throw unreadable(`backing file ${next}: ${(err as Error).message}`);
    }
    if (headerFormat(nextHead) !== 'qcow2') throw unreadable(`backing file ${next} is recorded as qcow2 but has no qcow2 header`);
    name = next;
    label = next;
    labelField = nextField;
    buf = nextHead;
  }
}
