import { realpath, stat } from 'node:fs/promises';
import { sep } from 'node:path';
import { invalidArgument } from '../errors.js';

/**
 * Resolves a path a spec names (after symlinks) and checks that it is a regular file under one of
 * the --image-root directories, so a caller cannot make QEMU open /etc/shadow or a device.
 */
export async function resolveUnderRoots(path: string, roots: readonly string[], field: string): Promise<string> {
  let real: string;
  try {
    real = await realpath(path);
  } catch {
    throw invalidArgument(field, `${path} does not exist`);
  }
  const realRoots = await Promise.all(roots.map((r) => realpath(r).catch(() => undefined)));
  const inside = realRoots.some((root) => root !== undefined && (real === root || real.startsWith(root.endsWith(sep) ? root : root + sep)));
  if (!inside) {
    throw invalidArgument(field, `${path} is outside the image roots (${roots.join(', ')}); place images there or start vmlet with --image-root`);
  }
  const info = await stat(real);
  if (!info.isFile()) throw invalidArgument(field, `${path} is not a regular file`);
  return real;
}
