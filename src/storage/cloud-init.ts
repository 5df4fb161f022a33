import { createHash } from 'node:crypto';
import { access, chmod, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../host/run.js';
import { fsyncPath } from '../host/fsync.js';
import type { VmPaths, VmSpec } from '../model/vm.js';

/** The ISO 9660 volume label cloud-init's NoCloud datasource looks for. */
export const SEED_LABEL = 'cidata';
const GENISOIMAGE_TIMEOUT_MS = 15_000;

export interface SeedOptions {
  genisoimage?: string;
  sync?: (path: string) => Promise<void>;
}

/**
 * NoCloud's files for the spec, by name; undefined without cloud_init. An empty meta-data is
 * vmlet's: an instance-id that stays the same for the VM (cloud-init runs its per-instance
 * modules again when it changes) and the VM's id as hostname.
 */
export function seedFiles(spec: VmSpec): Record<string, string> | undefined {
  const ci = spec.cloudInit;
  if (!ci) return undefined;
  return {
    'user-data': ci.userData,
    'meta-data': ci.metaData !== '' ? ci.metaData : `instance-id: iid-${spec.id}\nlocal-hostname: ${spec.id}\n`,
    ...(ci.networkConfig !== '' ? { 'network-config': ci.networkConfig } : {}),
  };
}

/** What the seed was made from, kept next to it so that an unchanged spec does not remake it. */
const digestFile = (paths: VmPaths): string => `${paths.cloudInitSeed}.sha256`;

/**
 * Makes the VM's seed image when its spec has cloud_init and the image on disk was made from
 * other files (or is missing); removes it when the spec has none. Returns whether it wrote one.
 * The image is made beside the old one and renamed over it, so a failure leaves the old one.
 */
export async function writeSeed(spec: VmSpec, paths: VmPaths, options: SeedOptions = {}): Promise<boolean> {
  const files = seedFiles(spec);
  if (!files) {
    await Promise.all([rm(paths.cloudInitSeed, { force: true }), rm(digestFile(paths), { force: true })]);
    return false;
  }
  const digest = createHash('sha256').update(JSON.stringify(files)).digest('hex');
  if ((await readFile(digestFile(paths), 'utf8').catch(() => '')) === digest && (await exists(paths.cloudInitSeed))) return false;

  await mkdir(paths.stateDir, { recursive: true, mode: 0o710 });
  const dir = await mkdtemp(join(paths.stateDir, '.cidata-'));
  const tmp = `${paths.cloudInitSeed}.tmp`;
  try {
    const names = Object.keys(files);
    await Promise.all(names.map((name) => writeFile(join(dir, name), files[name]!)));
    // -joliet and -rock keep the lowercase, dashed names cloud-init reads.
    const args = ['-output', tmp, '-volid', SEED_LABEL, '-joliet', '-rock', '-input-charset', 'utf-8', '-quiet', ...names.map((n) => join(dir, n))];
    await run(options.genisoimage ?? 'genisoimage', args, { timeoutMs: GENISOIMAGE_TIMEOUT_MS });
    await chmod(tmp, 0o440);
    await (options.sync ?? fsyncPath)(tmp);
    await rename(tmp, paths.cloudInitSeed);
    await writeFile(digestFile(paths), digest);
  } finally {
    await Promise.all([rm(dir, { recursive: true, force: true }), rm(tmp, { force: true })]);
  }
  return true;
}

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );
