import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { cpus, totalmem } from 'node:os';
import type { DaemonConfig } from './config.js';
import type { Logger } from './host/log.js';
import { StateStore } from './state/store.js';
import { chooseAccelerator, type AcceleratorChoice } from './qemu/accel.js';
import { qemuVersion } from './qemu/version.js';
import { factsKey, readCachedFacts, worthKeeping, writeCachedFacts, type QemuFacts } from './qemu/probe-cache.js';
import { IpTool } from './net/ip.js';
import { ensureBridge } from './net/tap.js';
import { vhostNetWorks } from './net/vhost.js';
import { groupsFor, othersMayOpen } from './host/device-access.js';
import { saveCompileCache } from './host/compile-cache.js';
import { openCgroupDriver } from './cgroup/open.js';
import { CgroupCells } from './cgroup/cells.js';
import { TCG_TB_SIZE_MIB } from './qemu/argv.js';
import { Spawner } from './qemu/spawner.js';
import { QemuHypervisor } from './qemu/hypervisor.js';
import { TapNetwork } from './net/network.js';
import { ImageStorage } from './storage/disks.js';
import { ImageRoots } from './storage/image-roots.js';
import { systemClock } from './vm/ports.js';
import { VmManager } from './vm/manager.js';
import { AgentMetrics } from './metrics/agent-metrics.js';
import { Readiness, selfCheckTarget } from './metrics/readiness.js';
import { migrationFiguresFrom } from './metrics/migration-figures.js';
import { startGrpcServer, vmServiceDefinition, migrationServiceDefinition, migrationAgentServiceDefinition, imageServiceDefinition, SERVICE_NAMES, type RunningGrpcServer } from './api/grpc/server.js';
import { healthDefinition } from './api/grpc/health.js';
import { imageServiceHandlers } from './api/grpc/image-service.js';
import { ImageImports } from './vm/images.js';
import { ImageStore, PARTIAL_DIR } from './storage/image-store.js';
import { join } from 'node:path';
import { vmServiceHandlers, watchSlots, type NodeFacts } from './api/grpc/vm-service.js';
import { migrationAgentHandlers, migrationServiceHandlers, type MigrationDeps } from './api/grpc/migration-service.js';
import { MigrationRegistry } from './migration/registry.js';
import { OutgoingMigrations } from './migration/source.js';
import { IncomingMigrations } from './migration/target.js';
import { migrationHooks } from './migration/reconcile.js';
import { migrationAddress } from './config.js';
import type { startHttpServer } from './api/http/server.js';
import { ConsoleHub } from './console/hub.js';
import { DEFAULT_CONSOLE_LIMITS } from './console/limits.js';
import { connectPeer } from './api/grpc/migration-peer.js';
import { VMLET_VERSION } from './version.js';
import type { EarlyStart } from './early-start.js';
import { Authorizer } from './api/authz/authorizer.js';
import { needsPeerCredentials, type Policy } from './api/authz/policy.js';
import { peerCredentialsAvailable } from './host/peercred.js';

/**
 * After the start-up burst: the compile cache (once the modules the first calls need are compiled
 * too) and the spawn helper (a second Node starting up competes for the CPU that adoption and the
 * first calls need).
 */
const AFTER_START_DELAY_MS = 2000;
/**
 * HTTP (metrics, health, console websocket) starts a moment after gRPC has answered its first
 * call (the answer written, a follow-up call in), or this long after gRPC serves: loading and
 * starting fastify takes the CPU that a controller's first calls after a restart need, and
 * nothing waits on a scrape the way it waits on ListVms.
 */
const HTTP_AFTER_GRPC_MS = { firstCall: 50, atMost: 500 } as const;

export interface RunningDaemon {
  manager: VmManager;
  grpc: RunningGrpcServer;
  httpAddress?: string;
  node: NodeFacts;
  /** Stops serving and lets go of every QEMU; guests keep running. */
  stop(): Promise<void>;
}

