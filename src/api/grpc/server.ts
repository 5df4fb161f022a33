import { chmod, mkdir } from 'node:fs/promises';
import { freeUnixSocketPath } from '../../host/single-instance.js';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type ListenOptions, type Server as NetServer, type Socket } from 'node:net';
import { peerCredentials, supplementaryGroups } from '../../host/peercred.js';
import { unixPeerTag } from '../authz/identity.js';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import type { PackageDefinition } from '@grpc/proto-loader';
import { hostOf, type TlsConfig } from '../../host/addresses.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../../model/bounds.js';
import { vmletV1 } from './proto.js';
import { PROTO_FILES, PROTO_ROOT } from './proto-options.js';
import { fileDescriptorProtos } from './reflection.js';
import { HealthService } from './health.js';

export interface GrpcServerOptions {
  listen: string[];
  tls?: TlsConfig;
  /** Largest request accepted; default DEFAULT_MAX_MESSAGE_BYTES. */
  maxMessageBytes?: number;
  services: { definition: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation }[];
  /**
   * The services' calls are taken in at once and answered once this settles (UNAVAILABLE if it
   * rejects); health and reflection answer meanwhile, health saying NOT_SERVING.
   */
  answerAfter?: Promise<unknown>;
}

export interface RunningGrpcServer {
  server: grpc.Server;
  health: HealthService;
  /** Bound addresses (TCP port resolved when :0 was asked). */
  addresses: string[];
  shutdown(): Promise<void>;
}

export const SERVICE_NAMES = ['vmlet.v1.VmService', 'vmlet.v1.MigrationService', 'vmlet.v1.MigrationAgentService', 'vmlet.v1.ImageService'];

/**
 * The services' files (the health service's among them) as protoc compiles them (see
 * reflection.ts), so `grpcurl list` shows everything served and `grpcurl describe` shows the proto
 * as written.
 */
function reflectionDefinition(): PackageDefinition {
  const sources = PROTO_FILES.map((name) => ({ name, path: join(PROTO_ROOT, name) }));
  // ReflectionService reads nothing but each entry's fileDescriptorProtos.
  const files = { format: 'Protocol Buffer 3 FileDescriptorProto', type: {}, fileDescriptorProtos: fileDescriptorProtos(sources) };
  return { files } as unknown as PackageDefinition;
}

/** The one method of each server reflection version grpcurl speaks. */
const REFLECTION_METHODS = ['/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo'];

/**
 * Server reflection, made at its first call rather than at start: its descriptors cost a parse of
 * every .proto (and of reflection's own), and a restarted agent answers its controllers first.
 */
function addReflection(server: grpc.Server): void {
  let methods: Map<string, { definition: grpc.MethodDefinition<unknown, unknown>; handler: (call: unknown) => void }> | undefined;
  const methodOf = (path: string) => {
    if (!methods) {
      const found = new Map<string, { definition: grpc.MethodDefinition<unknown, unknown>; handler: (call: unknown) => void }>();
      new ReflectionService(reflectionDefinition()).addToServer({
        addService: (service, implementation) => {
          for (const [name, definition] of Object.entries(service)) found.set(definition.path, { definition, handler: implementation[name] as (call: unknown) => void });
        },
      });
      methods = found;
    }
    const method = methods.get(path);
    if (!method) throw new Error(`reflection: @grpc/reflection serves no ${path}`);
    return method;
  };
  for (const path of REFLECTION_METHODS) {
    server.register(
      path,
      (call: grpc.ServerDuplexStream<unknown, unknown>) => {
        try {
          methodOf(path).handler(call);
        } catch (err) {
          call.emit('error', { code: grpc.status.INTERNAL, details: `server reflection is not available: ${(err as Error).message}` });
        }
      },
      (response: unknown) => methodOf(path).definition.responseSerialize(response),
      (request: Buffer) => methodOf(path).definition.requestDeserialize(request),
      'bidi',
    );
  }
}

function credentialsFor(address: string, tls: TlsConfig | undefined): grpc.ServerCredentials {
  if (address.startsWith('unix://') || !tls) return grpc.ServerCredentials.createInsecure();
  // checkClientCertificate=true: a client without a certificate signed by the CA is refused.
  return grpc.ServerCredentials.createSsl(readFileSync(tls.ca), [{ cert_chain: readFileSync(tls.cert), private_key: readFileSync(tls.key) }], true);
}

/** The caller's uid, primary and supplementary groups and pid, stamped where getPeer() reads it. */
function stampPeer(socket: Socket): void {
  const cred = peerCredentials(socket);
  if (!cred) return;
  let groups: number[] = [];
  try {
    groups = supplementaryGroups(readFileSync(`/proc/${cred.pid}/status`, 'utf8'));
  } catch {
    // the caller is gone already; its primary group is all we know
  }
  const gids = [...new Set([cred.gid, ...groups])];
  Object.defineProperty(socket, 'remoteAddress', { value: unixPeerTag(cred.uid, gids, cred.pid), configurable: true });
}

