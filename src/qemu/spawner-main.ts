/**
 * vmlet's spawn helper: a small, idle process that starts QEMU on the daemon's behalf (see
 * spawner.ts for why). Requests come as JSON lines on stdin, answers go as JSON lines to stdout.
 * It exits when stdin closes, i.e. when the daemon is gone; the QEMUs it started run on.
 *
 * A child runs in its own session, optionally in a network namespace and as an unprivileged user
 * (own uid, gid and groups, no capabilities in any set, no_new_privs). With the native addon
 * (native/spawn) all of that is done between fork and exec; without it, by `ip netns exec` and
 * `setpriv` exec'd in front of the command, which costs a start one or two execs more.
 *
 * Only Node built-ins and erasable TypeScript here: it must start fast and stay small.
 */
import { spawn as nodeSpawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';

/** launcher.ts's RunAs, as it comes in a request (no imports here: see loadSpawnAddon). */
interface RunAs {
  uid: number;
  gid: number;
  groups: number[];
}

interface SpawnRequest {
  id: number;
  cmd: string;
  args: string[];
  /** stdout and stderr of the child go to this file, emptied first: it holds this child's output only. */
  log: string;
  runAs?: RunAs;
  /** A network namespace by name, as `ip netns` keeps them under /run/netns. */
  netns?: string;
}

interface SpawnAddon {
  spawn(
    file: string,
    args: string[],
    logFd: number,
    options: { runAs?: RunAs; netnsFd?: number },
    onExit: (code: number | null, signal: number | null) => void,
  ): number;
}

const NETNS_DIR = '/run/netns';

/**
 * native/spawn's build above this file (src/qemu or dist/vmlet), unless VMLET_SPAWN_ADDON=off.
 * The same walk as host/native-addon.ts, written out: run from src (tests), Node loads this file
 * as TypeScript, and a `.js` import of a sibling module would not resolve.
 */
function loadSpawnAddon(): SpawnAddon | undefined {
  if (process.env.VMLET_SPAWN_ADDON === 'off') return undefined;
  const relative = join('native', 'spawn', 'build', 'Release', 'spawn.node');
  for (let dir = import.meta.dirname; dirname(dir) !== dir; dir = dirname(dir)) {
    const file = join(dir, relative);
    if (existsSync(file)) return createRequire(import.meta.url)(file) as SpawnAddon;
  }
  return undefined;
}

const addon = loadSpawnAddon();
const signalNames = new Map<number, string>(Object.entries(constants.signals).map(([name, n]) => [n, name]));

function answer(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/** setpriv's arguments for the same confinement as the addon's, when the addon is not there. */
function setpriv(r: RunAs): string[] {
  return [
    'setpriv',
    `--reuid=${r.uid}`,
    `--regid=${r.gid}`,
    r.groups.length ? `--groups=${r.groups.join(',')}` : '--clear-groups',
    '--inh-caps=-all',
    '--bounding-set=-all',
    '--no-new-privs',
    '--',
  ];
}

function withAddon(a: SpawnAddon, req: SpawnRequest, log: number): void {
  let netnsFd: number | undefined;
  try {
    if (req.netns) netnsFd = openSync(join(NETNS_DIR, req.netns), 'r');
    const onExit = (code: number | null, signal: number | null): void =>
      answer({ id: req.id, exit: { code, signal: signal === null ? null : (signalNames.get(signal) ?? `SIG${signal}`) } });
    const pid = a.spawn(req.cmd, req.args, log, { ...(req.runAs ? { runAs: req.runAs } : {}), ...(netnsFd !== undefined ? { netnsFd } : {}) }, onExit);
    answer({ id: req.id, pid });
  } finally {
    if (netnsFd !== undefined) closeSync(netnsFd);
  }
}

function withNode(req: SpawnRequest, log: number): void {
  const command = [...(req.runAs ? setpriv(req.runAs) : []), req.cmd, ...req.args];
  const [cmd, ...args] = req.netns ? ['ip', 'netns', 'exec', req.netns, ...command] : command;
  const child = nodeSpawn(cmd!, args, { detached: true, stdio: ['ignore', log, log] });
  child.once('error', (err) => answer({ id: req.id, error: err.message }));
  child.once('exit', (code, signal) => answer({ id: req.id, exit: { code, signal } }));
  child.unref();
  if (child.pid !== undefined) answer({ id: req.id, pid: child.pid });
}

function start(req: SpawnRequest): void {
  let log: number | undefined;
  try {
    if (req.netns !== undefined && (req.netns === '' || req.netns.includes('/') || req.netns.startsWith('.'))) {
      throw new Error(`not a network namespace name: ${JSON.stringify(req.netns)}`);
    }
    log = openSync(req.log, 'w', 0o640);
    if (addon) withAddon(addon, req, log);
    else withNode(req, log);
  } catch (err) {
    answer({ id: req.id, error: err instanceof Error ? err.message : String(err) });
  } finally {
    if (log !== undefined) closeSync(log);
  }
}

// Before any answer: how this helper confines, for the daemon's log.
answer({ ready: { addon: addon !== undefined } });
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
