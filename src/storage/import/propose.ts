import type { StoredImage } from '../../model/image.js';
import type { DiskSpec, NicSpec, VmSpec } from '../../model/vm.js';
import { dnsLabel, type OvfDescriptor } from './ovf.js';

export interface ProposeOptions {
  /** The id when the descriptor's name leaves nothing usable: the import's name. */
  fallbackId: string;
  /** The bridge for every NIC; empty: the operator sets it (a warning says so). */
  bridge: string;
  /** Appended to: what the proposal could not carry over. */
  warnings: string[];
}

/**
 * The VM an OVF descriptor describes, on the images imported from it (pure): its name as a DNS
 * label, vCPUs, memory, the disks in descriptor order booting in that order on SATA (which every
 * guest has a driver for, unlike virtio), the firmware, and the NICs with their model and MAC.
 * Each disk is an overlay on its image, so the imported image stays as it came.
 */
export function proposeSpec(ovf: OvfDescriptor, images: readonly StoredImage[], options: ProposeOptions): VmSpec {
  const disks: DiskSpec[] = images.map((image, i) => ({
    name: i === 0 ? 'root' : `disk${i + 1}`,
    imagePath: image.path,
    overlay: true,
    readonly: false,
    format: image.format,
    bus: 'sata',
    bootOrder: i + 1,
  }));
  if (ovf.disks.some((d) => d.controller === 'scsi')) {
    options.warnings.push('the descriptor puts disks on a SCSI controller; they are proposed on SATA, which the guest drives with its AHCI driver');
  }
  const nics: NicSpec[] = ovf.nics.map((nic, i) => ({
    name: `net${i}`,
    bridge: options.bridge,
    mac: nic.mac,
    ...(nic.model === 'virtio' ? {} : { model: nic.model }),
  }));
  if (nics.length > 0 && !options.bridge) {
    const networks = [...new Set(ovf.nics.map((n) => n.network).filter(Boolean))];
    options.warnings.push(`set the bridge of each NIC (the descriptor's networks: ${networks.join(', ') || 'unnamed'}), or import with a bridge`);
  }
  return {
    id: dnsLabel(ovf.name, options.fallbackId),
    labels: {},
    vcpus: ovf.vcpus,
    memoryMib: ovf.memoryMib,
    disks,
    nics,
    ...(ovf.firmware.type === 'uefi' ? { firmware: ovf.firmware } : {}),
  };
}
