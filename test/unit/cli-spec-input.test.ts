import { describe, expect, it } from 'vitest';
import {
  applyFlags,
  buildSpec,
  parseDiskFlag,
  parseLabelFlag,
  parseMemoryMib,
  parseNicFlag,
  parseSpecText,
  SpecInputError,
  type SpecInput,
} from '../../src/cli/spec-input.js';

const empty = (): SpecInput => ({ labels: {}, disks: [], nics: [] });

function thrown(fn: () => unknown): SpecInputError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SpecInputError);
    return err as SpecInputError;
  }
  throw new Error('expected a SpecInputError');
}

const FULL = {
  id: 'web-1',
  labels: { app: 'web', tier: 'front' },
  vcpus: 2,
  memoryMib: 512,
  kernel: { kernelPath: '/img/vmlinuz', initrdPath: '/img/initrd.img', cmdline: 'console=ttyS0' },
  disks: [{ name: 'root', imagePath: '/img/root.qcow2', overlay: true, readonly: false }],
  nics: [{ name: 'eth0', bridge: 'br0', mac: '52:54:00:00:00:01' }],
};

describe('spec files', () => {
  it('reads snake_case YAML at every depth', () => {
    const yaml = `
id: web-1
labels: { app: web, tier: front }
vcpus: 2
memory_mib: 512
kernel:
  kernel_path: /img/vmlinuz
  initrd_path: /img/initrd.img
  cmdline: console=ttyS0
disks:
  - { name: root, image_path: /img/root.qcow2, overlay: true }
nics:
  - { name: eth0, bridge: br0, mac: "52:54:00:00:00:01" }
`;
    expect(parseSpecText(yaml, 'vm.yaml')).toEqual(FULL);
  });

  it('reads camelCase JSON, the same spec', () => {
    expect(parseSpecText(JSON.stringify(FULL), 'vm.json')).toEqual(FULL);
  });

  it('reads a mix of both spellings and keeps label keys as written', () => {
    const spec = parseSpecText('{"id":"a","memory_mib":64,"labels":{"team_name":"x","n":3},"disks":[{"name":"d","imagePath":"/p","readonly":false}]}', 'x.yml');
    expect(spec.memoryMib).toBe(64);
    expect(spec.labels).toEqual({ team_name: 'x', n: '3' });
    expect(spec.disks[0]?.imagePath).toBe('/p');
  });

  it('accepts a Vm document ({spec, status}) as printed by get -o json', () => {
    const doc = { spec: { ...FULL, kernel: null }, status: { phase: 'PHASE_RUNNING' } };
    const spec = parseSpecText(JSON.stringify(doc), 'vm.json');
    expect(spec.id).toBe('web-1');
    expect(spec.kernel).toBeUndefined();
  });

  it('names the bad field with its path', () => {
    expect(thrown(() => parseSpecText('id: a\nmemory_mb: 5\n', 'vm.yaml')).message).toMatch(/^vm\.yaml: spec\.memory_mb: unknown field/);
    expect(thrown(() => parseSpecText('id: a\ndisks:\n  - name: r\n    image_path: 7\n', 'vm.yaml')).message).toBe(
      'vm.yaml: spec.disks[0].image_path: expected a string, got 7',
    );
    expect(thrown(() => parseSpecText('id: a\nvcpus: -1\n', 'vm.yaml')).message).toMatch(/spec\.vcpus: expected a whole number/);
    expect(thrown(() => parseSpecText('{"id":"a","memoryMib":1,"memory_mib":2}', 'vm.json')).message).toMatch(/spec\.memory_mib: given twice \(also as memoryMib\)/);
    expect(thrown(() => parseSpecText('id: a\nnics:\n  - name: eth0\n', 'vm.yaml')).message).toMatch(/spec\.nics\[0\]: missing bridge/);
  });

  it('reports syntax errors and empty files as file errors', () => {
    const bad = thrown(() => parseSpecText('{"id": ', 'vm.json'));
    expect(bad.origin).toBe('file');
    expect(bad.message).toMatch(/^vm\.json: not valid JSON/);
    expect(thrown(() => parseSpecText('id: [a\n', 'vm.yaml')).message).toMatch(/^vm\.yaml: not valid YAML/);
    expect(thrown(() => parseSpecText('', 'vm.yaml')).message).toMatch(/empty/);
    expect(thrown(() => parseSpecText('- a\n', 'vm.yaml')).message).toMatch(/spec: expected an object, got a list/);
  });
});

