import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { connectWhenListening } from '../../src/qemu/launcher.js';
import { QmpError, type QmpClient } from '../../src/qemu/qmp.js';

vi.setConfig({ testTimeout: 10_000 });

let dir: string;
const servers: net.Server[] = [];
const clients: QmpClient[] = [];

/** A minimal QMP server: greets, answers every command with {"return": {}}. */
function listenQmp(socketPath: string): Promise<net.Server> {
  const server = net.createServer((conn) => {
    conn.write('{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": ""}, "capabilities": []}}\r\n');
    let buffered = '';
    conn.on('data', (d) => {
      buffered += d.toString();
      for (let i = buffered.indexOf('\n'); i !== -1; i = buffered.indexOf('\n')) {
        const cmd = JSON.parse(buffered.slice(0, i)) as { id?: string };
        buffered = buffered.slice(i + 1);
        conn.write(`${JSON.stringify({ return: {}, id: cmd.id })}\r\n`);
      }
    });
    conn.on('error', () => undefined);
  });
  servers.push(server);
  return new Promise((resolve) => server.listen(socketPath, () => resolve(server)));
}

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'vmlet-launch-'));
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  await rm(dir, { recursive: true, force: true });
});

describe('connectWhenListening', () => {
  it('waits for a socket that does not exist yet and connects once it listens', async () => {
    const sock = path.join(dir, 'qmp.sock');
    let checks = 0;
    const client = await connectWhenListening(sock, {
      qmp: {},
      deadline: Date.now() + 5000,
      stopIf: async () => {
        // The first failed attempt is the cue to start listening: the wait must then wake up.
        if (checks++ === 0) await listenQmp(sock);
        return undefined;
      },
    });
    clients.push(client);
    await client.ready;
    expect(checks).toBe(1);
    await expect(client.execute('query-status')).resolves.toEqual({});
  });

  it('tries again when the socket file exists but nothing listens (ECONNREFUSED)', async () => {
    const sock = path.join(dir, 'qmp.sock');
    await writeFile(sock, '');
    let checks = 0;
    const client = await connectWhenListening(sock, {
      qmp: {},
      deadline: Date.now() + 5000,
      stopIf: async () => {
        if (checks++ === 0) {
          await unlink(sock);
          await listenQmp(sock);
        }
        return undefined;
      },
    });
    clients.push(client);
    await expect(client.ready).resolves.toBeUndefined();
  });

  it('stops with the error stopIf returns (the process exited)', async () => {
    const exited = new Error('QEMU exited during start (exit code 1): bad option');
    const err = await connectWhenListening(path.join(dir, 'qmp.sock'), {
      qmp: {},
      deadline: Date.now() + 5000,
      stopIf: async () => exited,
    }).catch((e: unknown) => e);
    expect(err).toBe(exited);
  });

  it('gives up at the deadline with UNAVAILABLE', async () => {
    const err = await connectWhenListening(path.join(dir, 'qmp.sock'), { qmp: {}, deadline: Date.now() + 50, recheckMs: 10 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect((err as QmpError).code).toBe('UNAVAILABLE');
    expect((err as QmpError).message).toMatch(/did not listen on its QMP socket in time/);
  });
});
