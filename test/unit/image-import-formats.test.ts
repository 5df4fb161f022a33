import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectFormat, readHead } from '../../src/storage/import/detect.js';
import { listTar, parseTarHeader, paxPath, TarError } from '../../src/storage/import/tar.js';
import { QemuImgProgress } from '../../src/storage/import/progress.js';
import { digestOf, ManifestError, parseManifest } from '../../src/storage/import/manifest.js';
import { embeddedDescriptor, hasCompressedGrains, vmdkReferences } from '../../src/storage/import/vmdk.js';
import { qemuImg } from '../support/qcow2.js';

describe('detectFormat: the source format from the first bytes', () => {
  const at = (offset: number, bytes: Buffer, length = 4096): Buffer => {
    const b = Buffer.alloc(length);
    bytes.copy(b, offset);
    return b;
  };
  const vdi = Buffer.alloc(512);
  vdi.writeUInt32LE(0xbeda107f, 0x40);
  it.each<[string, Buffer, string]>([
    ['qcow2 magic', at(0, Buffer.from('QFI\xfb', 'latin1')), 'qcow2'],
    ['hosted sparse VMDK', at(0, Buffer.from('KDMV')), 'vmdk'],
    ['ESX sparse VMDK', at(0, Buffer.from('COWD')), 'vmdk'],
    ['VMDK descriptor', Buffer.from('# Disk DescriptorFile\nversion=1\n'), 'vmdk'],
    ['VMDK descriptor after blank lines', Buffer.from('\n\n# Disk DescriptorFile\n'), 'vmdk'],
    ['VHDX', at(0, Buffer.from('vhdxfile')), 'vhdx'],
    ['VDI', vdi, 'vdi'],
    ['tar (ustar)', at(257, Buffer.from('ustar\x0000')), 'ova'],
    ['tar (GNU)', at(257, Buffer.from('ustar  \x00')), 'ova'],
    ['OVF', Buffer.from('<?xml version="1.0"?>\n<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1">'), 'ovf'],
    ['OVF with a prefix', Buffer.from('<ovf:Envelope xmlns:ovf="x">'), 'ovf'],
    ['other XML', Buffer.from('<?xml version="1.0"?><html>'), 'raw'],
    ['zeros', Buffer.alloc(4096), 'raw'],
    ['empty', Buffer.alloc(0), 'raw'],
    ['the magic not at the start', at(1, Buffer.from('KDMV')), 'raw'],
  ])('%s → %s', (_name, head, format) => {
    expect(detectFormat(head)).toBe(format);
  });

  describe('on files qemu-img and tar make', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'vmlet-detect-'));
      await qemuImg('create', '-q', '-f', 'raw', join(dir, 'd.raw'), '4M');
    });
    afterAll(() => rm(dir, { recursive: true, force: true }));

    it.each([
      ['vmdk', ['-O', 'vmdk'], 'vmdk'],
      ['stream', ['-O', 'vmdk', '-o', 'subformat=streamOptimized'], 'vmdk'],
      ['qcow2', ['-O', 'qcow2'], 'qcow2'],
      ['vhdx', ['-O', 'vhdx'], 'vhdx'],
      ['vdi', ['-O', 'vdi'], 'vdi'],
    ])('%s', async (name, args, format) => {
      await qemuImg('convert', '-q', '-f', 'raw', ...args, join(dir, 'd.raw'), join(dir, `d.${name}`));
      expect(detectFormat(await readHead(join(dir, `d.${name}`)))).toBe(format);
    });

    it('a descriptor with a flat extent', async () => {
      await qemuImg('create', '-q', '-f', 'vmdk', '-o', 'subformat=monolithicFlat', join(dir, 'flat.vmdk'), '1M');
      expect(detectFormat(await readHead(join(dir, 'flat.vmdk')))).toBe('vmdk');
      const refs = vmdkReferences(await (await import('node:fs/promises')).readFile(join(dir, 'flat.vmdk'), 'utf8'));
      expect(refs).toEqual({ extents: ['flat-flat.vmdk'] });
    });

    it('the descriptor embedded in a sparse VMDK names no other file', async () => {
      const text = await embeddedDescriptor(join(dir, 'd.stream'));
      expect(text).toMatch(/createType="streamOptimized"/);
      expect(vmdkReferences(text)).toEqual({ extents: ['d.stream'] });
    });

    it('a streamOptimized VMDK has deflated grains; a monolithicSparse one and other formats do not', async () => {
      await qemuImg('convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=monolithicSparse', join(dir, 'd.raw'), join(dir, 'sparse.vmdk'));
      expect(hasCompressedGrains(await readHead(join(dir, 'd.stream')))).toBe(true);
      expect(hasCompressedGrains(await readHead(join(dir, 'sparse.vmdk')))).toBe(false);
      expect(hasCompressedGrains(await readHead(join(dir, 'd.qcow2')))).toBe(false);
      expect(hasCompressedGrains(Buffer.from('KDMV'))).toBe(false);
    });
  });
});

