import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status, type ClientReadableStream } from '@grpc/grpc-js';
import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdir, readdir, writeFile, open } from 'node:fs/promises';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, GUEST_DIR, TestDaemon, tempDirForQemu } from '../support/daemon.js';
import { spawn } from 'node:child_process';
import { parseSpecText } from '../../src/cli/spec-input.js';
import { until } from '../support/poll.js';
import { expectCode, streamToEnd } from '../support/rpc.js';
import { unary } from '../../src/api/grpc/client.js';
import { makeOva, makeStreamOptimizedVmdk } from '../support/ova.js';
import type { ImportProgress__Output } from '../../src/api/grpc/generated/vmlet/v1/ImportProgress.js';
import type { Image__Output } from '../../src/api/grpc/generated/vmlet/v1/Image.js';
import type { ImportImageRequest } from '../../src/api/grpc/generated/vmlet/v1/ImportImageRequest.js';

describe('image import: OVA and VMDK into the image store through the real daemon', () => {
  let d: TestDaemon;
  let src: string;
  let store: string;

  beforeAll(async () => {
    const root = await tempDirForQemu('vmlet-e2e-');
    src = join(root, 'import');
    store = join(root, 'images', 'store');
    await mkdir(src, { recursive: true });
    d = await TestDaemon.start({ dirs: { root }, imagesFirst: true, extraArgs: ['--import-root', src] });
  }, 60_000);
  afterAll(async () => {
    await d?.cleanup();
  });

  const images = () => d.clients.images;
  const importStream = (req: ImportImageRequest): ClientReadableStream<ImportProgress__Output> => images().importImage(req);
  const importAll = (req: ImportImageRequest) => streamToEnd<ImportProgress__Output>(importStream(req));
  const storeFiles = async () => (existsSync(store) ? (await readdir(store)).filter((f) => !f.startsWith('.')).sort() : []);
  const partials = async () => (existsSync(join(store, '.importing')) ? await readdir(join(store, '.importing')) : []);

  it('imports a vSphere-style OVA (streamOptimized VMDKs read in place) and proposes its VM', async () => {
    const boot = makeStreamOptimizedVmdk(src, 'web-disk1');
    const data = makeStreamOptimizedVmdk(src, 'web-disk2', 16);
    const ova = makeOva(src, {
      name: 'Web Server 01',
      vcpus: 2,
      memoryMib: 1024,
      disks: [boot, data],
      nics: [
        { subType: 'VmxNet3', mac: '00:50:56:aa:bb:01' },
        { subType: 'E1000e', mac: '00:50:56:aa:bb:02' },
      ],
      firmware: 'efi',
    });
    const messages = await importAll({ sourcePath: ova, name: 'web', bridge: 'br0' });
    const last = messages.at(-1)!;
    expect(last.percent).toBe(100);
    for (const [a, b] of messages.slice(1).map((m, i) => [messages[i]!.percent, m.percent])) expect(b!).toBeGreaterThanOrEqual(a!);
    expect(last.images.map((i) => i.name)).toEqual(['web', 'web-disk2']);
    expect(last.image?.name).toBe('web');
    expect(last.image?.format).toBe('qcow2');
    expect(Number(last.image?.virtualSizeBytes)).toBe(64 * 1024 * 1024);
    expect(await storeFiles()).toEqual(['web-disk2.qcow2', 'web.qcow2']);
    expect(await partials()).toEqual([]);
    // The stored image holds the disk's bytes, not just its size.
    execFileSync('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', join(src, 'web-disk1.raw'), join(store, 'web.qcow2')], { timeout: 60_000 });
    execFileSync('qemu-img', ['check', '-q', join(store, 'web-disk2.qcow2')], { timeout: 60_000 });

    const spec = last.proposedSpec!;
    expect(spec.id).toBe('web-server-01');
    expect(spec.vcpus).toBe(2);
    expect(Number(spec.memoryMib)).toBe(1024);
    expect(spec.firmware?.type).toBe('FIRMWARE_TYPE_UEFI');
    expect(spec.disks.map((x) => [x.name, x.imagePath, x.bus, x.bootOrder, x.format])).toEqual([
      ['root', join(store, 'web.qcow2'), 'DISK_BUS_SATA', 1, 'qcow2'],
      ['disk2', join(store, 'web-disk2.qcow2'), 'DISK_BUS_SATA', 2, 'qcow2'],
    ]);
    expect(spec.nics.map((n) => [n.model, n.mac, n.bridge])).toEqual([
      ['NIC_MODEL_VMXNET3', '00:50:56:aa:bb:01', 'br0'],
      ['NIC_MODEL_E1000E', '00:50:56:aa:bb:02', 'br0'],
    ]);
    expect(last.warnings.join('\n')).toMatch(/Video card/);
    expect(last.warnings.join('\n')).toMatch(/VMCI device/);

    const listed = (await unary<object, { images: Image__Output[] }>(images().listImages.bind(images()), {})).images;
    expect(listed.map((i) => i.name)).toEqual(['web', 'web-disk2']);
    expect(listed[0]!.source).toBe(`${ova}:web-disk1.vmdk`);
    const metrics = await fetchMetrics(d.httpAddress);
    expect(metrics).toMatch(/vmlet_image_imports_total\{result="ok"\} 1/);
    expect(metrics).toMatch(/vmlet_image_store_bytes [1-9]/);
    expect(metrics).toMatch(/vmlet_image_import_bytes_total [1-9]/);
  }, 120_000);

  it('DeleteImage of an image a VM uses is FAILED_PRECONDITION naming the VM; unused, it goes', async () => {
    const vm = {
      id: 'uses-web',
      labels: {},
      vcpus: 1,
      memoryMib: 128,
      kernel: { kernelPath: join(GUEST_DIR, 'vmlinuz'), initrdPath: join(GUEST_DIR, 'initrd.img'), cmdline: 'console=ttyS0' },
      disks: [{ name: 'root', imagePath: join(store, 'web.qcow2'), overlay: true, readonly: false, format: 'qcow2' }],
      nics: [],
    };
    await unary(d.clients.vms.createVm.bind(d.clients.vms), { spec: vm, start: false });
    const details = await expectCode(() => unary(images().deleteImage.bind(images()), { name: 'web' }), status.FAILED_PRECONDITION);
    expect(details).toMatch(/uses-web/);
    const got = await unary<{ name: string }, Image__Output>(images().getImage.bind(images()), { name: 'web' });
    expect(got.usedBy).toEqual(['uses-web']);
    await unary(images().deleteImage.bind(images()), { name: 'web-disk2' });
    expect(await storeFiles()).toEqual(['web.qcow2']);
    await unary(d.clients.vms.deleteVm.bind(d.clients.vms), { id: 'uses-web', force: true });
    await unary(images().deleteImage.bind(images()), { name: 'web' });
    expect(await storeFiles()).toEqual([]);
  }, 60_000);

  it('imports a monolithic sparse VMDK; a format that does not match the header is INVALID_ARGUMENT', async () => {
    execFileSync('qemu-img', ['create', '-q', '-f', 'raw', join(src, 'plain.raw'), '32M'], { timeout: 30_000 });
    await writeFile(join(src, 'plain.raw'), Buffer.alloc(65536, 'sparse vmdk\n'), { flag: 'r+' });
    execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'vmdk', join(src, 'plain.raw'), join(src, 'sparse.vmdk')], { timeout: 60_000 });
    const wrong = await expectCode(() => importAll({ sourcePath: join(src, 'sparse.vmdk'), format: 'qcow2' }), status.INVALID_ARGUMENT);
    expect(wrong).toMatch(/^format: .* is vmdk by its header, not qcow2/);
    const messages = await importAll({ sourcePath: join(src, 'sparse.vmdk'), format: 'vmdk', outputFormat: 'raw' });
    const last = messages.at(-1)!;
    expect(last.image?.name).toBe('sparse');
    expect(last.image?.format).toBe('raw');
    expect(last.proposedSpec).toBeNull();
    execFileSync('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'raw', join(src, 'plain.raw'), join(store, 'sparse.raw')], { timeout: 60_000 });
    await expectCode(() => importAll({ sourcePath: join(src, 'sparse.vmdk') }), status.ALREADY_EXISTS);
    const outside = await expectCode(() => importAll({ sourcePath: join(d.root, 'state', 'nothing.vmdk') }), status.INVALID_ARGUMENT);
    expect(outside).toMatch(/^source_path/);
  }, 60_000);

  it('a corrupt OVA (a digest that does not match) is INVALID_ARGUMENT and leaves nothing in the store', async () => {
    const before = await storeFiles();
    const disk = makeStreamOptimizedVmdk(src, 'bad-disk1', 16);
    const ova = makeOva(src, { name: 'bad', vcpus: 1, memoryMib: 256, disks: [disk], nics: [], firmware: 'bios', badDigest: true, digest: 'sha1' });
    const details = await expectCode(() => importAll({ sourcePath: ova }), status.INVALID_ARGUMENT);
    expect(details).toMatch(/bad-disk1\.vmdk does not match its SHA1 digest/);
    expect(await storeFiles()).toEqual(before);
    expect(await partials()).toEqual([]);
  }, 60_000);

  it('the CLI: import prints progress lines and the proposed spec as YAML that create -f reads; ls, rm, Ctrl-C', async () => {
    const disk = makeStreamOptimizedVmdk(src, 'cli-disk1', 16);
    const ova = makeOva(src, { name: 'cli-vm', vcpus: 1, memoryMib: 256, disks: [disk], nics: [{ subType: 'E1000', mac: '00:50:56:aa:bb:09' }], firmware: 'bios' });
    const r = await cli(['--endpoint', d.socket, 'image', 'import', ova, '--name', 'cli', '--bridge', 'br0']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/100\.0%/);
    expect(r.stderr).toMatch(/cli: imported to .*cli\.qcow2/);
    const spec = parseSpecText(r.stdout, 'proposed.yaml');
    expect(spec).toMatchObject({ id: 'cli-vm', vcpus: 1, memoryMib: 256 });
    expect(spec.disks).toEqual([{ name: 'root', imagePath: join(store, 'cli.qcow2'), overlay: true, readonly: false, format: 'qcow2', bus: 'DISK_BUS_SATA', bootOrder: 1 }]);
    expect(spec.nics).toEqual([{ name: 'net0', bridge: 'br0', mac: '00:50:56:aa:bb:09', model: 'NIC_MODEL_E1000E' }]);
    const json = await cli(['--endpoint', d.socket, '-o', 'json', 'image', 'import', join(src, 'cli-disk1.vmdk'), '--name', 'cli-json']);
    expect(json.code).toBe(0);
    const messages = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as ImportProgress__Output);
    expect(messages.at(-1)!.image?.name).toBe('cli-json');
    const ls = await cli(['--endpoint', d.socket, 'image', 'ls']);
    expect(ls.stdout).toMatch(/^NAME +FORMAT +VIRTUAL/);
    expect(ls.stdout).toMatch(/\ncli +qcow2 +16\.0 MiB/);
    expect((await cli(['--endpoint', d.socket, 'image', 'rm', 'cli'])).code).toBe(0);
    expect((await cli(['--endpoint', d.socket, 'image', 'rm', 'cli-json'])).code).toBe(0);
    expect(await storeFiles()).not.toContain('cli.qcow2');
  }, 120_000);

  describe('a long import', () => {
    let big: string;
    beforeAll(async () => {
      // Random bytes, so qemu-img has real work: the import is still running when it is cancelled.
      big = join(src, 'big.raw');
      const file = await open(big, 'w');
      // 1 GiB: converting it takes seconds even on an idle host, well beyond the 200 ms between progress messages.
      const chunk = Buffer.alloc(8 * 1024 * 1024);
      for (let i = 0; i < 128; i++) {
        randomFillSync(chunk);
        await file.write(chunk);
      }
      await file.close();
    }, 120_000);

    /** Resolves at the first progress that qemu-img itself reported: the conversion is under way. */
    const converting = (stream: ClientReadableStream<ImportProgress__Output>): Promise<void> =>
      new Promise((resolve, reject) => {
        stream.on('data', (m: ImportProgress__Output) => {
          if (m.percent > 0 && m.percent < 100) resolve();
        });
        stream.once('error', reject);
        stream.once('end', () => reject(new Error('the import ended before it was cancelled')));
      });

    it('a second import of the same name is ALREADY_EXISTS; CancelImport stops the first and leaves nothing', async () => {
      const first = importStream({ sourcePath: big, name: 'big' });
      const ended = streamToEnd(first).then(() => 'ok', (e: { code: number }) => e.code);
      await converting(first);
      expect(qemuImgRunning(big)).toBe(true);
      await expectCode(() => importAll({ sourcePath: big, name: 'big' }), status.ALREADY_EXISTS);
      const cancelled = await unary<{ name: string }, Image__Output>(images().cancelImport.bind(images()), { name: 'big' });
      expect(cancelled.name).toBe('big');
      expect(await ended).toBe(status.CANCELLED);
      expect(await storeFiles()).not.toContain('big.qcow2');
      expect(await partials()).toEqual([]);
      expect(qemuImgRunning(big)).toBe(false);
    }, 60_000);

    it('a client that goes away cancels its import: qemu-img killed, the temporary file removed', async () => {
      const stream = importStream({ sourcePath: big, name: 'big2' });
      stream.on('error', () => undefined);
      await converting(stream);
      expect(qemuImgRunning(big)).toBe(true);
      stream.cancel();
      await until('qemu-img gone and no partial file', async () => (!qemuImgRunning(big) && (await partials()).length === 0) || undefined);
      expect(await storeFiles()).not.toContain('big2.qcow2');
      // The import is counted once its files are gone, so the count can trail the removal by a moment.
      await until('the cancel counted', async () => /vmlet_image_imports_total\{result="cancelled"\} 2\n/.test(await fetchMetrics(d.httpAddress)) || undefined);
    }, 60_000);

    it('Ctrl-C on vmlet image import cancels it: exit 130, nothing kept', async () => {
      const child = spawn(process.execPath, [CLI, '--endpoint', d.socket, 'image', 'import', big, '--name', 'big3'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      await new Promise<void>((resolve) =>
        child.stderr.on('data', (b: Buffer) => {
          stderr += b.toString();
          if (/\d%/.test(stderr)) resolve();
        }),
      );
      expect(child.exitCode).toBeNull();
      child.kill('SIGINT');
      expect(await exited).toBe(130);
      expect(stderr).toMatch(/cancelled; nothing was kept/);
      await until('no partial file', async () => ((await partials()).length === 0 && !qemuImgRunning(big)) || undefined);
      expect(await storeFiles()).not.toContain('big3.qcow2');
    }, 60_000);
  });
});

/** Whether a qemu-img process reading `source` is alive. */
function qemuImgRunning(source: string): boolean {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    if (cmdline.startsWith('qemu-img\0') && cmdline.includes(source)) return true;
  }
  return false;
}

/** The built CLI; resolves with its exit code and output. */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const fetchMetrics = async (address: string): Promise<string> => (await fetch(`${address}/metrics`)).text();
