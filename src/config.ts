import { parseArgs } from 'node:util';
import { availableParallelism, hostname } from 'node:os';
import { resolve } from 'node:path';
import type { AcceleratorMode } from './qemu/accel.js';
import type { LogFormat } from './host/log.js';
import { hostOf, isLoopbackAddress, type TlsConfig } from './host/addresses.js';
import { CPU_WEIGHT_MAX, CPU_WEIGHT_MIN, DEFAULT_PARENT_CPU_WEIGHT } from './cgroup/limits.js';
import { DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_VMS, MAX_WATCHERS } from './model/bounds.js';

export type { TlsConfig } from './host/addresses.js';

export interface DaemonConfig {
  stateDir: string;
  runDir: string;
  /** `unix:///path` or `host:port`, one listener each. */
  grpcListen: string[];
  /** `host:port`; empty disables HTTP. */
  httpListen: string;
  /** Serve the console websocket (`/v1/vms/:id/console`) on the HTTP listener; loopback only. */
  consoleWebsocket: boolean;
  /** `--console-token-file`: the bearer token a console websocket client presents. */
  consoleTokenFile?: string;
  /** `--http-tls-cert/--http-tls-key`: HTTPS for /metrics, health and the console websocket. */
  httpTls?: { cert: string; key: string };
  /** Host names the console websocket accepts in the Host header. */
  httpAllowedHosts: string[];
  /** A VM's console.log is rotated to console.log.1 at this size (two files kept). */
  consoleLogMaxBytes: number;
  imageRoots: string[];
  /** Where ImportImage may read its sources (`--import-root`); empty: imports are refused. */
  importRoots: string[];
  netns?: string;
  /** Where QEMU listens for incoming migration and NBD streams (default: host of the first TCP --grpc-listen). */
  migrationAddress?: string;
  /** `--authz FILE`: the policy mapping callers to roles. */
  authzFile?: string;
  /** Plaintext TCP gRPC listeners are allowed, and their callers trusted as admin. */
  insecureTcp: boolean;
  /** Migration and NBD streams in plaintext even though the node has TLS. */
  insecureMigration: boolean;
  /** An incoming VM whose stream has not begun after this long is discarded. */
  incomingTimeoutSeconds: number;
  /** Bridges vmlet creates at start when missing (`--bridge`). */
  bridges: string[];
  /** When non-empty, NICs may only name these bridges. */
  allowedBridges: string[];
  tls?: TlsConfig;
  accelerator: AcceleratorMode;
  qemuBinary: string;
  qemuImgBinary: string;
  nodeName: string;
  /** `namespace` label of the metrics of VMs without a `vmlet.io/namespace` label. */
  metricsNamespace: string;
  reservedCpus: number;
  reservedMemoryMib: number;
  cpuOvercommit: number;
  memoryOvercommit: number;
  defaultStopGraceSeconds: number;
  /** QEMU initialisations at a time; starts beyond wait their turn. */
  maxParallelStarts: number;
  /** cpu.weight of --cgroup-parent: all guests together against the agent and the node's other services. */
  guestsCpuWeight: number;
  /** Floor of a start's deadlines, counted from QEMU's spawn (QMP handshake; the spawn helper gets twice it). */
  startTimeoutSeconds: number;
  /** VMs this node holds at most (`--max-vms`). */
  maxVms: number;
  /** Open WatchVms and WatchMigration streams at most (`--max-watchers`). */
  maxWatchers: number;
  /** Largest gRPC message the server accepts (`--grpc-max-message-bytes`). */
  grpcMaxMessageBytes: number;
  logFormat: LogFormat;
  logLevel: string;
  /** The uids (= gids) QEMUs run as, one per VM; undefined with --qemu-user root. */
  qemuUids?: { start: number; count: number };
  /** Where each VM's cgroup goes, outside vmlet's own. */
  cgroupParent: string;
  /** QEMU's memory beyond the guest's, when set instead of the formula (cgroup/overhead.ts). */
  memoryOverheadMib?: number;
}

const DEFAULTS = {
  stateDir: '/var/lib/vmlet',
  runDir: '/run/vmlet',
  httpListen: '127.0.0.1:9474',
  imageRoot: '/var/lib/vmlet/images',
  reservedCpus: 0,
  reservedMemoryMib: 512,
  // KubeVirt's default cpuAllocationRatio is 10; memory is not overcommitted by default.
  cpuOvercommit: 10,
  memoryOvercommit: 1,
  defaultStopGraceSeconds: 30,
  qemuUidRange: '2000000:65536',
  cgroupParent: 'vmlet.slice',
  guestsCpuWeight: DEFAULT_PARENT_CPU_WEIGHT,
  consoleLogMaxBytes: 1024 * 1024,
  maxVms: DEFAULT_MAX_VMS,
  maxWatchers: MAX_WATCHERS,
  grpcMaxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
} as const;

