import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headerBytes, headerFormat, parseQcow2Header, Qcow2HeaderError, qcow2HeaderBytes } from '../../src/storage/image-header.js';
import { backingPath, hasProtocol } from '../../src/storage/chain.js';
import { dropBackingFormat, qemuImg } from '../support/qcow2.js';


describe('headerFormat: vmlet reads the format from the first bytes, nothing else', () => {
  it.each<[string, Buffer, 'raw' | 'qcow2']>([
    ['the qcow2 magic', Buffer.from('QFI\xfb\0\0\0\x03', 'latin1'), 'qcow2'],
    ['the magic alone', Buffer.from('QFI\xfb', 'latin1'), 'qcow2'],
    ['an empty file', Buffer.alloc(0), 'raw'],
    ['three bytes of the magic', Buffer.from('QFI', 'latin1'), 'raw'],
    ['zeros', Buffer.alloc(512), 'raw'],
    ['a vmdk header (not a format vmlet opens: raw)', Buffer.from('KDMV\x01\0\0\0', 'latin1'), 'raw'],
    ['a LUKS header', Buffer.from('LUKS\xba\xbe\0\x01', 'latin1'), 'raw'],
    ['the magic, not at the start', Buffer.from('\0QFI\xfb', 'latin1'), 'raw'],
  ])('%s → %s', (_name, head, format) => {
    expect(headerFormat(head)).toBe(format);
  });
});

describe('parseQcow2Header on images made by qemu-img', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-header-'));
    await qemuImg('create', '-q', '-f', 'raw', join(dir, 'base.raw'), '1M');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const parsed = async (name: string) => parseQcow2Header(await headerBytes(join(dir, name)));

  it('a plain qcow2: no backing file, no data file', async () => {
    await qemuImg('create', '-q', '-f', 'qcow2', join(dir, 'plain.qcow2'), '1M');
    expect(await parsed('plain.qcow2')).toEqual({ version: 3, clusterSize: 65536, backingFile: '', backingFormat: '', externalDataFile: false });
  });

  it('a backing file with its format, absolute or relative, v3 or v2 (compat=0.10)', async () => {
    await qemuImg('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', join(dir, 'base.raw'), join(dir, 'abs.qcow2'));
    expect(await parsed('abs.qcow2')).toMatchObject({ version: 3, backingFile: join(dir, 'base.raw'), backingFormat: 'raw', externalDataFile: false });
    await qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'abs.qcow2', join(dir, 'rel.qcow2'));
    expect(await parsed('rel.qcow2')).toMatchObject({ backingFile: 'abs.qcow2', backingFormat: 'qcow2' });
    await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', '-F', 'raw', '-b', join(dir, 'base.raw'), join(dir, 'v2.qcow2'));
    expect(await parsed('v2.qcow2')).toMatchObject({ version: 2, backingFile: join(dir, 'base.raw'), backingFormat: 'raw' });
  });

  it('a backing file without a backing format (as older qemu-img made them)', async () => {
    const image = join(dir, 'nofmt.qcow2');
    await qemuImg('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', join(dir, 'base.raw'), image);
    await dropBackingFormat(image);
    const { stdout } = await qemuImg('info', '--output=json', '-U', '-f', 'qcow2', image);
    expect(JSON.parse(stdout)).not.toHaveProperty('backing-filename-format');
    expect(await parsed('nofmt.qcow2')).toMatchObject({ backingFile: join(dir, 'base.raw'), backingFormat: '' });
  });

  it('an external data file: the feature bit and the name', async () => {
    await qemuImg('create', '-q', '-f', 'qcow2', '-o', `data_file=${join(dir, 'data.raw')}`, join(dir, 'df.qcow2'), '1M');
    expect(await parsed('df.qcow2')).toMatchObject({ externalDataFile: true, dataFile: join(dir, 'data.raw') });
  });

  it('2 MiB clusters: the header is read as far as the backing file name reaches', async () => {
    await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=2M', '-F', 'raw', '-b', join(dir, 'base.raw'), join(dir, 'big.qcow2'));
    const head = await headerBytes(join(dir, 'big.qcow2'));
    expect(head.length).toBeGreaterThanOrEqual(qcow2HeaderBytes(head));
    expect(parseQcow2Header(head)).toMatchObject({ clusterSize: 2 * 1024 * 1024, backingFile: join(dir, 'base.raw'), backingFormat: 'raw' });
  });

  it('a raw file: only the first 4 KiB are read', async () => {
    await writeFile(join(dir, 'big.raw'), Buffer.alloc(1024 * 1024, 7));
    expect((await headerBytes(join(dir, 'big.raw'))).length).toBe(4096);
    expect((await headerBytes(join(dir, 'base.raw'))).length).toBe(4096);
  });
});

