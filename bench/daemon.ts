import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { connectClients, unary, type VmletClients } from '../src/api/grpc/client.js';
import type { ListVmsRequest } from '../src/api/grpc/generated/vmlet/v1/ListVmsRequest.js';
import type { ListVmsResponse__Output } from '../src/api/grpc/generated/vmlet/v1/ListVmsResponse.js';
import type { NodeInfo__Output } from '../src/api/grpc/generated/vmlet/v1/NodeInfo.js';
import { settlesWithin } from './util.js';
import { joinTopCgroup, leaveTopCgroup, removeCgroupTree } from './cgroups.js';

export interface DaemonOptions {
  repo: string;
  /** Holds state/, run/ (unless runDir says otherwise) and daemon.log; the caller removes it. */
  root: string;
  /** --run-dir, e.g. on a tmpfs (see runtime-dir.ts); the caller removes it. Default <root>/run. */
  runDir?: string;
  qemuBinary: string;
  /** Image roots besides <repo>/.guest. */
  imageRoots?: string[];
  /** Put imageRoots before .guest, so the image store (under the first root) is the benchmark's. */
  imageRootsFirst?: boolean;
  /** Serve /metrics on a loopback port (see httpAddress()). Default false. */
  http?: boolean;
  extraArgs?: string[];
  /** A top-level cgroup the daemon runs in (see joinTopCgroup); removed when it is stopped. */
  ownCgroup?: string;
}

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;

/** The --cgroup-parent the options name, else one of the daemon's own. */
function cgroupParentOf(options: DaemonOptions): string {
  const args = options.extraArgs ?? [];
  const i = args.indexOf('--cgroup-parent');
  return i >= 0 ? args[i + 1]! : `vmlet-bench-${basename(options.root)}.slice`;
}

/** A real `vmlet daemon` process (the built CLI) with its own state and run dirs, spoken to over gRPC on a unix socket. */
export class BenchDaemon {
  readonly clients: VmletClients;
  readonly exited: Promise<number | null>;
  private exitCode: number | null | undefined;

