import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { startFromArgs } from '../main.js';
import { PROTO_ROOT } from '../api/grpc/proto-options.js';
import type { VmSpec } from '../model/vm.js';

/** The repo's .guest/, built by scripts/build-guest.sh during setup. */
const GUEST_DIR = join(dirname(PROTO_ROOT), '.guest');

const DEMO_SPEC: VmSpec = {
  id: 'demo',
  labels: { app: 'vmlet-demo' },
  vcpus: 1,
  memoryMib: 256,
  kernel: { kernelPath: join(GUEST_DIR, 'vmlinuz'), initrdPath: join(GUEST_DIR, 'initrd.img'), cmdline: 'console=ttyS0 panic=-1' },
  disks: [],
  nics: [],
};

/**
 * `vmlet demo` (what `npm start` runs): the daemon in the foreground with built-in defaults,
 * plus a demo VM whose serial console is shown here as it boots. Ctrl-C stops vmlet; the guest
 * keeps running and is adopted by the next start.
 */
export async function demoMain(argv: string[]): Promise<number> {
  const started = await startFromArgs(['--image-root', GUEST_DIR, '--log-format', 'pretty', ...argv], 'demo');
  if (typeof started === 'number') return started;
  const { daemon, logger } = started;
  const { manager } = daemon;
  const vm = await manager.create(DEMO_SPEC, false);
  if (vm.status.phase !== 'Running' && vm.status.phase !== 'Paused') await manager.start(DEMO_SPEC.id);
  const socket = daemon.grpc.addresses[0];
  logger.info(`demo VM "demo" is running. In another terminal: npx vmlet --endpoint ${socket} ls | get demo | stop demo | rm demo`);

  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  await followConsole(manager.record(DEMO_SPEC.id).paths.consoleLog, stop.signal);
  await daemon.stop();
  process.stdout.write('\nvmlet stopped. The demo guest keeps running; `npm start` adopts it again, `npx vmlet rm demo` removes it.\n');
  return 0;
}

/** Prints the guest's console log as it grows, each line prefixed, until aborted. */
async function followConsole(path: string, signal: AbortSignal): Promise<void> {
  let offset = 0;
  let partial = '';
  while (!signal.aborted) {
    const file = await open(path, 'r').catch(() => undefined);
    if (file) {
      const { size } = await file.stat();
      if (size < offset) offset = 0;
      if (size > offset) {
        const buf = Buffer.alloc(size - offset);
        await file.read(buf, 0, buf.length, offset);
        offset = size;
        const lines = (partial + buf.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) process.stdout.write(`\x1b[36mdemo |\x1b[0m ${line.replace(/\r$/, '')}\n`);
      }
      await file.close();
    }
    await delay(200, undefined, { signal }).catch(() => undefined);
  }
}