describe('--disk, --nic, --label, --memory', () => {
  it('parses --disk with bare and explicit booleans', () => {
    expect(parseDiskFlag('name=root,image=/img/r.qcow2,overlay,readonly')).toEqual({ name: 'root', imagePath: '/img/r.qcow2', overlay: true, readonly: true });
    expect(parseDiskFlag('name=data,image=/d,overlay=false')).toEqual({ name: 'data', imagePath: '/d', overlay: false, readonly: false });
  });

  it('rejects bad --disk syntax with the expected form', () => {
    const unknown = thrown(() => parseDiskFlag('name=root,img=/x'));
    expect(unknown.origin).toBe('flag');
    expect(unknown.message).toBe('--disk "name=root,img=/x": unknown key "img"; expected name=NAME,image=PATH[,overlay][,readonly]');
    expect(thrown(() => parseDiskFlag('image=/x')).message).toMatch(/missing name=/);
    expect(thrown(() => parseDiskFlag('name=root')).message).toMatch(/missing image=/);
    expect(thrown(() => parseDiskFlag('name=root,,image=/x')).message).toMatch(/empty item/);
    expect(thrown(() => parseDiskFlag('name=,image=/x')).message).toMatch(/name needs a value/);
    expect(thrown(() => parseDiskFlag('name=r,image=/x,overlay=maybe')).message).toMatch(/overlay=maybe: expected true or false/);
  });

  it('parses --nic with an optional mac', () => {
    expect(parseNicFlag('name=eth0,bridge=br0')).toEqual({ name: 'eth0', bridge: 'br0' });
    expect(parseNicFlag('name=eth0,bridge=br0,mac=52:54:00:aa:bb:cc')).toEqual({ name: 'eth0', bridge: 'br0', mac: '52:54:00:aa:bb:cc' });
    expect(thrown(() => parseNicFlag('name=eth0')).message).toMatch(/missing bridge=/);
    expect(thrown(() => parseNicFlag('name=eth0,bridge=br0,vlan=3')).message).toMatch(/unknown key "vlan"/);
  });

  it('parses --label KEY=VALUE, keeping later = signs in the value', () => {
    expect(parseLabelFlag('a=b=c')).toEqual(['a', 'b=c']);
    expect(parseLabelFlag('empty=')).toEqual(['empty', '']);
    expect(thrown(() => parseLabelFlag('novalue')).message).toMatch(/expected KEY=VALUE/);
    expect(thrown(() => parseLabelFlag('=v')).message).toMatch(/expected KEY=VALUE/);
  });

  it('parses --memory in MiB with optional M/G suffixes', () => {
    expect(parseMemoryMib('512')).toBe(512);
    expect(parseMemoryMib('512M')).toBe(512);
    expect(parseMemoryMib('2G')).toBe(2048);
    expect(parseMemoryMib('3GiB')).toBe(3072);
    expect(thrown(() => parseMemoryMib('1.5G')).message).toMatch(/expected MiB/);
    expect(thrown(() => parseMemoryMib('2T')).message).toMatch(/expected MiB/);
  });
});

describe('flags over a file', () => {
  it('builds a spec from flags alone', () => {
    const spec = applyFlags(empty(), {
      id: 'vm1',
      vcpus: '2',
      memory: '1G',
      kernel: '/k',
      cmdline: 'quiet',
      disk: ['name=root,image=/r'],
      nic: ['name=eth0,bridge=br0'],
      label: ['a=1', 'b=2'],
    });
    expect(spec).toEqual({
      id: 'vm1',
      vcpus: 2,
      memoryMib: 1024,
      kernel: { kernelPath: '/k', cmdline: 'quiet' },
      labels: { a: '1', b: '2' },
      disks: [{ name: 'root', imagePath: '/r', overlay: false, readonly: false }],
      nics: [{ name: 'eth0', bridge: 'br0' }],
    });
  });

  it('flags override file values: scalars replace, labels merge, disks and NICs replace by name', () => {
    const base = parseSpecText(JSON.stringify({ ...FULL, disks: [...FULL.disks, { name: 'data', imagePath: '/d' }] }), 'vm.json');
    const spec = applyFlags(base, {
      id: 'web-2',
      memory: '1024',
      initrd: '/other-initrd',
      label: ['tier=back', 'new=yes'],
      disk: ['name=root,image=/img/other.qcow2,readonly', 'name=scratch,image=/s'],
      nic: ['name=eth1,bridge=br1'],
    });
    expect(spec.id).toBe('web-2');
    expect(spec.vcpus).toBe(2);
    expect(spec.memoryMib).toBe(1024);
    expect(spec.kernel).toEqual({ kernelPath: '/img/vmlinuz', initrdPath: '/other-initrd', cmdline: 'console=ttyS0' });
    expect(spec.labels).toEqual({ app: 'web', tier: 'back', new: 'yes' });
    expect(spec.disks.map((d) => [d.name, d.imagePath, d.readonly])).toEqual([
      ['root', '/img/other.qcow2', true],
      ['data', '/d', false],
      ['scratch', '/s', false],
    ]);
    expect(spec.nics.map((n) => n.name)).toEqual(['eth0', 'eth1']);
    // The file's spec is not modified.
    expect(base.labels.tier).toBe('front');
  });

  it('rejects the same --disk name twice and a spec without an id', () => {
    expect(thrown(() => applyFlags(empty(), { disk: ['name=a,image=/1', 'name=a,image=/2'] })).message).toBe('--disk: name "a" given twice');
    expect(thrown(() => applyFlags(empty(), { vcpus: 'two' })).message).toMatch(/--vcpus "two"/);
    expect(thrown(() => buildSpec({ flags: { vcpus: '1' } })).message).toMatch(/no VM id/);
    expect(buildSpec({ file: { name: 'vm.yaml', text: 'id: from-file\n' }, flags: {} }).id).toBe('from-file');
  });
});

