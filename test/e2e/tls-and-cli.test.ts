import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI, TestDaemon } from '../support/daemon.js';
import { KERNEL, INITRD } from '../support/guest.js';
import { makeTestCerts, type TestCerts } from '../support/certs.js';
import { connectClients, unary } from '../../src/api/grpc/client.js';

const execFileP = promisify(execFile);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Runs the built CLI; resolves with exit code and output (never rejects on a non-zero exit). */
function cli(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

describe('TCP listeners', () => {
  let dir: string;
  let certs: TestCerts;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-tls-'));
    certs = await makeTestCerts(dir);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuse to start beyond loopback without TLS', async () => {
    const r = await cli(['daemon', '--state-dir', join(dir, 's'), '--run-dir', join(dir, 'r'), '--grpc-listen', '0.0.0.0:0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('needs --tls-cert, --tls-key and --tls-ca');
  });

  it('with TLS, only clients with a certificate from the CA get in', async () => {
    const port = await freePort();
    const policy = join(dir, 'authz.yaml');
    await writeFile(policy, 'rules:\n  - role: admin\n    match: { cn: client }\n');
    const d = await TestDaemon.start({
      extraArgs: ['--grpc-listen', `127.0.0.1:${port}`, '--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-ca', certs.ca, '--authz', policy],
    });
    try {
      const good = connectClients({ endpoint: `127.0.0.1:${port}`, tlsCa: certs.ca, tlsCert: certs.clientCert, tlsKey: certs.clientKey });
      const info = await unary(good.vms.getNodeInfo.bind(good.vms), {}, { deadline: Date.now() + 10_000 });
      expect((info as { qemuVersion: string }).qemuVersion).toMatch(/^\d+\.\d+\.\d+$/);
      good.close();
      for (const client of [
        connectClients({ endpoint: `127.0.0.1:${port}`, tlsCa: certs.ca }),
        connectClients({ endpoint: `127.0.0.1:${port}`, tlsCa: certs.ca, tlsCert: certs.strangerCert, tlsKey: certs.strangerKey }),
        connectClients({ endpoint: `127.0.0.1:${port}` }),
      ]) {
        await expect(unary(client.vms.getNodeInfo.bind(client.vms), {}, { deadline: Date.now() + 5000 })).rejects.toMatchObject({ code: expect.any(Number) });
        client.close();
      }
    } finally {
      await d.cleanup();
    }
  });
});

describe('the vmlet CLI against a real daemon', () => {
  let d: TestDaemon;
  let dir: string;
  const ep = () => ['--endpoint', d.socket];

  beforeAll(async () => {
    d = await TestDaemon.start();
    dir = await mkdtemp(join(tmpdir(), 'vmlet-cli-'));
  });
  afterAll(async () => {
    await d?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('create from YAML, start, get, ls, pause, resume, reboot, stop, rm, node', async () => {
    const yaml = `id: cli-1\nvcpus: 1\nmemory_mib: 128\nlabels: { via: cli }\nkernel:\n  kernel_path: ${KERNEL}\n  initrd_path: ${INITRD}\n  cmdline: console=ttyS0\n`;
    await writeFile(join(dir, 'vm.yaml'), yaml);
    let r = await cli([...ep(), 'create', '-f', join(dir, 'vm.yaml'), '--start']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);

    r = await cli([...ep(), '-o', 'json', 'get', 'cli-1']);
    expect(r.code).toBe(0);
    const vm = JSON.parse(r.stdout) as { spec: { labels: Record<string, string> }; status: { phase: string; pid: number } };
    expect(vm.status.phase).toBe('PHASE_RUNNING');
    expect(vm.spec.labels).toEqual({ via: 'cli' });

    r = await cli([...ep(), 'ls', '-l', 'via=cli']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ID\s+PHASE/m);
    expect(r.stdout).toMatch(/^cli-1\s+Running/m);

    for (const verb of ['pause', 'resume', 'reboot']) expect((await cli([...ep(), verb, 'cli-1'])).code).toBe(0);
    r = await cli([...ep(), 'stop', 'cli-1', '--force']);
    expect(r.code).toBe(0);
    r = await cli([...ep(), '-o', 'json', 'get', 'cli-1']);
    expect((JSON.parse(r.stdout) as { status: { phase: string } }).status.phase).toBe('PHASE_STOPPED');

    r = await cli([...ep(), '-o', 'json', 'node']);
    expect((JSON.parse(r.stdout) as { accelerator: string }).accelerator).toMatch(/^(kvm|tcg)$/);

    expect((await cli([...ep(), 'rm', 'cli-1'])).code).toBe(0);
    r = await cli([...ep(), 'get', 'cli-1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('NOT_FOUND');
  });

  it('create from flags; usage errors exit 2; a daemon that is not there is named', async () => {
    const create = [...ep(), 'create', '--id', 'cli-2', '--memory', '64', '--kernel', KERNEL, '--initrd', INITRD, '--cmdline', 'console=ttyS0'];
    let r = await cli(create);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('cli-2 created: Pending (created)\n');
    r = await cli(create);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('cli-2 already exists with this spec: Pending (created)\n');
    expect((await cli([...ep(), 'rm', 'cli-2'])).code).toBe(0);
    r = await cli([...ep(), 'stop']);
    expect(r.code).toBe(2);
    r = await cli(['--endpoint', `unix://${join(dir, 'nothing.sock')}`, 'ls']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('nothing.sock');
  });

  it('npx-style bin: `vmlet daemon --help` prints the daemon options', async () => {
    const { stdout } = await execFileP(process.execPath, [CLI, 'daemon', '--help']);
    expect(stdout).toContain('--grpc-listen');
  });
});
