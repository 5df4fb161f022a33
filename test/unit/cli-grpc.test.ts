import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { vmletV1 } from '../../src/api/grpc/proto.js';
import type { Phase } from '../../src/api/grpc/generated/vmlet/v1/Phase.js';
import type { Vm } from '../../src/api/grpc/generated/vmlet/v1/Vm.js';
import type { VmServiceHandlers } from '../../src/api/grpc/generated/vmlet/v1/VmService.js';
import type { CreateVmRequest__Output } from '../../src/api/grpc/generated/vmlet/v1/CreateVmRequest.js';
import type { StopVmRequest__Output } from '../../src/api/grpc/generated/vmlet/v1/StopVmRequest.js';
import { runCli } from '../../src/cli/cli.js';
import type { CliIo } from '../../src/cli/io.js';
import { getVerb } from '../../src/cli/verbs/get.js';
import { lsVerb } from '../../src/cli/verbs/ls.js';

const NOW = new Date('2025-01-01T12:00:00Z');
const CREATED = Math.floor(NOW.getTime() / 1000) - 300;

function vm(id: string, phase: Phase, pid: number, reason = ''): Vm {
  return {
    spec: { id, labels: { app: 'web' }, vcpus: 2, memoryMib: 512, disks: [], nics: [{ name: 'eth0', bridge: 'br0', mac: '' }] },
    status: {
      phase,
      reason,
      pid,
      createdAt: { seconds: CREATED, nanos: 0 },
      nics: [{ name: 'eth0', tap: 'vm-tap0', mac: '52:54:00:12:34:56', bridge: 'br0' }],
    },
  };
}

const VMS = new Map<string, Vm>([
  ['web-1', vm('web-1', 'PHASE_RUNNING', 4242)],
  ['db', vm('db', 'PHASE_FAILED', 0, 'QEMU exited: code 1')],
]);

/** What the fake server received, per test. */
const seen: { listSelector?: string; create?: CreateVmRequest__Output; stop?: StopVmRequest__Output; watch?: { id: string; labelSelector: string } } = {};

const notFound = (id: string): Partial<grpc.ServiceError> => ({ code: grpc.status.NOT_FOUND, details: `VM ${id} not found` });

const handlers: Partial<VmServiceHandlers> = {
  GetVm: (call, cb) => {
    const found = VMS.get(call.request.id);
    if (found) cb(null, found);
    else cb(notFound(call.request.id));
  },
  ListVms: (call, cb) => {
    seen.listSelector = call.request.labelSelector;
    cb(null, { vms: [...VMS.values()] });
  },
  CreateVm: (call, cb) => {
    seen.create = call.request;
    // Like the daemon: the same spec again answers with the VM that exists.
    const existing = VMS.get(call.request.spec?.id ?? '');
    if (existing) return cb(null, existing);
    cb(null, { spec: call.request.spec, status: { phase: call.request.start ? 'PHASE_RUNNING' : 'PHASE_STOPPED', pid: call.request.start ? 7 : 0, createdAt: { seconds: CREATED + 300, nanos: 0 } } });
  },
  StopVm: (call, cb) => {
    seen.stop = call.request;
    const found = VMS.get(call.request.id);
    if (!found) return cb(notFound(call.request.id));
    cb(null, { spec: found.spec, status: { phase: 'PHASE_STOPPED', reason: 'stopped by request' } });
  },
  WatchVms: (call) => {
    seen.watch = { id: call.request.id, labelSelector: call.request.labelSelector };
    call.write({ type: 'VM_EVENT_TYPE_ADDED', vm: VMS.get('web-1') });
    call.write({ type: 'VM_EVENT_TYPE_MODIFIED', vm: vm('web-1', 'PHASE_STOPPED', 0, 'guest powered off') });
    // Stays open until the client cancels, like the daemon.
  },
};

let dir: string;
let server: grpc.Server;
let endpoint: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'vmlet-cli-'));
  endpoint = `unix://${path.join(dir, 'vmlet.sock')}`;
  server = new grpc.Server();
  server.addService(vmletV1.VmService.service, handlers as grpc.UntypedServiceImplementation);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(endpoint, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
});

afterAll(async () => {
  server.forceShutdown();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  for (const key of Object.keys(seen)) delete seen[key as keyof typeof seen];
});

interface Captured {
  io: CliIo;
  out: () => string;
  err: () => string;
  interrupt: () => void;
}

function capture(env: Record<string, string> = {}): Captured {
  let out = '';
  let err = '';
  const controller = new AbortController();
  return {
    io: {
      stdout: (t) => void (out += t),
      stderr: (t) => void (err += t),
      env: { VMLET_ENDPOINT: endpoint, ...env },
      now: () => NOW,
      readFile: async (p) => (await import('node:fs/promises')).readFile(p, 'utf8'),
      interrupted: () => controller.signal,
    },
    out: () => out,
    err: () => err,
    interrupt: () => controller.abort(),
  };
}

