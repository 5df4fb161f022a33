import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import { REPO } from './daemon.js';

interface HealthClient extends grpc.Client {
  check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
}

/** grpc.health.v1.Health Check, as any load balancer or kubelet probe would call it. */
export function healthCheck(endpoint: string, service = ''): Promise<string> {
  const def = protoLoader.loadSync(join(REPO, 'node_modules/grpc-health-check/proto/health/v1/health.proto'), { enums: String });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: new (t: string, c: grpc.ChannelCredentials) => HealthClient } } } };
  const client = new pkg.grpc.health.v1.Health(endpoint, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) =>
    client.check({ service }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res!.status);
    }),
  );
}

type ReflectionStream = grpc.ClientDuplexStream<unknown, { listServicesResponse?: { service: { name: string }[] } }>;
interface ReflectionClient extends grpc.Client {
  ServerReflectionInfo(): ReflectionStream;
}

/** The services a reflection client (grpcurl) sees. */
export function reflectedServices(endpoint: string): Promise<string[]> {
  const def = protoLoader.loadSync(join(REPO, 'node_modules/@grpc/reflection/build/proto/grpc/reflection/v1alpha/reflection.proto'), {});
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { reflection: { v1alpha: { ServerReflection: new (t: string, c: grpc.ChannelCredentials) => ReflectionClient } } };
  };
  const client = new pkg.grpc.reflection.v1alpha.ServerReflection(endpoint, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    const stream = client.ServerReflectionInfo();
    stream.on('data', (msg: { listServicesResponse?: { service: { name: string }[] } }) => {
      stream.end();
      client.close();
      resolve((msg.listServicesResponse?.service ?? []).map((s) => s.name).sort());
    });
    stream.on('error', reject);
    stream.write({ listServices: '*' });
  });
}

interface FileResponse {
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorMessage: string };
}
type FileStream = grpc.ClientDuplexStream<unknown, FileResponse>;
interface ReflectionV1Client extends grpc.Client {
  ServerReflectionInfo(): FileStream;
}

/** The files a reflection client (grpcurl describe) gets for a symbol, decoded: the symbol's file first, then what it imports. */
export function reflectedFiles(endpoint: string, symbol: string): Promise<{ name: string; dependency: string[]; messageType: { name: string; field: { name: string; jsonName: string }[] }[] }[]> {
  const def = protoLoader.loadSync(join(REPO, 'node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto'), {});
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: new (t: string, c: grpc.ChannelCredentials) => ReflectionV1Client } } };
  };
  const client = new pkg.grpc.reflection.v1.ServerReflection(endpoint, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    const stream = client.ServerReflectionInfo();
    stream.on('data', (msg: FileResponse) => {
      stream.end();
      client.close();
      if (!msg.fileDescriptorResponse) return reject(new Error(`reflection: ${msg.errorResponse?.errorMessage ?? 'no files'}`));
      resolve(msg.fileDescriptorResponse.fileDescriptorProto.map((b: Buffer) => descriptor.FileDescriptorProto.toObject(descriptor.FileDescriptorProto.decode(b), { arrays: true }) as never));
    });
    stream.on('error', reject);
    stream.write({ fileContainingSymbol: symbol });
  });
}
