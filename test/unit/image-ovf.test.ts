import { describe, expect, it } from 'vitest';
import { dnsLabel, nicModelFor, OvfError, parseOvf, unitBytes } from '../../src/storage/import/ovf.js';
import { proposeSpec } from '../../src/storage/import/propose.js';
import { vsphereOvf } from '../support/ova.js';
import type { StoredImage } from '../../src/model/image.js';

const vsphere = vsphereOvf(
  {
    name: 'Web Server 01',
    vcpus: 4,
    memoryMib: 2048,
    disks: ['web-disk1.vmdk', 'web-disk2.vmdk'],
    nics: [
      { subType: 'VmxNet3', mac: '00:50:56:AA:BB:01' },
      { subType: 'E1000', mac: '00:50:56:aa:bb:02' },
      { subType: 'PCNet32', mac: '' },
    ],
    firmware: 'efi',
  },
  [100, 200],
);

const image = (name: string): StoredImage => ({ name, path: `/img/store/${name}.qcow2`, format: 'qcow2', virtualSizeBytes: 1, actualSizeBytes: 1, source: '', createdAt: '' });

describe('parseOvf: a vSphere OVF 1.0 descriptor', () => {
  const ovf = parseOvf(vsphere);

  it('name, vCPUs, memory, firmware', () => {
    expect(ovf.name).toBe('Web Server 01');
    expect(ovf.vcpus).toBe(4);
    expect(ovf.memoryMib).toBe(2048);
    expect(ovf.firmware).toEqual({ type: 'uefi', secureBoot: false });
  });

  it('disks in hardware order with their files and controller', () => {
    expect(ovf.disks).toEqual([
      { href: 'web-disk1.vmdk', diskId: 'vmdisk1', capacityBytes: 64 * 2 ** 20, controller: 'scsi' },
      { href: 'web-disk2.vmdk', diskId: 'vmdisk2', capacityBytes: 64 * 2 ** 20, controller: 'scsi' },
    ]);
  });

  it('NICs with models per ResourceSubType and MACs lowercased', () => {
    expect(ovf.nics).toEqual([
      { model: 'vmxnet3', mac: '00:50:56:aa:bb:01', network: 'VM Network' },
      { model: 'e1000e', mac: '00:50:56:aa:bb:02', network: 'VM Network' },
      { model: 'e1000e', mac: '', network: 'VM Network' },
    ]);
  });

  it('hardware vmlet does not carry over becomes warnings, never an error', () => {
    expect(ovf.warnings).toEqual([
      'Video card (graphics controller) is not carried over',
      'VMCI device (other device, vmware.vmci) is not carried over',
      'Network adapter 3: NIC type "PCNet32" is not emulated; the NIC is proposed as e1000e',
    ]);
  });

  it('BIOS when vmw:firmware is absent or bios; secure boot from uefi.secureBoot.enabled', () => {
    expect(parseOvf(vsphere.replace('vmw:value="efi"', 'vmw:value="bios"')).firmware).toEqual({ type: 'bios', secureBoot: false });
    const secure = vsphere.replace('<vmw:Config ovf:required="false" vmw:key="tools', '<vmw:Config ovf:required="false" vmw:key="uefi.secureBoot.enabled" vmw:value="true"/><vmw:Config ovf:required="false" vmw:key="tools');
    expect(parseOvf(secure).firmware).toEqual({ type: 'uefi', secureBoot: true });
  });
});

