import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { vmletV1 } from './proto.js';
import type { VmServiceClient } from './generated/vmlet/v1/VmService.js';
import type { MigrationServiceClient } from './generated/vmlet/v1/MigrationService.js';
import type { ImageServiceClient } from './generated/vmlet/v1/ImageService.js';

export interface ClientOptions {
  /** `unix:///path` or `host:port`. */
  endpoint: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

export interface VmletClients {
  vms: VmServiceClient;
  migrations: MigrationServiceClient;
  images: ImageServiceClient;
  close(): void;
}

export function normaliseEndpoint(endpoint: string): string {
  if (endpoint.startsWith('/')) return `unix://${endpoint}`;
  return endpoint;
}

export function connectClients(options: ClientOptions): VmletClients {
  const target = normaliseEndpoint(options.endpoint);
  const credentials = options.tlsCa
    ? grpc.credentials.createSsl(
        readFileSync(options.tlsCa),
        options.tlsKey ? readFileSync(options.tlsKey) : null,
        options.tlsCert ? readFileSync(options.tlsCert) : null,
      )
    : grpc.credentials.createInsecure();
  const channelOptions = { 'grpc.max_receive_message_length': 64 * 1024 * 1024 };
  const vms = new vmletV1.VmService(target, credentials, channelOptions);
  const channel = vms.getChannel();
  const migrations = new vmletV1.MigrationService(target, credentials, { ...channelOptions, channelOverride: channel });
  const images = new vmletV1.ImageService(target, credentials, { ...channelOptions, channelOverride: channel });
  return {
    vms,
    migrations,
    images,
    close() {
      vms.close();
      migrations.close();
      images.close();
    },
  };
}

/** Promise form of a unary call: `await unary(client.getVm.bind(client), { id })`. */
export function unary<Req, Res>(
  method: (req: Req, metadata: grpc.Metadata, options: grpc.CallOptions, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall,
  request: Req,
  options: grpc.CallOptions = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(request, new grpc.Metadata(), options, (err, res) => (err ? reject(err) : resolve(res as Res)));
  });
}
