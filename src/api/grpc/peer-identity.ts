import type { ServerUnaryCall } from '@grpc/grpc-js';
import { subjectDnForms } from '../../host/cert-subject.js';

/** The subject of the caller's TLS client certificate, in the DN forms QEMU may compare; none without one. */
export function callerSubjects(call: Pick<ServerUnaryCall<unknown, unknown>, 'getAuthContext'>): string[] {
  const raw = call.getAuthContext()?.sslPeerCertificate?.raw;
  return raw ? subjectDnForms(raw) : [];
}
