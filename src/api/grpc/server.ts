import { chmod, mkdir } from 'node:fs/promises';
import { freeUnixSocketPath } from '../../host/single-instance.js';
import { readFileSync } from 'node:fs';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { peerCredentials, supplementaryGroups } from '../../host/peercred.js';
import { unixPeerTag } from '../authz/identity.js';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import type { PackageDefinition } from '@grpc/proto-loader';
import type { TlsConfig } from '../../host/addresses.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../../model/bounds.js';
import { vmletV1 } from './proto.js';
import { PROTO_FILES, PROTO_ROOT } from './proto-options.js';
import { fileDescriptorProtos } from './reflection.js';

export interface GrpcServerOptions {
  listen: string[];
  tls?: TlsConfig;
  /** Largest request accepted; default DEFAULT_MAX_MESSAGE_BYTES. */
  maxMessageBytes?: number;
  services: { definition: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation }[];
}

export interface RunningGrpcServer {
  server: grpc.Server;
  health: HealthImplementation;
  /** Bound addresses (TCP port resolved when :0 was asked). */
  addresses: string[];
  shutdown(): Promise<void>;
}

export const SERVICE_NAMES = ['vmlet.v1.VmService', 'vmlet.v1.MigrationService', 'vmlet.v1.MigrationAgentService', 'vmlet.v1.ImageService'];

/**
 * The services' files as protoc compiles them (see reflection.ts), the health service's too, so
 * `grpcurl list` shows everything served and `grpcurl describe` shows the proto as written.
 */
function reflectionDefinition(): PackageDefinition {
  const sources = [
    ...PROTO_FILES.map((name) => ({ name, path: join(PROTO_ROOT, name) })),
    { name: 'grpc/health/v1/health.proto', path: healthProtoPath },
  ];
  // ReflectionService reads nothing but each entry's fileDescriptorProtos.
  const files = { format: 'Protocol Buffer 3 FileDescriptorProto', type: {}, fileDescriptorProtos: fileDescriptorProtos(sources) };
  return { files } as unknown as PackageDefinition;
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

/** The unix socket is served through our own listener, which reads each caller's credentials first. */
async function listenUnix(server: grpc.Server, path: string): Promise<NetServer> {
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const listener = createServer((socket) => {
    stampPeer(socket);
    injector.injectConnection(socket);
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(path, () => {
      listener.off('error', reject);
      resolve();
    });
  });
  return listener;
}

function bind(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port))));
}

/** Serves the vmlet services, the standard health service and reflection on every listen address. */
export async function startGrpcServer(options: GrpcServerOptions): Promise<RunningGrpcServer> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES });
  for (const s of options.services) server.addService(s.definition, s.handlers);
  const health = new HealthImplementation({ '': 'NOT_SERVING', ...Object.fromEntries(SERVICE_NAMES.map((n) => [n, 'NOT_SERVING'])) });
  health.addToServer(server);
  new ReflectionService(reflectionDefinition()).addToServer(server);

  const addresses: string[] = [];
  const unixListeners: NetServer[] = [];
  for (const address of options.listen) {
    if (address.startsWith('unix://')) {
      const path = address.slice('unix://'.length);
      await mkdir(dirname(path), { recursive: true, mode: 0o750 });
      await freeUnixSocketPath(path);
      unixListeners.push(await listenUnix(server, path));
      await chmod(path, 0o660);
      addresses.push(address);
    } else {
      const port = await bind(server, address, credentialsFor(address, options.tls));
      addresses.push(address.replace(/:0$/, `:${port}`));
    }
  }
  return {
    server,
    health,
    addresses,
    shutdown: () =>
      new Promise<void>((resolve) => {
        for (const l of unixListeners) l.close();
        const timer = setTimeout(() => server.forceShutdown(), 5000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}

export const vmServiceDefinition = (): grpc.ServiceDefinition => vmletV1.VmService.service;
export const migrationServiceDefinition = (): grpc.ServiceDefinition => vmletV1.MigrationService.service;
export const migrationAgentServiceDefinition = (): grpc.ServiceDefinition => vmletV1.MigrationAgentService.service;
export const imageServiceDefinition = (): grpc.ServiceDefinition => vmletV1.ImageService.service;