/** Starts vmlet after its early start (dirs locked, QEMUs asked): state, adoption, gRPC, HTTP. */
export async function startDaemon(config: DaemonConfig, logger: Logger, early: EarlyStart): Promise<RunningDaemon> {
  const policy = await loadAuthzPolicy(config);
  const consoleToken = config.consoleTokenFile ? await readConsoleToken(config.consoleTokenFile) : undefined;
  const { version, choice, cacheKey, fromCache } = await probeQemu(config);
  if (cacheKey) await writeCachedFacts(config.runDir, cacheKey, { version, choice }).catch((err: unknown) => logger.warn({ err }, 'could not keep the QEMU facts for the next start'));
  const accel = await unprivilegedAccelerator(choice, config);
  logger.info({ accelerator: accel.accelerator, reason: accel.reason, qemuVersion: version, facts: fromCache ? 'cached' : 'probed' }, `accelerator: ${accel.accelerator}`);

  const ip = new IpTool(config.netns);
  for (const bridge of config.bridges) {
    if (await ensureBridge(ip, bridge)) logger.info({ bridge }, 'created bridge');
  }
  const confined = config.qemuUids !== undefined;
  if (!confined) logger.warn('--qemu-user root: QEMU runs as root with every capability of vmlet; a device-emulation bug in one guest is then root on the node');
  const vhostNet = (await vhostNetWorks()) && (!confined || (await othersMayOpen('/dev/vhost-net')));
  if (confined && !(await othersMayOpen('/dev/net/tun'))) {
    logger.error('/dev/net/tun is not open to other users (the distribution default is 0666): unprivileged QEMUs cannot open their TAPs, so VMs with NICs fail to start');
  }
  logger.info({ vhostNet }, vhostNet ? 'vhost-net available' : 'vhost-net not available: virtio-net runs in QEMU');

  const metrics = new AgentMetrics();
  early.qmp.observe(metrics.observeQmp);
  metrics.buildInfo.set({ version: VMLET_VERSION, qemu_version: version, accelerator: accel.accelerator }, 1);
  const store = new StateStore(config.stateDir, config.runDir);
  // Its helper starts after the start-up burst (or at the first spawn, if that comes sooner).
  const spawner = new Spawner(logger, 2 * config.startTimeoutSeconds * 1000);
  const cells = await openCells(config, accel.accelerator, logger);
  const hypervisor = new QemuHypervisor({
    qemuGroups: await groupsFor('/dev/kvm'),
    binary: config.qemuBinary,
    accelerator: accel.accelerator,
    spawner,
    runDir: config.runDir,
    vhostNet,
    netns: config.netns,
    onQmpCommand: metrics.observeQmp,
    prefetched: early.qmp,
    qmpTimeoutFloorMs: config.startTimeoutSeconds * 1000,
  });
  const manager = new VmManager(
    {
      store,
      network: new TapNetwork(ip),
      storage: new ImageStorage({ imageRoots: new ImageRoots(config.imageRoots, '--image-root', [join(storeDir(config), PARTIAL_DIR)]), qemuImgBinary: config.qemuImgBinary }),
      hypervisor,
      ...(cells ? { cells } : {}),
      clock: systemClock,
    },
    {
      capacity: {
        capacity: { cpus: cpus().length, memoryMib: Math.floor(totalmem() / 1024 / 1024) },
        reserved: { cpus: config.reservedCpus, memoryMib: config.reservedMemoryMib },
        cpuOvercommit: config.cpuOvercommit,
        memoryOvercommit: config.memoryOvercommit,
      },
      defaultStopGraceSeconds: config.defaultStopGraceSeconds,
      maxParallelStarts: config.maxParallelStarts,
      maxVms: config.maxVms,
      allowedBridges: config.allowedBridges,
      ...(config.qemuUids ? { qemuUids: config.qemuUids } : {}),
    },
    logger,
  );
  metrics.watchManager(manager, {
    node: config.nodeName,
    namespace: config.metricsNamespace,
    ...(cells ? { memoryOverheadBytes: (spec) => cells.overheadBytes(spec) } : {}),
  });
  const migration = setUpMigration(manager, config);
  metrics.setMigrationSource(migrationFiguresFrom(migration.registry));
  const imageStore = new ImageStore({ dir: storeDir(config), importRoots: new ImageRoots(config.importRoots, '--import-root'), qemuImg: config.qemuImgBinary });
  const images = new ImageImports(imageStore, () => manager.list(), logger.child({ component: 'images' }), metrics.observeImport);
  metrics.watchImages(images);
  const consoles = new ConsoleHub(manager, logger.child({ component: 'console' }), { ...DEFAULT_CONSOLE_LIMITS, logMaxBytes: config.consoleLogMaxBytes });
  // Adoption; gRPC listens meanwhile (below) and answers once it is done.
  const initialised = (async () => {
    await Promise.all([manager.init().finally(() => early.qmp.close()), images.init()]);
    // Consoles of running (adopted) VMs connect now, not at the first client.
    consoles.start();
  })();
  initialised.catch(() => undefined);

  const node: NodeFacts = {
    hostname: config.nodeName,
    accelerator: accel.accelerator,
    acceleratorReason: accel.reason,
    qemuVersion: version,
    vmletVersion: VMLET_VERSION,
  };
  const authorizer = new Authorizer({ policy, socketGid: process.getegid?.() ?? 0, insecureTcp: config.insecureTcp, logger, onDenied: metrics.observeDenied });
  let firstCallAnswered!: () => void;
  const answered = new Promise<void>((resolve) => (firstCallAnswered = resolve));
  const observe: typeof metrics.observeGrpc = (...args) => {
    firstCallAnswered();
    metrics.observeGrpc(...args);
  };
  const ctx = { logger, observe, authorize: (method: string, call: Parameters<Authorizer['authorize']>[1]) => void authorizer.authorize(method, call), roleOf: (call: object) => authorizer.roleOfCall(call) };
  const watchers = watchSlots(config.maxWatchers);
  const grpc = await startGrpcServer({
    listen: config.grpcListen,
    tls: config.tls,
    maxMessageBytes: config.grpcMaxMessageBytes,
    answerAfter: initialised,
    services: [
      { definition: vmServiceDefinition(), handlers: vmServiceHandlers(manager, consoles, node, ctx, watchers) },
      { definition: migrationServiceDefinition(), handlers: migrationServiceHandlers(migration, ctx, watchers) },
      { definition: migrationAgentServiceDefinition(), handlers: migrationAgentHandlers(migration, ctx) },
      { definition: imageServiceDefinition(), handlers: imageServiceHandlers(images, ctx) },
    ],
  });
  try {
    await initialised;
  } catch (err) {
    await grpc.shutdown();
    throw err;
  }
  logger.info({ vms: manager.list().length }, 'state loaded');
  for (const name of ['', ...SERVICE_NAMES]) grpc.health.setStatus(name, 'SERVING');
  logger.info({ addresses: grpc.addresses }, 'gRPC serving');
  let grpcServing = true;
  const readiness = new Readiness({
    stateDir: config.stateDir,
    qemuBinary: config.qemuBinary,
    grpcTarget: selfCheckTarget(grpc.addresses, config.tls !== undefined),
    grpcServing: () => grpcServing,
    healthService: healthDefinition(),
  });

  const consoleAccess = {
    ...(consoleToken ? { token: consoleToken } : {}),
    allowedHosts: config.httpAllowedHosts,
    ...(config.httpTls && config.tls ? { roleOfCertificate: (id: Parameters<Authorizer['roleOf']>[0]) => authorizer.roleOf(id) } : {}),
  };
  let http: Awaited<ReturnType<typeof startHttpServer>> | undefined;
  if (config.httpListen) {
    await Promise.race([answered.then(() => delay(HTTP_AFTER_GRPC_MS.firstCall)), delay(HTTP_AFTER_GRPC_MS.atMost)]);
    const [{ startHttpServer }, { registerConsoleWebsocket }] = await Promise.all([import('./api/http/server.js'), import('./api/http/console-websocket.js')]);
    http = await startHttpServer({
      listen: config.httpListen,
      metrics: () => metrics.render(),
      metricsContentType: metrics.contentType,
      notReady: readiness.notReady,
      ...(config.httpTls ? { tls: { ...config.httpTls, ...(config.tls ? { ca: config.tls.ca } : {}) } } : {}),
      register: config.consoleWebsocket ? (app) => registerConsoleWebsocket(app, { hub: consoles, access: consoleAccess, logger }) : undefined,
    });
    logger.info({ address: http.address }, 'HTTP serving /metrics /healthz /readyz');
  }
  // Not in the way of the first calls; a daemon killed sooner than this keeps the last cache.
  const afterStart = setTimeout(() => {
    spawner.start();
    saveCompileCache();
  }, AFTER_START_DELAY_MS).unref();

  return {
    manager,
    grpc,
    httpAddress: http?.address,
    node,
    async stop() {
      clearTimeout(afterStart);
      grpcServing = false;
      for (const name of ['', ...SERVICE_NAMES]) grpc.health.setStatus(name, 'NOT_SERVING');
      await consoles.close();
      await http?.app.close();
      readiness.close();
      await grpc.shutdown();
      await manager.close();
      spawner.close();
      early.release();
      logger.info('vmlet stopped; guests keep running');
    },
  };
}

