/** The guest agent's answers for metrics (guest-get-fsinfo, guest-get-load) as GuestFigures. Pure. */
import type { GuestFigures, GuestFilesystem, GuestLoad } from '../model/guest-figures.js';

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/**
 * guest-get-fsinfo's entries that carry both sizes (an agent leaves them out where statvfs
 * failed); a file system mounted twice at the same place counts once.
 */
export function filesystems(answer: unknown): GuestFilesystem[] {
  if (!Array.isArray(answer)) return [];
  const out = new Map<string, GuestFilesystem>();
  for (const fs of answer as Record<string, unknown>[]) {
    if (typeof fs !== 'object' || fs === null) continue;
    const { name, mountpoint, type, 'total-bytes': total, 'used-bytes': used } = fs;
    if (typeof name !== 'string' || typeof mountpoint !== 'string' || typeof type !== 'string' || !isCount(total) || !isCount(used)) continue;
    const key = JSON.stringify([name, mountpoint, type]);
    if (!out.has(key)) out.set(key, { device: name, mountPoint: mountpoint, type, totalBytes: total, usedBytes: used });
  }
  return [...out.values()];
}

/** guest-get-load's answer; undefined for anything else (an agent without the command). */
export function load(answer: unknown): GuestLoad | undefined {
  if (typeof answer !== 'object' || answer === null) return undefined;
  const { load1m, load5m, load15m } = answer as Record<string, unknown>;
  return isCount(load1m) && isCount(load5m) && isCount(load15m) ? { load1m, load5m, load15m } : undefined;
}

export function guestFigures(arch: string, fsinfo: unknown, loadAnswer: unknown): GuestFigures {
  const l = load(loadAnswer);
  return { arch, filesystems: filesystems(fsinfo), ...(l ? { load: l } : {}) };
}
