import { join } from 'node:path';
import { GUEST_DIR } from './daemon.js';
import { until } from './poll.js';
import type { rpc } from './rpc.js';
import type { VmSpec } from '../../src/api/grpc/generated/vmlet/v1/VmSpec.js';
import type { Vm__Output } from '../../src/api/grpc/generated/vmlet/v1/Vm.js';

/** scripts/build-debian-image.sh's stock Debian 12 cloud image, built by setup.sh. */
export const DEBIAN_IMAGE = join(GUEST_DIR, 'debian-12.qcow2');
/** The same image with Debian's generic kernel (`--kernel generic`): AHCI and e1000e, as an imported vSphere guest needs. */
export const DEBIAN_GENERIC_IMAGE = join(GUEST_DIR, 'debian-12-generic.qcow2');
/** A systemd guest under TCG: SeaBIOS → GRUB → kernel → cloud-init, first boot. */
export const DEBIAN_BOOT_MS = 300_000;

export function debianSpec(id: string, extra: Partial<VmSpec> = {}): VmSpec {
  return {
    id,
    vcpus: 1,
    memoryMib: 512,
    labels: {},
    disks: [{ name: 'root', imagePath: DEBIAN_IMAGE, overlay: true, readonly: false }],
    nics: [],
    ...extra,
  };
}

export const SSH_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmXFuP7bq1zGbYHr0ZGn0xhZP8n4CjYw0mQh9nY0p2e alice@vmlet-test';

/**
 * A seed that names the host, adds a user with an SSH key and proves both from runcmd on the
 * console; `extra.runcmd`: further shell commands, run after that; `extra.networkConfig`: NoCloud's
 * network-config.
 */
export function seed(hostname: string, extra: { runcmd?: string[]; networkConfig?: string } = {}): NonNullable<VmSpec['cloudInit']> {
  return {
    userData: [
      '#cloud-config',
      `hostname: ${hostname}`,
      'users:',
      '  - name: alice',
      '    shell: /bin/bash',
      '    ssh_authorized_keys:',
      `      - ${SSH_KEY}`,
      'runcmd:',
      "  - [sh, -c, 'echo \"VMLET-RUNCMD host=$(hostname) uid=$(id -u alice) key=$(cut -d\" \" -f2 /home/alice/.ssh/authorized_keys)\" > /dev/ttyS0']",
      // A JSON string is a YAML double-quoted scalar: any command, quoted as YAML wants it.
      ...(extra.runcmd ?? []).map((cmd) => `  - [sh, -c, ${JSON.stringify(cmd)}]`),
      '',
    ].join('\n'),
    metaData: '',
    networkConfig: extra.networkConfig ?? '',
  };
}

/**
 * Waits until the guest agent reports what `check` wants, and returns the VM. A VM that stopped
 * running (a guest panic: FAILED "guest panicked") ends the wait at once with its phase and reason.
 */
export async function untilGuest(api: ReturnType<typeof rpc>, id: string, check: (g: NonNullable<NonNullable<Vm__Output['status']>['guest']>) => boolean, timeoutMs = DEBIAN_BOOT_MS): Promise<Vm__Output> {
  let ended: Vm__Output | undefined;
  const vm = await until(
    `the guest agent of ${id} to report`,
    async () => {
      const vm = await api.get(id);
      const phase = vm.status?.phase;
      if (phase === 'PHASE_FAILED' || phase === 'PHASE_STOPPED') return (ended = vm);
      const g = vm.status?.guest;
      return g != null && check(g) ? vm : undefined;
    },
    timeoutMs,
    500,
  );
  if (ended) throw new Error(`${id} is ${ended.status!.phase} (${ended.status!.reason}) while waiting for its guest agent`);
  return vm;
}
