import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import Fastify, { type FastifyInstance } from 'fastify';
import WebSocket from 'ws';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConsoleHub } from '../../src/console/hub.js';
import { DEFAULT_CONSOLE_LIMITS } from '../../src/console/limits.js';
import { registerConsoleWebsocket } from '../../src/api/http/console-websocket.js';
import { silentLogger } from '../../src/host/log.js';
import { FakeSerial } from '../support/fake-serial.js';
import { FakeVms } from '../support/console-fakes.js';
import { Received, wsConsole as wsConsoleAs } from '../support/console-clients.js';
import { checkConsoleAccess } from '../../src/api/http/console-access.js';

const ID = 'web-1';
const TOKEN = 'a-console-token-of-some-length';
const wsConsole = (address: string, id: string, o: Parameters<typeof wsConsoleAs>[2] = {}) => wsConsoleAs(address, id, { token: TOKEN, ...o });
const ACCESS = { token: TOKEN, allowedHosts: ['127.0.0.1', 'localhost'] };
const LIMITS = { ...DEFAULT_CONSOLE_LIMITS, clientMaxPendingBytes: 256 * 1024, connectRetryMs: 10 };

/** Polls `check` until true, failing after `timeoutMs`. */
async function eventually(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await delay(20);
  }
}

describe('console websocket', () => {
  let fake: FakeSerial;
  let vms: FakeVms;
  let hub: ConsoleHub;
  let app: FastifyInstance;
  let address: string;

  beforeEach(async () => {
    fake = await FakeSerial.create();
    vms = new FakeVms();
    hub = new ConsoleHub(vms, silentLogger(), LIMITS).start();
    vms.set(ID, fake.paths, 'Running');
    vms.set('idle', fake.paths, 'Stopped', 0);
    app = Fastify();
    await registerConsoleWebsocket(app, { hub, access: ACCESS, logger: silentLogger(), pingIntervalMs: 50 });
    address = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterEach(async () => {
    await app.close();
    await hub.close();
    await fake.remove();
  });

  it('history, then live output as binary frames; input reaches the guest; closes with 1000 when the VM stops', async () => {
    // Printed once vmlet reads the socket (what nobody reads is lost).
    await fake.connected();
    fake.emit('booted\r\n# ');
    const c = await wsConsole(address, ID);
    await c.out.until('booted\r\n# ');
    c.send(Buffer.from('ls\r'));
    await fake.waitForInput('ls\r');
    fake.emit('ls\r\nbin\r\n');
    await c.out.until('bin\r\n');
    await fake.stop();
    vms.set(ID, fake.paths, 'Stopped', 0);
    expect(await c.closed).toEqual({ code: 1000, reason: 'VM stopped' });
  });

  it('refuses before the upgrade: 404 unknown VM, 409 not running, 400 bad id, 403 another origin', async () => {
    await expect(wsConsole(address, 'nope')).rejects.toThrow('HTTP 404');
    await expect(wsConsole(address, 'idle')).rejects.toThrow('HTTP 409');
    await expect(wsConsole(address, 'Bad_Id')).rejects.toThrow('HTTP 400');
    await expect(wsConsole(address, ID, { origin: 'http://evil.example' })).rejects.toThrow('HTTP 403');
    const same = await wsConsole(address, ID, { origin: address });
    same.ws.close();
  });

  it('pings idle clients (keepalive) and cuts one that stops answering', async () => {
    const live = await wsConsole(address, ID);
    let pings = 0;
    live.ws.on('ping', () => pings++);
    const mute = await wsConsole(address, ID, { autoPong: false });
    // The mute client is cut after one unanswered ping; the live one stays.
    expect((await mute.closed).code).toBe(1006);
    await eventually(() => pings >= 3);
    expect(live.ws.readyState).toBe(WebSocket.OPEN);
    live.ws.close();
  });

  it('a client that never reads is dropped; the others keep receiving', async () => {
    const port = Number(new URL(address).port);
    const stuck = net.connect(port, '127.0.0.1');
    stuck.on('error', () => undefined);
    const handshake = new Received();
    stuck.once('data', (b: Buffer) => {
      handshake.add(b);
      stuck.pause(); // never reads again
    });
    stuck.write(`GET /v1/vms/${ID}/console HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`);
    await handshake.until('101 Switching Protocols');
    const healthy = await wsConsole(address, ID);
    let got = 0;
    healthy.ws.on('message', (data: Buffer) => (got += data.length));
    await eventually(() => hub.attachable(ID).clientCount === 2);
    // 25 MiB, more than loopback TCP buffers hold, at the pace the healthy client reads.
    const block = Buffer.alloc(64 * 1024, 'x');
    for (let i = 1; i <= 400 && hub.attachable(ID).clientCount === 2; i++) {
      fake.emit(block);
      await eventually(() => got >= i * block.length);
    }
    await eventually(() => hub.attachable(ID).clientCount === 1);
    // The healthy one still receives.
    fake.emit('END');
    await healthy.out.until('END');
    stuck.destroy();
    healthy.ws.close();
  }, 90_000);

  it('refuses a missing or wrong token (401), a Host not allowed and a foreign origin (403)', async () => {
    await expect(wsConsoleAs(address, ID)).rejects.toThrow('HTTP 401');
    await expect(wsConsole(address, ID, { token: 'not-the-console-token' })).rejects.toThrow('HTTP 401');
    await expect(wsConsole(address, ID, { headers: { host: 'attacker.example' } })).rejects.toThrow('HTTP 403');
    await expect(wsConsole(address, ID, { origin: 'http://evil.example' })).rejects.toThrow('HTTP 403');
  });
});

describe('console access by client certificate', () => {
  const req = (cn: string, host = 'node-a.example:9474', authorized = true) =>
    ({ headers: { host }, raw: { socket: { authorized, getPeerCertificate: () => ({ subject: { CN: cn }, subjectaltname: '' }) } } }) as unknown as Parameters<typeof checkConsoleAccess>[1];
  const roles: Record<string, 'operator' | 'viewer' | 'peer'> = { ops: 'operator', watcher: 'viewer', 'node-b': 'peer' };
  const access = { allowedHosts: ['node-a.example'], roleOfCertificate: (id: { kind: string; cn?: string }) => (id.kind === 'certificate' ? roles[id.cn!] : undefined) };

  it('operators get a read-write console, viewers a read-only one, others none', () => {
    expect(checkConsoleAccess(access, req('ops'))).toEqual({ mode: 'read-write', who: 'certificate CN=ops' });
    expect(checkConsoleAccess(access, req('watcher'))).toEqual({ mode: 'read-only', who: 'certificate CN=watcher' });
    expect(checkConsoleAccess(access, req('node-b'))).toMatchObject({ status: 403, message: expect.stringContaining('role peer may not read consoles') });
    expect(checkConsoleAccess(access, req('stranger'))).toMatchObject({ status: 403 });
    expect(checkConsoleAccess(access, req('ops', 'node-a.example:9474', false))).toMatchObject({ status: 401 });
    expect(checkConsoleAccess(access, req('ops', 'evil.example'))).toMatchObject({ status: 403, message: expect.stringContaining('Host evil.example') });
  });
});
