import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { Authorizer } from '../../src/api/authz/authorizer.js';
import { identityOf, unixPeerTag, type CallPeer } from '../../src/api/authz/identity.js';
import { parsePolicy, PolicyError } from '../../src/api/authz/policy-file.js';
import { mayCall } from '../../src/api/authz/roles.js';
import { VmletError } from '../../src/model/errors.js';
import { supplementaryGroups } from '../../src/host/peercred.js';

const certCall = (cn: string, san = ''): CallPeer => ({
  getPeer: () => '10.0.0.7:41000',
  getAuthContext: () => ({ sslPeerCertificate: { subject: { CN: cn }, subjectaltname: san } }),
});
const unixCall = (uid: number, gids: number[]): CallPeer => ({ getPeer: () => unixPeerTag(uid, gids, 4242), getAuthContext: () => ({}) });
const plainCall: CallPeer = { getPeer: () => '127.0.0.1:5000', getAuthContext: () => ({}) };
const unknownCall: CallPeer = { getPeer: () => 'unknown', getAuthContext: () => undefined };

const POLICY = `
rules:
  - role: admin
    match: { cn: ops-admin }
  - role: peer
    match: { san_dns: node-b.example }
  - role: operator
    match: { san_uri: "spiffe://example/ops", cn: deployer }
  - role: viewer
    match: { gid: 1001 }
`;

function authorizer(policy?: string, insecureTcp = false) {
  const denied: string[] = [];
  const a = new Authorizer({ policy: policy ? parsePolicy(policy) : undefined, socketGid: 990, insecureTcp, logger: pino({ level: 'silent' }), onDenied: (m, r) => denied.push(`${m}/${r}`) });
  return { a, denied };
}

function deniedCode(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof VmletError ? `${err.code}: ${err.message}` : String(err);
  }
  return 'allowed';
}

describe('roles', () => {
  it('each role stops where API.md says', () => {
    expect(mayCall('viewer', 'GetVm')).toBe(true);
    expect(mayCall('viewer', 'StopVm')).toBe(false);
    expect(mayCall('viewer', 'Console')).toBe(false);
    expect(mayCall('operator', 'StopVm')).toBe(true);
    expect(mayCall('operator', 'MigrateVm')).toBe(true);
    expect(mayCall('operator', 'PrepareIncoming')).toBe(false);
    expect(mayCall('peer', 'PrepareIncoming')).toBe(true);
    expect(mayCall('peer', 'CreateVm')).toBe(false);
    expect(mayCall('peer', 'ListVms')).toBe(false);
    expect(mayCall('admin', 'PrepareIncoming')).toBe(true);
  });
});

describe('caller identity', () => {
  it('reads CN and SANs from the certificate, uid and groups from the unix tag', () => {
    expect(identityOf(certCall('n1', 'DNS:node-b.example, URI:spiffe://x/y, IP Address:10.0.0.2'))).toEqual({ kind: 'certificate', cn: 'n1', sanDns: ['node-b.example'], sanUri: ['spiffe://x/y'] });
    expect(identityOf(unixCall(1000, [1000, 1001]))).toEqual({ kind: 'unix', uid: 1000, gids: [1000, 1001], pid: 4242 });
    expect(identityOf(plainCall)).toEqual({ kind: 'plaintext-tcp', address: '127.0.0.1' });
    expect(identityOf(unknownCall)).toEqual({ kind: 'unknown' });
  });
});