/** Below this a console log would hold less than a console's history (64 KiB). */
const MIN_CONSOLE_LOG_MAX_BYTES = 64 * 1024;

const defaultSocket = (runDir: string): string => `unix://${resolve(runDir, 'vmlet.sock')}`;

/** The daemon's options, one per line (shared by `vmlet daemon` and `vmlet demo`). */
export const DAEMON_OPTIONS = `  --state-dir DIR            durable state and console logs (default ${DEFAULTS.stateDir})
  --run-dir DIR              sockets, pidfiles, live status (default ${DEFAULTS.runDir})
  --grpc-listen ADDR         unix:///path or HOST:PORT; repeatable (default unix://<run-dir>/vmlet.sock)
  --http-listen HOST:PORT    metrics and health (default ${DEFAULTS.httpListen}; "" disables)
  --console-websocket        also serve VM consoles as websockets on --http-listen; needs
                             --console-token-file, or HTTPS with --tls-ca and --authz (client certificates)
  --console-token-file F     bearer token (the file's content) that opens a console websocket as operator
  --http-tls-cert F --http-tls-key F   serve HTTP over TLS (required for the console beyond loopback)
  --http-allowed-hosts H,... Host header names the console websocket accepts (default: the listen host,
                             plus localhost, 127.0.0.1 and ::1 on loopback)
  --console-log-max-bytes N  rotate a VM's console.log at N bytes, keeping console.log.1 (default ${DEFAULTS.consoleLogMaxBytes})
  --image-root DIR           where kernels, initrds and images may live; repeatable (default ${DEFAULTS.imageRoot})
  --import-root DIR          where ImportImage may read OVA, VMDK, qcow2, raw, VHDX and VDI files; repeatable
                             (none by default: imports are refused). Images go to <first image root>/store
  --netns NAME               create TAPs and run QEMU inside this network namespace
  --bridge NAME              create this bridge at start when missing (repeatable)
  --migration-address HOST   where incoming migration streams arrive (default: host of the first TCP --grpc-listen)
  --insecure-migration       send migration and NBD streams in plaintext although the node has TLS
                             (without TLS, migration is limited to loopback anyway)
  --incoming-timeout-seconds N  discard an incoming VM whose stream has not begun after N s (default 600)
  --allowed-bridge NAME      NICs may only use these bridges (repeatable; default: any existing bridge)
  --tls-cert F --tls-key F --tls-ca F   TLS with client certificates for TCP listeners
  --authz FILE               policy (YAML) mapping certificate identities and unix uids/gids to roles
                             (admin, operator, viewer, peer); TCP callers need a role from it
  --insecure-tcp             allow plaintext TCP listeners (even on loopback), their callers as admin
  --accel auto|kvm|tcg       accelerator (default auto: KVM when it really works, else TCG)
  --qemu PATH                QEMU binary (default qemu-system-x86_64)
  --qemu-img PATH            qemu-img binary (default qemu-img)
  --node-name NAME           node name in status and metrics (default: hostname)
  --metrics-namespace NS     namespace label of VMs without a vmlet.io/namespace label (default default)
  --reserved-cpus N          CPUs kept for the host (default ${DEFAULTS.reservedCpus})
  --reserved-memory-mib N    memory kept for the host (default ${DEFAULTS.reservedMemoryMib})
  --cpu-overcommit R         vCPUs per allocatable CPU (default ${DEFAULTS.cpuOvercommit})
  --memory-overcommit R      guest memory per allocatable MiB (default ${DEFAULTS.memoryOvercommit})
  --stop-grace-seconds N     default grace period of StopVm (default ${DEFAULTS.defaultStopGraceSeconds})
  --max-parallel-starts N    QEMU initialisations at a time; more starts wait their turn (default: CPU count)
  --start-timeout-seconds N  floor of a start's QMP deadline from QEMU's spawn, plus 1 s per GiB of guest memory (default 5)
  --max-vms N                VMs this node holds at most; more is RESOURCE_EXHAUSTED (default ${DEFAULTS.maxVms})
  --max-watchers N           open WatchVms/WatchMigration streams at most (default ${DEFAULTS.maxWatchers})
  --grpc-max-message-bytes N largest gRPC request accepted (default ${DEFAULTS.grpcMaxMessageBytes})
  --qemu-uid-range START:COUNT  uids (and gids) for QEMU, one per VM (default ${DEFAULTS.qemuUidRange})
  --qemu-user root           run QEMU as root with vmlet's capabilities (not recommended; logged)
  --cgroup-parent PATH       parent of the VMs' cgroups, outside vmlet's own (default ${DEFAULTS.cgroupParent})
  --memory-overhead-mib N    memory a VM's cgroup allows beyond its guest (default: a formula of vCPUs, RAM, TCG cache)
  --guests-cpu-weight N      CPU weight of --cgroup-parent, 1..10000, against vmlet's own 100 (default ${DEFAULTS.guestsCpuWeight})
  --log-format json|pretty   (default json)
  --log-level LEVEL          (default info)`;

