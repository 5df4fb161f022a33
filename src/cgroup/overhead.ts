/**
 * How much memory a QEMU needs beyond its guest's RAM, in the spirit of KubeVirt's
 * GetMemoryOverhead: a fixed base for QEMU itself, a share per vCPU, the host page tables that
 * map guest RAM, and under TCG the translation-block cache (`-accel tcg,tb-size=N`), which the
 * process fills up to its size over the guest's life. Pure.
 */
import { invalidArgument } from '../model/errors.js';

const MIB = 1 << 20;

/**
 * The TCG translation-block cache vmlet asks for (`-accel tcg,tb-size=…`, MiB). QEMU's own
 * default (1 GiB on 64-bit hosts) would have to be charged in full to every VM.
 */
export const DEFAULT_TCG_TB_SIZE_MIB = 128;
/** QEMU's resident memory besides guest RAM and the TB cache, with room for disk and NIC buffers. */
export const DEFAULT_OVERHEAD_BASE_MIB = 80;
/** Per vCPU: the vCPU thread, its kernel state, and one virtio-net queue pair per vCPU. */
export const DEFAULT_OVERHEAD_PER_VCPU_MIB = 8;
/** Host page tables: 8 bytes per 4 KiB page of guest RAM. */
export const PAGE_TABLE_DIVISOR = 512;

/** Tunables of memoryOverhead; every field has a default. */
export interface OverheadOptions {
  /** Software emulation: the TB cache counts. */
  tcg?: boolean;
  /** The tb-size QEMU is started with under TCG, MiB. */
  tbSizeMib?: number;
  baseMib?: number;
  perVcpuMib?: number;
}

/** QEMU's memory beyond the guest's RAM, in bytes, rounded up to a MiB. */
export function memoryOverhead(guestMemoryBytes: number, vcpus: number, options: OverheadOptions = {}): number {
  const { tcg = false, tbSizeMib = DEFAULT_TCG_TB_SIZE_MIB, baseMib = DEFAULT_OVERHEAD_BASE_MIB, perVcpuMib = DEFAULT_OVERHEAD_PER_VCPU_MIB } = options;
  if (!Number.isSafeInteger(guestMemoryBytes) || guestMemoryBytes <= 0) throw invalidArgument('guestMemoryBytes', `must be a positive integer, got ${guestMemoryBytes}`);
  if (!Number.isInteger(vcpus) || vcpus < 1) throw invalidArgument('vcpus', `must be a positive integer, got ${vcpus}`);
  for (const [name, v] of Object.entries({ tbSizeMib, baseMib, perVcpuMib })) {
    if (!Number.isFinite(v) || v < 0) throw invalidArgument(name, `must be a non-negative number of MiB, got ${v}`);
  }
  const bytes = (baseMib + perVcpuMib * vcpus + (tcg ? tbSizeMib : 0)) * MIB + guestMemoryBytes / PAGE_TABLE_DIVISOR;
  return Math.ceil(bytes / MIB) * MIB;
}

/** The memory limit of a VM's cgroup: its guest's RAM plus memoryOverhead. */
export function memoryLimitBytes(guestMemoryBytes: number, vcpus: number, options: OverheadOptions = {}): number {
  return guestMemoryBytes + memoryOverhead(guestMemoryBytes, vcpus, options);
}
