import { VmletError } from '../../model/errors.js';
import type { VmStatus } from '../../model/vm.js';
import type { Owner } from '../ports.js';
import type { OpEnv } from './env.js';

/** The VM's QEMU user (uid = gid), or undefined when QEMU runs as root. */
export function ownerOf(status: VmStatus): Owner | undefined {
  return status.uid ? { uid: status.uid, gid: status.uid } : undefined;
}

/**
 * A uid of the range that no VM holds and no other create is about to take; undefined when QEMU
 * runs as root. Call `release` once the VM records it (or gives up).
 */
export function reserveUid(env: OpEnv): { uid: number | undefined; release: () => void } {
  const range = env.settings.qemuUids;
  if (!range) return { uid: undefined, release: () => undefined };
  const held = new Set(env.vms.all().map((r) => r.status.uid));
  const reserved = env.reservedUids;
  for (let uid = range.start; uid < range.start + range.count; uid++) {
    if (held.has(uid) || reserved.has(uid)) continue;
    reserved.add(uid);
    return { uid, release: () => reserved.delete(uid) };
  }
  throw new VmletError('RESOURCE_EXHAUSTED', `every uid of --qemu-uid-range ${range.start}:${range.count} is held by a VM; delete VMs or widen the range`);
}
