/**
 * A certificate subject as the distinguished-name strings QEMU compares with an authz rule.
 * QEMU takes the peer's name from GnuTLS, which writes the RDNs most specific first (RFC 4514)
 * or, in its compatibility form, in certificate order; vmlet lets in either form of the same
 * subject, and nothing else.
 */
import { X509Certificate } from 'node:crypto';

/** The subject of a DER or PEM certificate in both DN orders (one string when they agree). */
export function subjectDnForms(certificate: Buffer | string): string[] {
  // One RDN a line, values escaped as RFC 2253 says (OpenSSL's printing), as GnuTLS escapes them.
  const rdns = new X509Certificate(certificate).subject.split('\n').filter(Boolean);
  return [...new Set([rdns.join(','), [...rdns].reverse().join(',')])];
}