describe('policy file', () => {
  it('rejects what it cannot mean', () => {
    expect(() => parsePolicy('rules: []')).toThrow(PolicyError);
    expect(() => parsePolicy('rules:\n  - role: root\n    match: { cn: x }')).toThrow(/role must be one of/);
    expect(() => parsePolicy('rules:\n  - role: admin\n    match: {}')).toThrow(/at least one/);
    expect(() => parsePolicy('rules:\n  - role: admin\n    match: { email: x }')).toThrow(/unknown match field email/);
    expect(() => parsePolicy('rules:\n  - role: admin\n    match: { uid: -1 }')).toThrow(/non-negative/);
    expect(() => parsePolicy('rules:\n  - role: admin\n    match: { uid: 0, cn: x }')).toThrow(/one rule cannot need both/);
    expect(() => parsePolicy('rules:\n  - role: admin\n    match: { cn: x }\n    extra: 1')).toThrow(/unknown field extra/);
  });
});

describe('authorizer', () => {
  it('with a policy: the first matching rule gives the role, every field of a match must hold', () => {
    const { a, denied } = authorizer(POLICY);
    expect(a.authorize('DeleteVm', certCall('ops-admin'))).toBe('admin');
    expect(a.authorize('PrepareIncoming', certCall('node-b', 'DNS:node-b.example'))).toBe('peer');
    expect(deniedCode(() => a.authorize('CreateVm', certCall('node-b', 'DNS:node-b.example')))).toMatch(/^PERMISSION_DENIED: certificate CN=node-b DNS=node-b.example: role peer may not call CreateVm/);
    expect(a.authorize('StopVm', certCall('deployer', 'URI:spiffe://example/ops'))).toBe('operator');
    expect(deniedCode(() => a.authorize('StopVm', certCall('deployer')))).toMatch(/no rule of the --authz policy matches/);
    expect(deniedCode(() => a.authorize('PrepareIncoming', certCall('deployer', 'URI:spiffe://example/ops')))).toMatch(/role operator may not call PrepareIncoming/);
    expect(a.authorize('ListVms', unixCall(1000, [1000, 1001]))).toBe('viewer');
    expect(deniedCode(() => a.authorize('StopVm', unixCall(1000, [1000, 1001])))).toMatch(/role viewer may not call StopVm/);
    // root keeps admin on the unix socket; the socket's group does not, once there is a policy
    expect(a.authorize('DeleteVm', unixCall(0, [0]))).toBe('admin');
    expect(deniedCode(() => a.authorize('ListVms', unixCall(1002, [990])))).toMatch(/PERMISSION_DENIED/);
    expect(deniedCode(() => a.authorize('ListVms', unknownCall))).toMatch(/PERMISSION_DENIED/);
    expect(denied).toEqual(['CreateVm/peer', 'StopVm/none', 'PrepareIncoming/operator', 'StopVm/viewer', 'ListVms/none', 'ListVms/none']);
  });

  it('without a policy: root and the socket group are admin on the unix socket, TCP callers have no role', () => {
    const { a } = authorizer();
    expect(a.authorize('DeleteVm', unixCall(0, [0]))).toBe('admin');
    expect(a.authorize('DeleteVm', unixCall(1000, [1000, 990]))).toBe('admin');
    expect(deniedCode(() => a.authorize('GetVm', unixCall(1000, [1000])))).toMatch(/PERMISSION_DENIED/);
    expect(deniedCode(() => a.authorize('GetVm', certCall('ops-admin')))).toMatch(/callers over TCP need a role from an --authz policy/);
    expect(deniedCode(() => a.authorize('GetVm', plainCall))).toMatch(/PERMISSION_DENIED/);
  });

  it('--insecure-tcp trusts plaintext TCP callers as admin', () => {
    expect(authorizer(undefined, true).a.authorize('DeleteVm', plainCall)).toBe('admin');
  });
});

describe('supplementary groups from /proc/<pid>/status', () => {
  it('reads the Groups line, empty or not, and nothing of the next line', () => {
    expect(supplementaryGroups('Uid:\t0\t0\t0\t0\nGroups:\t\nNStgid:\t27557\n')).toEqual([]);
    expect(supplementaryGroups('Groups:\t4 24 27 1001 \nNStgid:\t1\n')).toEqual([4, 24, 27, 1001]);
  });
});
