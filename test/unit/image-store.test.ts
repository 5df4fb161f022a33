import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { vsphereOvf } from '../support/ova.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ImageStore, PARTIAL_DIR } from '../../src/storage/image-store.js';
import { ImageRoots } from '../../src/storage/image-roots.js';
import type { ImportControl, ImportUpdate } from '../../src/model/image.js';
import { VmletError } from '../../src/model/errors.js';
import { qemuImg } from '../support/qcow2.js';

describe('ImageStore: temp name, rename when complete, sweep at start', () => {
  let root: string;
  let src: string;
  let storeDir: string;
  let store: ImageStore;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'vmlet-store-'));
    src = join(root, 'src');
    storeDir = join(root, 'images', 'store');
    await mkdir(src, { recursive: true });
    await mkdir(join(root, 'images'));
    store = new ImageStore({ dir: storeDir, importRoots: new ImageRoots([src], '--import-root'), qemuImg: 'qemu-img' });
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  const control = (over: Partial<ImportControl> = {}): ImportControl & { updates: ImportUpdate[] } => {
    const updates: ImportUpdate[] = [];
    return { signal: new AbortController().signal, onProgress: (u) => updates.push(u), claim: () => undefined, updates, ...over };
  };
  const request = (sourcePath: string, name = 'disk') => ({ sourcePath, name, outputFormat: 'qcow2' as const, bridge: '' });

  it('a store that was never used has no directory and no images; sweep makes none', async () => {
    expect(await store.sweep()).toEqual([]);
    expect(await store.list()).toEqual([]);
    expect(await readdir(join(root, 'images'))).toEqual([]);
  });

  it('sweep removes what an interrupted import left in .importing, and nothing else', async () => {
    await mkdir(join(storeDir, PARTIAL_DIR), { recursive: true });
    await writeFile(join(storeDir, PARTIAL_DIR, 'half.qcow2'), 'x');
    await qemuImg('create', '-q', '-f', 'qcow2', join(storeDir, 'whole.qcow2'), '1M');
    expect(await store.sweep()).toEqual(['half.qcow2']);
    expect(await readdir(join(storeDir, PARTIAL_DIR))).toEqual([]);
    expect((await store.list()).map((i) => [i.name, i.format, i.virtualSizeBytes])).toEqual([['whole', 'qcow2', 1024 * 1024]]);
  });

  it('imports a raw file: progress up to 100, the image renamed into place, checked, described', async () => {
    await qemuImg('create', '-q', '-f', 'raw', join(src, 'd.img'), '2M');
    await store.sweep();
    const c = control();
    const result = await store.importImage(request(join(src, 'd.img')), c);
    expect(result.images.map((i) => [i.name, i.path, i.format, i.virtualSizeBytes, i.source])).toEqual([['disk', join(storeDir, 'disk.qcow2'), 'qcow2', 2 * 1024 * 1024, join(src, 'd.img')]]);
    expect(result.proposedSpec).toBeUndefined();
    expect(c.updates.at(-1)).toMatchObject({ percent: 100, bytesDone: 2 * 1024 * 1024, bytesTotal: 2 * 1024 * 1024 });
    expect(await readdir(join(storeDir, PARTIAL_DIR))).toEqual([]);
    expect(store.sizeBytes()).toBeGreaterThan(0);
    expect(store.sizeBytes()).toBe(result.images[0]!.actualSizeBytes);
    await store.remove('disk');
    expect(await store.list()).toEqual([]);
    expect(store.sizeBytes()).toBe(0);
  });

  const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

  it('the store and its images are open to the per-VM QEMU uids whatever the umask; imports in progress are not', async () => {
    await qemuImg('create', '-q', '-f', 'raw', join(src, 'd.img'), '2M');
    const umask = process.umask(0o077);
    let path: string;
    try {
      path = (await store.importImage(request(join(src, 'd.img')), control())).images[0]!.path;
    } finally {
      process.umask(umask);
    }
    expect(await mode(storeDir)).toBe(0o755);
    expect(await mode(path)).toBe(0o644);
    expect(await mode(join(storeDir, PARTIAL_DIR))).toBe(0o700);
  });

  it('a store directory closed to other uids (as earlier versions made it) is opened at the next import', async () => {
    await mkdir(join(storeDir, PARTIAL_DIR), { recursive: true, mode: 0o700 });
    await chmod(storeDir, 0o700);
    await chmod(join(storeDir, PARTIAL_DIR), 0o755);
    await qemuImg('create', '-q', '-f', 'raw', join(src, 'd.img'), '2M');
    await store.importImage(request(join(src, 'd.img')), control());
    expect(await mode(storeDir)).toBe(0o755);
    expect(await mode(join(storeDir, PARTIAL_DIR))).toBe(0o700);
  });

  it('an import aborted before it starts is CANCELLED and leaves nothing', async () => {
    await qemuImg('create', '-q', '-f', 'raw', join(src, 'd.img'), '2M');
    const abort = new AbortController();
    abort.abort();
    const err = await store.importImage(request(join(src, 'd.img')), control({ signal: abort.signal })).catch((e: unknown) => e);
    expect((err as VmletError).code).toBe('CANCELLED');
    expect(await readdir(storeDir).then((f) => f.filter((x) => !x.startsWith('.')))).toEqual([]);
    expect(await readdir(join(storeDir, PARTIAL_DIR))).toEqual([]);
  });

  it('a source outside the import roots, even through a symlink, is INVALID_ARGUMENT naming --import-root', async () => {
    await writeFile(join(root, 'secret.img'), 'x');
    await symlink(join(root, 'secret.img'), join(src, 'link.img'));
    const err = (await store.importImage(request(join(src, 'link.img')), control()).catch((e: unknown) => e)) as VmletError;
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toMatch(/^source_path: .* is outside the --import-root directories .*start vmlet with --import-root/);
  });

  it('a VMDK descriptor whose extent lies outside the import roots is refused before qemu-img reads it', async () => {
    await writeFile(join(src, 'evil.vmdk'), '# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\nRW 2048 FLAT "/etc/passwd" 0\n');
    const err = (await store.importImage(request(join(src, 'evil.vmdk')), control()).catch((e: unknown) => e)) as VmletError;
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toMatch(/extent \/etc\/passwd.*outside the --import-root/);
  });

  it('a qcow2 source whose backing file lies outside the import roots is refused', async () => {
    await qemuImg('create', '-q', '-f', 'raw', join(root, 'base.raw'), '1M');
    await qemuImg('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', join(root, 'base.raw'), join(src, 'top.qcow2'));
    const err = (await store.importImage(request(join(src, 'top.qcow2')), control()).catch((e: unknown) => e)) as VmletError;
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toMatch(/outside the --import-root/);
  });

  it.each([
    ['qcow2', ['-O', 'qcow2']],
    ['vhdx', ['-O', 'vhdx']],
    ['vdi', ['-O', 'vdi']],
    ['sparse vmdk', ['-O', 'vmdk']],
    ['descriptor and flat extent', ['-O', 'vmdk', '-o', 'subformat=monolithicFlat']],
  ])('imports %s with the same bytes', async (_name, args) => {
    await qemuImg('create', '-q', '-f', 'raw', join(root, 'd.raw'), '2M');
    await writeFile(join(root, 'd.raw'), Buffer.alloc(4096, 'data'), { flag: 'r+' });
    await qemuImg('convert', '-q', '-f', 'raw', ...args, join(root, 'd.raw'), join(src, 'd.img'));
    const result = await store.importImage({ ...request(join(src, 'd.img')), outputFormat: 'raw' }, control());
    await qemuImg('compare', '-q', '-f', 'raw', '-F', 'raw', join(root, 'd.raw'), result.images[0]!.path);
  });

  it('a loose .ovf: its disks next to it, its manifest checked, the VM proposed', async () => {
    await qemuImg('create', '-q', '-f', 'raw', join(root, 'd.raw'), '2M');
    await qemuImg('convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', join(root, 'd.raw'), join(src, 'vm-disk1.vmdk'));
    const ovf = vsphereOvf({ name: 'Loose VM', vcpus: 2, memoryMib: 512, disks: ['vm-disk1.vmdk'], nics: [], firmware: 'bios' }, [0]);
    await writeFile(join(src, 'vm.ovf'), ovf);
    const digest = createHash('sha256').update(await readFile(join(src, 'vm-disk1.vmdk'))).digest('hex');
    await writeFile(join(src, 'vm.mf'), `SHA256(vm-disk1.vmdk)= ${digest}\n`);
    const result = await store.importImage(request(join(src, 'vm.ovf'), 'loose'), control());
    expect(result.proposedSpec).toMatchObject({ id: 'loose-vm', vcpus: 2, memoryMib: 512, disks: [{ imagePath: join(storeDir, 'loose.qcow2'), bus: 'sata', bootOrder: 1 }] });
    await writeFile(join(src, 'vm.mf'), `SHA256(vm-disk1.vmdk)= ${'0'.repeat(64)}\n`);
    const err = (await store.importImage(request(join(src, 'vm.ovf'), 'loose2'), control()).catch((e: unknown) => e)) as VmletError;
    expect(err.message).toMatch(/does not match its SHA256 digest/);
    expect((await store.list()).map((i) => i.name)).toEqual(['loose']);
  });

  it('a damaged VMDK is INVALID_ARGUMENT quoting qemu-img, and leaves nothing', async () => {
    await qemuImg('create', '-q', '-f', 'raw', join(root, 'd.raw'), '2M');
    await qemuImg('convert', '-q', '-f', 'raw', '-O', 'vmdk', join(root, 'd.raw'), join(src, 'bad.vmdk'));
    const buf = await readFile(join(src, 'bad.vmdk'));
    buf.fill(0xff, 8, 512);
    await writeFile(join(src, 'bad.vmdk'), buf);
    const err = (await store.importImage(request(join(src, 'bad.vmdk'), 'bad'), control()).catch((e: unknown) => e)) as VmletError;
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toMatch(/^source_path: qemu-img could not convert .*bad\.vmdk/);
    expect(await store.list()).toEqual([]);
    expect(await readdir(join(storeDir, PARTIAL_DIR))).toEqual([]);
  });

  it('chainOf follows qcow2 backing files as real paths', async () => {
    await mkdir(storeDir, { recursive: true });
    await qemuImg('create', '-q', '-f', 'qcow2', join(storeDir, 'base.qcow2'), '1M');
    await qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'store/base.qcow2', join(root, 'images', 'top.qcow2'));
    expect(await store.chainOf(join(root, 'images', 'top.qcow2'))).toEqual([join(root, 'images', 'top.qcow2'), join(storeDir, 'base.qcow2')]);
    expect(await store.chainOf(join(root, 'missing'))).toEqual([]);
  });
});
