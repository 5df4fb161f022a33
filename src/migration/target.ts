import { VmletError, failedPrecondition } from '../model/errors.js';
import type { DiskExport } from '../model/machine.js';
import { freePort } from '../host/free-port.js';
import type { VmManager, VmRecord } from '../vm/manager.js';
import { validateSpec } from '../vm/validate.js';
import { runPlan, type Step } from '../vm/plan.js';
import { launchSteps, type Launch } from '../vm/ops/launch.js';
import { checkBridges, checkCapacity, checkMacsFree } from '../vm/ops/checks.js';
import { FORCE, retire } from '../vm/ops/delete.js';
import type { IncomingReady, PrepareIncoming } from './ports.js';

/** How long the target waits for its QEMU to report the incoming migration complete. */
const COMPLETE_TIMEOUT_MS = 60_000;

/** An incoming VM being prepared: a start's launch, with the stream's endpoints. */
interface Arrival extends Launch {
  request: PrepareIncoming;
  host: string;
  exports: DiskExport[];
  uri: string;
}

const formatHost = (host: string): string => (host.includes(':') ? `[${host}]` : host);

/** After the launch: QEMU set up to receive, disks exported, the stream's address known. */
const receiveSteps: readonly Step<Arrival>[] = [
  { name: 'connect', run: (a) => a.machine!.ready() },
  { name: 'set capabilities', run: (a) => a.machine!.setMigrationCapabilities({ events: true, postcopyRam: a.request.allowPostCopy }) },
  {
    name: 'export disks',
    async run(a) {
      if (a.request.mirroredDisks.length) a.exports = await a.machine!.exportDisks(a.host, await freePort(a.host), a.request.mirroredDisks);
    },
  },
  {
    name: 'listen',
    async run(a) {
      a.uri = `tcp:${formatHost(a.host)}:${await freePort(a.host)}`;
      await a.machine!.listenForMigration(a.uri);
    },
  },
];

/**
 * The target side: prepares an Incoming VM (checks, overlays, TAPs, QEMU waiting for the stream,
 * NBD exports for mirrored disks), then runs it only when the source says so.
 */
export class IncomingMigrations {
  constructor(
    private readonly m: VmManager,
    /** The address QEMU listens on for migration and NBD streams. */
    private readonly listenHost: () => string | undefined,
  ) {}

  async prepare(req: PrepareIncoming): Promise<IncomingReady> {
    const host = this.listenHost();
    if (!host) throw failedPrecondition('this node has no TCP gRPC listener, so no address to receive migrations on (--grpc-listen HOST:PORT or --migration-address)');
    const spec = validateSpec(req.spec);
    if (this.m.has(spec.id)) {
      const prepared = this.m.record(spec.id).status.migration?.uid === req.uid;
      throw new VmletError('ALREADY_EXISTS', `VM ${spec.id} already exists on this node${prepared ? ' (this migration was already prepared)' : ''}`);
    }
    const env = this.m.env;
    // Everything that can be refused is checked before anything is made.
    checkCapacity(env, spec);
    checkMacsFree(env, spec.id, spec.nics);
    await checkBridges(env, spec.nics);
    const wiring = req.nics.map((plugged) => {
      const nic = spec.nics.find((n) => n.name === plugged.name);
      if (!nic) throw new VmletError('INVALID_ARGUMENT', `nics: ${plugged.name} is not in the spec`);
      return { nic: { ...nic, mac: plugged.mac }, port: plugged.port ?? 0 };
    });

    const paths = env.store.paths(spec.id);
    const status = this.m.newStatus('Incoming', `incoming migration from ${req.sourceNode}`);
    status.migration = { uid: req.uid, role: 'target', peer: req.sourceNode };
    try {
      status.disks = await env.storage.prepareDisks(spec, paths);
    } catch (err) {
      await env.store.remove(spec.id).catch(() => undefined);
      throw err;
    }
    const record = await this.m.registerIncoming(spec, status).catch(async (err: unknown) => {
      await env.store.remove(spec.id).catch(() => undefined);
      throw err;
    });
    const arrival: Arrival = { env, record, wiring, pciPorts: req.pciPorts, incoming: true, nics: [], request: req, host, exports: [], uri: '' };
    try {
      await runPlan([...launchSteps, ...receiveSteps], arrival, record.log);
    } catch (err) {
      await this.discard(record, `prepare failed: ${(err as Error).message}`);
      throw err;
    }
    record.log.info({ uri: arrival.uri, from: req.sourceNode, uid: req.uid }, 'waiting for incoming migration');
    return { migrationUri: arrival.uri, exports: arrival.exports };
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
      const machine = record.machine;
      if (!machine) throw new VmletError('UNAVAILABLE', `the incoming QEMU of VM ${id} is gone; the migration cannot finish here`);
      await machine.incomingComplete(COMPLETE_TIMEOUT_MS);
      await machine.stopExports();
      if (resume) await machine.run();
      this.m.transition(record, resume ? 'Running' : 'Paused', `migrated from ${marker.peer}`, {
        migration: undefined,
        startedAt: this.m.env.clock.now().toISOString(),
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
    await retire(this.m.env, record, reason, FORCE);
  }
}
