import { mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ImageRoots } from '../../src/storage/image-roots.js';
import { VmletError } from '../../src/model/errors.js';

describe('ImageRoots', () => {
  let dir: string;
  let roots: ImageRoots;
  let a: string;
  let b: string;
  let root: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-roots-'));
    a = join(dir, 'a');
    b = join(dir, 'b');
    root = join(dir, 'root');
    await mkdir(a);
    await mkdir(b);
    await writeFile(join(a, 'disk.img'), 'a');
    await writeFile(join(b, 'disk.img'), 'b');
    await writeFile(join(dir, 'outside.img'), 'x');
    await symlink(a, root);
    roots = new ImageRoots([root]);
  });
  // One ImageRoots per test, as a daemon has one: its cache lives across the checks of a test.
  const resolveUnderRoots = (path: string, _roots: string[], field: string) => roots.resolve(path, field);
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const refusal = (p: Promise<unknown>) =>
    p.then(
      () => expect.unreachable('accepted'),
      (err: unknown) => {
        expect(err).toBeInstanceOf(VmletError);
        expect((err as VmletError).code).toBe('INVALID_ARGUMENT');
        return (err as Error).message;
      },
    );

  it('returns the real path of a regular file under a root reached through a symlink', async () => {
    expect(await resolveUnderRoots(join(root, 'disk.img'), [root], 'f')).toBe(join(a, 'disk.img'));
  });

  it('refuses a missing file, a directory, a file outside and a symlink that leads out', async () => {
    expect(await refusal(resolveUnderRoots(join(root, 'none.img'), [root], 'spec.x'))).toMatch(/spec\.x.*does not exist/);
    await mkdir(join(a, 'sub'));
    expect(await refusal(resolveUnderRoots(join(root, 'sub'), [root], 'f'))).toMatch(/not a regular file/);
    expect(await refusal(resolveUnderRoots(join(dir, 'outside.img'), [root], 'f'))).toMatch(/outside the image roots/);
    await symlink(join(dir, 'outside.img'), join(a, 'escape.img'));
    expect(await refusal(resolveUnderRoots(join(root, 'escape.img'), [root], 'f'))).toMatch(/outside the image roots/);
  });

  it('follows a root that is re-pointed while vmlet runs, in both directions', async () => {
    expect(await resolveUnderRoots(join(a, 'disk.img'), [root], 'f')).toBe(join(a, 'disk.img'));
    await unlink(root);
    await symlink(b, root);
    // The root's old target is cached; a file under its new target is still found inside.
    expect(await resolveUnderRoots(join(b, 'disk.img'), [root], 'f')).toBe(join(b, 'disk.img'));
    expect(await refusal(resolveUnderRoots(join(a, 'disk.img'), [root], 'f'))).toMatch(/outside the image roots/);
  });
});

describe('ImageRoots: excluded directories', () => {
  it('refuses a file under an excluded directory (a half-written import), through symlinks too', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vmlet-excl-'));
    try {
      await mkdir(join(dir, 'store', '.importing'), { recursive: true });
      await writeFile(join(dir, 'store', '.importing', 'x.qcow2'), 'x');
      await writeFile(join(dir, 'store', 'x.qcow2'), 'x');
      await symlink(join(dir, 'store', '.importing', 'x.qcow2'), join(dir, 'link.qcow2'));
      const roots = new ImageRoots([dir], '--image-root', [join(dir, 'store', '.importing')]);
      await expect(roots.resolve(join(dir, 'store', '.importing', 'x.qcow2'), 'f')).rejects.toThrow(/^f: .* is an image still being imported/);
      await expect(roots.resolve(join(dir, 'link.qcow2'), 'f')).rejects.toThrow(/still being imported/);
      expect(await roots.resolve(join(dir, 'store', 'x.qcow2'), 'f')).toBe(join(dir, 'store', 'x.qcow2'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
