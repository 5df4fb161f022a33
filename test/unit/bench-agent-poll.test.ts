import { createServer, type Server, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitForAgentSync } from '../../bench/agent-poll.js';

/**
 * QEMU's chardev with the guest's port closed: it accepts connections and reads nothing. Once
 * `open()` is called (the agent opened the port), what was written on the current connection is
 * read and every sync answered with 0xFF and its id.
 */
class ClosedPortChardev {
  private current: Socket | undefined;
  readonly sockets = new Set<Socket>();
  openedAt: number | undefined;
  connections = 0;

  constructor(readonly server: Server) {
    server.on('connection', (s: Socket) => {
      this.connections++;
      this.current = s;
      this.sockets.add(s);
      s.pause();
      s.on('error', () => undefined);
      s.on('data', (b: Buffer) => {
        for (const m of b.toString('latin1').matchAll(/"id":\s*(\d+)/g)) s.write(Buffer.concat([Buffer.from([0xff]), Buffer.from(`{"return": ${m[1]}}\n`)]));
      });
      if (this.openedAt !== undefined) s.resume();
    });
  }

  open(): void {
    this.openedAt = performance.now();
    this.current?.resume();
  }
}

describe('bench: waiting for a guest agent on its socket', () => {
  let dir: string;
  let socket: string;
  let chardev: ClosedPortChardev;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'agent-poll-'));
    socket = join(dir, 'qga.sock');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    chardev = new ClosedPortChardev(server);
  });
  afterEach(async () => {
    // A paused socket never reads its peer's close: they are ended here, or close() would wait on them.
    for (const s of chardev.sockets) s.destroy();
    await new Promise((resolve) => chardev.server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it('a sync waiting on the closed port is answered as the agent opens it', async () => {
    const opening = setTimeout(() => chardev.open(), 300);
    const r = await waitForAgentSync(socket, { syncTimeoutMs: 2000, retryMs: 50, timeoutMs: 10_000 });
    clearTimeout(opening);
    expect(r.attempts).toBe(1);
    expect(r.at - chardev.openedAt!).toBeGreaterThanOrEqual(0);
    expect(r.at - chardev.openedAt!).toBeLessThan(1000);
  });

  it('tries again after a sync timed out, on a new connection', async () => {
    const opening = setTimeout(() => chardev.open(), 500);
    const r = await waitForAgentSync(socket, { syncTimeoutMs: 150, retryMs: 20, timeoutMs: 10_000 });
    clearTimeout(opening);
    expect(r.attempts).toBeGreaterThan(1);
    expect(chardev.connections).toBe(r.attempts);
  });

  it('gives up at its deadline, or at once when told why', async () => {
    await expect(waitForAgentSync(socket, { syncTimeoutMs: 100, retryMs: 20, timeoutMs: 300 })).rejects.toThrow(/no guest agent answered .* within 300 ms .*guest-sync-delimited: no answer/);
    await expect(waitForAgentSync(socket, { syncTimeoutMs: 100, retryMs: 20, timeoutMs: 10_000, stopIf: () => 'QEMU exited' })).rejects.toThrow(/QEMU exited/);
  });
});
