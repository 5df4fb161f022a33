import { createServer, type Server, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GuestAgentClient, readGuest } from '../../src/qemu/guest-agent.js';
import { DISCONNECTED, watchGuestAgent, type GuestAgentWatch } from '../../src/qemu/guest-agent-watch.js';
import type { GuestInfo } from '../../src/model/vm.js';
import type { GuestFigures } from '../../src/model/guest-figures.js';
import { until } from '../support/poll.js';

/** Polls a condition with a deadline. */
const whenTrue = (what: string, condition: () => boolean): Promise<true> => until(what, async () => (condition() ? true : undefined), 10_000, 20);

/** How the fake agent answers one command; undefined: it says nothing. */
type Answer = (command: string, args: Record<string, unknown> | undefined) => string | Buffer | undefined;

/** What qemu-ga 7.2 (Debian 12) answers: guest-get-load came with 10.0. */
const AGENT_REPLIES: Record<string, unknown> = {
  'guest-get-osinfo': { name: 'Debian GNU/Linux', 'version-id': '12', 'kernel-release': '6.1.0-57-cloud-amd64', machine: 'x86_64' },
  'guest-get-fsinfo': [
    { name: 'vda1', mountpoint: '/', type: 'ext4', 'used-bytes': 1_200_000_000, 'total-bytes': 2_000_000_000, disk: [{ 'bus-type': 'virtio', serial: 'root' }] },
    { name: 'vda1', mountpoint: '/', type: 'ext4', 'used-bytes': 1_200_000_000, 'total-bytes': 2_000_000_000, disk: [] },
    { name: 'vda15', mountpoint: '/boot/efi', type: 'vfat', 'used-bytes': 6_000_000, 'total-bytes': 130_000_000, disk: [] },
    // statvfs failed in the guest: no sizes.
    { name: 'sr0', mountpoint: '/media/cdrom', type: 'iso9660', disk: [] },
  ],
  'guest-get-host-name': { 'host-name': 'web-1' },
  'guest-network-get-interfaces': [
    { name: 'lo', 'hardware-address': '00:00:00:00:00:00', 'ip-addresses': [{ 'ip-address': '127.0.0.1', prefix: 8 }] },
    { name: 'eth0', 'hardware-address': '02:00:00:00:00:01', 'ip-addresses': [{ 'ip-address': '10.0.0.5', prefix: 24 }, { 'ip-address': 'fe80::1', prefix: 64 }] },
  ],
};

/** A QEMU guest agent as seen through its chardev: 0xFF before the sync reply, one JSON reply a line. */
const realAgent =
  (replies: Record<string, unknown> = AGENT_REPLIES): Answer =>
  (command, args) => {
    if (command === 'guest-sync-delimited') return Buffer.concat([Buffer.from([0xff]), Buffer.from(`{"return": ${String(args?.['id'])}}\n`)]);
    if (command in replies) return `${JSON.stringify({ return: replies[command] })}\n`;
    return `{"error": {"class": "CommandNotFound", "desc": "The command ${command} has not been found"}}\n`;
  };

class FakeAgent {
  readonly commands: string[] = [];
  readonly sockets = new Set<Socket>();
  /** Every reply this late: an agent in a guest that runs slowly, answering in order. */
  delayMs = 0;
  constructor(
    private readonly server: Server,
    public answer: Answer,
  ) {}

