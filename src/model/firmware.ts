import type { Firmware } from './vm.js';

/** OVMF's code (read-only, shared) and the template of its variables store (copied per VM). */
export interface OvmfFiles {
  code: string;
  varsTemplate: string;
}

/**
 * Where Debian's `ovmf` package puts the 4 MiB builds. The `.ms` pair is the Secure Boot build
 * with Microsoft's and Debian's keys enrolled in the variables store, as distributions' shims expect.
 */
const OVMF_DIR = '/usr/share/OVMF';
export const OVMF: Readonly<Record<'plain' | 'secureBoot', OvmfFiles>> = {
  plain: { code: `${OVMF_DIR}/OVMF_CODE_4M.fd`, varsTemplate: `${OVMF_DIR}/OVMF_VARS_4M.fd` },
  secureBoot: { code: `${OVMF_DIR}/OVMF_CODE_4M.ms.fd`, varsTemplate: `${OVMF_DIR}/OVMF_VARS_4M.ms.fd` },
};

/** The OVMF build a UEFI VM runs; undefined for BIOS (SeaBIOS, QEMU's default). */
export function ovmfFilesOf(firmware: Firmware | undefined): OvmfFiles | undefined {
  if (firmware?.type !== 'uefi') return undefined;
  return firmware.secureBoot ? OVMF.secureBoot : OVMF.plain;
}
