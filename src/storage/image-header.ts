import { open, type FileHandle } from 'node:fs/promises';

/** The formats vmlet lets QEMU open. */
export type ImageFormat = 'raw' | 'qcow2';

/** `QFI\xfb`: the first four bytes of every qcow2 image. */
export const QCOW2_MAGIC = Buffer.from([0x51, 0x46, 0x49, 0xfb]);

/** The format a file's first bytes say: qcow2 with the qcow2 magic, raw otherwise. Pure; vmlet's only detection. */
export function headerFormat(head: Uint8Array): ImageFormat {
  return head.length >= QCOW2_MAGIC.length && QCOW2_MAGIC.equals(head.subarray(0, QCOW2_MAGIC.length)) ? 'qcow2' : 'raw';
}

/** What in a qcow2 header makes QEMU open other files. */
export interface Qcow2Header {
  version: 2 | 3;
  clusterSize: number;
  /** As stored (up to its first NUL, as QEMU reads it); empty: no backing file. */
  backingFile: string;
  /** The backing format header extension; empty: absent, and QEMU would probe the backing file. */
  backingFormat: string;
  /** The external data file header extension, when present. */
  dataFile?: string;
  /** The incompatible feature bit "external data file". */
  externalDataFile: boolean;
}

const EXT_END = 0;
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_DATA_FILE = 0x44415441;
const INCOMPAT_DATA_FILE = 1n << 2n;
const V2_HEADER_LENGTH = 72;
const V3_MIN_HEADER_LENGTH = 104;
/** QEMU's limits: clusters of 512 B to 2 MiB, a backing file name of at most 1023 bytes, a backing format of at most 15. */
const MIN_CLUSTER_BITS = 9;
const MAX_CLUSTER_BITS = 21;
const MAX_BACKING_NAME = 1023;
const MAX_BACKING_FORMAT = 15;
/** What headerBytes reads first: enough for the magic, the fixed header, and the extensions of almost every image. */
const FIRST_READ = 4096;

/** A header that cannot be a qcow2 image QEMU would open; the message says why. */
export class Qcow2HeaderError extends Error {
  override readonly name = 'Qcow2HeaderError';
}

/** A C string as QEMU reads it (up to the first NUL); a name that is not UTF-8 could not be checked by its bytes, so it is refused. */
function cString(buf: Buffer, what: string): string {
  const nul = buf.indexOf(0);
  const bytes = buf.subarray(0, nul < 0 ? buf.length : nul);
  const text = bytes.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(bytes)) throw new Qcow2HeaderError(`the qcow2 ${what} is not valid UTF-8`);
  return text;
}

function slice(buf: Buffer, offset: number, length: number, what: string): Buffer {
  if (offset + length > buf.length) throw new Qcow2HeaderError(`the file ends inside the qcow2 ${what}`);
  return buf.subarray(offset, offset + length);
}

/** The fixed fields that say how far the header (extensions and backing file name) reaches. */
function fixedHeader(buf: Buffer): { version: 2 | 3; clusterSize: number; backingOffset: number; backingSize: number; headerLength: number; incompatible: bigint } {
  if (headerFormat(buf) !== 'qcow2') throw new Qcow2HeaderError('no qcow2 header (the file does not start with QFI\\xfb)');
  const fixed = slice(buf, 0, V2_HEADER_LENGTH, 'header');
  const version = fixed.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw new Qcow2HeaderError(`unsupported qcow2 version ${version}`);
  const clusterBits = fixed.readUInt32BE(20);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) throw new Qcow2HeaderError(`invalid qcow2 cluster size (2^${clusterBits})`);
  const clusterSize = 2 ** clusterBits;
  const backingOffset = fixed.readBigUInt64BE(8);
  if (backingOffset > BigInt(clusterSize)) throw new Qcow2HeaderError('invalid qcow2 backing file offset');
  const backingSize = fixed.readUInt32BE(16);
  let headerLength = V2_HEADER_LENGTH;
  let incompatible = 0n;
  if (version === 3) {
    const v3 = slice(buf, 0, V3_MIN_HEADER_LENGTH, 'header');
    headerLength = v3.readUInt32BE(100);
    if (headerLength < V3_MIN_HEADER_LENGTH || headerLength > clusterSize) throw new Qcow2HeaderError(`invalid qcow2 header length ${headerLength}`);
    incompatible = v3.readBigUInt64BE(72);
  }
  return { version, clusterSize, backingOffset: Number(backingOffset), backingSize, headerLength, incompatible };
}

