import { rm } from 'node:fs/promises';
import type { VmPaths } from '../model/vm.js';
import { isAlive } from '../host/process.js';
import type { Accelerator } from './accel.js';
import { tlsDirOf } from './stream-tls.js';
import { buildQemuArgv } from './argv.js';
import { isQemuOf, killHard, launchQemu, qemuLogTail } from './launcher.js';
import { QemuMachine } from './machine.js';
import { qemusUnder } from './orphans.js';
import { recoverStatus } from './recover.js';
import type { QmpPrefetch } from './qmp-prefetch.js';
import { QmpClient, qmpConnectTimeoutMs, type QmpConnectOptions } from './qmp.js';
import type { Spawner } from './spawner.js';
import type { DiskStatus, NicStatus, VmSpec, VmStatus } from '../model/vm.js';

const DEFAULT_QMP_TIMEOUT_FLOOR_MS = 5000;

export interface HypervisorOptions {
  binary: string;
  accelerator: Accelerator;
  spawner: Spawner;
  runDir: string;
  /** vhost=on for TAP netdevs (only when /dev/vhost-net really opens). */
  vhostNet: boolean;
  netns?: string;
  /** Called after every QMP command (metrics). */
  onQmpCommand?: (command: string, seconds: number, ok: boolean) => void;
  /** QMP connections opened before the daemon was ready to adopt (see qmp-prefetch.ts). */
  prefetched?: QmpPrefetch;
  /** Supplementary groups of an unprivileged QEMU (the group that may open /dev/kvm). */
  qemuGroups?: number[];
  /** The floor of each start's QMP deadline (`--start-timeout-seconds`). */
  qmpTimeoutFloorMs?: number;
}

/** What a QEMU is started with (the domain's LaunchRequest). */
export interface QemuLaunch {
  spec: VmSpec;
  paths: VmPaths;
  disks: DiskStatus[];
  nics: NicStatus[];
  pciPorts: number;
  nicPorts: Readonly<Record<string, number>>;
  incoming?: boolean;
  owner?: { uid: number; gid: number };
}

/** QEMU processes of this node: started detached through the spawn helper, driven over QMP. */
export class QemuHypervisor {
  constructor(private readonly o: HypervisorOptions) {}

  get accelerator(): Accelerator {
    return this.o.accelerator;
  }

  private qmpOptions(memoryMib = 0): QmpConnectOptions {
    return { connectTimeoutMs: qmpConnectTimeoutMs(this.o.qmpTimeoutFloorMs ?? DEFAULT_QMP_TIMEOUT_FLOOR_MS, memoryMib), onCommandDone: this.o.onQmpCommand };
  }

  async launch(r: QemuLaunch): Promise<QemuMachine> {
    const argv = buildQemuArgv({
      spec: r.spec,
      paths: r.paths,
      accelerator: this.o.accelerator,
      disks: r.disks,
      nics: r.nics,
      vhostNet: this.o.vhostNet,
      startPaused: true,
      incoming: r.incoming === true,
      hotplugPorts: r.pciPorts,
      nicPorts: r.nicPorts,
    });
    const runAs = r.owner ? { ...r.owner, groups: this.o.qemuGroups ?? [] } : undefined;
    const launched = await launchQemu({ binary: this.o.binary, argv, paths: r.paths, netns: this.o.netns, spawner: this.o.spawner, qmp: this.qmpOptions(r.spec.memoryMib), ...(runAs ? { runAs } : {}) });
    return new QemuMachine(launched.pid, launched.qmp, r.paths, this.o.vhostNet);
  }

  /**
   * Connected with the handshake under way: the caller's first query goes out right behind it.
   * A connection the daemon opened at its start is taken over, with the run state QEMU gave it.
   */
  async adopt(pid: number, paths: VmPaths): Promise<QemuMachine> {
    const early = await this.o.prefetched?.take(paths.qmpSocket);
    if (early?.client.closed) {
      // A handshake that failed says why; one that worked and closed since is tried again.
      await early.client.ready;
      return this.adopt(pid, paths);
    }
    const qmp = early?.client ?? (await QmpClient.open(paths.qmpSocket, this.qmpOptions()));
    qmp.ready.catch(() => undefined);
    return new QemuMachine(pid, qmp, paths, this.o.vhostNet, early?.runState);
  }

  isQemuOf(pid: number, id: string): Promise<boolean> {
    return isQemuOf(pid, id);
  }

  isAlive(pid: number): Promise<boolean> {
    return isAlive(pid);
  }

  kill(pid: number): Promise<void> {
    return killHard(pid);
  }

  logTail(paths: VmPaths, maxBytes: number): Promise<string> {
    return qemuLogTail(paths, maxBytes);
  }

  recover(pid: number, spec: VmSpec): Promise<Partial<VmStatus>> {
    return recoverStatus(pid, spec);
  }

  running(): Promise<{ pid: number; id: string }[]> {
    return qemusUnder(this.o.runDir);
  }

  async clearRunFiles(paths: VmPaths): Promise<void> {
    await Promise.all([paths.qmpSocket, paths.serialSocket, paths.migrationSocket, paths.guestAgentSocket, paths.pidFile].map((f) => rm(f, { force: true })));
    await rm(tlsDirOf(paths.runDir), { recursive: true, force: true });
  }
}
