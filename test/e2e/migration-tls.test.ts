/**
 * Encrypted migration between two TLS nodes: a capture of the wire between them never shows the
 * guest's RAM, third parties cannot join the streams, and the move still succeeds. The same
 * move with --insecure-migration shows the marker in the capture: the capture would catch it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { AGENT_PORT, NODE_IPS, TwoNodes } from '../support/two-nodes.js';
import { guestSpec, waitForFileText } from '../support/guest.js';
import { rpc } from '../support/rpc.js';
import { unary } from '../../src/api/grpc/client.js';
import type { Migration__Output } from '../../src/api/grpc/generated/vmlet/v1/Migration.js';
import type { MigrationOptions } from '../../src/api/grpc/generated/vmlet/v1/MigrationOptions.js';

const exec = promisify(execFile);
const MIB = 1 << 20;

/** A guest that fills 48 MiB of its RAM (a tmpfs file) with the marker, then idles. */
function markerGuest(id: string, base: string, marker: string) {
  const run = `yes ${marker} | head -c 50331648 > /tmp/marker && echo FILLED; while true; do sleep 1; done`;
  return guestSpec(id, {
    memoryMib: 256,
    disks: [{ name: 'data', imagePath: base, overlay: true, readonly: false }],
    kernel: { ...guestSpec('x').kernel!, cmdline: `console=ttyS0 panic=-1 vmlet.run="${run}"` },
  });
}

/** tcpdump of every TCP packet in a namespace except the (TLS) gRPC calls; stop() gives the bytes. */
async function capture(ns: string, file: string): Promise<{ stop(): Promise<Buffer> }> {
  const child: ChildProcess = spawn('ip', ['netns', 'exec', ns, 'tcpdump', '-i', 'any', '-U', '-s', '0', '-w', file, 'tcp', 'and', 'not', 'port', String(AGENT_PORT)], { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('listening on')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`tcpdump exited (${code}): ${err}`)));
  });
  return {
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT');
      await exited;
      return readFile(file);
    },
  };
}

async function migrate(nodes: TwoNodes, id: string, options: MigrationOptions): Promise<{ started: Migration__Output; done: Promise<Migration__Output> }> {
  const m = nodes.a.daemon.clients.migrations;
  const started = await unary<{ id: string; target: string; options: MigrationOptions }, Migration__Output>(m.migrateVm.bind(m), { id, target: nodes.b.address, options });
  const done = new Promise<Migration__Output>((resolve, reject) => {
    let last: Migration__Output | undefined;
    const s = m.watchMigration({ id });
    s.on('data', (x: Migration__Output) => (last = x));
    s.on('end', () => resolve(last!));
    s.on('error', reject);
  });
  return { started, done };
}

const phaseOf = async (nodes: TwoNodes, id: string): Promise<string> => {
  const m = nodes.a.daemon.clients.migrations;
  const x = await unary<{ id: string }, Migration__Output>(m.getMigration.bind(m), { id });
  return x.phase === 'MIGRATION_PHASE_FAILED' ? `${x.phase}: ${x.reason}` : x.phase;
};

/** TCP ports the target's QEMU listens on in its namespace, besides vmlet's own. */
async function targetStreamPorts(nodes: TwoNodes): Promise<number[]> {
  const { stdout } = await exec('ip', ['netns', 'exec', nodes.b.ns.name, 'ss', '-ltnH'], { timeout: 10_000 });
  return stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[3] ?? '')
    .filter((local) => local.startsWith(`${NODE_IPS.b}:`))
    .map((local) => Number(local.slice(local.lastIndexOf(':') + 1)))
    .filter((p) => p !== AGENT_PORT);
}

/** An NBD client (qemu-img) on a port of the target: plaintext, or TLS with the given certificate. */
async function nbdRead(nodes: TwoNodes, port: number, tlsDir?: string): Promise<{ ok: boolean; output: string }> {
  const spec = `driver=nbd,host=${NODE_IPS.b},port=${port},export=data${tlsDir ? ',tls-creds=tls0' : ''}`;
  const args = ['netns', 'exec', nodes.a.ns.name, 'qemu-img', 'info', ...(tlsDir ? ['--object', `tls-creds-x509,id=tls0,dir=${tlsDir},endpoint=client`] : []), '--image-opts', spec];
  try {
    const { stdout, stderr } = await exec('ip', args, { timeout: 20_000 });
    return { ok: true, output: stdout + stderr };
  } catch (err) {
    return { ok: false, output: `${String((err as { stderr?: string }).stderr ?? '')} ${(err as Error).message}` };
  }
}

