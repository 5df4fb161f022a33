import { access, constants, readdir, readFile, realpath } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { processCmdline, signal, waitForExit } from '../src/host/process.js';
import { readThreadSchedstat } from '../src/metrics/procfs.js';

/** vmlet's argv always carries `-name guest=<id>,…`: that tells a guest's QEMU from anything else. */
const isGuestQemu = (cmdline: string[]): boolean => {
  const i = cmdline.indexOf('-name');
  return i >= 0 && (cmdline[i + 1] ?? '').startsWith('guest=');
};

/**
 * The last safety net: SIGKILLs every guest QEMU whose command line names a path under `root`
 * (its sockets and pidfile live there), whoever started it. Returns the pids it killed.
 */
export async function killStrayQemus(root: string): Promise<number[]> {
  const killed: number[] = [];
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const cmdline = await processCmdline(pid);
    if (!cmdline || !isGuestQemu(cmdline) || !cmdline.some((a) => a.includes(root))) continue;
    signal(pid, 'SIGKILL');
    await waitForExit(pid, 10_000);
    killed.push(pid);
  }
  return killed;
}

/** Resolves a command name through $PATH (absolute paths pass through), so both sides run the very same binary. */
export async function whichBinary(name: string, pathEnv = process.env.PATH ?? ''): Promise<string> {
  const candidates = isAbsolute(name) ? [name] : pathEnv.split(':').filter(Boolean).map((d) => join(d, name));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return await realpath(candidate);
    } catch {
      // not this one
    }
  }
  throw new Error(`${name} not found in PATH`);
}

/** CPU time of every thread of a process (ms, from /proc/<pid>/task/<tid>/schedstat) and their context switches. */
export async function threadTimes(pid: number): Promise<{ cpuMs: number; switches: number }> {
  let ns = 0;
  let switches = 0;
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    try {
      const [schedstat, status] = await Promise.all([readThreadSchedstat(pid, Number(tid)), readFile(`/proc/${pid}/task/${tid}/status`, 'utf8')]);
      ns += schedstat.runNs;
      for (const m of status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)$/gm)) switches += Number(m[1]);
    } catch {
      // the thread ended in between
    }
  }
  return { cpuMs: ns / 1e6, switches };
}
