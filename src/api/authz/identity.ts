import { isIP } from 'node:net';

/**
 * Who is calling: the TLS client certificate's subject CN and SANs on TCP, the process's
 * uid and groups on the unix socket (SO_PEERCRED, see server.ts), or nobody known.
 */
export type CallerIdentity =
  | { kind: 'certificate'; cn: string; sanDns: string[]; sanUri: string[] }
  | { kind: 'unix'; uid: number; gids: number[]; pid: number }
  | { kind: 'plaintext-tcp'; address: string }
  | { kind: 'unknown' };

/** What the gRPC call tells about its peer. */
export interface CallPeer {
  getPeer(): string;
  getAuthContext(): { sslPeerCertificate?: { subject?: { CN?: string | string[] }; subjectaltname?: string } } | undefined;
}

/** The form in which server.ts stamps a unix socket's peer credentials on the connection. */
export const unixPeerTag = (uid: number, gids: readonly number[], pid: number): string => `unix-peer uid=${uid} gids=${gids.join(',')} pid=${pid}`;

const UNIX_TAG = /^unix-peer uid=(\d+) gids=([\d,]*) pid=(\d+)$/;

export function identityOf(call: CallPeer): CallerIdentity {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  if (cert?.subject) {
    const cn = cert.subject.CN;
    const sans = (cert.subjectaltname ?? '').split(/,\s*/).filter(Boolean);
    const of = (prefix: string): string[] => sans.filter((s) => s.startsWith(prefix)).map((s) => s.slice(prefix.length));
    return { kind: 'certificate', cn: Array.isArray(cn) ? (cn[0] ?? '') : (cn ?? ''), sanDns: of('DNS:'), sanUri: of('URI:') };
  }
  const peer = call.getPeer();
  const unix = UNIX_TAG.exec(peer);
  if (unix) return { kind: 'unix', uid: Number(unix[1]), gids: unix[2]!.split(',').filter(Boolean).map(Number), pid: Number(unix[3]) };
  const tcp = /^\[?(.*?)\]?:(\d+)$/.exec(peer);
  if (tcp && isIP(tcp[1]!)) return { kind: 'plaintext-tcp', address: tcp[1]! };
  return { kind: 'unknown' };
}

/** For logs: the identity in one short string. */
export function describeIdentity(id: CallerIdentity): string {
  switch (id.kind) {
    case 'certificate':
      return `certificate CN=${id.cn}${id.sanDns.length ? ` DNS=${id.sanDns.join(',')}` : ''}${id.sanUri.length ? ` URI=${id.sanUri.join(',')}` : ''}`;
    case 'unix':
      return `unix uid=${id.uid} gids=${id.gids.join(',')} pid=${id.pid}`;
    case 'plaintext-tcp':
      return `plaintext TCP from ${id.address}`;
    default:
      return 'unknown caller';
  }
}
