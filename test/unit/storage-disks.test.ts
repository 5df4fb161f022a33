import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VmletError } from '../../src/model/errors.js';
import type { DiskSpec, VmSpec } from '../../src/model/vm.js';
import { checkBootFiles, prepareDisks } from '../../src/storage/disks.js';
import { ImageRoots } from '../../src/storage/image-roots.js';
import { MAX_BACKING_CHAIN } from '../../src/storage/chain.js';
import { vmPaths } from '../../src/state/paths.js';
import { dropBackingFormat, qemuImg } from '../support/qcow2.js';

const info = async (path: string, format: string) => JSON.parse((await qemuImg('info', '--output=json', '-U', '-f', format, path)).stdout) as Record<string, unknown>;

describe('disks: formats and backing chains, at create and at every start', () => {
  let dir: string;
  let images: string;
  let outside: string;
  let roots: ImageRoots;
  let n = 0;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-disks-'));
    images = join(dir, 'images');
    outside = join(dir, 'outside');
    await mkdir(images);
    await mkdir(outside);
    roots = new ImageRoots([images]);
    await qemuImg('create', '-q', '-f', 'raw', join(images, 'base.raw'), '1M');
    await qemuImg('create', '-q', '-f', 'raw', join(outside, 'secret.raw'), '1M');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const disk = (imagePath: string, over: Partial<DiskSpec> = {}): DiskSpec => ({ name: 'root', imagePath, overlay: false, readonly: false, ...over });
  const specOf = (...disks: DiskSpec[]): VmSpec => ({ id: `vm-${++n}`, labels: {}, vcpus: 1, memoryMib: 64, disks, nics: [] });
  const prepare = (spec: VmSpec) => prepareDisks(spec, vmPaths(join(dir, 'state'), join(dir, 'run'), spec.id), { imageRoots: roots, qemuImgBinary: 'qemu-img' });
  const refusal = (p: Promise<unknown>) =>
    p.then(
      () => expect.unreachable('accepted'),
      (err: unknown) => {
        expect(err).toBeInstanceOf(VmletError);
        expect((err as VmletError).code).toBe('INVALID_ARGUMENT');
        return (err as Error).message;
      },
    );

  describe('the format', () => {
    it('is read from the header when the spec leaves it out: qcow2 magic, else raw', async () => {
      await qemuImg('create', '-q', '-f', 'qcow2', join(images, 'a.qcow2'), '1M');
      await writeFile(join(images, 'named.qcow2'), Buffer.alloc(4096)); // the name says nothing
      const disks = await prepare(specOf(disk(join(images, 'a.qcow2')), disk(join(images, 'base.raw'), { name: 'b' }), disk(join(images, 'named.qcow2'), { name: 'c' })));
      expect(disks.map((d) => d.format)).toEqual(['qcow2', 'raw', 'raw']);
    });

    it('given raw, stays raw whatever the file starts with: a qcow2 header is data, its backing file never checked nor opened', async () => {
      // What a guest could write to a raw disk: a qcow2 header naming a file outside the roots, with no format.
      const image = join(images, 'guest-wrote.img');
      await qemuImg('create', '-q', '-f', 'qcow2', '-u', '-F', 'raw', '-b', join(outside, 'secret.raw'), image, '1M');
      await dropBackingFormat(image);
      const [plain] = await prepare(specOf(disk(image, { format: 'raw' })));
      expect(plain).toEqual({ name: 'root', path: image, format: 'raw' });
      // With an overlay, the overlay records raw as its backing format: QEMU opens the image as raw too.
      const spec = specOf(disk(image, { format: 'raw', overlay: true }));
      const [overlay] = await prepare(spec);
      expect(overlay?.format).toBe('qcow2');
      expect(await info(overlay!.path, 'qcow2')).toMatchObject({ 'backing-filename': image, 'backing-filename-format': 'raw' });
      await checkBootFiles(spec, roots);
      // Left to the header, the same file is a qcow2 image, and refused.
      expect(await refusal(prepare(specOf(disk(image))))).toMatch(/without a backing format|outside the image roots/);
    });

    it('given qcow2 for a file without the qcow2 header is refused, naming the format field', async () => {
      expect(await refusal(prepare(specOf(disk(join(images, 'base.raw'), { format: 'qcow2' }))))).toMatch(/^spec\.disks\[0\]\.format: is qcow2, but .*base\.raw has no qcow2 header/);
    });

    it('an overlay records the format of the image under it (-F): QEMU never probes the base', async () => {
      await qemuImg('create', '-q', '-f', 'qcow2', join(images, 'a.qcow2'), '1M');
      const [onQcow2, onRaw] = await prepare(specOf(disk(join(images, 'a.qcow2'), { overlay: true }), disk(join(images, 'base.raw'), { name: 'b', overlay: true })));
      expect(await info(onQcow2!.path, 'qcow2')).toMatchObject({ 'backing-filename-format': 'qcow2' });
      expect(await info(onRaw!.path, 'qcow2')).toMatchObject({ 'backing-filename-format': 'raw' });
    });
  });

  describe('overlays reach the disk before the VM is recorded', () => {
    it('each new overlay and the disks dir are fsynced before prepareDisks returns; base images are not', async () => {
      const synced: string[] = [];
      const spec = specOf(disk(join(images, 'base.raw'), { overlay: true }), disk(join(images, 'base.raw'), { name: 'data', readonly: true }));
      const paths = vmPaths(join(dir, 'state'), join(dir, 'run'), spec.id);
      const disks = await prepareDisks(spec, paths, { imageRoots: roots, qemuImgBinary: 'qemu-img', sync: async (p) => void synced.push(p) });
      expect(synced).toEqual([join(paths.disksDir, 'root.qcow2'), paths.disksDir]);
      expect(disks.map((d) => d.path)).toEqual([join(paths.disksDir, 'root.qcow2'), join(images, 'base.raw')]);
      // The real fsync works on what was made.
      await prepareDisks(specOf(disk(join(images, 'base.raw'), { overlay: true })), vmPaths(join(dir, 'state'), join(dir, 'run'), 'real'), { imageRoots: roots, qemuImgBinary: 'qemu-img' });
    });

    it('an overlay that cannot be synced fails the create', async () => {
      const spec = specOf(disk(join(images, 'base.raw'), { overlay: true }));
      const failing = prepareDisks(spec, vmPaths(join(dir, 'state'), join(dir, 'run'), spec.id), {
        imageRoots: roots,
        qemuImgBinary: 'qemu-img',
        sync: () => Promise.reject(new Error('EIO: i/o error, fsync')),
      });
      await expect(failing).rejects.toThrow(`the overlays of VM ${spec.id} could not be synced to disk (EIO: i/o error, fsync)`);
    });
  });

  describe('qcow2 images QEMU would make open files no spec names', () => {
    it('an external data file is refused, even one inside the roots, overlay or not', async () => {
      const image = join(images, 'df.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', '-o', `data_file=${join(images, 'df.data')}`, image, '1M');
      for (const overlay of [false, true]) {
        for (const format of [undefined, 'qcow2'] as const) {
          const message = await refusal(prepare(specOf(disk(image, { overlay, ...(format ? { format } : {}) }))));
          expect(message).toMatch(/^spec\.disks\[0\]\.image_path: .*df\.qcow2 keeps its data in an external data file \(.*df\.data\)/);
        }
      }
    });

    it('an external data file further down the chain is refused, naming the backing file', async () => {
      await qemuImg('create', '-q', '-f', 'qcow2', '-o', `data_file=${join(images, 'df.data')}`, join(images, 'df.qcow2'), '1M');
      await qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'df.qcow2', join(images, 'top.qcow2'));
      expect(await refusal(prepare(specOf(disk(join(images, 'top.qcow2')))))).toMatch(/^spec\.disks\[0\]\.image_path \(backing file .*df\.qcow2\): .*external data file/);
    });

    it('a backing file without a backing format is refused, at the top or further down', async () => {
      const top = join(images, 'nofmt.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', join(images, 'base.raw'), top);
      await dropBackingFormat(top);
      expect(await refusal(prepare(specOf(disk(top))))).toMatch(/^spec\.disks\[0\]\.image_path: .*nofmt\.qcow2 names its backing file .*base\.raw without a backing format/);
      expect(await refusal(prepare(specOf(disk(top, { overlay: true }))))).toMatch(/without a backing format/);
      await qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', top, join(images, 'above.qcow2'));
      expect(await refusal(prepare(specOf(disk(join(images, 'above.qcow2')))))).toMatch(/^spec\.disks\[0\]\.image_path \(backing file .*nofmt\.qcow2\): .*without a backing format/);
    });

    it('a backing file named as a protocol, or in a format other than raw and qcow2, is refused', async () => {
      await qemuImg('create', '-q', '-f', 'qcow2', '-u', '-F', 'raw', '-b', 'nbd:localhost:10809', join(images, 'nbd.qcow2'), '1M');
      expect(await refusal(prepare(specOf(disk(join(images, 'nbd.qcow2')))))).toMatch(/reads as a protocol/);
      await qemuImg('create', '-q', '-f', 'vmdk', join(images, 'x.vmdk'), '1M');
      await qemuImg('create', '-q', '-f', 'qcow2', '-F', 'vmdk', '-b', join(images, 'x.vmdk'), join(images, 'on-vmdk.qcow2'));
      expect(await refusal(prepare(specOf(disk(join(images, 'on-vmdk.qcow2')))))).toMatch(/as vmdk; vmlet opens only raw and qcow2/);
    });

    it('a backing file outside the roots, missing, or looping back is refused', async () => {
      await qemuImg('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', join(outside, 'secret.raw'), join(images, 'escape.qcow2'));
      expect(await refusal(prepare(specOf(disk(join(images, 'escape.qcow2')))))).toMatch(/^spec\.disks\[0\]\.image_path \(backing file .*secret\.raw\): .*outside the image roots/);
      await qemuImg('create', '-q', '-f', 'qcow2', '-u', '-F', 'raw', '-b', 'gone.raw', join(images, 'orphan.qcow2'), '1M');
      expect(await refusal(prepare(specOf(disk(join(images, 'orphan.qcow2')))))).toMatch(/^spec\.disks\[0\]\.image_path: .*not a readable disk image with all its backing files \(backing file .*gone\.raw does not exist\)/);
      await qemuImg('create', '-q', '-f', 'qcow2', '-u', '-F', 'qcow2', '-b', 'loop-b.qcow2', join(images, 'loop-a.qcow2'), '1M');
      await qemuImg('create', '-q', '-f', 'qcow2', '-u', '-F', 'qcow2', '-b', 'loop-a.qcow2', join(images, 'loop-b.qcow2'), '1M');
      expect(await refusal(prepare(specOf(disk(join(images, 'loop-a.qcow2')))))).toMatch(/loops back to .*loop-a\.qcow2/);
    });

    it(`a chain of ${MAX_BACKING_CHAIN} backing files is accepted, one more is refused`, async () => {
      let below = 'base.raw';
      let format = 'raw';
      for (let i = 1; i <= MAX_BACKING_CHAIN + 1; i++) {
        await qemuImg('create', '-q', '-f', 'qcow2', '-u', '-F', format, '-b', below, join(images, `c${i}.qcow2`), '1M');
        below = `c${i}.qcow2`;
        format = 'qcow2';
      }
      await prepare(specOf(disk(join(images, `c${MAX_BACKING_CHAIN}.qcow2`))));
      expect(await refusal(prepare(specOf(disk(join(images, `c${MAX_BACKING_CHAIN + 1}.qcow2`)))))).toMatch(/backing chain of more than/);
    });

    it('a relative backing file is found next to the image that names it, reached through a symlinked directory too', async () => {
      await mkdir(join(images, 'sub'));
      await symlink(join(images, 'sub'), join(images, 'linked'));
      await qemuImg('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', '../base.raw', join(images, 'sub', 'top.qcow2'));
      const [direct] = await prepare(specOf(disk(join(images, 'sub', 'top.qcow2'))));
      expect(direct).toMatchObject({ path: join(images, 'sub', 'top.qcow2'), format: 'qcow2' });
      // QEMU opens the real path, so ../ is taken from the real directory, as vmlet checks it.
      const [linked] = await prepare(specOf(disk(join(images, 'linked', 'top.qcow2'))));
      expect(linked).toMatchObject({ path: join(images, 'sub', 'top.qcow2'), format: 'qcow2' });
      await rm(join(images, 'base.raw'));
      expect(await refusal(prepare(specOf(disk(join(images, 'linked', 'top.qcow2')))))).toMatch(/backing file .*sub\/\.\.\/base\.raw does not exist/);
    });
  });

  describe('at every start (checkBootFiles)', () => {
    it('refuses a disk image whose symlink was re-pointed outside the roots since create', async () => {
      const link = join(images, 'link.raw');
      await symlink(join(images, 'base.raw'), link);
      const spec = specOf(disk(link));
      await prepare(spec);
      await checkBootFiles(spec, roots);
      await rm(link);
      await symlink(join(outside, 'secret.raw'), link);
      expect(await refusal(checkBootFiles(spec, roots))).toMatch(/^spec\.disks\[0\]\.image_path: .*outside the image roots/);
    });

    it('refuses a disk image replaced by a symlink that leads out', async () => {
      const image = join(images, 'data.raw');
      await writeFile(image, Buffer.alloc(65536));
      const spec = specOf(disk(image, { format: 'raw' }), disk(join(images, 'base.raw'), { name: 'b' }));
      await prepare(spec);
      await rm(image);
      await symlink(join(outside, 'secret.raw'), image);
      expect(await refusal(checkBootFiles(spec, roots))).toMatch(/^spec\.disks\[0\]\.image_path: .*outside the image roots/);
    });

    it('refuses a backing file whose symlink was re-pointed outside, under an overlay too', async () => {
      await symlink(join(images, 'base.raw'), join(images, 'base-link'));
      await qemuImg('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', 'base-link', join(images, 'top.qcow2'));
      const spec = specOf(disk(join(images, 'top.qcow2'), { overlay: true }));
      await prepare(spec);
      await checkBootFiles(spec, roots);
      await rm(join(images, 'base-link'));
      await symlink(join(outside, 'secret.raw'), join(images, 'base-link'));
      expect(await refusal(checkBootFiles(spec, roots))).toMatch(/^spec\.disks\[0\]\.image_path \(backing file .*base-link\): .*outside the image roots/);
    });

    it('leaves a vanished image or backing file to QEMU (which fails the start saying so)', async () => {
      await qemuImg('create', '-q', '-f', 'raw', join(images, 'gone.raw'), '1M');
      await qemuImg('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', 'gone.raw', join(images, 'top.qcow2'));
      const spec = specOf(disk(join(images, 'top.qcow2')), disk(join(images, 'base.raw'), { name: 'b' }));
      await prepare(spec);
      await rm(join(images, 'gone.raw'));
      await rm(join(images, 'base.raw'));
      await checkBootFiles(spec, roots);
    });

    it('still refuses what is refused at create, a data file added since included', async () => {
      const image = join(images, 'swapped.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', image, '1M');
      const spec = specOf(disk(image));
      await prepare(spec);
      await rm(image);
      await qemuImg('create', '-q', '-f', 'qcow2', '-o', `data_file=${join(images, 'df.data')}`, image, '1M');
      expect(await refusal(checkBootFiles(spec, roots))).toMatch(/external data file/);
    });

    it('checks the kernel and initrd as before', async () => {
      const spec: VmSpec = { ...specOf(), kernel: { kernelPath: join(outside, 'secret.raw'), initrdPath: '', cmdline: '' } };
      expect(await refusal(checkBootFiles(spec, roots))).toMatch(/^spec\.kernel\.kernel_path: .*outside the image roots/);
    });
  });
});