describe('parseOvf: other descriptors', () => {
  const minimal = (hardware: string, extra = ''): string => `<?xml version="1.0"?>
<ovf:Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/2" xmlns:rasd="r" xmlns:epasd="e" xmlns:sasd="s">
  <ovf:References><ovf:File ovf:id="f1" ovf:href="disk.vmdk"/></ovf:References>
  <ovf:DiskSection><ovf:Disk ovf:diskId="d1" ovf:fileRef="f1" ovf:capacity="2" ovf:capacityAllocationUnits="byte * 2^30"/></ovf:DiskSection>
  ${extra}
  <ovf:VirtualSystem ovf:id="vm1"><ovf:VirtualHardwareSection>${hardware}</ovf:VirtualHardwareSection></ovf:VirtualSystem>
</ovf:Envelope>`;

  it('OVF 2.0 items (StorageItem, EthernetPortItem), prefixed elements, GigaBytes', () => {
    const ovf = parseOvf(
      minimal(`
      <ovf:Item><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></ovf:Item>
      <ovf:Item><rasd:ResourceType>4</rasd:ResourceType><rasd:AllocationUnits>GigaBytes</rasd:AllocationUnits><rasd:VirtualQuantity>4</rasd:VirtualQuantity></ovf:Item>
      <ovf:Item><rasd:ResourceType>20</rasd:ResourceType><rasd:InstanceID>5</rasd:InstanceID></ovf:Item>
      <ovf:StorageItem><sasd:ResourceType>17</sasd:ResourceType><sasd:HostResource>ovf:/disk/d1</sasd:HostResource><sasd:Parent>5</sasd:Parent></ovf:StorageItem>
      <ovf:EthernetPortItem><epasd:ResourceType>10</epasd:ResourceType><epasd:ResourceSubType>virtio</epasd:ResourceSubType></ovf:EthernetPortItem>`),
    );
    expect([ovf.name, ovf.vcpus, ovf.memoryMib]).toEqual(['vm1', 2, 4096]);
    expect(ovf.disks).toEqual([{ href: 'disk.vmdk', diskId: 'd1', capacityBytes: 2 * 2 ** 30, controller: 'sata' }]);
    expect(ovf.nics).toEqual([{ model: 'virtio', mac: '', network: '' }]);
    expect(ovf.warnings).toEqual([]);
  });

  it('no vCPUs or memory stated: defaults with warnings; a disk on no controller still comes', () => {
    const ovf = parseOvf(minimal(''));
    expect([ovf.vcpus, ovf.memoryMib]).toEqual([1, 512]);
    expect(ovf.disks.map((d) => d.href)).toEqual(['disk.vmdk']);
    expect(ovf.warnings.join('\n')).toMatch(/on no controller[\s\S]*no vCPU count[\s\S]*no memory size/);
  });

  it.each([
    ['not XML', 'this is not <xml', /Envelope|well-formed/],
    ['no envelope', '<?xml version="1.0"?><Other/>', /no Envelope/],
    ['no virtual system', '<Envelope><References/></Envelope>', /no VirtualSystem/],
  ])('%s is an OvfError', (_name, xml, message) => {
    expect(() => parseOvf(xml)).toThrow(OvfError);
    expect(() => parseOvf(xml)).toThrow(message);
  });
});

describe('helpers', () => {
  it.each<[string, number | undefined]>([
    ['', 1],
    ['byte', 1],
    ['byte * 2^20', 2 ** 20],
    ['byte*2^30', 2 ** 30],
    ['byte * 1024', 1024],
    ['MegaBytes', 2 ** 20],
    ['GigaBytes', 2 ** 30],
    ['hertz * 10^6', undefined],
  ])('unitBytes(%j) = %s', (unit, bytes) => {
    expect(unitBytes(unit)).toBe(bytes);
  });

  it.each([
    ['VmxNet3', 'vmxnet3'],
    ['vmxnet3', 'vmxnet3'],
    ['E1000', 'e1000e'],
    ['E1000e', 'e1000e'],
    ['virtio', 'virtio'],
    ['VmxNet2', 'e1000e'],
    ['', 'e1000e'],
  ])('nicModelFor(%j) = %s', (sub, model) => {
    expect(nicModelFor(sub).model).toBe(model);
  });

  it.each([
    ['Web Server 01', 'web-server-01'],
    ['  --Weird__Name!!  ', 'weird-name'],
    ['ÜberVM', 'ubervm'],
    ['x'.repeat(70), 'x'.repeat(63)],
    [`${'a'.repeat(62)}-b`, 'a'.repeat(62)],
    ['!!!', 'fallback'],
  ])('dnsLabel(%j) = %s', (name, label) => {
    expect(dnsLabel(name, 'fallback')).toBe(label);
  });
});

describe('proposeSpec', () => {
  it('the VM on the imported images: overlays booting in order on SATA, NIC models and MACs, UEFI', () => {
    const ovf = parseOvf(vsphere);
    const warnings: string[] = [];
    const spec = proposeSpec(ovf, [image('web'), image('web-disk2')], { fallbackId: 'web', bridge: 'br0', warnings });
    expect(spec).toEqual({
      id: 'web-server-01',
      labels: {},
      vcpus: 4,
      memoryMib: 2048,
      disks: [
        { name: 'root', imagePath: '/img/store/web.qcow2', overlay: true, readonly: false, format: 'qcow2', bus: 'sata', bootOrder: 1 },
        { name: 'disk2', imagePath: '/img/store/web-disk2.qcow2', overlay: true, readonly: false, format: 'qcow2', bus: 'sata', bootOrder: 2 },
      ],
      nics: [
        { name: 'net0', bridge: 'br0', mac: '00:50:56:aa:bb:01', model: 'vmxnet3' },
        { name: 'net1', bridge: 'br0', mac: '00:50:56:aa:bb:02', model: 'e1000e' },
        { name: 'net2', bridge: 'br0', mac: '', model: 'e1000e' },
      ],
      firmware: { type: 'uefi', secureBoot: false },
    });
    expect(warnings).toEqual(['the descriptor puts disks on a SCSI controller; they are proposed on SATA, which the guest drives with its AHCI driver']);
  });

  it('without a bridge, a warning names the networks; a name with nothing usable takes the import name', () => {
    const ovf = { ...parseOvf(vsphere), name: '***' };
    const warnings: string[] = [];
    const spec = proposeSpec(ovf, [image('web')], { fallbackId: 'web', bridge: '', warnings });
    expect(spec.id).toBe('web');
    expect(warnings.at(-1)).toMatch(/set the bridge of each NIC \(the descriptor's networks: VM Network\)/);
  });
});
