import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { VmletError } from '../../src/model/errors.js';
import { classifyQmpError, QmpClient, QmpError, qmpErrorCode, type QmpConnectOptions, type QmpEvent } from '../../src/qemu/qmp.js';
import { FakeQmpServer, replyMessage } from '../support/fake-qmp-server.js';

// A broken client should fail fast here, not hang until the 120 s suite default.
vi.setConfig({ testTimeout: 10_000 });

let server: FakeQmpServer;
const clients: QmpClient[] = [];

async function connect(options: QmpConnectOptions = {}): Promise<QmpClient> {
  const client = await QmpClient.connect(server.path, { commandTimeoutMs: 3000, ...options });
  clients.push(client);
  return client;
}

/** Rejection of a promise, asserted to be a QmpError. */
async function rejection(promise: Promise<unknown>): Promise<QmpError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(QmpError);
  return err as QmpError;
}

beforeEach(async () => {
  server = await FakeQmpServer.start();
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await server.stop();
});

describe('connect', () => {
  it('reads the greeting and negotiates capabilities before any other command', async () => {
    server.handle('query-status', { return: { status: 'running', running: true } });
    const client = await connect();
    expect(client.greeting.QMP.version.qemu).toEqual({ major: 8, minor: 2, micro: 1 });
    expect(server.commandNames()).toEqual(['qmp_capabilities']);

    await expect(client.execute('query-status')).resolves.toEqual({ status: 'running', running: true });
    await expect(client.execute('query-status', { verbose: true })).resolves.toBeDefined();
    expect(server.commandNames()).toEqual(['qmp_capabilities', 'query-status', 'query-status']);
    const ids = server.received.map((r) => r.cmd.id);
    expect(new Set(ids).size).toBe(3);
    for (const id of ids) expect(id).toMatch(/^vmlet-\d+$/);
    expect(server.received[1]?.cmd).not.toHaveProperty('arguments');
    expect(server.received[2]?.cmd.arguments).toEqual({ verbose: true });
    expect(client.closed).toBe(false);
  });

  it('open: commands executed before the handshake is done go out right behind qmp_capabilities, in order', async () => {
    server.handle('cont', { return: {} });
    const client = await QmpClient.open(server.path, { commandTimeoutMs: 3000 });
    clients.push(client);
    const cont = client.execute('cont');
    await expect(Promise.all([client.ready, cont])).resolves.toEqual([undefined, {}]);
    expect(server.commandNames()).toEqual(['qmp_capabilities', 'cont']);
  });

  it('open: when the handshake fails, ready and the commands sent behind it fail with it', async () => {
    await server.stop();
    server = await FakeQmpServer.start({ greeting: { hello: 'not QMP' } });
    const client = await QmpClient.open(server.path, { commandTimeoutMs: 3000 });
    clients.push(client);
    const cont = client.execute('cont');
    const [ready, pipelined] = await Promise.all([rejection(client.ready), rejection(cont)]);
    expect(ready.code).toBe('UNAVAILABLE');
    expect(ready.message).toMatch(/greeting/);
    expect(pipelined.code).toBe('UNAVAILABLE');
    expect(client.closed).toBe(true);
  });

  it('open: rejects when the socket does not exist, with the errno in the cause', async () => {
    const err = await rejection(QmpClient.open(path.join(server.dir, 'missing.sock')));
    expect(err.code).toBe('UNAVAILABLE');
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  it('fails with UNAVAILABLE naming the socket when the server never greets', async () => {
    await server.stop();
    server = await FakeQmpServer.start({ greeting: null });
    const err = await rejection(QmpClient.connect(server.path, { connectTimeoutMs: 100 }));
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toContain(server.path);
    expect(err.message).toMatch(/greeting/);
    expect(server.received).toEqual([]);
  });

  it('fails with UNAVAILABLE naming the socket when it does not exist (ENOENT)', async () => {
    const missing = path.join(server.dir, 'missing.sock');
    const err = await rejection(QmpClient.connect(missing));
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toContain(missing);
    expect(err.message).toMatch(/does not exist/);
  });

  it('fails with UNAVAILABLE naming the socket when nothing listens (ECONNREFUSED)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vmlet-qmp-'));
    try {
      const notSocket = path.join(dir, 'plain-file.sock');
      await writeFile(notSocket, '');
      const err = await rejection(QmpClient.connect(notSocket));
      expect(err.code).toBe('UNAVAILABLE');
      expect(err.message).toContain(notSocket);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails when the first message is not a greeting', async () => {
    await server.stop();
    server = await FakeQmpServer.start({ greeting: { event: 'SHUTDOWN', data: {} } });
    const err = await rejection(QmpClient.connect(server.path));
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toMatch(/expected the QMP greeting/);
  });
});