  private constructor(
    readonly options: DaemonOptions,
    readonly child: ChildProcess,
  ) {
    this.clients = connectClients({ endpoint: this.socket });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve((this.exitCode = code))));
  }

  get stateDir(): string {
    return join(this.options.root, 'state');
  }
  get runDir(): string {
    return this.options.runDir ?? join(this.options.root, 'run');
  }
  get socket(): string {
    return `unix://${join(this.runDir, 'vmlet.sock')}`;
  }
  get logFile(): string {
    return join(this.options.root, 'daemon.log');
  }
  /** The daemon's cgroup parent: its own unless the options name one, so two daemons of a benchmark never share VM cells. */
  get cgroupParent(): string {
    return cgroupParentOf(this.options);
  }
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Starts the daemon and resolves once GetNodeInfo answers. */
  static async start(options: DaemonOptions): Promise<BenchDaemon> {
    const cli = join(options.repo, 'dist/vmlet/main.js');
    if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first`);
    await mkdir(options.root, { recursive: true });
    const args = [
      // Node/V8 flags for an investigation, e.g. VMLET_BENCH_NODE_ARGS='--trace-gc'.
      ...(process.env.VMLET_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      cli,
      'daemon',
      '--state-dir', join(options.root, 'state'),
      '--run-dir', options.runDir ?? join(options.root, 'run'),
      '--grpc-listen', `unix://${join(options.runDir ?? join(options.root, 'run'), 'vmlet.sock')}`,
      '--http-listen', options.http ? '127.0.0.1:0' : '',
      ...(options.imageRootsFirst ? (options.imageRoots ?? []).flatMap((r) => ['--image-root', r]) : []),
      '--image-root', join(options.repo, '.guest'),
      ...(options.imageRootsFirst ? [] : (options.imageRoots ?? []).flatMap((r) => ['--image-root', r])),
      '--qemu', options.qemuBinary,
      // The daemon's own choice, as in production; VMLET_BENCH_ACCEL=tcg where a nested /dev/kvm
      // passes the probe but hangs guests that a benchmark needs booted.
      '--accel', process.env.VMLET_BENCH_ACCEL ?? 'auto',
      ...(options.extraArgs?.includes('--cgroup-parent') ? [] : ['--cgroup-parent', cgroupParentOf(options)]),
      ...(options.extraArgs ?? []),
      // Extra daemon flags for a comparison run, e.g. VMLET_BENCH_DAEMON_ARGS='--qemu-user root'.
      ...(process.env.VMLET_BENCH_DAEMON_ARGS?.split(' ').filter(Boolean) ?? []),
    ];
    // The log goes straight to a file: the measuring process does not read it while measuring.
    const log = await open(join(options.root, 'daemon.log'), 'a');
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, args, { stdio: ['ignore', log.fd, log.fd] });
    } finally {
      await log.close();
    }
    const daemon = new BenchDaemon(options, child);
    if (options.ownCgroup && child.pid) {
      try {
        await joinTopCgroup(child.pid, options.ownCgroup);
      } catch (err) {
        await daemon.stop();
        throw err;
      }
    }
    try {
      await daemon.waitReady();
    } catch (err) {
      await daemon.stop();
      throw err;
    }
    return daemon;
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (this.exitCode !== undefined) throw new Error(`vmlet daemon exited with ${this.exitCode} during start: ${await this.logTail()}`);
      try {
        await this.nodeInfo(1000);
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`vmlet daemon not ready within ${READY_TIMEOUT_MS} ms: ${await this.logTail()}`);
        await delay(50);
      }
    }
  }

  nodeInfo(timeoutMs = 10_000): Promise<NodeInfo__Output> {
    return unary(this.clients.vms.getNodeInfo.bind(this.clients.vms), {}, { deadline: Date.now() + timeoutMs });
  }

  /** `http://127.0.0.1:PORT` of /metrics, read from the daemon's log (only with options.http). */
  async httpAddress(timeoutMs = 10_000): Promise<string> {
    if (!this.options.http) throw new Error('the daemon was started without HTTP');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = /"address":"(http:\/\/[^"]+)"/.exec(await readFile(this.logFile, 'utf8'));
      if (m?.[1]) return m[1];
      if (Date.now() > deadline) throw new Error(`the daemon logged no HTTP address within ${timeoutMs} ms`);
      await delay(20);
    }
  }

  /** Force-deletes every VM the daemon knows; used by cleanup (guests outlive a stopped daemon). */
  async deleteAllVms(): Promise<void> {
    if (this.exitCode !== undefined) return;
    const vms = this.clients.vms;
    const { vms: list } = await unary<ListVmsRequest, ListVmsResponse__Output>(vms.listVms.bind(vms), {}, { deadline: Date.now() + 10_000 });
    for (const vm of list) {
      const id = vm.spec?.id;
      if (id) await unary(vms.deleteVm.bind(vms), { id, force: true }, { deadline: Date.now() + 30_000 });
    }
  }

  /** SIGTERM and wait; SIGKILL if it does not go. Idempotent. */
  async stop(): Promise<void> {
    this.clients.close();
    if (this.exitCode !== undefined) return;
    this.child.kill('SIGTERM');
    if (!(await settlesWithin(this.exited, STOP_TIMEOUT_MS))) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
    // Cells of guests that are gone; a cell whose QEMU still runs stays (removal refuses it).
    await removeCgroupTree(this.cgroupParent).catch(() => undefined);
    if (this.options.ownCgroup) await leaveTopCgroup(this.options.ownCgroup).catch(() => undefined);
  }

  /** Everything the daemon logged so far (JSON lines). */
  logText(): Promise<string> {
    return readFile(this.logFile, 'utf8').catch(() => '');
  }

  async logTail(maxBytes = 2000): Promise<string> {
    return (await this.logText()).slice(-maxBytes).trim() || '(no output)';
  }
}
