import { VmletError, failedPrecondition, invalidArgument } from '../model/errors.js';
import type { DiskExport, TlsFiles } from '../model/machine.js';
import type { MigrationMarker, VmSpec } from '../model/vm.js';
import { freePort } from '../host/free-port.js';
import { openStreamGate, qemuStreamOpening, tlsOpening, type StreamGate } from '../host/stream-gate.js';
import type { VmManager, VmRecord } from '../vm/manager.js';
import { validateSpec } from '../vm/validate.js';
import { runPlan, type Step } from '../vm/plan.js';
import { launchSteps, settleCell, type Launch } from '../vm/ops/launch.js';
import { admit } from '../vm/ops/start.js';
import { followGuest } from '../vm/ops/guest-info.js';
import { checkBridges, checkCapacity, checkMacsFree } from '../vm/ops/checks.js';
import { FORCE, retire } from '../vm/ops/delete.js';
import { ownerOf } from '../vm/ops/owner.js';
import { EFI_VARS_MIRROR } from '../model/qemu-ids.js';
import type { IncomingReady, PrepareIncoming } from './ports.js';

/** How long the target waits for its QEMU to report the incoming migration complete. */
const COMPLETE_TIMEOUT_MS = 60_000;

/** How long an incoming VM waits for its stream to begin (and is checked again while it flows). */
export const DEFAULT_INCOMING_TIMEOUT_MS = 10 * 60_000;

export interface IncomingOptions {
  /** The node's certificate: the streams run over TLS, open only to the source. Absent: plaintext. */
  streamTls?: TlsFiles;
  incomingTimeoutMs?: number;
}

/** An incoming VM being prepared: a start's launch, with the stream's endpoints. */
interface Arrival extends Launch {
  request: PrepareIncoming;
  host: string;
  exports: DiskExport[];
  uri: string;
  tls: TlsFiles | undefined;
  gate?: StreamGate;
}

/** How long a connection to the migration port may stay silent before the gate drops it. */
const OPENING_TIMEOUT_MS = 5_000;

const formatHost = (host: string): string => (host.includes(':') ? `[${host}]` : host);

