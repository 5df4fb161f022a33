import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** One line of an OVF manifest (`SHA256(disk1.vmdk)= 4f…`). */
export interface ManifestEntry {
  algorithm: 'sha1' | 'sha256' | 'sha512';
  file: string;
  digest: string;
}

/** A manifest line vmlet cannot read; the message says which. */
export class ManifestError extends Error {
  override readonly name = 'ManifestError';
}

const ALGORITHMS: Record<string, ManifestEntry['algorithm']> = { SHA1: 'sha1', SHA256: 'sha256', SHA512: 'sha512' };

/** The entries of an OVF manifest (.mf) (pure). */
export function parseManifest(text: string): ManifestEntry[] {
  const entries: ManifestEntry[] = [];
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '') continue;
    const m = /^(SHA1|SHA256|SHA512)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)$/.exec(line);
    if (!m) throw new ManifestError(`manifest line ${i + 1} is not "SHA256(file)= digest": ${line.slice(0, 80)}`);
    const algorithm = ALGORITHMS[m[1]!]!;
    const digest = m[3]!.toLowerCase();
    const expected = { sha1: 40, sha256: 64, sha512: 128 }[algorithm];
    if (digest.length !== expected) throw new ManifestError(`manifest line ${i + 1}: a ${m[1]} digest has ${expected} hex digits, not ${digest.length}`);
    entries.push({ algorithm, file: m[2]!, digest });
  }
  return entries;
}

/** The digest of `length` bytes of the file at `path` from `offset`; aborting stops the read. */
export async function digestOf(path: string, offset: number, length: number, algorithm: ManifestEntry['algorithm'], signal?: AbortSignal): Promise<string> {
  const hash = createHash(algorithm);
  if (length === 0) return hash.digest('hex');
  const stream = createReadStream(path, { start: offset, end: offset + length - 1, highWaterMark: 1024 * 1024, ...(signal ? { signal } : {}) });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