/** An open listener of ours, each of whose connections is handed to the gRPC server. */
function listen(server: NetServer, options: ListenOptions): Promise<NetServer> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/** `HOST:PORT` or `[v6]:PORT` as net.listen takes it. */
function tcpListenOptions(address: string): ListenOptions {
  const host = hostOf(address);
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  if (host === undefined || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`listen address ${address} is not HOST:PORT`);
  return { host: host.replace(/^\[(.*)\]$/, '$1'), port };
}

/**
 * Every address is served through our own listener and grpc-js's connection injector: the unix
 * socket so each caller's credentials are read first, and all of them so a stop can wait until
 * each connection is closed. grpc-js's tryShutdown returns as soon as Node has marked the sessions
 * closing, before the statuses of the calls it ended are written; exiting then drops them.
 */
type AnyHandler = (call: grpc.ServerUnaryCall<unknown, unknown>, callback?: (err: grpc.ServiceError | null) => void) => void;

/**
 * Handlers that wait for `ready`: a client connecting to a daemon that is still adopting its
 * guests has its connection made and its call in, answered the moment the daemon is ready,
 * rather than refused and left to retry after a backoff.
 */
function gated(handlers: grpc.UntypedServiceImplementation, ready: Promise<unknown>): grpc.UntypedServiceImplementation {
  const notServing = { code: grpc.status.UNAVAILABLE, details: 'vmlet could not start', metadata: new grpc.Metadata() } as grpc.ServiceError;
  return Object.fromEntries(
    Object.entries(handlers).map(([name, handler]) => {
      const wrapped: AnyHandler = (call, callback) => {
        ready.then(
          () => (handler as AnyHandler)(call, callback),
          () => (callback ? callback(notServing) : call.emit('error', notServing)),
        );
      };
      return [name, wrapped as grpc.UntypedHandleCall];
    }),
  );
}

class Listeners {
  private readonly servers: NetServer[] = [];
  private readonly sockets = new Set<Socket>();

  constructor(private readonly grpcServer: grpc.Server) {}

  async unix(path: string): Promise<void> {
    await this.add(grpc.ServerCredentials.createInsecure(), { path }, stampPeer);
  }

  /** Listens on a TCP address; returns the port bound. */
  async tcp(address: string, creds: grpc.ServerCredentials): Promise<number> {
    const server = await this.add(creds, tcpListenOptions(address));
    return (server.address() as AddressInfo).port;
  }

  /** Stops accepting; resolves once every connection is closed, or destroys those left at the deadline. */
  async close(deadlineMs: number): Promise<void> {
    for (const s of this.servers) s.close();
    const timer = setTimeout(() => {
      this.grpcServer.forceShutdown();
      for (const socket of this.sockets) socket.destroy();
    }, deadlineMs);
    await new Promise<void>((resolve) => this.grpcServer.tryShutdown(() => resolve()));
    await Promise.all([...this.sockets].map((socket) => new Promise((resolve) => socket.once('close', resolve))));
    clearTimeout(timer);
  }

  private async add(creds: grpc.ServerCredentials, options: ListenOptions, prepare?: (socket: Socket) => void): Promise<NetServer> {
    const injector = this.grpcServer.createConnectionInjector(creds);
    const server = createServer((socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      prepare?.(socket);
      injector.injectConnection(socket);
    });
    this.servers.push(await listen(server, options));
    return server;
  }
}

/** Serves the vmlet services, the standard health service and reflection on every listen address. */
export async function startGrpcServer(options: GrpcServerOptions): Promise<RunningGrpcServer> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES });
  for (const s of options.services) server.addService(s.definition, options.answerAfter ? gated(s.handlers, options.answerAfter) : s.handlers);
  const health = new HealthService({ '': 'NOT_SERVING', ...Object.fromEntries(SERVICE_NAMES.map((n) => [n, 'NOT_SERVING'])) });
  health.addToServer(server);
  addReflection(server);

  const addresses: string[] = [];
  const listeners = new Listeners(server);
  try {
    for (const address of options.listen) {
      if (address.startsWith('unix://')) {
        const path = address.slice('unix://'.length);
        await mkdir(dirname(path), { recursive: true, mode: 0o750 });
        await freeUnixSocketPath(path);
        await listeners.unix(path);
        await chmod(path, 0o660);
        addresses.push(address);
      } else {
        const port = await listeners.tcp(address, credentialsFor(address, options.tls));
        addresses.push(address.replace(/:0$/, `:${port}`));
      }
    }
  } catch (err) {
    await listeners.close(0);
    throw err;
  }
  return { server, health, addresses, shutdown: () => listeners.close(5000) };
}

export const vmServiceDefinition = (): grpc.ServiceDefinition => vmletV1.VmService.service;
export const migrationServiceDefinition = (): grpc.ServiceDefinition => vmletV1.MigrationService.service;
export const migrationAgentServiceDefinition = (): grpc.ServiceDefinition => vmletV1.MigrationAgentService.service;
export const imageServiceDefinition = (): grpc.ServiceDefinition => vmletV1.ImageService.service;
