import { describe, expect, it } from 'vitest';
import { VmletError } from '../../src/model/errors.js';
import { validateSpec, validateVmId, type SpecLimits } from '../../src/vm/validate.js';
import type { VmSpec } from '../../src/model/vm.js';

const good: VmSpec = {
  id: 'web-1',
  labels: { app: 'web' },
  vcpus: 2,
  memoryMib: 512,
  disks: [{ name: 'root', imagePath: '/images/root.qcow2', overlay: true, readonly: false }],
  nics: [{ name: 'eth0', bridge: 'br0', mac: '' }],
};

const disk = (name: string, over: Partial<VmSpec['disks'][number]> = {}): VmSpec['disks'][number] => ({
  name,
  imagePath: `/images/${name}.img`,
  overlay: false,
  readonly: false,
  ...over,
});
const nic = (name: string, over: Partial<VmSpec['nics'][number]> = {}): VmSpec['nics'][number] => ({ name, bridge: 'br0', mac: '', ...over });

/** The spec with changes; `undefined` values delete the property. */
function spec(over: Record<string, unknown>): VmSpec {
  const s: Record<string, unknown> = { ...good, ...over };
  for (const [k, v] of Object.entries(over)) if (v === undefined) delete s[k];
  return s as unknown as VmSpec;
}

function errorOf(fn: () => unknown): VmletError {
  try {
    fn();
  } catch (e) {
    if (e instanceof VmletError) return e;
    throw e;
  }
  throw new Error('expected a VmletError, nothing was thrown');
}

describe('validateSpec: accepted specs', () => {
  it('returns a normalised copy', () => {
    const out = validateSpec(good);
    expect(out).toEqual(good);
    expect(out).not.toBe(good);
    expect(out.disks).not.toBe(good.disks);
  });

  it.each<[string, Record<string, unknown>, Partial<VmSpec>]>([
    ['vcpus 0 → 1', { vcpus: 0 }, { vcpus: 1 }],
    ['memory_mib 0 → 256', { memoryMib: 0 }, { memoryMib: 256 }],
    ['missing labels → {}', { labels: undefined }, { labels: {} }],
    ['missing nics → []', { nics: undefined }, { nics: [] }],
    ['labels sorted by key', { labels: { z: '1', a: '2' } }, { labels: { a: '2', z: '1' } }],
    ['MAC lowercased', { nics: [nic('eth0', { mac: '52:54:00:AA:BB:CC' })] }, { nics: [nic('eth0', { mac: '52:54:00:aa:bb:cc' })] }],
    ['minimum memory', { memoryMib: 16 }, { memoryMib: 16 }],
    ['64 vCPUs', { vcpus: 64 }, { vcpus: 64 }],
    ['1 TiB', { memoryMib: 1048576 }, { memoryMib: 1048576 }],
    ['kernel without disks', { disks: [], kernel: { kernelPath: '/k/vmlinuz', initrdPath: '', cmdline: 'console=ttyS0' } }, { disks: [], kernel: { kernelPath: '/k/vmlinuz', initrdPath: '', cmdline: 'console=ttyS0' } }],
    ['16 disks', { disks: Array.from({ length: 16 }, (_, i) => disk(`d${i}`)) }, {}],
    ['8 NICs', { nics: Array.from({ length: 8 }, (_, i) => nic(`n${i}`)) }, {}],
    ['20-char disk name', { disks: [disk('a'.repeat(20))] }, {}],
    ['15-char NIC name and bridge', { nics: [nic('a'.repeat(15), { bridge: 'b'.repeat(15) })] }, {}],
    ['63-char id', { id: 'a'.repeat(63) }, { id: 'a'.repeat(63) }],
    ['readonly disk', { disks: [disk('ro', { readonly: true })] }, {}],
  ])('%s', (_name, over, want) => {
    const input = spec(over);
    expect(validateSpec(input)).toEqual({ ...input, labels: input.labels ?? {}, nics: input.nics ?? [], ...want });
  });

  it('drops an all-empty kernel (proto3 default message)', () => {
    expect(validateSpec(spec({ kernel: { kernelPath: '', initrdPath: '', cmdline: '' } }))).not.toHaveProperty('kernel');
  });

  it('drops unknown properties', () => {
    expect(validateSpec(spec({ extra: 1 }))).not.toHaveProperty('extra');
  });

  it('keeps labels in a stable order so equal specs serialise equally', () => {
    const a = validateSpec(spec({ labels: { b: '1', a: '2' } }));
    const b = validateSpec(spec({ labels: { a: '2', b: '1' } }));
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
  });
});