  static async listen(path: string, answer: Answer): Promise<FakeAgent> {
    const server = createServer();
    const agent = new FakeAgent(server, answer);
    server.on('connection', (socket: Socket) => agent.serve(socket));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    return agent;
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffer = '';
    socket.on('data', (b: Buffer) => {
      buffer += b.toString('latin1').replaceAll('\xff', '');
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const { execute, arguments: args } = JSON.parse(buffer.slice(0, nl)) as { execute: string; arguments?: Record<string, unknown> };
        buffer = buffer.slice(nl + 1);
        this.commands.push(execute);
        const reply = this.answer(execute, args);
        if (reply === undefined) continue;
        if (this.delayMs > 0) setTimeout(() => socket.write(reply), this.delayMs);
        else socket.write(reply);
      }
    });
  }

  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  close(): Promise<void> {
    this.dropConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('guest agent client', () => {
  let dir: string;
  let path: string;
  let agent: FakeAgent | undefined;
  let client: GuestAgentClient | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-qga-'));
    path = join(dir, 'qga.sock');
  });
  afterEach(async () => {
    client?.close();
    await agent?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('syncs past stale bytes on the channel, then reads the info (without the loopback)', async () => {
    const real = realAgent();
    // A half-reply of an earlier session and noise sit in the channel before the sync reply.
    agent = await FakeAgent.listen(path, (c, a) => (c === 'guest-sync-delimited' ? Buffer.concat([Buffer.from('{"return": {"host-na'), real(c, a) as Buffer]) : real(c, a)));
    client = await GuestAgentClient.connect(path, 1000);
    await client.sync(1000);
    const { info, figures } = await readGuest(client);
    expect({ info, figures }).toEqual({
      info: {
        agentConnected: true,
        osName: 'Debian GNU/Linux',
        osVersion: '12',
        kernelRelease: '6.1.0-57-cloud-amd64',
        hostname: 'web-1',
        interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:01', ipAddresses: ['10.0.0.5', 'fe80::1'] }],
      },
      // Without guest-get-load (CommandNotFound) there is no load; a file system without sizes is left out.
      figures: {
        arch: 'x86_64',
        filesystems: [
          { device: 'vda1', mountPoint: '/', type: 'ext4', usedBytes: 1_200_000_000, totalBytes: 2_000_000_000 },
          { device: 'vda15', mountPoint: '/boot/efi', type: 'vfat', usedBytes: 6_000_000, totalBytes: 130_000_000 },
        ],
      },
    });
    expect(agent.commands).toEqual(['guest-sync-delimited', 'guest-get-osinfo', 'guest-get-host-name', 'guest-network-get-interfaces', 'guest-get-fsinfo', 'guest-get-load']);
  });

  it('an agent with guest-get-load (qemu-ga 10.0 and later) gives the load averages', async () => {
    agent = await FakeAgent.listen(path, realAgent({ ...AGENT_REPLIES, 'guest-get-load': { load1m: 1.25, load5m: 0.5, load15m: 0.125 } }));
    client = await GuestAgentClient.connect(path, 1000);
    await client.sync(1000);
    expect((await readGuest(client)).figures.load).toEqual({ load1m: 1.25, load5m: 0.5, load15m: 0.125 });
  });

  it('a channel without an agent (QEMU accepts, nobody answers): sync fails at its deadline', async () => {
    agent = await FakeAgent.listen(path, () => undefined);
    client = await GuestAgentClient.connect(path, 1000);
    const began = Date.now();
    await expect(client.sync(300)).rejects.toThrow(/guest-sync-delimited: no answer from the guest agent within 300 ms/);
    expect(Date.now() - began).toBeLessThan(2000);
  });

  it('a command without an answer times out and needs a new sync; an agent error carries its words', async () => {
    const real = realAgent();
    agent = await FakeAgent.listen(path, (c, a) => (c === 'guest-get-host-name' ? undefined : real(c, a)));
    client = await GuestAgentClient.connect(path, 1000);
    await client.sync(1000);
    await expect(client.execute('guest-fsfreeze-status', 1000)).rejects.toThrow(/CommandNotFound: The command guest-fsfreeze-status has not been found/);
    await expect(client.execute('guest-get-host-name', 200)).rejects.toThrow(/within 200 ms/);
    await expect(client.execute('guest-get-osinfo', 1000)).rejects.toThrow(/not synchronised/);
    await client.sync(1000);
    expect(await client.execute('guest-get-osinfo', 1000)).toMatchObject({ 'version-id': '12' });
  });

  it('a round goes on past a command without an answer: the next one is asked after a new sync', async () => {
    const real = realAgent();
    agent = await FakeAgent.listen(path, (c, a) => (c === 'guest-get-osinfo' ? undefined : real(c, a)));
    client = await GuestAgentClient.connect(path, 1000);
    await client.sync(1000);
    const round = await readGuest(client, { commandTimeoutMs: 200 });
    expect(round.info).toMatchObject({ agentConnected: true, osName: '', hostname: 'web-1' });
    expect(round.info.interfaces).toHaveLength(1);
    expect(agent.commands).toEqual(['guest-sync-delimited', 'guest-get-osinfo', 'guest-sync-delimited', 'guest-get-host-name', 'guest-network-get-interfaces', 'guest-get-fsinfo', 'guest-get-load']);
  });

  it("a command not answered in time keeps the last round's answer; one the agent refuses does not", async () => {
    const real = realAgent();
    agent = await FakeAgent.listen(path, (c, a) => (c === 'guest-get-host-name' ? undefined : real(c, a)));
    client = await GuestAgentClient.connect(path, 1000);
    await client.sync(1000);
    const previous = { 'guest-get-host-name': { 'host-name': 'web-0' }, 'guest-get-load': { load1m: 2, load5m: 1, load15m: 0.5 } };
    const round = await readGuest(client, { commandTimeoutMs: 200, previous });
    expect(round.info.hostname).toBe('web-0');
    expect(round.info.osName).toBe('Debian GNU/Linux');
    // qemu-ga 7.2 has no guest-get-load (CommandNotFound): an answer, so no load.
    expect(round.figures.load).toBeUndefined();
    expect(round.answers['guest-get-host-name']).toEqual({ 'host-name': 'web-0' });
  });

  it('garbage lines between replies are skipped', async () => {
    const real = realAgent();
    agent = await FakeAgent.listen(path, (c, a) => (c === 'guest-get-osinfo' ? `\x00\x01garbage\n[1,2\n"text"\n${real(c, a) as string}` : real(c, a)));
    client = await GuestAgentClient.connect(path, 1000);
    await client.sync(1000);
    expect(await client.execute('guest-get-osinfo', 1000)).toMatchObject({ name: 'Debian GNU/Linux' });
  });
});

describe('watchGuestAgent', () => {
  let dir: string;
  let path: string;
  let agent: FakeAgent | undefined;
  let watch: GuestAgentWatch | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-qga-'));
    path = join(dir, 'qga.sock');
  });
  afterEach(async () => {
    watch?.stop();
    await agent?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const fast = { refreshMs: 100, retryMs: 50, syncTimeoutMs: 200 };

  it('reports on connect and on refresh, once when the agent goes, and again when it is back', async () => {
    const replies = { ...AGENT_REPLIES };
    agent = await FakeAgent.listen(path, (c, a) => realAgent(replies)(c, a));
    const seen: GuestInfo[] = [];
    watch = watchGuestAgent(path, (info) => seen.push(info), fast);
    await whenTrue('the first report', () => seen.length >= 1);
    expect(seen[0]).toMatchObject({ agentConnected: true, hostname: 'web-1' });

    replies['guest-get-host-name'] = { 'host-name': 'renamed' };
    await whenTrue('a refresh with the new hostname', () => seen.at(-1)?.hostname === 'renamed');

    // The guest stops its agent: QEMU keeps the socket, nobody answers.
    agent.answer = () => undefined;
    await whenTrue('the agent is reported lost', () => seen.at(-1)?.agentConnected === false);
    expect(seen.filter((i) => !i.agentConnected)).toEqual([DISCONNECTED]);

    agent.answer = realAgent(replies);
    await whenTrue('the agent is back', () => seen.at(-1)?.agentConnected === true);
  });

  it('tells the figures for metrics in the same rounds, and undefined once the agent is lost', async () => {
    const replies = { ...AGENT_REPLIES, 'guest-get-load': { load1m: 2, load5m: 1, load15m: 0.5 } };
    agent = await FakeAgent.listen(path, (c, a) => realAgent(replies)(c, a));
    const figures: (GuestFigures | undefined)[] = [];
    watch = watchGuestAgent(path, () => undefined, { ...fast, onFigures: (f) => figures.push(f) });
    await whenTrue('the first figures', () => figures.length >= 1);
    expect(figures[0]).toMatchObject({ arch: 'x86_64', load: { load1m: 2 }, filesystems: [{ mountPoint: '/' }, { mountPoint: '/boot/efi' }] });

    replies['guest-get-load'] = { load1m: 3, load5m: 1.5, load15m: 0.75 };
    await whenTrue('a refresh with the new load', () => figures.at(-1)?.load?.load1m === 3);
    // One round, one sync: the figures cost no round of their own (a round may be under way).
    const count = (c: string) => agent!.commands.filter((x) => x === c).length;
    const [syncs, loads] = [count('guest-sync-delimited'), count('guest-get-load')];
    expect(loads).toBeGreaterThanOrEqual(2);
    expect(syncs - loads).toBeLessThanOrEqual(1);

    agent.answer = () => undefined;
    await whenTrue('the agent is lost', () => figures.length > 0 && figures.at(-1) === undefined);
  });

  it('an agent slower than the sync deadline is connected all the same, on the connection it answers', async () => {
    agent = await FakeAgent.listen(path, realAgent());
    agent.delayMs = 2 * fast.syncTimeoutMs;
    const seen: GuestInfo[] = [];
    watch = watchGuestAgent(path, (info) => seen.push(info), fast);
    await whenTrue('the slow agent is reported', () => seen.some((i) => i.agentConnected));
    expect(seen.find((i) => i.agentConnected)).toMatchObject({ hostname: 'web-1' });
    expect(agent.commands.filter((c) => c === 'guest-sync-delimited').length).toBeGreaterThan(1);
  });

  it('an agent that only sends garbage, or no agent at all, is never reported', async () => {
    agent = await FakeAgent.listen(path, () => '\xfe{"retur\n}}}\nnot json at all\n');
    const seen: GuestInfo[] = [];
    watch = watchGuestAgent(path, (info) => seen.push(info), fast);
    await whenTrue('several sync attempts', () => agent!.commands.length >= 3);
    expect(seen).toEqual([]);
  });

  it('guest-shutdown goes through the connected agent after a fresh sync, unanswered; without an agent it is not sent', async () => {
    agent = await FakeAgent.listen(path, realAgent());
    const seen: GuestInfo[] = [];
    watch = watchGuestAgent(path, (info) => seen.push(info), fast);
    await whenTrue('connected', () => seen.length > 0);
    expect(await watch.shutdown()).toBe(true);
    await whenTrue('the agent got it', () => agent!.commands.includes('guest-shutdown'));
    const i = agent.commands.lastIndexOf('guest-shutdown');
    expect(agent.commands[i - 1]).toBe('guest-sync-delimited');

    watch.stop();
    const quiet = await FakeAgent.listen(join(dir, 'none.sock'), () => undefined);
    try {
      const none = watchGuestAgent(join(dir, 'none.sock'), () => undefined, fast);
      expect(await none.shutdown()).toBe(false);
      none.stop();
      expect(quiet.commands).not.toContain('guest-shutdown');
    } finally {
      await quiet.close();
    }
  });
});