/**
 * The binary's version and the accelerator it gets: from the run dir when nothing they depend on
 * changed since they were probed, else probed now (cacheKey set when the result is worth keeping).
 */
async function probeQemu(config: DaemonConfig): Promise<QemuFacts & { cacheKey?: string; fromCache: boolean }> {
  const key = await factsKey({ qemuBinary: config.qemuBinary, mode: config.accelerator, netns: config.netns });
  const cached = key === undefined ? undefined : await readCachedFacts(config.runDir, key);
  if (cached) return { ...cached, fromCache: true };
  const [version, choice] = await Promise.all([qemuVersion(config.qemuBinary), chooseAccelerator(config.accelerator, config.qemuBinary, config.netns)]);
  const keep = key !== undefined && (await worthKeeping({ version, choice }, config.accelerator));
  return { version, choice, fromCache: false, ...(keep ? { cacheKey: key } : {}) };
}

/** The image store: inside the first image root, so its images are paths a spec may name. */
const storeDir = (config: DaemonConfig): string => join(config.imageRoots[0]!, 'store');

/**
 * The probe runs as root; unprivileged QEMUs open /dev/kvm through its group (or as others). A
 * /dev/kvm they cannot open is TCG under --accel auto, and a refusal to start under --accel kvm.
 */
async function unprivilegedAccelerator(choice: AcceleratorChoice, config: DaemonConfig): Promise<AcceleratorChoice> {
  if (choice.accelerator !== 'kvm' || !config.qemuUids) return choice;
  if ((await groupsFor('/dev/kvm')).length || (await othersMayOpen('/dev/kvm'))) return choice;
  const why = '/dev/kvm is open to root only, not to the unprivileged QEMU users (give it a group such as kvm with mode 0660, as udev does)';
  if (config.accelerator === 'kvm') throw new Error(`--accel kvm: ${why}`);
  return { accelerator: 'tcg', reason: `KVM works but ${why}; using TCG` };
}

