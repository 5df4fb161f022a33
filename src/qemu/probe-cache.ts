/**
 * The QEMU binary's facts (its version, whether KVM really works) kept between vmlet starts, as
 * libvirt keeps its capabilities cache: the KVM probe starts a throw-away QEMU and `--version`
 * loads every library QEMU links, and a restarted agent with busy guests should not wait for
 * either when nothing changed. The facts are reused only while the key is the same: the binary
 * (path, inode, size, times), /dev/kvm (inode, device, times), the boot, the accelerator mode and
 * the namespace the probe runs in. Anything else, a missing or unreadable file included, probes.
 */
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resolveBinary } from '../host/binary-path.js';
import type { AcceleratorChoice } from './accel.js';

export interface QemuFacts {
  version: string;
  choice: AcceleratorChoice;
}

const CACHE_FILE = 'qemu-facts.json';

interface CacheFile {
  key: string;
  facts: QemuFacts;
}

async function fileIdentity(path: string): Promise<string> {
  try {
    const s = await stat(path, { bigint: true });
    return [s.ino, s.dev, s.rdev, s.size, s.mtimeNs, s.ctimeNs, s.mode].join(':');
  } catch (err) {
    return `absent:${(err as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}

/** What the facts depend on, as one string; undefined when the binary is not found (nothing is cached then). */
export async function factsKey(input: { qemuBinary: string; mode: string; netns?: string | undefined; kvmDevice?: string }): Promise<string | undefined> {
  const path = await resolveBinary(input.qemuBinary);
  if (!path) return undefined;
  const [binary, kvm, boot] = await Promise.all([
    fileIdentity(path),
    fileIdentity(input.kvmDevice ?? '/dev/kvm'),
    readFile('/proc/sys/kernel/random/boot_id', 'utf8').then((t) => t.trim(), () => 'unknown'),
  ]);
  return JSON.stringify({ binary: path, identity: binary, kvm, boot, mode: input.mode, netns: input.netns ?? '' });
}

/**
 * Whether facts are worth keeping: a fall back to TCG while /dev/kvm exists is probed again at the
 * next start (a KVM that failed once may work then, with nothing in the key changed).
 */
export async function worthKeeping(facts: QemuFacts, mode: string, kvmDevice = '/dev/kvm'): Promise<boolean> {
  if (facts.choice.accelerator === 'kvm' || mode === 'tcg') return true;
  return (await fileIdentity(kvmDevice)).startsWith('absent:');
}

/** The cached facts for `key` in `dir`, if the file holds them. */
export async function readCachedFacts(dir: string, key: string): Promise<QemuFacts | undefined> {
  try {
    const cached = JSON.parse(await readFile(join(dir, CACHE_FILE), 'utf8')) as Partial<CacheFile>;
    const facts = cached.facts;
    if (cached.key !== key || typeof facts?.version !== 'string' || (facts.choice?.accelerator !== 'kvm' && facts.choice?.accelerator !== 'tcg') || typeof facts.choice.reason !== 'string') return undefined;
    return facts;
  } catch {
    return undefined;
  }
}

/** Keeps the facts for the next start; written whole (temp file, rename) so a reader sees old or new. */
export async function writeCachedFacts(dir: string, key: string, facts: QemuFacts): Promise<void> {
  const file = join(dir, CACHE_FILE);
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, JSON.stringify({ key, facts } satisfies CacheFile), { mode: 0o640 });
  await rename(temp, file);
}
