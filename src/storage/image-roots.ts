import { realpath, stat } from 'node:fs/promises';
import { sep } from 'node:path';
import { invalidArgument } from '../model/errors.js';

/**
 * Where each image root resolves to, after symlinks. Only a path found outside every cached root
 * resolves them again (a root re-pointed since), so the usual check costs the file's own two calls.
 */
const realRoots = new Map<string, string>();

/** The roots' real paths, and whether any came from the cache (and so may be stale). */
async function resolveRoots(roots: readonly string[], fresh: boolean): Promise<{ reals: (string | undefined)[]; cached: boolean }> {
  let cached = false;
  const reals = await Promise.all(
    roots.map(async (root) => {
      const known = fresh ? undefined : realRoots.get(root);
      if (known !== undefined) {
        cached = true;
        return known;
      }
      const real = await realpath(root).catch(() => undefined);
      if (real === undefined) realRoots.delete(root);
      else realRoots.set(root, real);
      return real;
    }),
  );
  return { reals, cached };
}

const isInside = (real: string, roots: (string | undefined)[]): boolean =>
  roots.some((root) => root !== undefined && (real === root || real.startsWith(root.endsWith(sep) ? root : root + sep)));

/**
 * Resolves a path a spec names (after symlinks) and checks that it is a regular file under one of
 * the --image-root directories, so a caller cannot make QEMU open /etc/shadow or a device.
 */
export async function resolveUnderRoots(path: string, roots: readonly string[], field: string): Promise<string> {
  // One round of file system calls: stat follows symlinks just as realpath does.
  const [real, info, first] = await Promise.all([
    realpath(path).catch(() => undefined),
    stat(path).catch(() => undefined),
    resolveRoots(roots, false),
  ]);
  if (real === undefined || info === undefined) throw invalidArgument(field, `${path} does not exist`);
  const inside = isInside(real, first.reals) || (first.cached && isInside(real, (await resolveRoots(roots, true)).reals));
  if (!inside) {
    throw invalidArgument(field, `${path} is outside the image roots (${roots.join(', ')}); place images there or start vmlet with --image-root`);
  }
  if (!info.isFile()) throw invalidArgument(field, `${path} is not a regular file`);
  return real;
}
