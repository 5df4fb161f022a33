import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { TestDaemon, tempDirForQemu } from '../support/daemon.js';
import { waitForFileText } from '../support/guest.js';
import { TestNetns } from '../support/netns.js';
import { makeOva, streamOptimizedVmdkOf } from '../support/ova.js';
import { until } from '../support/poll.js';
import { rpc, streamToEnd } from '../support/rpc.js';
import { DEBIAN_BOOT_MS, DEBIAN_GENERIC_IMAGE, seed, untilGuest } from '../support/debian.js';
import { unary } from '../../src/api/grpc/client.js';
import { diskDeviceId, nicDeviceId } from '../../src/model/qemu-ids.js';
import type { ImportProgress__Output } from '../../src/api/grpc/generated/vmlet/v1/ImportProgress.js';
import type { VmSpec } from '../../src/api/grpc/generated/vmlet/v1/VmSpec.js';

/** The MAC vSphere gave the VM's adapter (VMware's OUI): the proposal keeps it, the seed's network config matches it. */
const OVF_MAC = '00:50:56:a1:19:06';
const BRIDGE = 'br0';
const HOST_CIDR = '10.89.6.1/24';
const GUEST_IP = '10.89.6.2';

/** Netplan (cloud-init's network config v2): a static address on the NIC with the OVF's MAC, no DHCP. */
const NETWORK_CONFIG = ['version: 2', 'ethernets:', '  ovf-nic:', '    match:', `      macaddress: "${OVF_MAC}"`, `    addresses: [${GUEST_IP}/24]`, ''].join('\n');

/**
 * From inside the guest, on its serial console: the driver of the controller its root disk hangs
 * from, and the driver of the NIC with the OVF's MAC.
 */
const DEVICES_PROOF = [
  'disk=$(lsblk -no PKNAME "$(findmnt -no SOURCE /)")',
  'ctrl=$(readlink -f /sys/class/block/$disk | grep -o "[0-9a-f]\\{4\\}:[0-9a-f]\\{2\\}:[0-9a-f]\\{2\\}\\.[0-9a-f]" | tail -n 1)',
  `nic=$(grep -l "^${OVF_MAC}$" /sys/class/net/*/address | cut -d/ -f5)`,
  'echo "VMLET-DEVICES root=$disk controller=$(basename $(readlink /sys/bus/pci/devices/$ctrl/driver)) nic=$nic driver=$(basename $(readlink /sys/class/net/$nic/device/driver))" > /dev/ttyS0',
].join('; ');

// Without the image the test is skipped, but not in CI, where setup.sh --with-debian-image builds it.
const imageThere = existsSync(DEBIAN_GENERIC_IMAGE);

