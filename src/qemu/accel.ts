import { access, constants } from 'node:fs/promises';
import { run } from '../host/run.js';
import { errorMessage } from '../model/errors.js';

export type AcceleratorMode = 'auto' | 'kvm' | 'tcg';
export type Accelerator = 'kvm' | 'tcg';

export interface AcceleratorChoice {
  accelerator: Accelerator;
  /** Why: shown in logs and GetNodeInfo. */
  reason: string;
}

const PROBE_COMMANDS = [
  { execute: 'qmp_capabilities' },
  { execute: 'query-status' },
  // Forces a register sync with the vCPU: fails when KVM can create a VM but not run one.
  { execute: 'human-monitor-command', arguments: { 'command-line': 'info registers' } },
  { execute: 'query-kvm' },
  { execute: 'quit' },
];

/**
 * Whether KVM really works: /dev/kvm opening is not enough (nested or paravirtual setups can
 * create a VM and then fail on the first vCPU register write), so a throw-away QEMU with a real
 * machine and vCPU answers QMP and reports KVM enabled.
 */
async function probeKvm(qemuBinary: string, netns?: string): Promise<{ ok: boolean; reason: string }> {
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch (err) {
    return { ok: false, reason: `/dev/kvm not usable: ${errorMessage(err)}` };
  }
  const input = PROBE_COMMANDS.map((c) => JSON.stringify(c)).join('\n') + '\n';
  const args = ['-accel', 'kvm', '-machine', 'q35', '-cpu', 'host', '-m', '32', '-nodefaults', '-display', 'none', '-no-reboot', '-qmp', 'stdio'];
  try {
    const { stdout } = await run(qemuBinary, args, { input, timeoutMs: 15_000, netns });
    const replies = stdout.split('\n').filter((l) => l.includes('"return"'));
    const kvm = replies.map((l) => JSON.parse(l) as { return?: { enabled?: boolean } }).find((r) => r.return?.enabled !== undefined);
    if (replies.length < PROBE_COMMANDS.length - 1 || kvm?.return?.enabled !== true) {
      return { ok: false, reason: 'KVM probe VM did not run its vCPU' };
    }
    return { ok: true, reason: 'KVM probe VM ran its vCPU' };
  } catch (err) {
    const firstLine = errorMessage(err).split('\n').find((l) => l.includes('error')) ?? errorMessage(err);
    return { ok: false, reason: `KVM probe failed: ${firstLine.slice(0, 300)}` };
  }
}

export async function chooseAccelerator(mode: AcceleratorMode, qemuBinary: string, netns?: string): Promise<AcceleratorChoice> {
  if (mode === 'tcg') return { accelerator: 'tcg', reason: 'configured: --accel tcg' };
  const probe = await probeKvm(qemuBinary, netns);
  if (probe.ok) return { accelerator: 'kvm', reason: probe.reason };
  if (mode === 'kvm') throw new Error(`--accel kvm, but KVM does not work here: ${probe.reason}`);
  return { accelerator: 'tcg', reason: `KVM unavailable, using TCG (software emulation): ${probe.reason}` };
}