describe('validateSpec: rejected specs name the field', () => {
  it.each<[string, Record<string, unknown>, string, RegExp]>([
    ['empty id', { id: '' }, 'spec.id', /required/],
    ['uppercase id', { id: 'Web' }, 'spec.id', /DNS-1123/],
    ['id with dot', { id: 'a.b' }, 'spec.id', /DNS-1123/],
    ['id ending with -', { id: 'a-' }, 'spec.id', /DNS-1123/],
    ['64-char id', { id: 'a'.repeat(64) }, 'spec.id', /1-63/],
    ['vcpus too many', { vcpus: 65 }, 'spec.vcpus', /between 1 and 64/],
    ['vcpus negative', { vcpus: -1 }, 'spec.vcpus', /between 1 and 64/],
    ['vcpus fractional', { vcpus: 1.5 }, 'spec.vcpus', /integer/],
    ['memory too small', { memoryMib: 15 }, 'spec.memory_mib', /between 16 and 1048576 MiB/],
    ['memory too big', { memoryMib: 1048577 }, 'spec.memory_mib', /between 16 and 1048576 MiB/],
    ['memory as a string', { memoryMib: '512' }, 'spec.memory_mib', /integer/],
    ['bad label key', { labels: { 'foo/bar/baz': 'x' } }, 'spec.labels["foo/bar/baz"]', /key name/],
    ['bad label prefix', { labels: { 'Foo/bar': 'x' } }, 'spec.labels["Foo/bar"]', /prefix/],
    ['bad label value', { labels: { 'foo/bar': 'a b' } }, 'spec.labels["foo/bar"]', /value/],
    ['non-string label value', { labels: { a: 1 } }, 'spec.labels["a"]', /string/],
    ['nothing to boot', { disks: [] }, 'spec.disks', /nothing to boot/],
    ['kernel without kernel_path', { kernel: { kernelPath: '', initrdPath: '/k/initrd', cmdline: '' } }, 'spec.kernel.kernel_path', /required/],
    ['relative kernel_path', { kernel: { kernelPath: 'vmlinuz', initrdPath: '', cmdline: '' } }, 'spec.kernel.kernel_path', /absolute/],
    ['relative initrd_path', { kernel: { kernelPath: '/k', initrdPath: 'initrd', cmdline: '' } }, 'spec.kernel.initrd_path', /absolute/],
    ['NUL in kernel_path', { kernel: { kernelPath: '/k\0x', initrdPath: '', cmdline: '' } }, 'spec.kernel.kernel_path', /NUL/],
    ['cmdline too long', { kernel: { kernelPath: '/k', initrdPath: '', cmdline: 'x'.repeat(4097) } }, 'spec.kernel.cmdline', /4097 bytes/],
    ['too many disks', { disks: Array.from({ length: 17 }, (_, i) => disk(`d${i}`)) }, 'spec.disks', /at most 16/],
    ['disk without name', { disks: [disk('')] }, 'spec.disks[0].name', /required/],
    ['21-char disk name', { disks: [disk('a'.repeat(21))] }, 'spec.disks[0].name', /1-20/],
    ['duplicate disk', { disks: [disk('a'), disk('a')] }, 'spec.disks[1].name', /duplicate disk name "a"/],
    ['relative image_path', { disks: [disk('a'), disk('b', { imagePath: 'b.img' })] }, 'spec.disks[1].image_path', /absolute/],
    ['missing image_path', { disks: [disk('a', { imagePath: '' })] }, 'spec.disks[0].image_path', /required/],
    ['overlay on readonly', { disks: [disk('a', { overlay: true, readonly: true })] }, 'spec.disks[0].overlay', /not both/],
    ['too many NICs', { nics: Array.from({ length: 9 }, (_, i) => nic(`n${i}`)) }, 'spec.nics', /at most 8/],
    ['16-char NIC name', { nics: [nic('a'.repeat(16))] }, 'spec.nics[0].name', /1-15/],
    ['NIC name with underscore', { nics: [nic('eth_0')] }, 'spec.nics[0].name', /DNS-1123/],
    ['duplicate NIC', { nics: [nic('a'), nic('b'), nic('a')] }, 'spec.nics[2].name', /duplicate NIC name "a"/],
    ['empty bridge', { nics: [nic('a', { bridge: '' })] }, 'spec.nics[0].bridge', /empty/],
    ['16-byte bridge', { nics: [nic('a', { bridge: 'b'.repeat(16) })] }, 'spec.nics[0].bridge', /16 bytes/],
    ['bridge with /', { nics: [nic('a', { bridge: 'br/0' })] }, 'spec.nics[0].bridge', /contains/],
    ['bridge ..', { nics: [nic('a', { bridge: '..' })] }, 'spec.nics[0].bridge', /not a valid/],
    ['bad MAC', { nics: [nic('a'), nic('b', { mac: 'zz:00:00:00:00:00' })] }, 'spec.nics[1].mac', /not a MAC/],
    ['multicast MAC', { nics: [nic('a', { mac: '01:00:5e:00:00:01' })] }, 'spec.nics[0].mac', /multicast/],
    ['zero MAC', { nics: [nic('a', { mac: '00:00:00:00:00:00' })] }, 'spec.nics[0].mac', /all-zero/],
    ['disks not a list', { disks: 'root' }, 'spec.disks', /list/],
    ['labels not a map', { labels: ['a'] }, 'spec.labels', /map/],
  ])('%s', (_name, over, field, why) => {
    const err = errorOf(() => validateSpec(spec(over)));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message.startsWith(`${field}: `)).toBe(true);
    expect(err.message).toMatch(why);
  });

  it.each<[SpecLimits, Record<string, unknown>, string]>([
    [{ maxVcpus: 4 }, { vcpus: 5 }, 'spec.vcpus: must be an integer between 1 and 4'],
    [{ maxMemoryMib: 1024 }, { memoryMib: 2048 }, 'spec.memory_mib: must be an integer between 16 and 1024 MiB'],
  ])('limits %j', (limits, over, msg) => {
    expect(errorOf(() => validateSpec(spec(over), limits)).message).toContain(msg);
  });
});

