import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { VmletError, failedPrecondition } from '../../model/errors.js';
import { EFI_VARS_MIRROR } from '../../model/qemu-ids.js';
import type { IncomingReady, MigrationPeer, PrepareIncoming } from '../../migration/ports.js';
import { isLoopbackAddress, type TlsConfig } from '../../host/addresses.js';
import { vmletV1 } from './proto.js';
import type { MigrationAgentServiceClient } from './generated/vmlet/v1/MigrationAgentService.js';
import { specToProto } from './convert.js';
import { unary } from './client.js';
import type { PrepareIncomingRequest } from './generated/vmlet/v1/PrepareIncomingRequest.js';
import type { PrepareIncomingResponse__Output } from './generated/vmlet/v1/PrepareIncomingResponse.js';

/** How long one agent call may take. */
const AGENT_CALL_MS = 60_000;

const GRPC_TO_CODE: Partial<Record<number, VmletError['code']>> = {
  [grpc.status.INVALID_ARGUMENT]: 'INVALID_ARGUMENT',
  [grpc.status.NOT_FOUND]: 'NOT_FOUND',
  [grpc.status.ALREADY_EXISTS]: 'ALREADY_EXISTS',
  [grpc.status.FAILED_PRECONDITION]: 'FAILED_PRECONDITION',
  [grpc.status.RESOURCE_EXHAUSTED]: 'RESOURCE_EXHAUSTED',
  [grpc.status.UNAVAILABLE]: 'UNAVAILABLE',
  [grpc.status.DEADLINE_EXCEEDED]: 'DEADLINE_EXCEEDED',
  [grpc.status.UNAUTHENTICATED]: 'UNAUTHENTICATED',
  [grpc.status.PERMISSION_DENIED]: 'PERMISSION_DENIED',
};

/** A gRPC error from the target keeps its code, prefixed so the caller knows which node said it. */
function fromRemote(err: unknown): unknown {
  const e = err as Partial<grpc.ServiceError>;
  if (err instanceof VmletError || typeof e.code !== 'number') return err;
  return new VmletError(GRPC_TO_CODE[e.code] ?? 'UNAVAILABLE', `target node: ${e.details ?? e.message}`, { cause: err });
}

/**
 * The target node's MigrationAgentService as a MigrationPeer. Peers beyond loopback are reached
 * only with mutual TLS (this node's certificate, the cluster CA).
 */
export function connectPeer(target: string, tls: TlsConfig | undefined): MigrationPeer {
  const client = new vmletV1.MigrationAgentService(target, credentialsFor(target, tls)) as MigrationAgentServiceClient;
  return {
    async prepareIncoming(r: PrepareIncoming): Promise<IncomingReady> {
      const res = await call<PrepareIncomingRequest, PrepareIncomingResponse__Output>(client.prepareIncoming.bind(client), {
        uid: r.uid,
        spec: specToProto(r.spec),
        nics: r.nics.map((n) => ({ name: n.name, tap: n.tap, mac: n.mac, bridge: n.bridge, pciPort: n.port ?? 0 })),
        pciPorts: r.pciPorts,
        disks: r.spec.disks.map((d) => ({ name: d.name, mirror: r.mirroredDisks.includes(d.name) })),
        mirrorEfiVars: r.mirroredDisks.includes(EFI_VARS_MIRROR),
        sourceNode: r.sourceNode,
        allowPostCopy: r.allowPostCopy,
      });
      return { migrationUri: res.migrationUri, exports: res.exports.map((e) => ({ disk: e.disk, host: e.host, port: e.port, name: e.name })) };
    },
    async finishIncoming(uid, vmId, resume) {
      await call(client.finishIncoming.bind(client), { uid, vmId, resume });
    },
    async abortIncoming(uid, vmId, reason) {
      await call(client.abortIncoming.bind(client), { uid, vmId, reason });
    },
    close: () => client.close(),
  };
}

function credentialsFor(target: string, tls: TlsConfig | undefined): grpc.ChannelCredentials {
  if (!tls && !isLoopbackAddress(target)) throw failedPrecondition(`migrating to ${target} needs mutual TLS: start vmlet with --tls-cert, --tls-key and --tls-ca`);
  return tls ? grpc.credentials.createSsl(readFileSync(tls.ca), readFileSync(tls.key), readFileSync(tls.cert)) : grpc.credentials.createInsecure();
}

/** An agent call with a deadline; errors carry the target's code. */
function call<Req, Res>(method: Parameters<typeof unary<Req, Res>>[0], request: Req): Promise<Res> {
  return unary(method, request, { deadline: Date.now() + AGENT_CALL_MS }).catch((err: unknown) => {
    throw fromRemote(err);
  });
}
