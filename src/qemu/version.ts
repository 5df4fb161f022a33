import { run } from '../host/run.js';

/** `QEMU emulator version 7.2.22 (Debian …)` → `7.2.22`. */
export function parseQemuVersion(output: string): string | undefined {
  return /QEMU emulator version (\d+\.\d+\.\d+)/.exec(output)?.[1];
}

export async function qemuVersion(qemuBinary: string): Promise<string> {
  const { stdout } = await run(qemuBinary, ['--version'], { timeoutMs: 10_000 });
  const version = parseQemuVersion(stdout);
  if (!version) throw new Error(`${qemuBinary} --version printed no version: ${stdout.slice(0, 200)}`);
  return version;
}