describe('parseQcow2Header on headers QEMU would not open', () => {
  /** A v3 header with 64 KiB clusters, header length 104, then `rest` (extensions, backing name). */
  function header(fields: { version?: number; clusterBits?: number; backingOffset?: number; backingSize?: number; incompatible?: bigint; headerLength?: number } = {}): Buffer {
    const buf = Buffer.alloc(65536);
    Buffer.from('QFI\xfb', 'latin1').copy(buf, 0);
    buf.writeUInt32BE(fields.version ?? 3, 4);
    buf.writeBigUInt64BE(BigInt(fields.backingOffset ?? 0), 8);
    buf.writeUInt32BE(fields.backingSize ?? 0, 16);
    buf.writeUInt32BE(fields.clusterBits ?? 16, 20);
    buf.writeBigUInt64BE(fields.incompatible ?? 0n, 72);
    buf.writeUInt32BE(fields.headerLength ?? 104, 100);
    return buf;
  }
  const problem = (buf: Buffer): string => {
    try {
      parseQcow2Header(buf);
    } catch (err) {
      expect(err).toBeInstanceOf(Qcow2HeaderError);
      return (err as Error).message;
    }
    throw new Error('accepted');
  };

  it.each<[string, Buffer, RegExp]>([
    ['no magic', Buffer.alloc(128), /no qcow2 header/],
    ['version 0xffffffff', header({ version: 0xffffffff }), /unsupported qcow2 version 4294967295/],
    ['a cluster of 2^30', header({ clusterBits: 30 }), /cluster size/],
    ['a header cut short', header().subarray(0, 50), /ends inside the qcow2 header/],
    ['a header length past the cluster', header({ headerLength: 70000 }), /header length/],
    ['a backing name offset past the cluster', header({ backingOffset: 70000, backingSize: 4 }), /backing file offset/],
    ['a backing name of 2000 bytes', header({ backingOffset: 512, backingSize: 2000 }), /backing file name is too long/],
  ])('%s', (_name, buf, message) => {
    expect(problem(buf)).toMatch(message);
  });

  it('reads names as QEMU does: up to the first NUL', () => {
    const buf = header({ backingOffset: 512, backingSize: 16 });
    Buffer.from('/img/a.raw\0/etc/x', 'latin1').copy(buf, 512);
    // Backing format extension "raw\0junk" (8 bytes).
    buf.writeUInt32BE(0xe2792aca, 104);
    buf.writeUInt32BE(8, 108);
    Buffer.from('raw\0junk', 'latin1').copy(buf, 112);
    expect(parseQcow2Header(buf)).toMatchObject({ backingFile: '/img/a.raw', backingFormat: 'raw' });
  });

  it('refuses a backing name that is not UTF-8 (it could not be checked by its bytes)', () => {
    const buf = header({ backingOffset: 512, backingSize: 4 });
    Buffer.from([0x2f, 0xff, 0xfe, 0x61]).copy(buf, 512);
    expect(problem(buf)).toMatch(/not valid UTF-8/);
  });

  it('refuses an extension that runs past the extension area', () => {
    const buf = header({ backingOffset: 200, backingSize: 4 });
    buf.writeUInt32BE(0x12345678, 104);
    buf.writeUInt32BE(500, 108);
    expect(problem(buf)).toMatch(/extension 0x12345678 is too large/);
  });

  it('sees the external data file bit without the extension', () => {
    expect(parseQcow2Header(header({ incompatible: 1n << 2n }))).toMatchObject({ externalDataFile: true });
    expect(parseQcow2Header(header()).dataFile).toBeUndefined();
  });
});

describe('backing file names as QEMU resolves them', () => {
  it.each<[string, string, string]>([
    ['/img/top.qcow2', '/img/base.raw', '/img/base.raw'],
    ['/img/top.qcow2', 'base.raw', '/img/base.raw'],
    ['/img/sub/top.qcow2', '../base.raw', '/img/sub/../base.raw'],
    ['/img/link/top.qcow2', 'dir/base.raw', '/img/link/dir/base.raw'],
    ['/top.qcow2', 'base.raw', '/base.raw'],
  ])('%s names %s: QEMU opens %s', (image, backing, path) => {
    expect(backingPath(image, backing)).toBe(path);
  });

  it.each<[string, boolean]>([
    ['nbd:localhost:10809', true],
    ['json:{"driver":"file","filename":"/etc/shadow"}', true],
    ['file:/img/a.raw', true],
    ['/img/a:b.raw', false],
    ['dir/a:b.raw', false],
    ['a.raw', false],
  ])('%s is a protocol: %s', (name, protocol) => {
    expect(hasProtocol(name)).toBe(protocol);
  });
});
