import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { failedPrecondition } from '../model/errors.js';
import { isLoopbackAddress, type TlsConfig } from '../config.js';
import { vmletV1 } from '../api/grpc/proto.js';
import type { MigrationAgentServiceClient } from '../api/grpc/generated/vmlet/v1/MigrationAgentService.js';

/**
 * A client for the target node's MigrationAgentService. Peers beyond loopback are reached only
 * with mutual TLS (this node's certificate, the cluster CA).
 */
export function connectAgent(target: string, tls: TlsConfig | undefined): MigrationAgentServiceClient {
  let credentials: grpc.ChannelCredentials;
  if (isLoopbackAddress(target)) {
    credentials = tls ? grpc.credentials.createSsl(readFileSync(tls.ca), readFileSync(tls.key), readFileSync(tls.cert)) : grpc.credentials.createInsecure();
  } else {
    if (!tls) throw failedPrecondition(`migrating to ${target} needs mutual TLS: start vmlet with --tls-cert, --tls-key and --tls-ca`);
    credentials = grpc.credentials.createSsl(readFileSync(tls.ca), readFileSync(tls.key), readFileSync(tls.cert));
  }
  return new vmletV1.MigrationAgentService(target, credentials);
}

/** Promise form of an agent call with a deadline. */
export function call<Req, Res>(
  method: (req: Req, metadata: grpc.Metadata, options: grpc.CallOptions, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall,
  request: Req,
  timeoutMs: number,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as Res)));
  });
}
