import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { VmSpec } from '../src/model/vm.js';

/** The stock Debian 12 cloud image of scripts/build-debian-image.sh, in the repository's .guest/. */
export const debianImagePath = (repo: string): string => join(repo, '.guest', 'debian-12.qcow2');

/** Fails with what to run when the image has not been built. */
export async function requireDebianImage(repo: string): Promise<string> {
  const image = debianImagePath(repo);
  await access(image).catch(() => {
    throw new Error(`${image} is missing: build it with bash scripts/build-debian-image.sh .guest`);
  });
  return image;
}

/** Booted from its disk (SeaBIOS, GRUB, systemd) through a per-VM overlay; no kernel, no NICs. */
export function debianGuestSpec(repo: string, id: string): VmSpec {
  return {
    id,
    labels: {},
    vcpus: 1,
    memoryMib: 512,
    disks: [{ name: 'root', imagePath: debianImagePath(repo), overlay: true, readonly: false }],
    nics: [],
  };
}
