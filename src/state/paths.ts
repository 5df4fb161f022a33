import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { VmPaths } from '../model/vm.js';

/** sun_path is 108 bytes including the terminating NUL. */
export const MAX_UNIX_SOCKET_PATH = 107;

/**
 * Where a VM's files live. The runtime directory is named after the VM id unless the
 * socket paths would not fit a unix socket address; then a short hash of the id is used.
 */
export function vmPaths(stateDir: string, runDir: string, id: string): VmPaths {
  const vmState = join(stateDir, 'vms', id);
  let vmRun = join(runDir, 'vms', id);
  if (Buffer.byteLength(join(vmRun, 'serial.sock')) > MAX_UNIX_SOCKET_PATH) {
    vmRun = join(runDir, 'vms', createHash('sha256').update(id).digest('hex').slice(0, 12));
  }
  return {
    stateDir: vmState,
    specFile: join(vmState, 'spec.json'),
    statusFile: join(vmState, 'status.json'),
    disksDir: join(vmState, 'disks'),
    runDir: vmRun,
    runtimeStatusFile: join(vmRun, 'status.json'),
    qmpSocket: join(vmRun, 'qmp.sock'),
    serialSocket: join(vmRun, 'serial.sock'),
    migrationSocket: join(vmRun, 'mig.sock'),
    consoleLog: join(vmState, 'console.log'),
    pidFile: join(vmRun, 'qemu.pid'),
    qemuLog: join(vmRun, 'qemu.log'),
    efiVars: join(vmState, 'efi-vars.fd'),
    cloudInitSeed: join(vmState, 'cidata.iso'),
    guestAgentSocket: join(vmRun, 'qga.sock'),
  };
}

/** Fails early, at daemon start, when even the hashed runtime directory cannot hold a socket. */
export function checkRunDirFits(runDir: string): string | undefined {
  const longest = join(runDir, 'vms', 'x'.repeat(12), 'serial.sock');
  if (Buffer.byteLength(longest) > MAX_UNIX_SOCKET_PATH) {
    return `--run-dir ${runDir} is too long for unix socket paths (at most ${MAX_UNIX_SOCKET_PATH - (longest.length - runDir.length)} bytes)`;
  }
  return undefined;
}
