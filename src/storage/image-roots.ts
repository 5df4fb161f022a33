import { realpath, stat } from 'node:fs/promises';
import { sep } from 'node:path';
import { invalidArgument } from '../model/errors.js';

/**
 * The --image-root directories: every kernel, initrd, disk image and backing file a spec may name
 * must be a regular file under one of them, after symlinks. The roots' real paths are cached;
 * only a path found outside every cached root resolves them again (a root re-pointed since), so
 * the usual check costs the file's own two calls.
 */
export class ImageRoots {
  private readonly realRoots = new Map<string, string>();

  /** `flag` names the option that sets the roots, in messages (--image-root, or --import-root for import sources). */
  constructor(
    readonly roots: readonly string[],
    private readonly flag = '--image-root',
    /** Directories under the roots whose files no spec may name (the store's half-written imports). */
    private readonly excluded: readonly string[] = [],
  ) {}

  /** The real path of `path`; INVALID_ARGUMENT naming `field` when it is missing, outside the roots or not a file. */
  async resolve(path: string, field: string): Promise<string> {
    const real = await this.resolveIfPresent(path, field);
    if (real === undefined) throw invalidArgument(field, `${path} does not exist`);
    return real;
  }

  /**
   * Like resolve, but undefined when `path` (or, through symlinks, what it leads to) does not exist:
   * for checks that leave a vanished file to whoever opens it next.
   */
  async resolveIfPresent(path: string, field: string): Promise<string | undefined> {
    const roots = this.roots;
    // One round of file system calls: stat follows symlinks just as realpath does.
    const [real, info, first] = await Promise.all([realpath(path).catch(() => undefined), stat(path).catch(() => undefined), this.resolveRoots(false)]);
    if (real === undefined || info === undefined) return undefined;
    const inside = isInside(real, first.reals) || (first.cached && isInside(real, (await this.resolveRoots(true)).reals));
    if (!inside) {
      const what = this.flag === '--image-root' ? 'image roots' : `${this.flag} directories`;
      throw invalidArgument(field, `${path} is outside the ${what} (${roots.join(', ') || 'none given'}); place the file there or start vmlet with ${this.flag}`);
    }
    if (!info.isFile()) throw invalidArgument(field, `${path} is not a regular file`);
    if (this.excluded.length) {
      const excluded = await Promise.all(this.excluded.map((dir) => realpath(dir).catch(() => undefined)));
      if (isInside(real, excluded)) throw invalidArgument(field, `${path} is an image still being imported; use the store's image once ImportImage has finished`);
    }
    return real;
  }

  /** The roots' real paths, and whether any came from the cache (and so may be stale). */
  private async resolveRoots(fresh: boolean): Promise<{ reals: (string | undefined)[]; cached: boolean }> {
    let cached = false;
    const reals = await Promise.all(
      this.roots.map(async (root) => {
        const known = fresh ? undefined : this.realRoots.get(root);
        if (known !== undefined) {
          cached = true;
          return known;
        }
        const resolved = await realpath(root).catch(() => undefined);
        if (resolved === undefined) this.realRoots.delete(root);
        else this.realRoots.set(root, resolved);
        return resolved;
      }),
    );
    return { reals, cached };
  }
}

const isInside = (real: string, roots: (string | undefined)[]): boolean =>
  roots.some((root) => root !== undefined && (real === root || real.startsWith(root.endsWith(sep) ? root : root + sep)));
