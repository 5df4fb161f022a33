/**
 * vmlet's spawn helper: a small, idle process that starts QEMU on the daemon's behalf (see
 * spawner.ts for why). Requests come as JSON lines on stdin, answers go as JSON lines to stdout.
 * It exits when stdin closes, i.e. when the daemon is gone; the QEMUs it started run on.
 *
 * Only Node built-ins and erasable TypeScript here: it must start fast and stay small.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { createInterface } from 'node:readline';

interface SpawnRequest {
  id: number;
  cmd: string;
  args: string[];
  /** stdout and stderr of the child go to this file, emptied first: it holds this child's output only. */
  log: string;
}

function answer(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function start(req: SpawnRequest): void {
  let log: number | undefined;
  try {
    log = openSync(req.log, 'w', 0o640);
    const child = spawn(req.cmd, req.args, { detached: true, stdio: ['ignore', log, log] });
    child.once('error', (err) => answer({ id: req.id, error: err.message }));
    child.once('exit', (code, signal) => answer({ id: req.id, exit: { code, signal } }));
    child.unref();
    if (child.pid !== undefined) answer({ id: req.id, pid: child.pid });
  } catch (err) {
    answer({ id: req.id, error: err instanceof Error ? err.message : String(err) });
  } finally {
    if (log !== undefined) closeSync(log);
  }
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  let req: SpawnRequest;
  try {
    req = JSON.parse(line) as SpawnRequest;
  } catch {
    process.stderr.write(`vmlet spawn helper: not a request: ${line.slice(0, 200)}\n`);
    return;
  }
  start(req);
});
lines.on('close', () => process.exit(0));
