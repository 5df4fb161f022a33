import { realpath, stat } from 'node:fs/promises';
import { sep } from 'node:path';
import { invalidArgument } from '../errors.js';

/**
 * Resolves a path a spec names (after symlinks) and checks that it is a regular file under one of
 * the --image-root directories, so a caller cannot make QEMU open /etc/shadow or a device.
 */
export async function resolveUnderRoots(path: string, roots: readonly string[], field: string): Promise<string> {
  // One round of file system calls: stat follows symlinks just as realpath does.
  const [real, info, realRoots] = await Promise.all([
    realpath(path).catch(() => undefined),
    stat(path).catch(() => undefined),
    Promise.all(roots.map((r) => realpath(r).catch(() => undefined))),
  ]);
  if (real === undefined || info === undefined) throw invalidArgument(field, `${path} does not exist`);
  const inside = realRoots.some((root) => root !== undefined && (real === root || real.startsWith(root.endsWith(sep) ? root : root + sep)));
  if (!inside) {
    throw invalidArgument(field, `${path} is outside the image roots (${roots.join(', ')}); place images there or start vmlet with --image-root`);
  }
  if (!info.isFile()) throw invalidArgument(field, `${path} is not a regular file`);
  return real;
}
