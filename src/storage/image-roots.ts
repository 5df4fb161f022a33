import { realpath, stat } from 'node:fs/promises';
import { sep } from 'node:path';
import { invalidArgument } from '../errors.js';

/**
 * Where each image root resolves to, after symlinks. Only a path found outside every cached root
 * resolves them again (a root re-pointed since), so the usual check costs the file's own two calls.
 */
const realRoots = new Map<string, string>();

async function resolveRoots(roots: readonly string[], fresh: boolean): Promise<(string | undefined)[]> {
  return Promise.all(
    roots.map(async (root) => {
      const cached = fresh ? undefined : realRoots.get(root);
      if (cached !== undefined) return cached;
      const real = await realpath(root).catch(() => undefined);
      if (real === undefined) realRoots.delete(root);
      else realRoots.set(root, real);
      return real;
    }),
  );
}

const isInside = (real: string, roots: (string | undefined)[]): boolean =>
  roots.some((root) => root !== undefined && (real === root || real.startsWith(root.endsWith(sep) ? root : root + sep)));

/**
 * Resolves a path a spec names (after symlinks) and checks that it is a regular file under one of
 * the --image-root directories, so a caller cannot make QEMU open /etc/shadow or a device.
 */
export async function resolveUnderRoots(path: string, roots: readonly string[], field: string): Promise<string> {
  // One round of file system calls: stat follows symlinks just as realpath does.
  const [real, info, cachedRoots] = await Promise.all([
    realpath(path).catch(() => undefined),
    stat(path).catch(() => undefined),
    resolveRoots(roots, false),
  ]);
  if (real === undefined || info === undefined) throw invalidArgument(field, `${path} does not exist`);
  if (!isInside(real, cachedRoots) && !isInside(real, await resolveRoots(roots, true))) {
    throw invalidArgument(field, `${path} is outside the image roots (${roots.join(', ')}); place images there or start vmlet with --image-root`);
  }
  if (!info.isFile()) throw invalidArgument(field, `${path} is not a regular file`);
  return real;
}
