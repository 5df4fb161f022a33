import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { GUEST_DIR } from './daemon.js';
import type { VmSpec } from '../../src/api/grpc/generated/vmlet/v1/VmSpec.js';

export const KERNEL = join(GUEST_DIR, 'vmlinuz');
export const INITRD = join(GUEST_DIR, 'initrd.img');

/** The demo guest booted directly from kernel + initramfs. */
export function guestSpec(id: string, extra: Partial<VmSpec> = {}): VmSpec {
  return {
    id,
    vcpus: 1,
    memoryMib: 128,
    labels: {},
    kernel: { kernelPath: KERNEL, initrdPath: INITRD, cmdline: 'console=ttyS0 panic=-1' },
    disks: [],
    nics: [],
    ...extra,
  };
}

/** Polls a file until `pattern` appears, with a deadline. */
export async function waitForFileText(path: string, pattern: string | RegExp | ((text: string) => boolean), timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(path, 'utf8').catch(() => '');
    const hit = typeof pattern === 'string' ? text.includes(pattern) : typeof pattern === 'function' ? pattern(text) : pattern.test(text);
    if (hit) return text;
    if (Date.now() > deadline) throw new Error(`"${String(pattern)}" did not appear in ${path} within ${timeoutMs} ms; it has: ${text.slice(-500)}`);
    await delay(100);
  }
}

export const READY_LINE = 'VMLET-GUEST-READY';