export const DAEMON_USAGE = `Usage: vmlet daemon [options]\n${DAEMON_OPTIONS}`;

export class ConfigError extends Error {}

function number(name: string, raw: string | undefined, fallback: number, min: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min) throw new ConfigError(`--${name}: must be a number >= ${min}, got "${raw}"`);
  return value;
}

function cpuWeight(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(value >= CPU_WEIGHT_MIN && value <= CPU_WEIGHT_MAX)) throw new ConfigError(`--${name}: must be a whole number in ${CPU_WEIGHT_MIN}..${CPU_WEIGHT_MAX}, got "${raw}"`);
  return value;
}

function byteCount(name: string, raw: string | undefined, fallback: number, min: number, unit = 'bytes'): number {
  if (raw === undefined) return fallback;
  const value = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < min) throw new ConfigError(`--${name}: must be a whole number of ${unit} >= ${min}, got "${raw}"`);
  return value;
}

function oneOf<T extends string>(name: string, raw: string | undefined, allowed: readonly T[], fallback: T): T {
  if (raw === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) throw new ConfigError(`--${name}: must be one of ${allowed.join(', ')}, got "${raw}"`);
  return raw as T;
}

/** host:port → host, for IPv4, names and [v6]. */
function listenHost(address: string): string {
  const host = hostOf(address);
  if (host === undefined) throw new ConfigError(`listen address "${address}" must be HOST:PORT or unix:///path`);
  return host;
}

