import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { QmpPrefetch } from '../../src/qemu/qmp-prefetch.js';
import { FakeQmpServer } from '../support/fake-qmp-server.js';

vi.setConfig({ testTimeout: 10_000 });

let server: FakeQmpServer;
let prefetch: QmpPrefetch | undefined;

beforeEach(async () => {
  server = await FakeQmpServer.start();
  server.handle('query-status', { return: { status: 'paused', running: false } });
});

afterEach(async () => {
  prefetch?.close();
  prefetch = undefined;
  await server.stop();
});

describe('QmpPrefetch', () => {
  it('connects at once and asks the run state behind the handshake; take hands over the client and the answer', async () => {
    prefetch = new QmpPrefetch([server.path], 5000);
    await prefetch.connected;
    await server.waitForCommand('query-status');
    expect(server.commandNames()).toEqual(['qmp_capabilities', 'query-status']);

    const taken = await prefetch.take(server.path);
    expect(taken).toBeDefined();
    expect(taken!.runState).toBe('paused');
    await taken!.client.ready;
    expect(taken!.client.closed).toBe(false);
    // Taken once: the second caller connects itself.
    await expect(prefetch.take(server.path)).resolves.toBeUndefined();
    taken!.client.close();
  });

  it('drops the run state when an event came before the connection was taken (it may be out of date)', async () => {
    server.handle('query-status', (cmd, conn) => {
      void conn.event('STOP');
      return { return: { status: 'running', running: true } };
    });
    prefetch = new QmpPrefetch([server.path], 5000);
    const taken = await prefetch.take(server.path);
    expect(taken).toBeDefined();
    expect(taken!.runState).toBeUndefined();
    taken!.client.close();
  });

  it('a socket nobody listens on leaves nothing to take, and does not hold up the others', async () => {
    const missing = path.join(server.dir, 'gone.sock');
    prefetch = new QmpPrefetch([missing, server.path], 5000);
    await prefetch.connected;
    await expect(prefetch.take(missing)).resolves.toBeUndefined();
    const taken = await prefetch.take(server.path);
    expect(taken!.runState).toBe('paused');
    taken!.client.close();
  });

  it('a connection QEMU closed after the handshake is handed over closed, without a run state', async () => {
    server.handle('query-status', (cmd, conn) => {
      conn.close();
      return undefined;
    });
    prefetch = new QmpPrefetch([server.path], 5000);
    const taken = await prefetch.take(server.path);
    expect(taken!.client.closed).toBe(true);
    expect(taken!.runState).toBeUndefined();
    await expect(taken!.client.ready).resolves.toBeUndefined();
  });

  it('a QEMU that never greets: the client is handed over closed, its ready says why, after one connect timeout', async () => {
    await server.stop();
    server = await FakeQmpServer.start({ greeting: null });
    prefetch = new QmpPrefetch([server.path], 300);
    const t0 = Date.now();
    const taken = await prefetch.take(server.path);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(taken!.client.closed).toBe(true);
    await expect(taken!.client.ready).rejects.toThrow(/sent no QMP greeting within 300ms/);
  });

  it('hands QMP command durations to the observer, those finished before it came first', async () => {
    prefetch = new QmpPrefetch([server.path], 5000);
    const taken = await prefetch.take(server.path);
    const seen: string[] = [];
    prefetch.observe((command) => seen.push(command));
    expect(seen).toEqual(['qmp_capabilities', 'query-status']);
    await taken!.client.execute('query-status');
    expect(seen).toEqual(['qmp_capabilities', 'query-status', 'query-status']);
    taken!.client.close();
  });

  it('close ends the connections nobody took', async () => {
    prefetch = new QmpPrefetch([server.path], 5000);
    const conn = await server.waitForConnection();
    await prefetch.connected;
    prefetch.close();
    await vi.waitFor(() => expect(conn.socket.destroyed || conn.socket.readableEnded).toBe(true));
  });
});