describe('framing', () => {
  it('reassembles a greeting and a reply sent one byte at a time (multi-byte UTF-8 split too)', async () => {
    await server.stop();
    server = await FakeQmpServer.start({ greeting: null });
    const greeting = { QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: 'Debian ✓' }, capabilities: [] } };
    const connecting = QmpClient.connect(server.path);
    const conn = await server.waitForConnection();
    await conn.sendInPieces(`${JSON.stringify(greeting)}\r\n`);
    const client = await connecting;
    clients.push(client);
    expect(client.greeting.QMP.version.package).toBe('Debian ✓');

    server.handle('query-name', () => undefined);
    const result = client.execute('query-name');
    const { cmd } = await server.waitForCommand('query-name');
    await conn.sendInPieces(`${JSON.stringify(replyMessage(cmd, { return: { name: 'vm-ü-🐧' } }))}\r\n`);
    await expect(result).resolves.toEqual({ name: 'vm-ü-🐧' });
  });

  it('handles a large reply split into many chunks', async () => {
    const client = await connect();
    server.handle('big', () => undefined);
    const result = client.execute<{ blob: string }>('big');
    const { cmd, conn } = await server.waitForCommand('big');
    const blob = 'x'.repeat(4 * 1024 * 1024);
    await conn.sendInPieces(`${JSON.stringify(replyMessage(cmd, { return: { blob } }))}\r\n`, 64 * 1024);
    expect((await result).blob.length).toBe(blob.length);
  });

  it('handles several messages arriving in one chunk', async () => {
    const client = await connect();
    server.handle('a', () => undefined).handle('b', () => undefined);
    const events: string[] = [];
    client.on('event', (e) => events.push(e.event));
    const a = client.execute('a');
    const b = client.execute('b');
    const ra = await server.waitForCommand('a');
    const rb = await server.waitForCommand('b');
    const lines = [
      { event: 'E1', data: {} },
      replyMessage(rb.cmd, { return: 'B' }),
      replyMessage(ra.cmd, { return: 'A' }),
      { event: 'E2', data: {} },
    ];
    await ra.conn.sendRaw(lines.map((l) => `${JSON.stringify(l)}\r\n`).join(''));
    await expect(a).resolves.toBe('A');
    await expect(b).resolves.toBe('B');
    const e2 = client.waitForEvent('E3');
    await ra.conn.event('E3');
    await e2;
    expect(events).toEqual(['E1', 'E2', 'E3']);
  });
});