describe('validateVmId', () => {
  it.each(['a', '0', 'web-1', '1-a', 'a'.repeat(63)])('accepts %j', (id) => expect(validateVmId(id)).toBe(id));
  it.each(['', '-a', 'a-', 'A', 'a_b', 'a.b', 'a'.repeat(64), 'ü'])('rejects %j', (id) => {
    expect(errorOf(() => validateVmId(id)).message).toMatch(/^id: /);
  });
  it('uses the given field', () => {
    expect(errorOf(() => validateVmId('X', 'vm_id')).message).toMatch(/^vm_id: /);
  });
});

describe('validateSpec: disk format (raw, qcow2, or empty: read from the header at create)', () => {
  it.each<[string, unknown, VmSpec['disks'][number]['format']]>([
    ['raw', 'raw', 'raw'],
    ['qcow2', 'qcow2', 'qcow2'],
  ])('keeps %s', (_name, format, want) => {
    expect(validateSpec(spec({ disks: [disk('a', { format } as object)] })).disks[0]?.format).toBe(want);
  });

  it.each<[string, unknown]>([
    ['empty', ''],
    ['absent', undefined],
    ['null', null],
  ])('leaves the format out when %s', (_name, format) => {
    const out = validateSpec(spec({ disks: [{ ...disk('a'), format }] }));
    expect(out.disks[0]).not.toHaveProperty('format');
    expect(out.disks[0]).toEqual(disk('a'));
  });

  it.each<[string, unknown, RegExp]>([
    ['vmdk', 'vmdk', /"vmdk" is not a disk format vmlet opens: give raw or qcow2/],
    ['uppercase', 'QCOW2', /"QCOW2" is not a disk format/],
    ['host_device', 'host_device', /not a disk format/],
    ['a number', 2, /must be a string/],
  ])('refuses %s naming spec.disks[i].format', (_name, format, why) => {
    const err = errorOf(() => validateSpec(spec({ disks: [disk('a'), { ...disk('b'), format }] })));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message.startsWith('spec.disks[1].format: ')).toBe(true);
    expect(err.message).toMatch(why);
  });

  it('keeps the format through a second validation (as a NIC attach re-validates the stored spec)', () => {
    const once = validateSpec(spec({ disks: [disk('a', { format: 'raw' })] }));
    expect(validateSpec(once)).toEqual(once);
  });
});