describe('vmdkReferences', () => {
  it('lists extents (not ZERO ones) and a delta disk parent', () => {
    const text = [
      '# Disk DescriptorFile',
      'parentCID=12345678',
      'parentFileNameHint="/vmfs/volumes/ds1/base.vmdk"',
      'RW 2048 SPARSE "disk-s001.vmdk"',
      'RDONLY 2048 FLAT "disk-f002.vmdk" 0',
      'RW 4096 ZERO',
    ].join('\n');
    expect(vmdkReferences(text)).toEqual({ extents: ['disk-s001.vmdk', 'disk-f002.vmdk'], parent: '/vmfs/volumes/ds1/base.vmdk' });
  });
});

describe('tar: members found from the headers alone', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-tar-'));
    await writeFile(join(dir, 'a.ovf'), '<Envelope/>');
    await writeFile(join(dir, 'b.mf'), Buffer.alloc(0));
    await writeFile(join(dir, 'c.vmdk'), Buffer.alloc(1500, 7));
    await writeFile(join(dir, `${'l'.repeat(120)}.vmdk`), 'long');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const tar = (format: string, name: string, files: string[]): string => {
    execFileSync('tar', [`--format=${format}`, '-cf', join(dir, name), '-C', dir, ...files], { timeout: 30_000 });
    return join(dir, name);
  };

  it.each(['ustar', 'gnu', 'pax'])('%s: names, sizes and offsets in archive order', async (format) => {
    const path = tar(format, `t-${format}.tar`, ['a.ovf', 'b.mf', 'c.vmdk']);
    const members = await listTar(path);
    expect(members.map((m) => [m.name, m.size])).toEqual([['a.ovf', 11], ['b.mf', 0], ['c.vmdk', 1500]]);
    const { readFile } = await import('node:fs/promises');
    const whole = await readFile(path);
    const c = members[2]!;
    expect(whole.subarray(c.offset, c.offset + c.size).equals(Buffer.alloc(1500, 7))).toBe(true);
    expect(whole.subarray(members[0]!.offset, members[0]!.offset + 11).toString()).toBe('<Envelope/>');
  });

  it.each(['gnu', 'pax'])('%s: a name longer than 100 bytes', async (format) => {
    const long = `${'l'.repeat(120)}.vmdk`;
    const members = await listTar(tar(format, `long-${format}.tar`, [long, 'a.ovf']));
    expect(members.map((m) => m.name)).toEqual([long, 'a.ovf']);
  });

  it('a damaged header is refused', async () => {
    const path = tar('ustar', 'bad.tar', ['a.ovf']);
    const { readFile } = await import('node:fs/promises');
    const buf = await readFile(path);
    buf[10] = buf[10]! ^ 0xff;
    expect(() => parseTarHeader(buf.subarray(0, 512))).toThrow(/checksum/);
    await writeFile(path, buf);
    await expect(listTar(path)).rejects.toThrow(TarError);
  });

  it('a member running past the end is refused', async () => {
    const path = tar('ustar', 'cut.tar', ['c.vmdk']);
    const { readFile } = await import('node:fs/promises');
    await writeFile(path, (await readFile(path)).subarray(0, 1024));
    await expect(listTar(path)).rejects.toThrow(/past the archive's end/);
  });

  it('paxPath reads the path record', () => {
    expect(paxPath(Buffer.from('19 path=dir/x.vmdk\n12 uid=123\n'))).toBe('dir/x.vmdk');
  });
});

describe('QemuImgProgress: qemu-img convert -p output', () => {
  it('reads each new percentage, across split pieces', () => {
    const p = new QemuImgProgress();
    expect(p.push('    (0.00/100%)\r')).toBe(0);
    expect(p.push('    (12.')).toBeUndefined();
    expect(p.push('50/100%)\r    (13.00/100%)\r')).toBe(13);
    expect(p.push('    (13.00/100%)\r')).toBeUndefined();
    expect(p.push('    (100.00/100%)\r\n')).toBe(100);
  });

  it('ignores what is not a figure', () => {
    expect(new QemuImgProgress().push('qemu-img: warning\n')).toBeUndefined();
  });
});

describe('manifest', () => {
  it('parses SHA1 and SHA256 lines as vSphere and ovftool write them', () => {
    const text = `SHA256(web.ovf)= ${'a'.repeat(64)}\nSHA1 (web-disk1.vmdk) = ${'B'.repeat(40)}\r\n\n`;
    expect(parseManifest(text)).toEqual([
      { algorithm: 'sha256', file: 'web.ovf', digest: 'a'.repeat(64) },
      { algorithm: 'sha1', file: 'web-disk1.vmdk', digest: 'b'.repeat(40) },
    ]);
  });

  it.each([
    ['MD5(x)= abc', /not "SHA256\(file\)= digest"/],
    [`SHA256(x)= ${'a'.repeat(40)}`, /64 hex digits, not 40/],
  ])('refuses %s', (line, message) => {
    expect(() => parseManifest(line)).toThrow(ManifestError);
    expect(() => parseManifest(line)).toThrow(message);
  });

  it('digestOf hashes a byte range of a file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vmlet-mf-'));
    try {
      await writeFile(join(dir, 'f'), 'xxhelloyy');
      const { createHash } = await import('node:crypto');
      expect(await digestOf(join(dir, 'f'), 2, 5, 'sha1')).toBe(createHash('sha1').update('hello').digest('hex'));
      expect(await digestOf(join(dir, 'f'), 0, 0, 'sha256')).toBe(createHash('sha256').digest('hex'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