describe('commands and events', () => {
  it('delivers events interleaved with replies as events, never as replies', async () => {
    const client = await connect();
    const events: QmpEvent[] = [];
    client.on('event', (e) => events.push(e));
    server.handle('stop', () => undefined);
    const lastEvent = client.waitForEvent('BLOCK_JOB_READY');
    const result = client.execute('stop');
    const { cmd, conn } = await server.waitForCommand('stop');
    await conn.event('STOP');
    await conn.send({ event: 'RESUME' }); // no data, no timestamp
    await conn.reply(cmd, { return: {} });
    await conn.event('BLOCK_JOB_READY', { device: 'drive0' });
    await expect(result).resolves.toEqual({});
    await lastEvent;
    expect(events.map((e) => e.event)).toEqual(['STOP', 'RESUME', 'BLOCK_JOB_READY']);
    expect(events[0]?.timestamp?.seconds).toBeGreaterThan(0);
    expect(events[1]).toEqual({ event: 'RESUME', data: {} });
    expect(events[2]?.data).toEqual({ device: 'drive0' });
  });

  it('matches replies to several in-flight commands answered out of order', async () => {
    const client = await connect();
    for (const name of ['one', 'two', 'three']) server.handle(name, () => undefined);
    const one = client.execute('one');
    const two = client.execute('two');
    const three = client.execute('three');
    const r1 = await server.waitForCommand('one');
    const r2 = await server.waitForCommand('two');
    const r3 = await server.waitForCommand('three');
    await r3.conn.reply(r3.cmd, { return: 3 });
    await expect(three).resolves.toBe(3);
    await r1.conn.reply(r1.cmd, { return: 1 });
    await r2.conn.reply(r2.cmd, { return: 2 });
    await expect(Promise.all([one, two])).resolves.toEqual([1, 2]);
  });

  it('ignores replies with unknown ids and reports them as protocol warnings', async () => {
    const warnings: string[] = [];
    const client = await connect({ onProtocolWarning: (m) => warnings.push(m) });
    server.handle('query-status', () => undefined);
    const result = client.execute('query-status');
    const { cmd, conn } = await server.waitForCommand('query-status');
    await conn.send({ return: 'bogus', id: 'nope' });
    await conn.send({ return: 'no id' });
    await conn.send({ error: { class: 'GenericError', desc: 'x' }, id: 42 });
    await conn.reply(cmd, { return: 'real' });
    await expect(result).resolves.toBe('real');
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toContain('"nope"');
    expect(client.closed).toBe(false);
  });

  it('rejects error replies with a QmpError carrying class and desc', async () => {
    const client = await connect();
    server.handle('device_del', { error: { class: 'DeviceNotFound', desc: "Device 'nic9' not found" } });
    const err = await rejection(client.execute('device_del', { id: 'nic9' }));
    expect(err).toBeInstanceOf(VmletError);
    expect(err.code).toBe('FAILED_PRECONDITION');
    expect(err.qmpClass).toBe('DeviceNotFound');
    expect(err.message).toBe("QMP device_del failed: DeviceNotFound: Device 'nic9' not found");
    expect(client.closed).toBe(false);
  });

  it('times out a command with DEADLINE_EXCEEDED, ignores the late reply and stays usable', async () => {
    const warnings: string[] = [];
    const client = await connect({ onProtocolWarning: (m) => warnings.push(m) });
    server.handle('slow', () => undefined).handle('query-status', { return: 'fresh' });
    const err = await rejection(client.execute('slow', undefined, { timeoutMs: 50 }));
    expect(err.code).toBe('DEADLINE_EXCEEDED');
    expect(err.message).toContain('slow');
    expect(err.message).toContain('50ms');

    const { cmd, conn } = await server.waitForCommand('slow');
    await conn.reply(cmd, { return: 'late' });
    await expect(client.execute('query-status')).resolves.toBe('fresh');
    expect(warnings).toHaveLength(1);
    expect(client.closed).toBe(false);
  });

  it('uses commandTimeoutMs from the connect options as the default timeout', async () => {
    const client = await connect({ commandTimeoutMs: 50 });
    server.handle('slow', () => undefined);
    const err = await rejection(client.execute('slow'));
    expect(err.code).toBe('DEADLINE_EXCEEDED');
  });

  it('calls onCommandDone with the duration and ok true/false', async () => {
    const done: [string, number, boolean][] = [];
    const client = await connect({ onCommandDone: (c, s, ok) => done.push([c, s, ok]) });
    server.handle('good', { return: {} }).handle('bad', { error: { class: 'GenericError', desc: 'no' } });
    await client.execute('good');
    await client.execute('bad').catch(() => undefined);
    expect(done.map(([c, , ok]) => [c, ok])).toEqual([
      ['qmp_capabilities', true],
      ['good', true],
      ['bad', false],
    ]);
    for (const [, seconds] of done) {
      expect(seconds).toBeGreaterThanOrEqual(0);
      expect(seconds).toBeLessThan(5);
    }
  });
});