describe('disk format', () => {
  it('--disk takes format=raw|qcow2, and leaves it out when not given', () => {
    expect(parseDiskFlag('name=root,image=/img/r.img,format=raw')).toEqual({ name: 'root', imagePath: '/img/r.img', overlay: false, readonly: false, format: 'raw' });
    expect(parseDiskFlag('name=root,format=qcow2,image=/img/r,overlay')).toEqual({ name: 'root', imagePath: '/img/r', overlay: true, readonly: false, format: 'qcow2' });
    expect(parseDiskFlag('name=root,image=/img/r')).not.toHaveProperty('format');
    // The daemon validates the value (INVALID_ARGUMENT naming spec.disks[i].format); the CLI only needs one.
    expect(parseDiskFlag('name=root,image=/img/r,format=vmdk').format).toBe('vmdk');
    expect(thrown(() => parseDiskFlag('name=root,image=/img/r,format')).message).toMatch(/format needs a value/);
    expect(thrown(() => parseDiskFlag('name=root,image=/img/r,format=')).message).toMatch(/format needs a value/);
  });

  it('a spec file takes format:, and an empty one (as `vmlet get -o json` prints it) is left out', () => {
    const yaml = parseSpecText('id: a\ndisks:\n  - { name: root, image_path: /img/r.img, format: raw }\n  - { name: data, image_path: /img/d, format: "" }\n', 'vm.yaml');
    expect(yaml.disks).toEqual([
      { name: 'root', imagePath: '/img/r.img', overlay: false, readonly: false, format: 'raw' },
      { name: 'data', imagePath: '/img/d', overlay: false, readonly: false },
    ]);
    expect(thrown(() => parseSpecText('id: a\ndisks:\n  - { name: root, image_path: /r, format: 2 }\n', 'vm.yaml')).message).toMatch(/spec\.disks\[0\]\.format: expected a string/);
  });

  it('a flag replaces a file disk with its format as given (or none)', () => {
    const base = parseSpecText('id: a\ndisks:\n  - { name: root, image_path: /img/r.img, format: raw }\n', 'vm.yaml');
    expect(applyFlags(base, { disk: ['name=root,image=/img/q,format=qcow2'] }).disks).toEqual([{ name: 'root', imagePath: '/img/q', overlay: false, readonly: false, format: 'qcow2' }]);
    expect(applyFlags(base, { disk: ['name=root,image=/img/q'] }).disks[0]).not.toHaveProperty('format');
  });
});

describe('firmware and cloud-init', () => {
  it('reads firmware and cloud_init from a file, in either spelling', () => {
    const yaml = 'id: a\nfirmware: { type: uefi, secure_boot: true }\ncloud_init:\n  user_data: "#cloud-config\\n"\n';
    expect(parseSpecText(yaml, 'a.yaml')).toMatchObject({
      firmware: { type: 'FIRMWARE_TYPE_UEFI', secureBoot: true },
      cloudInit: { userData: '#cloud-config\n', metaData: '', networkConfig: '' },
    });
    const json = JSON.stringify({ id: 'a', firmware: { type: 'FIRMWARE_TYPE_UEFI', secureBoot: false }, cloudInit: { userData: 'u', metaData: 'm', networkConfig: 'n' } });
    expect(parseSpecText(json, 'a.json')).toMatchObject({ firmware: { type: 'FIRMWARE_TYPE_UEFI', secureBoot: false }, cloudInit: { userData: 'u', metaData: 'm', networkConfig: 'n' } });
    expect(thrown(() => parseSpecText('id: a\nfirmware: { type: coreboot }\n', 'a.yaml')).message).toMatch(/spec\.firmware\.type: "coreboot"/);
  });

  it('--firmware and --cloud-init-user-data override the file; other cloud-init files stay', () => {
    const base: SpecInput = { ...empty(), id: 'a', cloudInit: { userData: 'old', metaData: 'm', networkConfig: '' } };
    expect(applyFlags(base, { firmware: 'uefi-secure-boot', cloudInitUserData: 'new' })).toMatchObject({
      firmware: { type: 'FIRMWARE_TYPE_UEFI', secureBoot: true },
      cloudInit: { userData: 'new', metaData: 'm', networkConfig: '' },
    });
    expect(applyFlags(empty(), { firmware: 'bios' }).firmware).toEqual({ type: 'FIRMWARE_TYPE_BIOS', secureBoot: false });
    expect(thrown(() => applyFlags(empty(), { firmware: 'efi' })).message).toMatch(/--firmware "efi": expected bios, uefi or uefi-secure-boot/);
  });
});
