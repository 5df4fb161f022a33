import { VmletError, failedPrecondition } from '../model/errors.js';
import type { VmManager, VmRecord } from '../vm/manager.js';
import { validateSpec } from '../vm/validate.js';
import { prepareDisks } from '../vm/disks.js';
import { wireNic, unwireNics } from '../net/wiring.js';
import { buildQemuArgv, diskNodeName } from '../qemu/argv.js';
import { killHard, launchQemu } from '../qemu/launcher.js';
import { isAlive } from '../host/process.js';
import type { NicStatus, VmSpec } from '../model/vm.js';
import { freePort } from './free-port.js';

export interface PrepareRequest {
  uid: string;
  spec: VmSpec;
  nics: NicStatus[];
  pciPorts: number;
  mirroredDisks: string[];
  sourceNode: string;
  allowPostCopy: boolean;
}

export interface PrepareResult {
  migrationUri: string;
  exports: { disk: string; host: string; port: number; name: string }[];
}

/** How long the target waits for its QEMU to report the incoming migration complete. */
const COMPLETE_TIMEOUT_MS = 60_000;

/**
 * The target side: prepares an Incoming VM (checks, TAPs, overlays, QEMU with -incoming defer,
 * NBD exports for mirrored disks), then runs it only when the source says so.
 */
export class IncomingMigrations {
  constructor(
    private readonly m: VmManager,
    /** The address QEMU listens on for migration and NBD streams. */
    private readonly listenHost: () => string | undefined,
  ) {}

  async prepare(req: PrepareRequest): Promise<PrepareResult> {
    const host = this.listenHost();
    if (!host) throw failedPrecondition('this node has no TCP gRPC listener, so no address to receive migrations on (--grpc-listen HOST:PORT or --migration-address)');
    const spec = validateSpec(req.spec);
    const existing = this.m.has(spec.id) ? this.m.record(spec.id) : undefined;
    if (existing) {
      throw new VmletError('ALREADY_EXISTS', `VM ${spec.id} already exists on this node${existing.status.migration?.uid === req.uid ? ' (this migration was already prepared)' : ''}`);
    }
    // Everything that can be refused is checked before anything is made.
    this.m.checkCapacityFor({ spec } as VmRecord);
    this.m.checkMacsFree(spec.id, spec.nics);
    await this.m.checkBridges(spec.nics);

    const paths = this.m.options.store.paths(spec.id);
    const status = this.m.newStatus('Incoming', `incoming migration from ${req.sourceNode}`);
    status.migration = { uid: req.uid, role: 'target', peer: req.sourceNode };
    let disksMade = false;
    let record: VmRecord | undefined;
    const nics: NicStatus[] = [];
    let pid = 0;
    try {
      status.disks = await prepareDisks(spec, paths, this.m.options);
      disksMade = true;
      record = await this.m.insertIncoming(spec, status);
      for (const nic of req.nics) {
        const nicSpec = spec.nics.find((n) => n.name === nic.name);
        if (!nicSpec) throw new VmletError('INVALID_ARGUMENT', `nics: ${nic.name} is not in the spec`);
        nics.push(await wireNic(this.m.options.ip, { ...nicSpec, mac: nic.mac }, nic.port ?? 0, { vmId: spec.id, vcpus: spec.vcpus, taken: this.m.tapsInUse() }));
      }
      const argv = buildQemuArgv({
        spec,
        paths,
        accelerator: this.m.options.accelerator,
        disks: status.disks,
        nics,
        vhostNet: this.m.options.vhostNet ?? false,
        // -S as well: after the stream completes the guest stays paused until FinishIncoming.
        startPaused: true,
        incoming: true,
        hotplugPorts: req.pciPorts,
        nicPorts: Object.fromEntries(nics.map((n) => [n.name, n.port ?? 0])),
      });
      const o = this.m.options;
      const launched = await launchQemu({ binary: o.qemuBinary, argv, paths, netns: o.netns, spawner: o.spawner, qmp: this.m.lifecycle.qmpOptions() });
      pid = launched.pid;
      const { qmp } = await this.m.lifecycle.attachStarted(record, launched);
      this.m.update(record, { pid, nics, pciPorts: req.pciPorts, accelerator: o.accelerator });
      await qmp.execute('migrate-set-capabilities', {
        capabilities: [
          { capability: 'events', state: true },
          { capability: 'postcopy-ram', state: req.allowPostCopy },
        ],
      });
      const exports: PrepareResult['exports'] = [];
      if (req.mirroredDisks.length) {
        const nbdPort = await freePort(host);
        await qmp.execute('nbd-server-start', { addr: { type: 'inet', data: { host, port: String(nbdPort) } } });
        for (const disk of req.mirroredDisks) {
          await qmp.execute('block-export-add', { type: 'nbd', id: `mig-${disk}`, 'node-name': diskNodeName(disk), name: disk, writable: true });
          exports.push({ disk, host, port: nbdPort, name: disk });
        }
      }
      const port = await freePort(host);
      const uri = `tcp:${host.includes(':') ? `[${host}]` : host}:${port}`;
      await qmp.execute('migrate-incoming', { uri });
      record.log.info({ uri, from: req.sourceNode, uid: req.uid }, 'waiting for incoming migration');
      return { migrationUri: uri, exports };
    } catch (err) {
      if (record) {
        await this.discard(record, `prepare failed: ${(err as Error).message}`);
      } else {
        if (pid) await killHard(pid).catch(() => undefined);
        await unwireNics(this.m.options.ip, nics).catch(() => undefined);
        if (disksMade) await this.m.options.store.remove(spec.id).catch(() => undefined);
      }
      throw err;
    }
  }

