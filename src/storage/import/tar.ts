import { open } from 'node:fs/promises';

/** A regular file inside a tar archive: where its bytes are, so qemu-img can read them in place. */
export interface TarMember {
  name: string;
  /** Offset of the member's first byte in the archive. */
  offset: number;
  size: number;
}

const BLOCK = 512;

/** A tar archive vmlet cannot read; the message says why. */
export class TarError extends Error {
  override readonly name = 'TarError';
}

/** A NUL-terminated field. */
const field = (block: Buffer, offset: number, length: number): string => {
  const raw = block.subarray(offset, offset + length);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul < 0 ? raw.length : nul).toString('utf8');
};

/** A numeric field: octal text, or GNU's base-256 (high bit set) for sizes beyond 8 GiB. */
function numeric(block: Buffer, offset: number, length: number): number {
  const raw = block.subarray(offset, offset + length);
  if (raw[0]! & 0x80) {
    let value = 0n;
    for (let i = 1; i < raw.length; i++) value = (value << 8n) | BigInt(raw[i]!);
    return Number(value);
  }
  const text = field(block, offset, length).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarError(`bad numeric field "${text}" in a tar header`);
  return parseInt(text, 8);
}

/** One parsed header block (pure); undefined for an all-zero block (the archive's end). */
export function parseTarHeader(block: Buffer): { name: string; size: number; type: string } | undefined {
  if (block.length < BLOCK) throw new TarError('the archive ends inside a header');
  if (block.every((b) => b === 0)) return undefined;
  const stored = numeric(block, 148, 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  if (sum !== stored) throw new TarError('a tar header checksum does not match (not a tar archive, or a damaged one)');
  const name = field(block, 0, 100);
  const prefix = field(block, 257, 6).startsWith('ustar') ? field(block, 345, 155) : '';
  return { name: prefix ? `${prefix}/${name}` : name, size: numeric(block, 124, 12), type: String.fromCharCode(block[156] || 0x30) };
}

/** `path=` of a pax extended header (pure). */
export function paxPath(data: Buffer): string | undefined {
  let at = 0;
  let path: string | undefined;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space < 0) break;
    const length = Number(data.subarray(at, space).toString('latin1'));
    if (!Number.isInteger(length) || length <= 0) throw new TarError('bad pax header record');
    const record = data.subarray(space + 1, at + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (record.slice(0, eq) === 'path') path = record.slice(eq + 1);
    at += length;
  }
  return path;
}

const MAX_META = 1024 * 1024;

/**
 * The regular files of the tar archive at `path`, in archive order, read header by header
 * (never the members' data). Understands ustar, GNU long names and pax path records.
 */
export async function listTar(path: string): Promise<TarMember[]> {
  const file = await open(path, 'r');
  try {
    const { size: total } = await file.stat();
    const read = async (offset: number, length: number): Promise<Buffer> => {
      const buf = Buffer.alloc(length);
      const { bytesRead } = await file.read(buf, 0, length, offset);
      if (bytesRead < length) throw new TarError(`the archive ends early (at byte ${offset + bytesRead})`);
      return buf;
    };
    const members: TarMember[] = [];
    let offset = 0;
    let longName: string | undefined;
    while (offset + BLOCK <= total) {
      const header = parseTarHeader(await read(offset, BLOCK));
      if (!header) break;
      const dataOffset = offset + BLOCK;
      if (dataOffset + header.size > total) throw new TarError(`member ${header.name} runs past the archive's end`);
      if (header.type === 'L' || header.type === 'x') {
        if (header.size > MAX_META) throw new TarError('a tar extended header is too large');
        const data = await read(dataOffset, header.size);
        longName = header.type === 'L' ? field(data, 0, data.length) : (paxPath(data) ?? longName);
      } else if (header.type === '0' || header.type === '7') {
        members.push({ name: longName ?? header.name, offset: dataOffset, size: header.size });
        longName = undefined;
      } else {
        longName = undefined;
      }
      offset = dataOffset + Math.ceil(header.size / BLOCK) * BLOCK;
    }
    return members;
  } finally {
    await file.close();
  }
}