describe('connection loss', () => {
  it('fails pending commands with UNAVAILABLE on EOF, emits close once, then rejects new commands', async () => {
    const client = await connect();
    let closes = 0;
    client.on('close', () => closes++);
    const closed = once(client, 'close');
    server.handle('long', () => undefined).handle('other', () => undefined);
    const long = client.execute('long');
    const other = client.execute('other');
    const { conn } = await server.waitForCommand('long');
    await server.waitForCommand('other');
    conn.close();
    const err = await rejection(long);
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toBe(`QMP connection to ${server.path} closed while waiting for long`);
    expect((await rejection(other)).code).toBe('UNAVAILABLE');
    await closed;
    expect(client.closed).toBe(true);

    const after = await rejection(client.execute('query-status'));
    expect(after.code).toBe('UNAVAILABLE');
    expect(after.message).toContain(server.path);
    expect(closes).toBe(1);
  });

  it('close() is idempotent, fails pending commands and emits close once', async () => {
    const client = await connect();
    const reasons: (Error | undefined)[] = [];
    client.on('close', (reason) => reasons.push(reason));
    server.handle('long', () => undefined);
    const long = client.execute('long');
    await server.waitForCommand('long');
    client.close();
    client.close();
    expect((await rejection(long)).code).toBe('UNAVAILABLE');
    expect((await rejection(client.execute('query-status'))).code).toBe('UNAVAILABLE');
    expect(reasons).toEqual([undefined]);
    expect(client.closed).toBe(true);
  });

  it.each([
    ['not JSON', 'this is not json {'],
    ['an array', '[1, 2, 3]'],
    ['a string', '"hello"'],
    ['null', 'null'],
  ])('treats a line that is %s as a protocol failure', async (_what, garbage) => {
    const client = await connect();
    const reasons: (Error | undefined)[] = [];
    client.on('close', (reason) => reasons.push(reason));
    server.handle('a', () => undefined).handle('b', () => undefined);
    const a = client.execute('a');
    const b = client.execute('b');
    const { conn } = await server.waitForCommand('a');
    await server.waitForCommand('b');
    await conn.sendRaw(`${garbage}\r\n`);
    for (const pending of [a, b]) {
      const err = await rejection(pending);
      expect(err.code).toBe('UNAVAILABLE');
      expect(err.message).toMatch(/invalid JSON/);
      expect(err.message).toContain(JSON.stringify(garbage));
    }
    expect(client.closed).toBe(true);
    expect(reasons).toHaveLength(1);
    expect(reasons[0]?.message).toMatch(/invalid JSON/);
  });
});

describe('waitForEvent', () => {
  it('resolves with the first event of that name matching the predicate', async () => {
    const client = await connect();
    const conn = await server.waitForConnection();
    const waiting = client.waitForEvent('DEVICE_DELETED', { predicate: (e) => e.data.device === 'nic1' });
    const any = client.waitForEvent('DEVICE_DELETED');
    await conn.event('DEVICE_DELETED', { device: 'nic0', path: '/machine/peripheral/nic0' });
    await conn.event('SHUTDOWN', { device: 'nic1' });
    await conn.event('DEVICE_DELETED', { device: 'nic1', path: '/machine/peripheral/nic1' });
    await expect(waiting).resolves.toMatchObject({ event: 'DEVICE_DELETED', data: { device: 'nic1' } });
    await expect(any).resolves.toMatchObject({ data: { device: 'nic0' } });
  });

  it('rejects with DEADLINE_EXCEEDED when no matching event arrives in time', async () => {
    const client = await connect();
    const conn = await server.waitForConnection();
    const waiting = client.waitForEvent('SHUTDOWN', { timeoutMs: 50, predicate: () => false });
    await conn.event('SHUTDOWN', { guest: true });
    const err = await rejection(waiting);
    expect(err.code).toBe('DEADLINE_EXCEEDED');
    expect(err.message).toContain('SHUTDOWN');
  });

  it('rejects with UNAVAILABLE when the connection closes, and at once when already closed', async () => {
    const client = await connect();
    const conn = await server.waitForConnection();
    const waiting = client.waitForEvent('SHUTDOWN');
    conn.close();
    const err = await rejection(waiting);
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toContain('SHUTDOWN');
    expect((await rejection(client.waitForEvent('SHUTDOWN'))).code).toBe('UNAVAILABLE');
  });
});