/** Bytes from the file's start that parseQcow2Header needs: the header extensions end at the backing file name or the first cluster's end. */
export function qcow2HeaderBytes(buf: Buffer): number {
  const h = fixedHeader(buf);
  const extensionsEnd = h.backingOffset !== 0 ? h.backingOffset : h.clusterSize;
  return Math.max(extensionsEnd, h.backingOffset !== 0 ? h.backingOffset + Math.min(h.backingSize, MAX_BACKING_NAME + 1) : 0);
}

/**
 * The parts of a qcow2 header that name other files, read as QEMU 7.2 reads them (block/qcow2.c):
 * the backing file name, and the backing format and external data file header extensions. Pure;
 * `buf` holds the file's first qcow2HeaderBytes(buf) bytes (or all of a shorter file). Throws
 * Qcow2HeaderError for a header QEMU would refuse to open.
 */
export function parseQcow2Header(buf: Buffer): Qcow2Header {
  const h = fixedHeader(buf);
  const extensionsEnd = h.backingOffset !== 0 ? h.backingOffset : h.clusterSize;
  let backingFormat = '';
  let dataFile: string | undefined;
  for (let offset = h.version === 3 ? h.headerLength : V2_HEADER_LENGTH; offset < extensionsEnd; ) {
    // An image whose extension area is cut short by the file's end holds no more extensions.
    if (offset + 8 > buf.length && buf.length < extensionsEnd) break;
    const ext = slice(buf, offset, 8, 'header extensions');
    const type = ext.readUInt32BE(0);
    const length = ext.readUInt32BE(4);
    offset += 8;
    if (type === EXT_END) break;
    if (length > extensionsEnd - offset) throw new Qcow2HeaderError(`qcow2 header extension 0x${type.toString(16)} is too large`);
    const data = slice(buf, offset, length, 'header extensions');
    if (type === EXT_BACKING_FORMAT) {
      if (length > MAX_BACKING_FORMAT) throw new Qcow2HeaderError(`qcow2 backing format extension is too long (${length} bytes)`);
      backingFormat = cString(data, 'backing format');
    } else if (type === EXT_DATA_FILE) {
      dataFile = cString(data, 'external data file name');
    }
    offset += Math.ceil(length / 8) * 8;
  }
  let backingFile = '';
  if (h.backingOffset !== 0) {
    if (h.backingSize > Math.min(MAX_BACKING_NAME, h.clusterSize - h.backingOffset)) throw new Qcow2HeaderError('qcow2 backing file name is too long');
    backingFile = cString(slice(buf, h.backingOffset, h.backingSize, 'backing file name'), 'backing file name');
  }
  return {
    version: h.version,
    clusterSize: h.clusterSize,
    backingFile,
    backingFormat,
    ...(dataFile === undefined ? {} : { dataFile }),
    externalDataFile: (h.incompatible & INCOMPAT_DATA_FILE) !== 0n,
  };
}

/**
 * The first bytes of the file at `path`: enough to tell its format, and for a qcow2 image enough
 * for parseQcow2Header. Never more than a cluster and a backing file name (2 MiB + 1 KiB).
 */
export async function headerBytes(path: string): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const read = (length: number): Promise<Buffer> => readPrefix(file, length);
    const first = await read(FIRST_READ);
    if (headerFormat(first) !== 'qcow2') return first;
    let needed: number;
    try {
      needed = qcow2HeaderBytes(first);
    } catch {
      return first; // parseQcow2Header says what is wrong
    }
    return needed > first.length && first.length === FIRST_READ ? read(needed) : first;
  } finally {
    await file.close();
  }
}

/** The first `length` bytes of an open file (fewer when it is shorter), however the reads split. */
export async function readPrefix(file: FileHandle, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await file.read(buf, filled, length - filled, filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buf.subarray(0, filled);
}