export function parseDaemonArgs(argv: string[]): DaemonConfig {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      'state-dir': { type: 'string' },
      'run-dir': { type: 'string' },
      'grpc-listen': { type: 'string', multiple: true },
      'http-listen': { type: 'string' },
      'console-websocket': { type: 'boolean' },
      'console-token-file': { type: 'string' },
      'http-tls-cert': { type: 'string' },
      'http-tls-key': { type: 'string' },
      'http-allowed-hosts': { type: 'string' },
      'console-log-max-bytes': { type: 'string' },
      'insecure-migration': { type: 'boolean' },
      'insecure-tcp': { type: 'boolean' },
      authz: { type: 'string' },
      'incoming-timeout-seconds': { type: 'string' },
      'image-root': { type: 'string', multiple: true },
      'import-root': { type: 'string', multiple: true },
      netns: { type: 'string' },
      bridge: { type: 'string', multiple: true },
      'migration-address': { type: 'string' },
      'allowed-bridge': { type: 'string', multiple: true },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-ca': { type: 'string' },
      accel: { type: 'string' },
      qemu: { type: 'string' },
      'qemu-img': { type: 'string' },
      'node-name': { type: 'string' },
      'metrics-namespace': { type: 'string' },
      'reserved-cpus': { type: 'string' },
      'reserved-memory-mib': { type: 'string' },
      'cpu-overcommit': { type: 'string' },
      'memory-overcommit': { type: 'string' },
      'stop-grace-seconds': { type: 'string' },
      'max-parallel-starts': { type: 'string' },
      'start-timeout-seconds': { type: 'string' },
      'max-vms': { type: 'string' },
      'max-watchers': { type: 'string' },
      'grpc-max-message-bytes': { type: 'string' },
      'log-format': { type: 'string' },
      'log-level': { type: 'string' },
      'qemu-uid-range': { type: 'string' },
      'qemu-user': { type: 'string' },
      'cgroup-parent': { type: 'string' },
      'guests-cpu-weight': { type: 'string' },
      'memory-overhead-mib': { type: 'string' },
    },
  });
  const runDir = resolve(values['run-dir'] ?? DEFAULTS.runDir);
  const tlsParts = [values['tls-cert'], values['tls-key'], values['tls-ca']];
  if (tlsParts.some(Boolean) && !tlsParts.every(Boolean)) {
    throw new ConfigError('--tls-cert, --tls-key and --tls-ca go together (the CA verifies client certificates)');
  }
  const tls = tlsParts.every(Boolean) ? { cert: values['tls-cert']!, key: values['tls-key']!, ca: values['tls-ca']! } : undefined;
  const grpcListen = values['grpc-listen']?.length ? values['grpc-listen'] : [defaultSocket(runDir)];
  for (const address of grpcListen) {
    if (address.startsWith('unix://')) continue;
    listenHost(address);
    if (!tls && !values['insecure-tcp']) {
      throw new ConfigError(`--grpc-listen ${address}: a TCP listener needs --tls-cert, --tls-key and --tls-ca (client certificates are required); --insecure-tcp allows plaintext, loopback or not, with every caller admin`);
    }
  }
  const migrationHost = values['migration-address'];
  if (migrationHost && !tls && !values['insecure-migration'] && !isLoopbackAddress(`${migrationHost}:0`)) {
    throw new ConfigError(`--migration-address ${migrationHost}: migration streams beyond loopback are encrypted with the node's --tls-* certificates; without them, pass --insecure-migration to send guest memory in clear`);
  }
  const httpListen = values['http-listen'] ?? DEFAULTS.httpListen;
  if (httpListen) listenHost(httpListen);
  const httpTlsParts = [values['http-tls-cert'], values['http-tls-key']];
  if (httpTlsParts.some(Boolean) && !httpTlsParts.every(Boolean)) throw new ConfigError('--http-tls-cert and --http-tls-key go together');
  const httpTls = httpTlsParts.every(Boolean) ? { cert: values['http-tls-cert']!, key: values['http-tls-key']! } : undefined;
  const consoleWebsocket = values['console-websocket'] ?? false;
  if (consoleWebsocket) {
    if (!httpListen) throw new ConfigError('--console-websocket needs an --http-listen address');
    if (!httpTls && !isLoopbackAddress(httpListen)) {
      throw new ConfigError(`--console-websocket: a console is a shell on the guest; beyond loopback it is only served over HTTPS (--http-tls-cert, --http-tls-key); got "${httpListen}"`);
    }
    const byCertificate = httpTls && tls && values.authz;
    if (!values['console-token-file'] && !byCertificate) {
      throw new ConfigError('--console-websocket needs --console-token-file, or HTTPS (--http-tls-*) with client certificates (--tls-ca) and roles (--authz)');
    }
  }
  const listenName = httpListen ? (hostOf(httpListen) ?? '').replace(/^\[(.*)\]$/, '$1').toLowerCase() : '';
  const httpAllowedHosts = values['http-allowed-hosts']
    ? values['http-allowed-hosts'].split(',').map((h) => h.trim().toLowerCase()).filter(Boolean)
    : [listenName, ...(httpListen && isLoopbackAddress(httpListen) ? ['localhost', '127.0.0.1', '::1'] : [])].filter((h, i, all) => h && all.indexOf(h) === i);
  return {
    stateDir: resolve(values['state-dir'] ?? DEFAULTS.stateDir),
    runDir,
    grpcListen,
    httpListen,
    consoleWebsocket,
    consoleTokenFile: values['console-token-file'] === undefined ? undefined : resolve(values['console-token-file']),
    httpTls,
    httpAllowedHosts,
    consoleLogMaxBytes: byteCount('console-log-max-bytes', values['console-log-max-bytes'], DEFAULTS.consoleLogMaxBytes, MIN_CONSOLE_LOG_MAX_BYTES),
    imageRoots: (values['image-root']?.length ? values['image-root'] : [DEFAULTS.imageRoot]).map((p) => resolve(p)),
    importRoots: (values['import-root'] ?? []).map((p) => resolve(p)),
    netns: values.netns,
    bridges: values.bridge ?? [],
    migrationAddress: values['migration-address'],
    insecureMigration: values['insecure-migration'] ?? false,
    insecureTcp: values['insecure-tcp'] ?? false,
    authzFile: values.authz === undefined ? undefined : resolve(values.authz),
    incomingTimeoutSeconds: number('incoming-timeout-seconds', values['incoming-timeout-seconds'], 600, 1),
    allowedBridges: values['allowed-bridge'] ?? [],
    tls,
    accelerator: oneOf('accel', values.accel, ['auto', 'kvm', 'tcg'] as const, 'auto'),
    qemuBinary: values.qemu ?? 'qemu-system-x86_64',
    qemuImgBinary: values['qemu-img'] ?? 'qemu-img',
    nodeName: values['node-name'] ?? hostname(),
    metricsNamespace: kubernetesName('metrics-namespace', values['metrics-namespace'] ?? 'default'),
    reservedCpus: number('reserved-cpus', values['reserved-cpus'], DEFAULTS.reservedCpus, 0),
    reservedMemoryMib: number('reserved-memory-mib', values['reserved-memory-mib'], DEFAULTS.reservedMemoryMib, 0),
    cpuOvercommit: number('cpu-overcommit', values['cpu-overcommit'], DEFAULTS.cpuOvercommit, 0.1),
    memoryOvercommit: number('memory-overcommit', values['memory-overcommit'], DEFAULTS.memoryOvercommit, 0.1),
    defaultStopGraceSeconds: number('stop-grace-seconds', values['stop-grace-seconds'], DEFAULTS.defaultStopGraceSeconds, 0),
    maxParallelStarts: number('max-parallel-starts', values['max-parallel-starts'], Math.max(1, availableParallelism()), 1),
    startTimeoutSeconds: number('start-timeout-seconds', values['start-timeout-seconds'], 5, 1),
    maxVms: byteCount('max-vms', values['max-vms'], DEFAULTS.maxVms, 1, 'VMs'),
    maxWatchers: byteCount('max-watchers', values['max-watchers'], DEFAULTS.maxWatchers, 1, 'streams'),
    grpcMaxMessageBytes: byteCount('grpc-max-message-bytes', values['grpc-max-message-bytes'], DEFAULTS.grpcMaxMessageBytes, 64 * 1024),
    logFormat: oneOf('log-format', values['log-format'], ['json', 'pretty'] as const, 'json'),
    logLevel: values['log-level'] ?? 'info',
    ...qemuUsers(values['qemu-user'], values['qemu-uid-range']),
    cgroupParent: values['cgroup-parent'] ?? DEFAULTS.cgroupParent,
    guestsCpuWeight: cpuWeight('guests-cpu-weight', values['guests-cpu-weight'], DEFAULTS.guestsCpuWeight),
    ...(values['memory-overhead-mib'] === undefined ? {} : { memoryOverheadMib: number('memory-overhead-mib', values['memory-overhead-mib'], 0, 0) }),
  };
}