describe('vmlet client verbs over a real gRPC channel', () => {
  it('get of an unknown VM prints the gRPC code and details and exits 1', async () => {
    const c = capture();
    const code = await getVerb.run(['nope'], c.io);
    expect(code).toBe(1);
    expect(c.err()).toBe('vmlet: NOT_FOUND: VM nope not found\n');
    expect(c.out()).toBe('');
  });

  it('get prints a key: value block with NICs from spec and status', async () => {
    const c = capture();
    expect(await getVerb.run(['web-1'], c.io)).toBe(0);
    const out = c.out();
    expect(out).toMatch(/^ID:\s+web-1$/m);
    expect(out).toMatch(/^Phase:\s+Running$/m);
    expect(out).toMatch(/^PID:\s+4242$/m);
    expect(out).toMatch(/^Created:\s+2025-01-01T11:55:00\.000Z \(5m ago\)$/m);
    expect(out).toMatch(/^ {2}eth0 {3}br0 {6}52:54:00:12:34:56 {3}vm-tap0$/m);
  });

  it('get -o json prints the message with enum names and RFC 3339 timestamps', async () => {
    const c = capture();
    expect(await runCli(['-o', 'json', 'get', 'web-1'], c.io)).toBe(0);
    const parsed = JSON.parse(c.out()) as { spec: { memoryMib: number }; status: { phase: string; createdAt: string; startedAt: null } };
    expect(parsed.status.phase).toBe('PHASE_RUNNING');
    expect(parsed.status.createdAt).toBe('2025-01-01T11:55:00Z');
    expect(parsed.status.startedAt).toBeNull();
    expect(parsed.spec.memoryMib).toBe(512);
  });

  it('ls sends the selector and prints an aligned table sorted by id', async () => {
    const c = capture();
    expect(await lsVerb.run(['-l', 'app=web'], c.io)).toBe(0);
    expect(seen.listSelector).toBe('app=web');
    expect(c.out()).toBe(
      [
        'ID      PHASE     VCPUS   MEMORY   PID    AGE   REASON',
        'db      Failed    2       512MiB   -      5m    QEMU exited: code 1',
        'web-1   Running   2       512MiB   4242   5m',
        '',
      ].join('\n'),
    );
  });

  it('create merges a snake_case YAML file with flags and sends start', async () => {
    const file = path.join(dir, 'spec.yaml');
    await writeFile(file, 'id: web-2\nvcpus: 1\nmemory_mib: 256\nkernel:\n  kernel_path: /img/vmlinuz\ndisks:\n  - name: root\n    image_path: /img/root.qcow2\n    overlay: true\n');
    const c = capture();
    const code = await runCli(['create', '-f', file, '--vcpus', '4', '--label', 'tier=front', '--start'], c.io);
    expect(c.err()).toBe('');
    expect(code).toBe(0);
    expect(seen.create?.start).toBe(true);
    expect(seen.create?.spec).toMatchObject({
      id: 'web-2',
      vcpus: 4,
      memoryMib: 256,
      labels: { tier: 'front' },
      kernel: { kernelPath: '/img/vmlinuz' },
      disks: [{ name: 'root', imagePath: '/img/root.qcow2', overlay: true, readonly: false }],
    });
    expect(c.out()).toBe('web-2 created and started: Running (pid 7)\n');
  });

  it('create of an id that exists says so: the same spec is no new VM', async () => {
    const c = capture();
    const code = await runCli(['create', '--id', 'web-1', '--vcpus', '2', '--memory', '512'], c.io);
    expect(c.err()).toBe('');
    expect(code).toBe(0);
    expect(seen.create?.spec?.id).toBe('web-1');
    expect(c.out()).toBe('web-1 already exists with this spec: Running (pid 4242)\n');
  });

  it('stop passes --grace and --force', async () => {
    const c = capture();
    expect(await runCli(['stop', 'web-1', '--grace', '5', '--force'], c.io)).toBe(0);
    expect(seen.stop).toMatchObject({ id: 'web-1', gracePeriodSeconds: 5, force: true });
    expect(c.out()).toBe('web-1 stopped: Stopped (stopped by request)\n');
  });

  it('watch prints one line per event until interrupted, then exits 0', async () => {
    const c = capture();
    const done = runCli(['watch', 'web-1', '-l', 'app=web'], c.io);
    await expect.poll(() => c.out().split('\n').length, { timeout: 5000 }).toBeGreaterThanOrEqual(4);
    c.interrupt();
    expect(await done).toBe(0);
    expect(seen.watch).toEqual({ id: 'web-1', labelSelector: 'app=web' });
    expect(c.out()).toBe(
      ['TYPE       ID             PHASE       REASON', 'ADDED      web-1          Running', 'MODIFIED   web-1          Stopped     guest powered off', ''].join('\n'),
    );
  });

  it('watch -o json prints one VmEvent object per line', async () => {
    const c = capture();
    const done = runCli(['watch', '-o', 'json'], c.io);
    await expect.poll(() => c.out().split('\n').length, { timeout: 5000 }).toBeGreaterThanOrEqual(3);
    c.interrupt();
    expect(await done).toBe(0);
    const lines = c.out().trim().split('\n').map((l) => JSON.parse(l) as { type: string; vm: { status: { phase: string } } });
    expect(lines.map((l) => [l.type, l.vm.status.phase])).toEqual([
      ['VM_EVENT_TYPE_ADDED', 'PHASE_RUNNING'],
      ['VM_EVENT_TYPE_MODIFIED', 'PHASE_STOPPED'],
    ]);
  });

  it('an unimplemented RPC is reported as a gRPC error', async () => {
    const c = capture();
    expect(await runCli(['pause', 'web-1'], c.io)).toBe(1);
    expect(c.err()).toMatch(/^vmlet: UNIMPLEMENTED: /);
  });

  it('a daemon that is not there is named, with what to do', async () => {
    const missing = `unix://${path.join(dir, 'missing.sock')}`;
    const c = capture();
    expect(await runCli(['ls', '--endpoint', missing], c.io)).toBe(1);
    expect(c.err()).toContain(`cannot reach the vmlet daemon at ${missing}`);
    expect(c.err()).toContain('vmlet daemon');
    expect(c.err()).toContain('--endpoint');
  });
});