describe('validateSpec: where QEMU splits -initrd (multiboot modules)', () => {
  it.each<[string, string, RegExp]>([
    ['a comma (the module list)', '/k/initrd,1.img', /^spec\.kernel\.initrd_path: "\/k\/initrd,1\.img" contains a comma/],
    ['two commas (an escape only for multiboot kernels)', '/k/a,,b.img', /contains a comma/],
    ['a space (module arguments: QEMU would open /k/foo)', '/k/foo bar.img', /^spec\.kernel\.initrd_path: "\/k\/foo bar\.img" contains a space/],
  ])('refuses %s in initrd_path', (_name, initrdPath, why) => {
    const err = errorOf(() => validateSpec(spec({ kernel: { kernelPath: '/k/vmlinuz', initrdPath, cmdline: '' } })));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toMatch(why);
  });

  it('accepts commas where QEMU takes the value verbatim or vmlet escapes it: kernel path, cmdline, disk images', () => {
    const out = validateSpec(spec({ kernel: { kernelPath: '/k/vmlinuz,1', initrdPath: '/k/initrd.img', cmdline: 'a=b,c' }, disks: [disk('a', { imagePath: '/i/a,1.raw' })] }));
    expect(out.kernel).toEqual({ kernelPath: '/k/vmlinuz,1', initrdPath: '/k/initrd.img', cmdline: 'a=b,c' });
    expect(out.disks[0]?.imagePath).toBe('/i/a,1.raw');
  });
});

