import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, mkdir } from 'node:fs/promises';
import { cgroupRemounts, NETNS_CGROUPS, removeCgroupTree } from './cgroups.js';
import { createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { connectClients, unary, type VmletClients } from '../../src/api/grpc/client.js';

export const REPO = resolve(import.meta.dirname, '../..');
export const GUEST_DIR = join(REPO, '.guest');
export const CLI = join(REPO, 'dist/vmlet/main.js');

export interface DaemonOptions {
  extraArgs?: string[];
  /** Reuse the dirs of an earlier daemon (restart tests). */
  dirs?: { root: string };
  env?: NodeJS.ProcessEnv;
  /** Run the daemon process itself inside this network namespace (a "node" of a multi-node test). */
  netns?: string;
  /** The test's own images dir is the first image root (where the image store lives), before .guest. */
  imagesFirst?: boolean;
}

/**
 * A temp dir that unprivileged QEMUs may pass through and read (images, fake binaries); mkdtemp's
 * own dirs are 0700.
 */
export async function tempDirForQemu(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await chmod(dir, 0o755);
  return dir;
}

/**
 * A real `vmlet daemon` process (the built CLI) with its own state dir, run dir and unix socket.
 * Logs go to <root>/daemon-N.log for post-mortems.
 */
export class TestDaemon {
  child?: ChildProcess;
  clients!: VmletClients;
  exited?: Promise<number | null>;
  private starts = 0;
  httpAddress = '';

  private constructor(
    readonly root: string,
    readonly options: DaemonOptions,
  ) {}

  get stateDir(): string {
    return join(this.root, 'state');
  }
  get runDir(): string {
    return join(this.root, 'run');
  }
  /** Each test daemon keeps its VMs' cgroups apart from any other daemon's (two-node tests share a host). */
  get cgroupParent(): string {
    return `${basename(this.root)}.slice`;
  }
  get socket(): string {
    return `unix://${join(this.runDir, 'vmlet.sock')}`;
  }

  static async start(options: DaemonOptions = {}): Promise<TestDaemon> {
    const root = options.dirs?.root ?? (await tempDirForQemu('vmlet-e2e-'));
    const d = new TestDaemon(root, options);
    await d.spawn();
    return d;
  }

  args(): string[] {
    return [
      'daemon',
      '--state-dir', this.stateDir,
      '--run-dir', this.runDir,
      '--grpc-listen', this.socket,
      '--http-listen', '127.0.0.1:0',
      ...(this.options.imagesFirst ? ['--image-root', join(this.root, 'images'), '--image-root', GUEST_DIR] : ['--image-root', GUEST_DIR, '--image-root', join(this.root, 'images')]),
      '--stop-grace-seconds', '20',
      // The e2e guests are TCG guests: a nested /dev/kvm can pass vmlet's probe and still hang a
      // Linux guest. VMLET_TEST_ACCEL=auto tests the probe's choice instead.
      '--accel', process.env.VMLET_TEST_ACCEL ?? 'tcg',
      '--cgroup-parent', this.cgroupParent,
      ...(this.options.extraArgs ?? []),
    ];
  }

  /** Starts the daemon process; unless `waitReady` is false, resolves once it answers gRPC (and says its HTTP address). */
  async spawn(waitReady = true): Promise<void> {
    this.httpAddress = '';
    await mkdir(join(this.root, 'images'), { recursive: true });
    const log = createWriteStream(join(this.root, `daemon-${++this.starts}.log`));
    const argv = [process.execPath, CLI, ...this.args()];
    const [cmd, ...args] = this.options.netns ? ['ip', 'netns', 'exec', this.options.netns, 'sh', NETNS_CGROUPS, ...(await cgroupRemounts()), '--', ...argv] : argv;
    const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.options.env } });
    this.child = child;
    this.exited = new Promise((res) => child.once('exit', (code) => res(code)));
    let stdout = '';
    const httpSeen = new Promise<void>((res) => {
      child.stdout!.on('data', (b: Buffer) => {
        log.write(b);
        stdout += b.toString();
        const m = /"address":"(https?:\/\/[^"]+)"/.exec(stdout);
        if (m && !this.httpAddress) {
          this.httpAddress = m[1]!;
          res();
        }
      });
    });
    child.stderr!.on('data', (b: Buffer) => log.write(b));
    this.clients = connectClients({ endpoint: this.socket });
    if (!waitReady) return;
    await this.waitReady(child);
    await Promise.race([httpSeen, delay(10_000)]);
  }

  private async waitReady(child: ChildProcess): Promise<void> {
    const deadline = Date.now() + 60_000;
    let exitCode: number | null | undefined;
    void this.exited!.then((c) => (exitCode = c));
    for (;;) {
      if (exitCode !== undefined) {
        // The log's end says why; the test dir (and the log) may be gone by the time anyone looks.
        const logFile = `${this.root}/daemon-${this.starts}.log`;
        const tail = (await readFile(logFile, 'utf8').catch(() => '')).slice(-1500);
        throw new Error(`daemon exited with ${exitCode} during start; the end of ${logFile}:\n${tail}`);
      }
      try {
        await unary(this.clients.vms.getNodeInfo.bind(this.clients.vms), {}, { deadline: Date.now() + 1000 });
        return;
      } catch {
        if (Date.now() > deadline) {
          child.kill('SIGKILL');
          throw new Error(`daemon not ready within 60 s; see ${this.root}/daemon-${this.starts}.log`);
        }
        await delay(50);
      }
    }
  }

  /** SIGTERM and wait: the daemon's clean stop (guests keep running). */
  async stop(): Promise<number | null> {
    if (this.child && this.child.exitCode === null) {
      this.child.kill('SIGTERM');
      await this.exited;
    }
    // Only now: closing the channel earlier would race the statuses the daemon sends its streams as it stops.
    this.clients.close();
    return this.child?.exitCode ?? null;
  }

  /** kill -9: the daemon gets no chance to clean up. */
  async kill9(): Promise<void> {
    this.clients.close();
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  async restart(waitReady = true): Promise<void> {
    await this.spawn(waitReady);
  }

  /** Force-deletes every VM the daemon still has (a failed test must not leave guests running), stops it, removes the temp dir. */
  async cleanup(): Promise<void> {
    if (this.child && this.child.exitCode === null) {
      const v = this.clients.vms;
      try {
        const { vms } = await unary<{ labelSelector: string }, { vms: { spec?: { id: string } | null }[] }>(v.listVms.bind(v), { labelSelector: '' }, { deadline: Date.now() + 10_000 });
        await Promise.all(vms.map((vm) => unary(v.deleteVm.bind(v), { id: vm.spec!.id, force: true }, { deadline: Date.now() + 60_000 }).catch(() => undefined)));
      } catch {
        // the daemon is not answering: nothing more to do here
      }
    }
    await this.stop();
    await removeCgroupTree(this.cgroupParent);
    // VMLET_KEEP_TEST_DIRS=1 keeps state, run dirs and daemon logs for post-mortems.
    if (!process.env.VMLET_KEEP_TEST_DIRS) await rm(this.root, { recursive: true, force: true });
  }
}