/** A Kubernetes namespace name (an RFC 1123 label), as KubeVirt's queries expect. */
function kubernetesName(name: string, raw: string): string {
  if (raw.length > 63 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(raw)) {
    throw new ConfigError(`--${name}: a Kubernetes namespace name (lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit), got "${raw}"`);
  }
  return raw;
}

/** --qemu-user root opts out of unprivileged QEMU; otherwise --qemu-uid-range START:COUNT. */
function qemuUsers(user: string | undefined, range: string | undefined): { qemuUids?: { start: number; count: number } } {
  if (user !== undefined && user !== 'root') throw new ConfigError(`--qemu-user: only "root" (to opt out of unprivileged QEMU) is accepted, got "${user}"; use --qemu-uid-range for the users`);
  if (user === 'root') {
    if (range !== undefined) throw new ConfigError('--qemu-user root and --qemu-uid-range exclude each other');
    return {};
  }
  const m = /^(\d+):(\d+)$/.exec(range ?? DEFAULTS.qemuUidRange);
  const start = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || start < 1000 || count < 1 || start + count > 2 ** 32 - 2) {
    throw new ConfigError(`--qemu-uid-range: START:COUNT with START >= 1000 and START+COUNT below 2^32-1, got "${range}"`);
  }
  return { qemuUids: { start, count } };
}

/** The host QEMU binds for incoming migrations: --migration-address, else the first TCP gRPC listener's host. */
export function migrationAddress(config: Pick<DaemonConfig, 'migrationAddress' | 'grpcListen'>): string | undefined {
  if (config.migrationAddress) return config.migrationAddress;
  const tcp = config.grpcListen.find((a) => !a.startsWith('unix://'));
  if (!tcp) return undefined;
  const host = listenHost(tcp).replace(/^\[(.*)\]$/, '$1');
  return host === '0.0.0.0' || host === '::' ? undefined : host;
}