/** After the launch: QEMU set up to receive, disks exported, the stream's address known. */
const receiveSteps: readonly Step<Arrival>[] = [
  { name: 'connect', run: (a) => a.machine!.ready() },
  { name: 'set capabilities', run: (a) => a.machine!.setMigrationCapabilities({ events: true, postcopyRam: a.request.allowPostCopy }) },
  {
    name: 'secure streams',
    async run(a) {
      if (!a.tls) return;
      await a.machine!.secureStreams({ role: 'server', files: a.tls, peerSubjects: a.request.sourceSubjects ?? [] }, ownerOf(a.record.status));
    },
  },
  {
    name: 'export disks',
    async run(a) {
      if (a.request.mirroredDisks.length) a.exports = await a.machine!.exportDisks(a.host, await freePort(a.host), a.request.mirroredDisks);
    },
  },
  {
    // QEMU listens on a unix socket in its run dir; vmlet's gate on the node's address lets
    // through only the source's address and only a connection that opens the expected stream.
    name: 'listen',
    async run(a) {
      const upstream = a.record.paths.migrationSocket;
      await a.machine!.listenForMigration(`unix:${upstream}`);
      const log = a.record.log;
      a.gate = await openStreamGate({
        host: a.host,
        port: await freePort(a.host),
        allowFrom: a.request.sourceAddress ? [a.request.sourceAddress] : ['127.0.0.1', '::1'],
        upstream,
        opening: a.tls ? tlsOpening : qemuStreamOpening,
        openingTimeoutMs: OPENING_TIMEOUT_MS,
        onRefused: (remote, reason) => log.warn({ remote, reason }, 'refused a connection to the migration port'),
      });
      a.uri = `tcp:${formatHost(a.host)}:${a.gate.port}`;
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
    private readonly options: IncomingOptions = {},
  ) {}

  /** The open migration ports, by VM id, until the stream is complete or the VM discarded. */
  private readonly gates = new Map<string, StreamGate>();

  private async closeGate(id: string): Promise<void> {
    const gate = this.gates.get(id);
    this.gates.delete(id);
    await gate?.close();
  }

  async prepare(req: PrepareIncoming): Promise<IncomingReady> {
    const host = this.listenHost();
    if (!host) throw failedPrecondition('this node has no TCP gRPC listener, so no address to receive migrations on (--grpc-listen HOST:PORT or --migration-address)');
    const tls = this.options.streamTls;
    if (tls && !req.sourceSubjects?.length) {
      throw failedPrecondition('this node encrypts migration streams and lets in only the source node, but the caller presented no client certificate');
    }
    const spec = validateSpec(req.spec);
    checkMirroredDisks(spec, req.mirroredDisks);
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
    status.migration = { uid: req.uid, role: 'target', peer: req.sourceNode, ...(req.sourceSubjects?.length ? { peerSubjects: req.sourceSubjects } : {}) };
    try {
      status.disks = await env.storage.prepareDisks(spec, paths);
      // A fresh variables store: the source mirrors its own into it (mirrorEfiVars).
      await env.storage.prepareVmFiles(spec, paths);
    } catch (err) {
      await env.store.remove(spec.id).catch(() => undefined);
      throw err;
    }
    const record = await this.m.registerIncoming(spec, status).catch(async (err: unknown) => {
      await env.store.remove(spec.id).catch(() => undefined);
      throw err;
    });
    const arrival: Arrival = { env, record, wiring, pciPorts: req.pciPorts, incoming: true, nics: [], request: req, host, exports: [], uri: '', tls };
    const release = await admit(env, record);
    try {
      await runPlan([...launchSteps, settleCell, ...receiveSteps], arrival, record.log);
      if (arrival.gate) this.gates.set(record.id, arrival.gate);
    } catch (err) {
      await arrival.gate?.close();
      await this.discard(record, `prepare failed: ${(err as Error).message}`);
      throw err;
    } finally {
      release();
    }
    record.log.info({ uri: arrival.uri, from: req.sourceNode, uid: req.uid, tls: tls !== undefined }, 'waiting for incoming migration');
    this.expireUnless(record, req.uid);
    return { migrationUri: arrival.uri, exports: arrival.exports };
  }

  /**
   * An incoming VM whose source went away before its stream began is discarded after the
   * timeout; one whose stream flows or is complete is kept (the source may have committed).
   */
  private expireUnless(record: VmRecord, uid: string): void {
    const timeoutMs = this.options.incomingTimeoutMs ?? DEFAULT_INCOMING_TIMEOUT_MS;
    const timer = setTimeout(() => {
      void record.queue
        .run(async () => {
          const marker = record.status.migration;
          if (!this.m.has(record.id) || marker?.role !== 'target' || marker.uid !== uid) return this.closeGate(record.id);
          const progress = await record.machine?.migrationProgress().catch(() => undefined);
          if (progress && progress.status !== 'none' && progress.status !== 'setup' && progress.status !== 'failed') return this.expireUnless(record, uid);
          await this.discard(record, `no migration stream arrived within ${Math.round(timeoutMs / 1000)} s`);
        })
        .catch((err: unknown) => record.log.error({ err }, 'could not discard an expired incoming VM'));
    }, timeoutMs);
    timer.unref();
  }

  /** The source confirmed completion: wait for the stream to be complete, stop NBD, run (or keep paused). */
  async finish(uid: string, id: string, resume: boolean, callerSubjects?: string[]): Promise<VmRecord> {
    const record = this.m.record(id);
    return record.queue.run(async () => {
      const marker = record.status.migration;
      checkPeer(marker, callerSubjects, id);
      if (!marker || marker.role !== 'target' || marker.uid !== uid) {
        if (record.status.phase === 'Running' || record.status.phase === 'Paused') return record; // already finished
        throw failedPrecondition(`VM ${id} is not receiving migration ${uid}`);
      }
      const machine = record.machine;
      if (!machine) throw new VmletError('UNAVAILABLE', `the incoming QEMU of VM ${id} is gone; the migration cannot finish here`);
      await machine.incomingComplete(COMPLETE_TIMEOUT_MS);
      await this.closeGate(id);
      await machine.stopExports();
      if (resume) await machine.run();
      this.m.transition(record, resume ? 'Running' : 'Paused', `migrated from ${marker.peer}`, {
        migration: undefined,
        startedAt: this.m.env.clock.now().toISOString(),
      });
      followGuest(this.m.env, record, machine);
      return record;
    });
  }

  /** The source gave up: every trace of the incoming VM goes. Refused once the guest runs here. */
  async abort(uid: string, id: string, reason: string, callerSubjects?: string[]): Promise<void> {
    if (!this.m.has(id)) return;
    const record = this.m.record(id);
    await record.queue.run(async () => {
      const marker = record.status.migration;
      checkPeer(marker, callerSubjects, id);
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
    await this.closeGate(record.id);
    await retire(this.m.env, record, reason, FORCE);
  }
}

/** Only the per-VM overlays of writable disks, and a UEFI VM's variables store, are exported, each once: never a base image. */
export function checkMirroredDisks(spec: VmSpec, mirrored: readonly string[]): void {
  const seen = new Set<string>();
  for (const name of mirrored) {
    if (name === EFI_VARS_MIRROR) {
      if (spec.firmware?.type !== 'uefi') throw invalidArgument('mirror_efi_vars', 'the VM has no EFI variables store: its firmware is BIOS');
      if (seen.has(name)) throw invalidArgument('mirror_efi_vars', 'the EFI variables store is mirrored twice');
      seen.add(name);
      continue;
    }
    const disk = spec.disks.find((d) => d.name === name);
    if (!disk) throw invalidArgument('disks', `mirrored disk ${name} is not in the spec`);
    if (!disk.overlay || disk.readonly) throw invalidArgument('disks', `disk ${name} is not a writable overlay; only overlays are mirrored`);
    if (seen.has(name)) throw invalidArgument('disks', `disk ${name} is mirrored twice`);
    seen.add(name);
  }
}

/** A peer-role caller (its subjects given) may only finish or abort a migration from itself. */
function checkPeer(marker: MigrationMarker | undefined, callerSubjects: string[] | undefined, id: string): void {
  if (!callerSubjects) return;
  if (marker?.role !== 'target' || !marker.peerSubjects?.some((s) => callerSubjects.includes(s))) {
    throw new VmletError('PERMISSION_DENIED', `VM ${id} is not migrating here from the calling node`);
  }
}