describe.skipIf(!imageThere && !process.env.CI)('a vSphere OVA of a real Debian guest: ImportImage, then the proposed VM on SATA and e1000e', () => {
  let ns: TestNetns;
  let d: TestDaemon;
  let api: ReturnType<typeof rpc>;
  let ova: string;
  let store: string;

  beforeAll(async () => {
    if (!imageThere) throw new Error(`${DEBIAN_GENERIC_IMAGE} is missing: bash scripts/build-debian-image.sh --kernel generic .guest`);
    const root = await tempDirForQemu('vmlet-e2e-');
    const src = join(root, 'import');
    store = join(root, 'images', 'store');
    await mkdir(src);
    // As vSphere exports it: the disk a streamOptimized VMDK, an OVF 1.0 with vmw: extensions, a manifest, tar in OVF order.
    const vmdk = await streamOptimizedVmdkOf(DEBIAN_GENERIC_IMAGE, src, 'debian-disk1');
    ova = makeOva(src, { name: 'Debian 12 Web', vcpus: 1, memoryMib: 512, disks: [vmdk], nics: [{ subType: 'E1000e', mac: OVF_MAC }], firmware: 'efi' });
    ns = await TestNetns.create();
    await ns.addBridge(BRIDGE, HOST_CIDR);
    d = await TestDaemon.start({ dirs: { root }, imagesFirst: true, extraArgs: ['--import-root', src, '--netns', ns.name] });
    api = rpc(d.clients);
  }, 15 * 60_000);
  afterAll(async () => {
    await d?.cleanup();
    await ns?.delete();
  });

  it('boots the imported guest to its agent; the guest drives its disk with ahci and its NIC with e1000e', async () => {
    const images = d.clients.images;
    const messages = await streamToEnd<ImportProgress__Output>(images.importImage({ sourcePath: ova, name: 'debian-web', bridge: BRIDGE }));
    const last = messages.at(-1)!;
    expect(last.percent).toBe(100);
    expect(last.images.map((i) => [i.name, i.format, Number(i.virtualSizeBytes)])).toEqual([['debian-web', 'qcow2', 3 * 2 ** 30]]);

    // The proposal as the OVF has it: SATA, e1000e from ResourceSubType, the OVF's MAC, UEFI from vmw:Config.
    const proposed = last.proposedSpec!;
    expect(proposed.id).toBe('debian-12-web');
    expect(proposed.disks.map((x) => [x.name, x.imagePath, x.bus, x.overlay])).toEqual([['root', join(store, 'debian-web.qcow2'), 'DISK_BUS_SATA', true]]);
    expect(proposed.nics.map((n) => [n.name, n.model, n.mac, n.bridge])).toEqual([['net0', 'NIC_MODEL_E1000E', OVF_MAC, BRIDGE]]);
    expect(proposed.firmware?.type).toBe('FIRMWARE_TYPE_UEFI');

    const spec: VmSpec = { ...proposed, cloudInit: seed('imported-web', { networkConfig: NETWORK_CONFIG, runcmd: [DEVICES_PROOF] }) };
    const created = await api.create(spec, true);
    const id = created.spec!.id;
    const argv = readFileSync(`/proc/${created.status!.pid}/cmdline`, 'utf8').split('\0');
    const device = (devId: string) => argv.filter((a) => a.includes(`"id":"${devId}"`)).map((a) => JSON.parse(a) as { driver: string; bus?: string; mac?: string });
    expect(device(diskDeviceId('root')).map((x) => [x.driver, x.bus])).toEqual([['ide-hd', 'ide.0']]);
    expect(device(nicDeviceId('net0')).map((x) => [x.driver, x.mac])).toEqual([['e1000e', OVF_MAC]]);

    const vm = await untilGuest(api, id, (g) => g.hostname === 'imported-web' && g.interfaces.some((i) => i.mac === OVF_MAC && i.ipAddresses.includes(GUEST_IP)));
    expect(vm.status!.guest!.osName).toMatch(/Debian/);
    expect(vm.status!.guest!.kernelRelease).toMatch(/^\d+\.\d+\.\d+-\d+-amd64$/);
    const text = await waitForFileText(join(d.stateDir, 'vms', id, 'console.log'), /VMLET-DEVICES .*\r?\n/, DEBIAN_BOOT_MS);
    const proof = /VMLET-DEVICES root=(\S*) controller=(\S*) nic=(\S*) driver=(\S*)/.exec(text)!;
    expect([proof[1], proof[2], proof[4]]).toEqual([expect.stringMatching(/^sd[a-z]$/), 'ahci', 'e1000e']);
    expect(vm.status!.guest!.interfaces.find((i) => i.mac === OVF_MAC)!.name).toBe(proof[3]);
    // The bridge's side reaches the guest through the e1000e.
    await until(`a ping from ${ns.name} to ${GUEST_IP}`, () => ns.exec('ping', ['-c', '1', '-W', '2', GUEST_IP]).then(() => true), 60_000);

    await api.delete(id, true);
    await unary(images.deleteImage.bind(images), { name: 'debian-web' });
    expect((await readdir(store)).filter((f) => !f.startsWith('.'))).toEqual([]);
  }, DEBIAN_BOOT_MS + 5 * 60_000);
});