  /** The source confirmed completion: wait for the stream to be complete, stop NBD, run (or keep paused). */
  async finish(uid: string, id: string, resume: boolean): Promise<VmRecord> {
    const record = this.m.record(id);
    return record.queue.run(async () => {
      const marker = record.status.migration;
      if (!marker || marker.role !== 'target' || marker.uid !== uid) {
        if (record.status.phase === 'Running' || record.status.phase === 'Paused') return record; // already finished
        throw failedPrecondition(`VM ${id} is not receiving migration ${uid}`);
      }
      const qmp = record.instance?.qmp;
      if (!qmp) throw new VmletError('UNAVAILABLE', `the incoming QEMU of VM ${id} is gone; the migration cannot finish here`);
      await waitForIncomingComplete(qmp, COMPLETE_TIMEOUT_MS);
      await qmp.execute('nbd-server-stop').catch(() => undefined);
      if (resume) await qmp.execute('cont');
      this.m.setPhase(record, resume ? 'Running' : 'Paused', `migrated from ${marker.peer}`, {
        migration: undefined,
        startedAt: new Date().toISOString(),
      });
      return record;
    });
  }

  /** The source gave up: every trace of the incoming VM goes. Refused once the guest runs here. */
  async abort(uid: string, id: string, reason: string): Promise<void> {
    if (!this.m.has(id)) return;
    const record = this.m.record(id);
    await record.queue.run(async () => {
      const marker = record.status.migration;
      if (!marker || marker.role !== 'target' || marker.uid !== uid) {
        if (!this.m.has(id)) return;
        throw failedPrecondition(`VM ${id} already runs on this node (migration ${uid} finished); it cannot be aborted`);
      }
      await this.discard(record, reason);
    });
  }

  /** Kills the incoming QEMU and removes TAPs, overlays and state. */
  async discard(record: VmRecord, reason: string): Promise<void> {
    record.log.info({ reason }, 'discarding incoming VM');
    const pid = record.instance?.pid ?? record.status.pid;
    record.instance?.detach();
    record.instance = undefined;
    if (pid && (await isAlive(pid))) await killHard(pid);
    await this.m.lifecycle.cleanupHost(record, record.status.nics);
    this.m.update(record, { phase: 'Deleting', reason, pid: 0, nics: [] });
    await this.m.removeEverything(record);
  }
}

interface QmpLike {
  execute<T>(command: string, args?: Record<string, unknown>): Promise<T>;
  waitForEvent(name: string, o: { timeoutMs?: number; predicate?: (e: { data: Record<string, unknown> }) => boolean }): Promise<unknown>;
}

async function waitForIncomingComplete(qmp: QmpLike, timeoutMs: number): Promise<void> {
  const event = qmp.waitForEvent('MIGRATION', { timeoutMs, predicate: (e) => e.data.status === 'completed' || e.data.status === 'failed' });
  event.catch(() => undefined);
  const { status } = await qmp.execute<{ status?: string }>('query-migrate');
  if (status === 'completed') return;
  if (status === 'failed') throw new VmletError('ABORTED', 'the incoming migration failed on the target');
  const e = (await event) as { data: { status: string } };
  if (e.data.status !== 'completed') throw new VmletError('ABORTED', 'the incoming migration failed on the target');
}