describe('encrypted, authenticated migration streams', () => {
  let nodes: TwoNodes | undefined;
  afterEach(async () => {
    await nodes?.cleanup();
    nodes = undefined;
  });

  async function setup(extraArgs: string[] = []): Promise<{ nodes: TwoNodes; base: string }> {
    const n = await TwoNodes.start({ extraArgs });
    const base = join(n.images, 'data-base.raw');
    await exec('truncate', ['-s', '32M', base]);
    await exec('mkfs.ext2', ['-q', '-F', base]);
    return { nodes: n, base };
  }

  it('with TLS: the RAM never crosses in clear, a plaintext or wrong-identity NBD client is refused, and the move succeeds', async () => {
    const s = await setup();
    nodes = s.nodes;
    const marker = `vmlet-secret-${randomBytes(8).toString('hex')}`;
    await rpc(nodes.a.daemon.clients).create(markerGuest('secret', s.base, marker), true);
    await waitForFileText(join(nodes.a.daemon.stateDir, 'vms', 'secret', 'console.log'), /FILLED\r?$/m, 120_000);

    // A client certificate from the same CA, with an identity that is not the source node's.
    const wrongId = join(nodes.images, 'wrong-identity');
    await mkdir(wrongId);
    await copyFile(nodes.certs.ca, join(wrongId, 'ca-cert.pem'));
    await copyFile(nodes.certs.clientCert, join(wrongId, 'client-cert.pem'));
    await copyFile(nodes.certs.clientKey, join(wrongId, 'client-key.pem'));
    const wire = await capture(nodes.a.ns.name, join(nodes.images, 'tls.pcap'));
    const { started, done } = await migrate(nodes, 'secret', { maxBandwidthBytesPerSecond: 4 * MIB });
    expect(started.phase).toBe('MIGRATION_PHASE_RUNNING');

    // Both the NBD server and vmlet's gate in front of QEMU's migration listener are up now.
    const ports = await targetStreamPorts(nodes);
    expect(ports.length).toBe(2);
    const attempts = ports.flatMap((port) => [
      nbdRead(nodes!, port).then((r) => ({ ...r, who: `plaintext client on port ${port}` })),
      nbdRead(nodes!, port, wrongId).then((r) => ({ ...r, who: `wrong-identity client on port ${port}` })),
    ]);
    for (const r of await Promise.all(attempts)) expect(r.ok, `${r.who}: ${r.output}`).toBe(false);
    // The attempts fell inside the move: what they were refused by was the running migration's.
    expect(await phaseOf(nodes, 'secret')).toBe('MIGRATION_PHASE_RUNNING');

    const final = await done;
    expect(final.phase).toBe('MIGRATION_PHASE_SUCCEEDED');
    const bytes = await wire.stop();
    expect(bytes.length).toBeGreaterThan(48 * MIB);
    expect(bytes.includes(Buffer.from(marker))).toBe(false);
    const moved = (await rpc(nodes.b.daemon.clients).get('secret')).status;
    const consoleTail = async () => (await readFile(join(nodes!.b.daemon.stateDir, 'vms', 'secret', 'console.log'), 'utf8').catch(() => '')).slice(-2000);
    if (moved?.phase !== 'PHASE_RUNNING') expect.fail(`target ${moved?.phase}: ${moved?.reason}\n${await consoleTail()}`);
  }, 300_000);

  it('with --insecure-migration the same move shows the marker on the wire', async () => {
    const s = await setup(['--insecure-migration']);
    nodes = s.nodes;
    const marker = `vmlet-secret-${randomBytes(8).toString('hex')}`;
    await rpc(nodes.a.daemon.clients).create(markerGuest('open', s.base, marker), true);
    await waitForFileText(join(nodes.a.daemon.stateDir, 'vms', 'open', 'console.log'), /FILLED\r?$/m, 120_000);
    const wire = await capture(nodes.a.ns.name, join(nodes.images, 'plain.pcap'));
    const { done } = await migrate(nodes, 'open', {});
    expect((await done).phase).toBe('MIGRATION_PHASE_SUCCEEDED');
    expect((await wire.stop()).includes(Buffer.from(marker))).toBe(true);
  }, 300_000);
});
