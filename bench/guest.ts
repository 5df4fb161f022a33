import { join } from 'node:path';
import type { VmSpec } from '../src/model/vm.js';

/** The demo guest booted from kernel + initramfs: what every benchmark VM runs unless it needs more. */
export function demoGuestSpec(repo: string, id: string): VmSpec {
  const guest = join(repo, '.guest');
  return {
    id,
    labels: {},
    vcpus: 1,
    memoryMib: 128,
    kernel: { kernelPath: join(guest, 'vmlinuz'), initrdPath: join(guest, 'initrd.img'), cmdline: 'console=ttyS0 panic=-1' },
    disks: [],
    nics: [],
  };
}