/** One cgroup per VM under --cgroup-parent; without usable cgroup controllers vmlet runs on, without cells, and says so. */
async function openCells(config: DaemonConfig, accelerator: string, logger: Logger): Promise<CgroupCells | undefined> {
  try {
    const driver = await openCgroupDriver({ parent: config.cgroupParent });
    await driver.ensureParent({ cpuWeight: config.guestsCpuWeight });
    logger.info({ kind: driver.kind, parent: driver.parent }, 'each VM gets a cgroup of its own');
    return new CgroupCells(driver, { tcg: accelerator === 'tcg', tbSizeMib: TCG_TB_SIZE_MIB, ...(config.memoryOverheadMib === undefined ? {} : { fixedMib: config.memoryOverheadMib }) });
  } catch (err) {
    logger.error({ err }, 'no cgroups for VMs: QEMUs share vmlet\'s cgroup and its limits');
    return undefined;
  }
}

/** Source and target sides of live migration, plugged into the manager before it reconciles. */
function setUpMigration(manager: VmManager, config: DaemonConfig): MigrationDeps {
  const registry = new MigrationRegistry();
  // With TLS, QEMU's streams use the node's certificate too, unless the operator opts out.
  const streamTls = config.tls && !config.insecureMigration ? config.tls : undefined;
  const source = { manager, registry, connect: (target: string) => connectPeer(target, config.tls), nodeName: config.nodeName, ...(streamTls ? { streamTls } : {}) };
  const outgoing = new OutgoingMigrations(source);
  const incoming = new IncomingMigrations(manager, () => migrationAddress(config), { ...(streamTls ? { streamTls } : {}), incomingTimeoutMs: config.incomingTimeoutSeconds * 1000 });
  manager.migrationHooks = migrationHooks(source, incoming, outgoing);
  return { registry, outgoing, incoming, manager, nodeName: config.nodeName };
}

/** `--authz FILE`, read and checked before anything else starts. */
async function loadAuthzPolicy(config: DaemonConfig): Promise<Policy | undefined> {
  if (!config.authzFile) return undefined;
  const { loadPolicy } = await import('./api/authz/policy-file.js');
  const policy = await loadPolicy(config.authzFile);
  if (needsPeerCredentials(policy) && !peerCredentialsAvailable()) {
    throw new Error(`--authz ${config.authzFile} has uid/gid rules, but native/peercred is not built (run scripts/setup.sh)`);
  }
  return policy;
}

/** The console token: the file's content without surrounding whitespace, at least 16 bytes. */
async function readConsoleToken(file: string): Promise<string> {
  const token = (await readFile(file, 'utf8')).trim();
  if (Buffer.byteLength(token) < 16) throw new Error(`--console-token-file ${file}: the token must be at least 16 bytes`);
  return token;
}