describe('waitForEvent: several names, abort', () => {
  it('resolves with the first event of any of the names', async () => {
    const client = await connect();
    const conn = await server.waitForConnection();
    const ended = client.waitForEvent(['BLOCK_JOB_COMPLETED', 'BLOCK_JOB_CANCELLED'], { predicate: (e) => e.data.device === 'job1' });
    await conn.event('BLOCK_JOB_READY', { device: 'job1' });
    await conn.event('BLOCK_JOB_CANCELLED', { device: 'job1' });
    await expect(ended).resolves.toMatchObject({ event: 'BLOCK_JOB_CANCELLED' });
  });

  it('names every awaited event when it times out', async () => {
    const client = await connect();
    const err = await rejection(client.waitForEvent(['BLOCK_JOB_COMPLETED', 'BLOCK_JOB_CANCELLED'], { timeoutMs: 20 }));
    expect(err.code).toBe('DEADLINE_EXCEEDED');
    expect(err.message).toContain('BLOCK_JOB_COMPLETED or BLOCK_JOB_CANCELLED');
  });

  it('rejects with the signal reason when aborted, and at once when already aborted', async () => {
    const client = await connect();
    const conn = await server.waitForConnection();
    const abort = new AbortController();
    const waiting = client.waitForEvent('SHUTDOWN', { signal: abort.signal });
    const reason = new Error('no longer needed');
    abort.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    await expect(client.waitForEvent('SHUTDOWN', { signal: abort.signal })).rejects.toBe(reason);
    // The dropped waiter is gone: a later event reaches only the waiters still there.
    const other = client.waitForEvent('SHUTDOWN');
    await conn.event('SHUTDOWN', { guest: true });
    await expect(other).resolves.toMatchObject({ event: 'SHUTDOWN' });
  });
});

describe('error classes', () => {
  it('keeps QEMU desc on an error reply', async () => {
    const client = await connect();
    server.handle('blockdev-del', { error: { class: 'GenericError', desc: "Failed to find node with node-name='mig-a'" } });
    const err = await rejection(client.execute('blockdev-del', { 'node-name': 'mig-a' }));
    expect(err.desc).toBe("Failed to find node with node-name='mig-a'");
  });

  it.each([
    ['CommandNotFound', 'UNIMPLEMENTED'],
    ['DeviceNotFound', 'NOT_FOUND'],
    ['DeviceNotActive', 'FAILED_PRECONDITION'],
    ['GenericError', 'FAILED_PRECONDITION'],
    ['KVMMissingCap', 'FAILED_PRECONDITION'],
    ['constructor', 'FAILED_PRECONDITION'],
  ])('qmpErrorCode(%s) is %s', (cls, code) => {
    expect(qmpErrorCode(cls)).toBe(code);
  });

  it('classifyQmpError recodes error replies only, keeping class, desc and message', () => {
    const reply = new QmpError('FAILED_PRECONDITION', 'QMP device_del failed: DeviceNotFound: gone', { qmpClass: 'DeviceNotFound', desc: 'gone' });
    const classified = classifyQmpError(reply) as QmpError;
    expect(classified).toBeInstanceOf(QmpError);
    expect(classified).toMatchObject({ code: 'NOT_FOUND', qmpClass: 'DeviceNotFound', desc: 'gone', message: reply.message });
    const closed = new QmpError('UNAVAILABLE', 'closed');
    expect(classifyQmpError(closed)).toBe(closed);
    const other = new Error('not QMP');
    expect(classifyQmpError(other)).toBe(other);
  });
});
