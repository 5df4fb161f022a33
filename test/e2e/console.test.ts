import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { status } from '@grpc/grpc-js';
import pty from 'node-pty';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, TestDaemon } from '../support/daemon.js';
import { guestSpec, READY_LINE, waitForFileText } from '../support/guest.js';
import { rpc } from '../support/rpc.js';
import { grpcConsole, PROMPT, Received, wsConsole } from '../support/console-clients.js';

const run = promisify(execFile);
const ID = 'con-1';

describe('console: gRPC, websocket and the CLI against a real guest', () => {
  let d: TestDaemon;
  let api: ReturnType<typeof rpc>;
  let log: string;
  let tokenDir: string;
  const token = randomBytes(24).toString('hex');

  beforeAll(async () => {
    tokenDir = await mkdtemp(join(tmpdir(), 'vmlet-token-'));
    await writeFile(join(tokenDir, 'token'), `${token}\n`, { mode: 0o600 });
    d = await TestDaemon.start({ extraArgs: ['--console-websocket', '--console-token-file', join(tokenDir, 'token')] });
    api = rpc(d.clients);
    await api.create(guestSpec(ID), true);
    log = join(d.stateDir, 'vms', ID, 'console.log');
    await waitForFileText(log, READY_LINE);
  });
  afterAll(async () => {
    await api?.delete(ID, true).catch(() => undefined);
    await d?.cleanup();
    await rm(tokenDir, { recursive: true, force: true });
  });

  it('vmlet console in a pseudo-terminal: prompt, echo $((6*7)) gives 42, Ctrl-] leaves with exit 0', async () => {
    const term = pty.spawn(process.execPath, [CLI, '--endpoint', d.socket, 'console', ID], { cols: 100, rows: 30, env: process.env });
    const out = new Received();
    term.onData((data) => out.add(data));
    const exited = new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)));
    try {
      await out.until('Ctrl-] leaves');
      // The history ends with the prompt; a fresh line gives a fresh one either way.
      await out.roundTrip((b) => term.write(b.toString()), '\r', PROMPT);
      await out.roundTrip((b) => term.write(b.toString()), 'echo $((6*7))\r', /\n42\r*\n/);
      term.write('\x1d');
      expect(await exited).toBe(0);
    } finally {
      term.kill();
    }
    // The guest keeps running and the console can be attached again.
    expect((await api.get(ID)).status?.phase).toBe('PHASE_RUNNING');
  });

  it('two gRPC clients attached at once both see the output; input from either reaches the guest', async () => {
    const a = grpcConsole(d.clients, ID);
    const b = grpcConsole(d.clients, ID);
    await Promise.all([a.out.until(READY_LINE), b.out.until(READY_LINE)]);
    const fromB = b.out.text.length;
    await a.out.roundTrip(a.send, 'echo both-$((40+2))\r', /\nboth-42\r\n/);
    await b.out.until(/\nboth-42\r\n/, 30_000, fromB);
    const fromA = a.out.text.length;
    await b.out.roundTrip(b.send, 'echo other-$((3*3))\r', /\nother-9\r\n/);
    await a.out.until(/\nother-9\r\n/, 30_000, fromA);
    a.call.end();
    b.call.end();
    expect((await a.status).code).toBe(status.OK);
    expect((await b.status).code).toBe(status.OK);
  });

  it('a websocket client does the same round trip (binary frames)', async () => {
    const c = await wsConsole(d.httpAddress, ID, { token });
    let binary = true;
    c.ws.on('message', (_data, isBinary) => (binary &&= isBinary));
    await c.out.until(READY_LINE);
    await c.out.roundTrip(c.send, 'echo $((6*7))\r', /\n42\r\n/);
    expect(binary).toBe(true);
    c.ws.close();
    expect((await c.closed).code).toBe(1005);
  });

  it('errors: NOT_FOUND for an unknown VM, FAILED_PRECONDITION for one not running, INVALID_ARGUMENT for a bad id', async () => {
    await api.create(guestSpec('con-idle'));
    try {
      const codeOf = async (id: string): Promise<status> => (await grpcConsole(d.clients, id).status).code;
      expect(await codeOf('nope')).toBe(status.NOT_FOUND);
      expect(await codeOf('con-idle')).toBe(status.FAILED_PRECONDITION);
      expect(await codeOf('Not A Valid Id')).toBe(status.INVALID_ARGUMENT);
      await expect(wsConsole(d.httpAddress, 'nope', { token })).rejects.toThrow('HTTP 404');
      await expect(wsConsole(d.httpAddress, 'con-idle', { token })).rejects.toThrow('HTTP 409');
      await expect(wsConsole(d.httpAddress, ID, { token, origin: 'http://attacker.example' })).rejects.toThrow('HTTP 403');
      await expect(wsConsole(d.httpAddress, ID, { token, headers: { host: 'attacker.example' } })).rejects.toThrow('HTTP 403');
      await expect(wsConsole(d.httpAddress, ID)).rejects.toThrow('HTTP 401');
      await expect(wsConsole(d.httpAddress, ID, { token: `${token}x` })).rejects.toThrow('HTTP 401');
      const logs = await run(process.execPath, [CLI, '--endpoint', d.socket, 'logs', 'nope']).catch((err: { code: number; stderr: string }) => err);
      expect(logs).toMatchObject({ code: 1, stderr: expect.stringContaining('NOT_FOUND') });
    } finally {
      await api.delete('con-idle');
    }
  });

  it('vmlet logs prints the console log and its last lines', async () => {
    const file = await readFile(log, 'utf8');
    const whole = await run(process.execPath, [CLI, '--endpoint', d.socket, 'logs', ID], { maxBuffer: 16 * 1024 * 1024 });
    expect(whole.stdout.startsWith(file)).toBe(true);
    const tail = await run(process.execPath, [CLI, '--endpoint', d.socket, 'logs', ID, '--tail', '3']);
    const lines = tail.stdout.split('\n');
    expect(lines).toHaveLength(3);
    expect(whole.stdout.endsWith(tail.stdout)).toBe(true);
  });

  it('vmlet logs -f follows; the stream and every console end cleanly (OK) when the VM stops', async () => {
    const follow = new Received();
    const child = execFile(process.execPath, [CLI, '--endpoint', d.socket, 'logs', ID, '-f', '--tail', '1']);
    child.stdout!.on('data', (b: Buffer) => follow.add(b));
    const followExit = new Promise<number | null>((resolve) => child.on('exit', resolve));
    // Its last line so far is the prompt: once that arrived, it follows.
    await follow.until(PROMPT);
    const c = grpcConsole(d.clients, ID);
    await c.out.until(READY_LINE);
    await c.out.roundTrip(c.send, 'echo follow-$((5*5))\r', /\nfollow-25\r\n/);
    await follow.until('follow-25');
    const stopped = await api.stop(ID);
    expect(stopped.status?.phase).toBe('PHASE_STOPPED');
    const final = await c.status;
    expect(final.code).toBe(status.OK);
    expect(await followExit).toBe(0);
    // The guest's last words (its power-off) reached the client before the end.
    expect(c.out.text).toMatch(/reboot: Power down|Power down/);
    expect(await grpcConsole(d.clients, ID).status).toMatchObject({ code: status.FAILED_PRECONDITION });
  });
});