describe('validateSpec: NIC model, disk bus and boot order, firmware', () => {
  const nic = (over: object = {}) => ({ name: 'eth0', bridge: 'br0', mac: '', ...over });

  it.each([
    ['e1000e', { model: 'e1000e' }],
    ['vmxnet3', { model: 'vmxnet3' }],
  ])('keeps NIC model %s', (_name, over) => {
    expect(validateSpec(spec({ nics: [nic(over)] })).nics[0]).toEqual(nic(over));
  });

  it('virtio (the default) is left out', () => {
    expect(validateSpec(spec({ nics: [nic({ model: 'virtio' })] })).nics[0]).toEqual(nic());
  });

  it('an unknown NIC model names the field', () => {
    expect(errorOf(() => validateSpec(spec({ nics: [nic({ model: 'rtl8139' })] }))).message).toMatch(/^spec\.nics\[0\]\.model: "rtl8139" is not one of virtio, e1000e, vmxnet3/);
  });

  it('keeps sata, scsi and a boot order; virtio is left out', () => {
    const out = validateSpec(spec({ disks: [disk('a', { bus: 'sata', bootOrder: 2 } as object), disk('b', { bus: 'virtio', bootOrder: 1 } as object), disk('c', { bus: 'scsi', bootOrder: 3 } as object)] }));
    expect(out.disks.map((d) => [d.bus, d.bootOrder])).toEqual([['sata', 2], [undefined, 1], ['scsi', 3]]);
  });

  it.each([
    ['a CD-ROM on scsi', [disk('a', { bus: 'scsi', cdrom: true, readonly: true } as object)], /^spec\.disks\[0\]\.bus: a CD-ROM sits on sata, not scsi/],
    ['an unknown bus', [disk('a', { bus: 'ide' } as object)], /^spec\.disks\[0\]\.bus: "ide" is not one of/],
    ['seven SATA disks', ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((n) => disk(n, { bus: 'sata' } as object)), /^spec\.disks\[6\]\.bus: at most 6 disks on sata/],
    ['a negative boot order', [disk('a', { bootOrder: -1 } as object)], /^spec\.disks\[0\]\.boot_order/],
  ])('refuses %s', (_name, disks, message) => {
    expect(errorOf(() => validateSpec(spec({ disks }))).message).toMatch(message);
  });

  it('UEFI is kept with its Secure Boot flag; BIOS, the default, is left out; Secure Boot needs UEFI', () => {
    expect(validateSpec(spec({ firmware: { type: 'uefi', secureBoot: true } })).firmware).toEqual({ type: 'uefi', secureBoot: true });
    expect(validateSpec(spec({ firmware: { type: 'bios', secureBoot: false } })).firmware).toBeUndefined();
    expect(errorOf(() => validateSpec(spec({ firmware: { type: 'bios', secureBoot: true } }))).message).toMatch(/^spec\.firmware\.secure_boot: Secure Boot needs UEFI/);
  });
});

describe('validateSpec: cloud_init', () => {
  it('keeps the files verbatim, absent ones empty', () => {
    expect(validateSpec(spec({ cloudInit: { userData: '#cloud-config\n' } as never })).cloudInit).toEqual({ userData: '#cloud-config\n', metaData: '', networkConfig: '' });
  });

  it.each(['userData', 'metaData', 'networkConfig'])('refuses a %s over 64 KiB (in bytes, not characters)', (key) => {
    const field = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    const fits = { userData: '', metaData: '', networkConfig: '', [key]: 'x'.repeat(64 * 1024) };
    expect(validateSpec(spec({ cloudInit: fits })).cloudInit).toEqual(fits);
    const over = { userData: '', metaData: '', networkConfig: '', [key]: 'é'.repeat(32 * 1024 + 1) };
    expect(errorOf(() => validateSpec(spec({ cloudInit: over }))).message).toMatch(new RegExp(`^spec\\.cloud_init\\.${field}: is 65538 bytes, at most 65536`));
  });

  it('refuses a seed when every SATA port holds a disk', () => {
    const disks = Array.from({ length: 6 }, (_, i) => ({ name: `d${i}`, imagePath: `/images/d${i}.qcow2`, overlay: false, readonly: false, bus: 'sata' as const }));
    expect(errorOf(() => validateSpec(spec({ disks, cloudInit: { userData: '', metaData: '', networkConfig: '' } }))).message).toMatch(/^spec\.cloud_init: the seed takes a SATA port/);
  });
});

describe('validateSpec: CD-ROM disks', () => {
  const iso = { name: 'cd', imagePath: '/images/debian.iso', overlay: false, readonly: false, cdrom: true };

  it('a cdrom is read-only and on sata, whatever the spec left out', () => {
    expect(validateSpec(spec({ disks: [iso] })).disks).toEqual([{ name: 'cd', imagePath: '/images/debian.iso', overlay: false, readonly: true, bus: 'sata', cdrom: true }]);
  });

  it('refuses an overlay or another bus on a cdrom', () => {
    expect(errorOf(() => validateSpec(spec({ disks: [{ ...iso, overlay: true }] }))).message).toMatch(/^spec\.disks\[0\]\.overlay: a CD-ROM is read-only/);
    expect(errorOf(() => validateSpec(spec({ disks: [{ ...iso, bus: 'virtio' }] }))).message).toMatch(/^spec\.disks\[0\]\.bus: a CD-ROM sits on sata, not virtio/);
  });
});
