import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import { REPO } from './daemon.js';

interface HealthStatus {
  status: string;
}
export interface HealthClient extends grpc.Client {
  check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: HealthStatus) => void): void;
  watch(req: { service: string }): grpc.ClientReadableStream<HealthStatus>;
  list(req: object, cb: (err: grpc.ServiceError | null, res?: { statuses: Record<string, HealthStatus> }) => void): void;
}

/** A grpc.health.v1.Health client made by proto-loader from the .proto as written, not from vmlet's build-time descriptor. */
export function healthClient(endpoint: string): HealthClient {
  const def = protoLoader.loadSync(join(REPO, 'proto/grpc/health/v1/health.proto'), { enums: String });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: new (t: string, c: grpc.ChannelCredentials) => HealthClient } } } };
  return new pkg.grpc.health.v1.Health(endpoint, grpc.credentials.createInsecure());
}

/** grpc.health.v1.Health Check, as any load balancer or kubelet probe would call it. */
export function healthCheck(endpoint: string, service = ''): Promise<string> {
  const client = healthClient(endpoint);
  return new Promise((resolve, reject) =>
    client.check({ service }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res!.status);
    }),
  );
}

interface ReflectionResponse {
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorMessage: string };
}
interface ReflectionClient extends grpc.Client {
  ServerReflectionInfo(): grpc.ClientDuplexStream<unknown, ReflectionResponse>;
}

/** One request on the server reflection stream (protocol `v1` or `v1alpha`), as grpcurl sends it; its response. */
function reflect(endpoint: string, version: 'v1' | 'v1alpha', request: Record<string, string>): Promise<ReflectionResponse> {
  const def = protoLoader.loadSync(join(REPO, `node_modules/@grpc/reflection/build/proto/grpc/reflection/${version}/reflection.proto`), {});
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { reflection: Record<string, { ServerReflection: new (t: string, c: grpc.ChannelCredentials) => ReflectionClient }> };
  };
  const client = new pkg.grpc.reflection[version]!.ServerReflection(endpoint, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    const stream = client.ServerReflectionInfo();
    stream.on('data', (msg: ReflectionResponse) => {
      stream.end();
      client.close();
      resolve(msg);
    });
    stream.on('error', reject);
    stream.write(request);
  });
}

/** The services a reflection client (grpcurl list) sees, over the older v1alpha protocol. */
export async function reflectedServices(endpoint: string): Promise<string[]> {
  const msg = await reflect(endpoint, 'v1alpha', { listServices: '*' });
  return (msg.listServicesResponse?.service ?? []).map((s) => s.name).sort();
}

/** The files a reflection client (grpcurl describe) gets for a symbol, decoded: the symbol's file first, then what it imports. */
export async function reflectedFiles(endpoint: string, symbol: string): Promise<{ name: string; dependency: string[]; messageType: { name: string; field: { name: string; jsonName: string }[] }[] }[]> {
  const msg = await reflect(endpoint, 'v1', { fileContainingSymbol: symbol });
  if (!msg.fileDescriptorResponse) throw new Error(`reflection: ${msg.errorResponse?.errorMessage ?? 'no files'}`);
  return msg.fileDescriptorResponse.fileDescriptorProto.map((b) => descriptor.FileDescriptorProto.toObject(descriptor.FileDescriptorProto.decode(b), { arrays: true }) as never);
}
