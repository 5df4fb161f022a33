import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TestDaemon, tempDirForQemu } from '../support/daemon.js';
import { guestSpec, KERNEL } from '../support/guest.js';
import { expectCode, rpc, streamToEnd } from '../support/rpc.js';
import { isAlive } from '../../src/host/process.js';
import { execFileSync } from 'node:child_process';
import { qemuPidsOf } from '../support/processes.js';
import { dropBackingFormat } from '../support/qcow2.js';

describe('errors: every request validated at the edge, right code, nothing left behind', () => {
  let d: TestDaemon;
  let api: ReturnType<typeof rpc>;

  beforeAll(async () => {
    d = await TestDaemon.start();
    api = rpc(d.clients);
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  const vmDirs = async () => (await readdir(join(d.stateDir, 'vms'))).sort();

  it.each([
    ['bad id', guestSpec('Bad_Id'), 'spec.id'],
    ['tiny memory', guestSpec('m1', { memoryMib: 1 }), 'spec.memory_mib'],
    ['too many vcpus', guestSpec('c1', { vcpus: 1000 }), 'spec.vcpus'],
    ['relative kernel', guestSpec('k1', { kernel: { kernelPath: 'vmlinuz', initrdPath: '', cmdline: '' } }), 'spec.kernel.kernel_path'],
    ['multicast mac', guestSpec('n1', { nics: [{ name: 'eth0', bridge: 'br0', mac: '01:00:5e:00:00:01' }] }), 'spec.nics[0].mac'],
    ['bad label', guestSpec('l1', { labels: { 'bad key!': 'x' } }), 'spec.labels'],
    ['nothing to boot', { id: 'nb', vcpus: 1, memoryMib: 64 }, 'spec'],
  ])('INVALID_ARGUMENT for %s names the field', async (_name, spec, field) => {
    const details = await expectCode(() => api.create(spec), status.INVALID_ARGUMENT);
    expect(details.startsWith(field)).toBe(true);
    expect(await vmDirs()).toEqual([]);
  });

  it('INVALID_ARGUMENT for image paths outside the image roots, via symlinks too, and for non-files', async () => {
    let details = await expectCode(() => api.create(guestSpec('p1', { kernel: { kernelPath: '/etc/passwd', initrdPath: '', cmdline: '' } })), status.INVALID_ARGUMENT);
    expect(details).toMatch(/^spec\.kernel\.kernel_path: .*outside the image roots/);
    const link = join(d.root, 'images', 'sneaky');
    await symlink('/etc/passwd', link);
    details = await expectCode(() => api.create(guestSpec('p2', { kernel: { kernelPath: link, initrdPath: '', cmdline: '' } })), status.INVALID_ARGUMENT);
    expect(details).toContain('outside the image roots');
    details = await expectCode(
      () => api.create(guestSpec('p3', { disks: [{ name: 'root', imagePath: join(d.root, 'images'), overlay: true, readonly: false }] })),
      status.INVALID_ARGUMENT,
    );
    expect(details).toMatch(/^spec\.disks\[0\]\.image_path: .*not a regular file/);
    details = await expectCode(() => api.create(guestSpec('p4', { disks: [{ name: 'root', imagePath: join(d.root, 'images', 'missing.qcow2'), overlay: false, readonly: false }] })), status.INVALID_ARGUMENT);
    expect(details).toContain('does not exist');
    expect(await vmDirs()).toEqual([]);
  });

  it('INVALID_ARGUMENT for a qcow2 whose backing file is missing or outside the image roots, overlay or not', async () => {
    const images = join(d.root, 'images');
    const qemuImg = (...args: string[]) => execFileSync('qemu-img', args, { timeout: 30_000 });
    qemuImg('create', '-q', '-f', 'raw', join(images, 'gone.raw'), '1M');
    qemuImg('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', join(images, 'gone.raw'), join(images, 'orphan.qcow2'));
    await rm(join(images, 'gone.raw'));
    qemuImg('create', '-q', '-f', 'raw', join(d.root, 'outside.raw'), '1M');
    qemuImg('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', join(d.root, 'outside.raw'), join(images, 'escape.qcow2'));
    for (const overlay of [false, true]) {
      const orphan = guestSpec(`orphan-${String(overlay)}`, { disks: [{ name: 'root', imagePath: join(images, 'orphan.qcow2'), overlay, readonly: false }] });
      expect(await expectCode(() => api.create(orphan), status.INVALID_ARGUMENT)).toMatch(/^spec\.disks\[0\]\.image_path: .*backing files/);
      const escape = guestSpec(`escape-${String(overlay)}`, { disks: [{ name: 'root', imagePath: join(images, 'escape.qcow2'), overlay, readonly: false }] });
      expect(await expectCode(() => api.create(escape), status.INVALID_ARGUMENT)).toMatch(/^spec\.disks\[0\]\.image_path \(backing file .*outside\.raw\): .*outside the image roots/);
    }
    expect(await vmDirs()).toEqual([]);
  });

  it('a create that starts at once and is refused leaves neither a state dir nor a run dir', async () => {
    const spec = guestSpec('p5', { disks: [{ name: 'root', imagePath: join(d.root, 'images', 'missing.qcow2'), overlay: false, readonly: false }] });
    expect(await expectCode(() => api.create(spec, true), status.INVALID_ARGUMENT)).toMatch(/^spec\.disks\[0\]\.image_path: /);
    expect(await vmDirs()).toEqual([]);
    expect(existsSync(join(d.runDir, 'vms', 'p5'))).toBe(false);
  });

  it('a start long after the create checks the boot files again (a symlink re-pointed outside the roots)', async () => {
    const link = join(d.root, 'images', 'kernel-link');
    await symlink(KERNEL, link);
    const spec = guestSpec('relinked', { kernel: { ...guestSpec('x').kernel!, kernelPath: link } });
    await api.create(spec);
    await rm(link);
    await symlink('/etc/passwd', link);
    expect(await expectCode(() => api.start('relinked'), status.INVALID_ARGUMENT)).toMatch(/^spec\.kernel\.kernel_path: .*outside the image roots/);
    expect((await api.get('relinked')).status?.phase).toBe('PHASE_FAILED');
    await api.delete('relinked');
    await rm(link);
  });

  it('INVALID_ARGUMENT for a bad id or selector in other calls', async () => {
    expect(await expectCode(() => api.get('NOPE!'), status.INVALID_ARGUMENT)).toMatch(/^id: /);
    expect(await expectCode(() => api.list('a in (b)'), status.INVALID_ARGUMENT)).toMatch(/^label_selector: /);
  });

  it('INVALID_ARGUMENT, not UNKNOWN, for a bad id or selector in the streaming calls', async () => {
    const vms = d.clients.vms;
    expect(await expectCode(() => streamToEnd(vms.watchVms({ labelSelector: '=b' })), status.INVALID_ARGUMENT)).toMatch(/^label_selector: /);
    expect(await expectCode(() => streamToEnd(vms.watchVms({ id: 'Bad_ID' })), status.INVALID_ARGUMENT)).toMatch(/^id: /);
    expect(await expectCode(() => streamToEnd(vms.getConsoleLog({ id: 'Bad_ID' })), status.INVALID_ARGUMENT)).toMatch(/^id: /);
  });

  it('NOT_FOUND for unknown VMs on every call', async () => {
    for (const call of [api.get, api.start, api.pause, api.resume, api.reboot, (id: string) => api.stop(id), (id: string) => api.delete(id)]) {
      expect(await expectCode(() => call('ghost'), status.NOT_FOUND)).toContain('ghost');
    }
  });

  it('ALREADY_EXISTS for the same id with another spec; the first VM is untouched', async () => {
    await api.create(guestSpec('dup'));
    const details = await expectCode(() => api.create(guestSpec('dup', { memoryMib: 256 })), status.ALREADY_EXISTS);
    expect(details).toContain('dup');
    expect((await api.get('dup')).spec?.memoryMib).toBe(128);
    await api.delete('dup');
  });

  it('FAILED_PRECONDITION for the wrong phase', async () => {
    await api.create(guestSpec('phase'));
    expect(await expectCode(() => api.pause('phase'), status.FAILED_PRECONDITION)).toContain('Pending');
    expect(await expectCode(() => api.resume('phase'), status.FAILED_PRECONDITION)).toContain('Pending');
    expect(await expectCode(() => api.reboot('phase'), status.FAILED_PRECONDITION)).toContain('Pending');
    await api.delete('phase');
  });

  it('RESOURCE_EXHAUSTED beyond allocatable memory, at create and at start', async () => {
    const node = await api.node();
    const limit = node.allocatable!.memoryMib * node.memoryOvercommitRatio;
    const details = await expectCode(() => api.create(guestSpec('huge', { memoryMib: Math.floor(limit) + 1 })), status.RESOURCE_EXHAUSTED);
    expect(details).toContain('MiB');
    // Two VMs that each fit, but not together.
    const half = Math.floor(limit / 2) + 64;
    await api.create(guestSpec('half-a', { memoryMib: half }));
    await api.create(guestSpec('half-b', { memoryMib: half }));
    await api.start('half-a');
    expect(await expectCode(() => api.start('half-b'), status.RESOURCE_EXHAUSTED)).toContain('half-b');
    expect((await api.get('half-b')).status?.phase).toBe('PHASE_PENDING');
    await api.delete('half-a', true);
    await api.delete('half-b');
  });

  it('INVALID_ARGUMENT for a file that is not a disk image', async () => {
    const bad = join(d.root, 'images', 'corrupt.qcow2');
    await writeFile(bad, Buffer.concat([Buffer.from('QFI\xfb', 'latin1'), Buffer.alloc(4096, 0xff)]));
    const details = await expectCode(() => api.create(guestSpec('corrupt', { disks: [{ name: 'data', imagePath: bad, overlay: true, readonly: false }] })), status.INVALID_ARGUMENT);
    expect(details).toMatch(/^spec\.disks\[0\]\.image_path: .*not a readable disk image/);
    expect(await vmDirs()).toEqual([]);
  });

  it('a start that fails part-way (its disk vanished) leaves the VM Failed with the reason and no process or socket', async () => {
    const disk = join(d.root, 'images', 'data.raw');
    await writeFile(disk, Buffer.alloc(1024 * 1024));
    await api.create(guestSpec('corrupt', { disks: [{ name: 'data', imagePath: disk, overlay: false, readonly: false }] }));
    await rm(disk);
    const details = await expectCode(() => api.start('corrupt'), status.FAILED_PRECONDITION);
    expect(details).toContain('QEMU exited during start');
    const vm = await api.get('corrupt');
    expect(vm.status?.phase).toBe('PHASE_FAILED');
    expect(vm.status?.reason).toContain('start failed');
    expect(vm.status?.pid).toBe(0);
    expect(existsSync(join(d.runDir, 'vms', 'corrupt', 'qmp.sock'))).toBe(false);
    await api.delete('corrupt');
  });

  describe('files QEMU opens are decided by vmlet (disk formats, backing chains)', () => {
    const images = () => join(d.root, 'images');
    const qemuImg = (...args: string[]) => execFileSync('qemu-img', args, { timeout: 30_000 });
    // Only this block's VMs: a failure elsewhere in the file must not fail these.
    const vmDirsOf = async (prefix: string) => (await vmDirs()).filter((id) => id.startsWith(prefix));
    const dataDisk = (imagePath: string, over: { overlay?: boolean; readonly?: boolean; format?: string } = {}) => ({ name: 'data', imagePath, overlay: false, readonly: false, ...over });

    it('INVALID_ARGUMENT for a qcow2 with an external data file, even one inside the image roots, overlay or not', async () => {
      const image = join(images(), 'df.qcow2');
      qemuImg('create', '-q', '-f', 'qcow2', '-o', `data_file=${join(images(), 'df.data')}`, image, '1M');
      for (const overlay of [false, true]) {
        const details = await expectCode(() => api.create(guestSpec(`datafile-${String(overlay)}`, { disks: [dataDisk(image, { overlay })] })), status.INVALID_ARGUMENT);
        expect(details).toMatch(/^spec\.disks\[0\]\.image_path: .*df\.qcow2 keeps its data in an external data file/);
      }
      expect(await vmDirsOf('datafile-')).toEqual([]);
    });

    it('INVALID_ARGUMENT for a qcow2 whose backing file has no recorded format (QEMU would probe it)', async () => {
      const image = join(images(), 'nofmt.qcow2');
      qemuImg('create', '-q', '-f', 'raw', join(images(), 'nofmt-base.raw'), '1M');
      qemuImg('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', 'nofmt-base.raw', image);
      await dropBackingFormat(image);
      for (const overlay of [false, true]) {
        const details = await expectCode(() => api.create(guestSpec(`nofmt-${String(overlay)}`, { disks: [dataDisk(image, { overlay })] })), status.INVALID_ARGUMENT);
        expect(details).toMatch(/^spec\.disks\[0\]\.image_path: .*nofmt\.qcow2 names its backing file nofmt-base\.raw without a backing format/);
      }
      expect(await vmDirsOf('nofmt-')).toEqual([]);
    });

    it('INVALID_ARGUMENT for a format vmlet does not open, and for qcow2 given for a file without the qcow2 header', async () => {
      const raw = join(images(), 'plain.raw');
      await writeFile(raw, Buffer.alloc(1024 * 1024));
      expect(await expectCode(() => api.create(guestSpec('fmt-vmdk', { disks: [dataDisk(raw, { format: 'vmdk' })] })), status.INVALID_ARGUMENT)).toMatch(
        /^spec\.disks\[0\]\.format: "vmdk" is not a disk format/,
      );
      expect(await expectCode(() => api.create(guestSpec('fmt-wrong', { disks: [dataDisk(raw, { format: 'qcow2' })] })), status.INVALID_ARGUMENT)).toMatch(
        /^spec\.disks\[0\]\.format: is qcow2, but .*plain\.raw has no qcow2 header/,
      );
      expect(await vmDirsOf('fmt-')).toEqual([]);
    });

    it('a disk declared raw whose file starts with a qcow2 header stays raw: QEMU gets driver=raw and nothing the header names', async () => {
      // What a guest may write to its raw disk: a qcow2 header, here naming a file outside the roots.
      const image = join(images(), 'looks-qcow2.img');
      qemuImg('create', '-q', '-f', 'qcow2', '-u', '-F', 'raw', '-b', '/etc/passwd', image, '1M');
      const real = await realpath(image);
      await api.create(guestSpec('rawhdr', { disks: [dataDisk(image, { readonly: true, format: 'raw' })] }));
      const vm = await api.start('rawhdr');
      expect(vm.status?.disks).toEqual([{ name: 'data', path: real, format: 'raw' }]);
      expect(vm.spec?.disks[0]?.format).toBe('raw');
      const argv = (await readFile(`/proc/${vm.status!.pid}/cmdline`, 'utf8')).split('\0');
      const blockdevs = argv.flatMap((a, i) => (argv[i - 1] === '-blockdev' ? [JSON.parse(a) as Record<string, unknown>] : []));
      expect(blockdevs).toContainEqual(expect.objectContaining({ 'node-name': 'file-data', driver: 'file', filename: real }));
      expect(blockdevs).toContainEqual(expect.objectContaining({ 'node-name': 'drive-data', driver: 'raw', file: 'file-data' }));
      expect(argv.join(' ')).not.toContain('/etc/passwd');
      await api.delete('rawhdr', true);
    });

    it('a start after a disk image or backing file symlink was re-pointed outside the roots is refused: Failed with the reason, no QEMU left', async () => {
      const outside = join(d.root, 'outside-swap.raw');
      await writeFile(outside, Buffer.alloc(1024 * 1024));
      // A disk image through a symlink.
      await writeFile(join(images(), 'swap-target.raw'), Buffer.alloc(1024 * 1024));
      const link = join(images(), 'swap-link.raw');
      await symlink(join(images(), 'swap-target.raw'), link);
      await api.create(guestSpec('swapped', { disks: [dataDisk(link, { readonly: true })] }));
      // A qcow2 image (under a per-VM overlay) whose backing file is a symlink.
      const backingLink = join(images(), 'swap-backing-link');
      await symlink(join(images(), 'swap-target.raw'), backingLink);
      qemuImg('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', 'swap-backing-link', join(images(), 'swap-top.qcow2'));
      await api.create(guestSpec('swapped-backing', { disks: [dataDisk(join(images(), 'swap-top.qcow2'), { overlay: true })] }));

      for (const l of [link, backingLink]) {
        await rm(l);
        await symlink(outside, l);
      }
      const cases: [string, RegExp][] = [
        ['swapped', /^spec\.disks\[0\]\.image_path: .*swap-link\.raw is outside the image roots/],
        ['swapped-backing', /^spec\.disks\[0\]\.image_path \(backing file .*swap-backing-link\): .*outside the image roots/],
      ];
      for (const [id, why] of cases) {
        expect(await expectCode(() => api.start(id), status.INVALID_ARGUMENT)).toMatch(why);
        const vm = await api.get(id);
        expect(vm.status?.phase).toBe('PHASE_FAILED');
        expect(vm.status?.reason).toContain('start failed: ');
        expect(vm.status?.reason).toContain('outside the image roots');
        expect(vm.status?.pid).toBe(0);
        expect(existsSync(join(d.runDir, 'vms', id, 'qmp.sock'))).toBe(false);
      }
      expect(await qemuPidsOf(['swapped', 'swapped-backing'])).toEqual([]);
      await api.delete('swapped');
      await api.delete('swapped-backing');
    });
  });
});

describe('errors from a QEMU that never answers', () => {
  let d: TestDaemon;
  let fakeDir: string;

  beforeAll(async () => {
    // A "QEMU" that reports a version, fails the KVM probe, and otherwise hangs without opening QMP.
    fakeDir = await tempDirForQemu('vmlet-fake-qemu-');
    const fake = join(fakeDir, 'fake-qemu');
    // The fake runs as the VM's unprivileged user: it leaves its pid where that user may write.
    await mkdir(join(fakeDir, 'out'));
    await chmod(join(fakeDir, 'out'), 0o777);
    await writeFile(
      fake,
      `#!/bin/sh\ncase "$*" in *--version*) echo "QEMU emulator version 7.2.0"; exit 0;; *"-qmp stdio"*) exit 1;; esac\necho $$ > ${join(fakeDir, 'out', 'hung.pid')}\nexec sleep 120\n`,
    );
    await chmod(fake, 0o755);
    d = await TestDaemon.start({ extraArgs: ['--qemu', fake, '--accel', 'tcg'] });
  });
  afterAll(async () => {
    await d?.cleanup();
    await rm(fakeDir, { recursive: true, force: true });
  });

  it('UNAVAILABLE, the hung process is killed and the VM is Failed', async () => {
    const api = rpc(d.clients);
    await api.create(guestSpec('hang'));
    const details = await expectCode(() => api.start('hang'), status.UNAVAILABLE);
    expect(details).toContain('QMP socket');
    const vm = await api.get('hang');
    expect(vm.status?.phase).toBe('PHASE_FAILED');
    expect(vm.status?.pid).toBe(0);
    await api.delete('hang');
    // The fake wrote its pid and exec'd `sleep 120`; vmlet must have killed it.
    const hung = Number(await readFile(join(fakeDir, 'out', 'hung.pid'), 'utf8'));
    expect(hung).toBeGreaterThan(0);
    expect(await isAlive(hung)).toBe(false);
  });
});
