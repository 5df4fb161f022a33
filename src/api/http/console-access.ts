import { createHash, timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import type { CallerIdentity } from '../authz/identity.js';
import { mayCall, type Role } from '../authz/roles.js';

/**
 * Who may open a console websocket: a bearer token (`--console-token-file`, an operator), or,
 * over HTTPS, a client certificate whose role (from the --authz policy) allows Console
 * (read-write) or GetConsoleLog (read-only). The Host header must name an allowed host, which
 * also makes the same-origin rule sound.
 */
export interface ConsoleAccessOptions {
  /** The token's bytes; absent: no token is accepted. */
  token?: string;
  /** Host names (no port) the Host header may carry. */
  allowedHosts: readonly string[];
  /** A client certificate's role, when the server asks for certificates. */
  roleOfCertificate?: (id: CallerIdentity) => Role | undefined;
}

export type ConsoleGrant = { mode: 'read-write' | 'read-only'; who: string };
export type ConsoleRefusal = { status: 401 | 403; message: string };

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** The Host header's name without its port ([v6] unbracketed), lower-cased. */
export function hostName(host: string): string {
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  if (v6) return v6[1]!.toLowerCase();
  return host.replace(/:\d+$/, '').toLowerCase();
}

export function checkConsoleAccess(o: ConsoleAccessOptions, req: FastifyRequest): ConsoleGrant | ConsoleRefusal {
  const host = req.headers.host;
  if (!host || !o.allowedHosts.includes(hostName(host))) {
    return { status: 403, message: `Host ${host ?? '(none)'} is not one of --http-allowed-hosts (${o.allowedHosts.join(', ')})` };
  }
  const auth = req.headers.authorization;
  const bearer = auth && /^Bearer\s+(.+)$/i.exec(auth)?.[1];
  if (bearer !== undefined && bearer !== null && bearer !== '') {
    if (o.token !== undefined && timingSafeEqual(digest(bearer), digest(o.token))) return { mode: 'read-write', who: 'console token' };
    return { status: 401, message: 'the bearer token is not the console token' };
  }
  const socket = req.raw.socket as Partial<TLSSocket>;
  if (o.roleOfCertificate && socket.authorized && socket.getPeerCertificate) {
    const cert = socket.getPeerCertificate();
    const sans = (cert.subjectaltname ?? '').split(/,\s*/).filter(Boolean);
    const of = (prefix: string): string[] => sans.filter((s) => s.startsWith(prefix)).map((s) => s.slice(prefix.length));
    const cn = Array.isArray(cert.subject?.CN) ? (cert.subject.CN[0] ?? '') : (cert.subject?.CN ?? '');
    const role = o.roleOfCertificate({ kind: 'certificate', cn, sanDns: of('DNS:'), sanUri: of('URI:') });
    const who = `certificate CN=${cn}`;
    if (role && mayCall(role, 'Console')) return { mode: 'read-write', who };
    if (role && mayCall(role, 'GetConsoleLog')) return { mode: 'read-only', who };
    return { status: 403, message: `${who}: ${role ? `role ${role} may not read consoles` : 'no role from the --authz policy'}` };
  }
  return { status: 401, message: 'a console needs the bearer token of --console-token-file or, over HTTPS, a client certificate with a role' };
}
