import { isIP } from 'node:net';
import type { ServerUnaryCall } from '@grpc/grpc-js';
import { subjectDnForms } from '../../host/cert-subject.js';

/** The subject of the caller's TLS client certificate, in the DN forms QEMU may compare; none without one. */
export function callerSubjects(call: Pick<ServerUnaryCall<unknown, unknown>, 'getAuthContext'>): string[] {
  const raw = call.getAuthContext()?.sslPeerCertificate?.raw;
  return raw ? subjectDnForms(raw) : [];
}

/** The caller's IP address (`HOST:PORT` as grpc-js reports it, IPv6 without brackets); none on a unix socket. */
export function callerAddress(call: Pick<ServerUnaryCall<unknown, unknown>, 'getPeer'>): string | undefined {
  const peer = /^\[?(.*?)\]?:(\d+)$/.exec(call.getPeer());
  return peer && isIP(peer[1]!) ? peer[1] : undefined;
}
