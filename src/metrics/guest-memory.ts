/** The virtio balloon's `guest-stats` (what the guest's driver reports) as KubeVirt's memory figures. Pure. */

/** Bytes, except the fault counts; each absent when the guest did not report it. */
export interface GuestMemory {
  /** stat-total-memory: memory the guest kernel manages (kubevirt_vmi_memory_available_bytes). */
  availableBytes?: number;
  /** stat-available-memory: MemAvailable (kubevirt_vmi_memory_usable_bytes). */
  usableBytes?: number;
  /** stat-free-memory: MemFree (kubevirt_vmi_memory_unused_bytes). */
  unusedBytes?: number;
  /** stat-disk-caches (kubevirt_vmi_memory_cached_bytes). */
  cachedBytes?: number;
  swapInBytes?: number;
  swapOutBytes?: number;
  majorFaults?: number;
  minorFaults?: number;
}

const FIELDS: [keyof GuestMemory, string][] = [
  ['availableBytes', 'stat-total-memory'],
  ['usableBytes', 'stat-available-memory'],
  ['unusedBytes', 'stat-free-memory'],
  ['cachedBytes', 'stat-disk-caches'],
  ['swapInBytes', 'stat-swap-in'],
  ['swapOutBytes', 'stat-swap-out'],
  ['majorFaults', 'stat-major-faults'],
  ['minorFaults', 'stat-minor-faults'],
];

/** QEMU reports a figure the guest never sent as 2^64-1. */
const UNSET = 2 ** 63;

/**
 * undefined before the guest's first report (`last-update` 0, as with a guest without a balloon
 * driver) or for anything that is not a guest-stats answer.
 */
export function guestMemory(answer: unknown): GuestMemory | undefined {
  if (typeof answer !== 'object' || answer === null) return undefined;
  const { stats, 'last-update': lastUpdate } = answer as { stats?: unknown; 'last-update'?: unknown };
  if (typeof lastUpdate !== 'number' || lastUpdate <= 0 || typeof stats !== 'object' || stats === null) return undefined;
  const out: GuestMemory = {};
  for (const [field, stat] of FIELDS) {
    const v = (stats as Record<string, unknown>)[stat];
    if (typeof v === 'number' && Number.isFinite(v) && v >= 0 && v < UNSET) out[field] = v;
  }
  return out;
}
