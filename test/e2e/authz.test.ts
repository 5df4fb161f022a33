/**
 * Roles over real gRPC: a daemon with TLS and an --authz policy, callers holding certificates
 * of each role, one with no rule, an expired one and one from another CA.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { status } from '@grpc/grpc-js';
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { TestDaemon } from '../support/daemon.js';
import { guestSpec } from '../support/guest.js';
import { makeClientCert, makeTestCerts, type TestCerts } from '../support/certs.js';
import { expectCode } from '../support/rpc.js';
import { parseMetrics } from '../support/metrics-text.js';
import { connectClients, unary, type VmletClients } from '../../src/api/grpc/client.js';
import { vmletV1 } from '../../src/api/grpc/proto.js';
import { get } from 'node:https';
import { wsConsole } from '../support/console-clients.js';

const POLICY = `rules:
  - role: admin
    match: { cn: client }
  - role: operator
    match: { cn: operator }
  - role: viewer
    match: { cn: viewer }
  - role: peer
    match: { cn: peer-node }
`;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

describe('roles from an --authz policy', () => {
  let dir: string;
  let certs: TestCerts;
  let d: TestDaemon;
  let endpoint: string;
  const open: { close(): void }[] = [];
  const as = (cert: string, key: string): VmletClients => {
    const c = connectClients({ endpoint, tlsCa: certs.ca, tlsCert: cert, tlsKey: key });
    open.push(c);
    return c;
  };
  /** The agent service, which no CLI client has: only peers call it. */
  const agentAs = (cert: string, key: string) => {
    const creds = grpc.credentials.createSsl(readFileSync(certs.ca), readFileSync(key), readFileSync(cert));
    const c = new vmletV1.MigrationAgentService(endpoint, creds);
    open.push(c);
    return c;
  };
  let role: Record<'admin' | 'operator' | 'viewer' | 'peer' | 'nobody' | 'expired', { cert: string; key: string }>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-authz-'));
    certs = await makeTestCerts(dir);
    role = {
      admin: { cert: certs.clientCert, key: certs.clientKey },
      operator: await makeClientCert(dir, 'operator'),
      viewer: await makeClientCert(dir, 'viewer'),
      peer: await makeClientCert(dir, 'peer-node'),
      nobody: await makeClientCert(dir, 'nobody'),
      expired: await makeClientCert(dir, 'expired', -1),
    };
    await writeFile(join(dir, 'authz.yaml'), POLICY);
    const port = await freePort();
    endpoint = `127.0.0.1:${port}`;
    d = await TestDaemon.start({
      extraArgs: [
        '--grpc-listen', endpoint, '--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-ca', certs.ca, '--authz', join(dir, 'authz.yaml'),
        '--http-tls-cert', certs.serverCert, '--http-tls-key', certs.serverKey, '--console-websocket',
      ],
    });
  });
  afterAll(async () => {
    for (const c of open) c.close();
    await d?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('each role is stopped at its boundary with PERMISSION_DENIED, and counted', async () => {
    const admin = as(role.admin.cert, role.admin.key).vms;
    await unary(admin.createVm.bind(admin), { spec: guestSpec('authz-1'), start: false });

    const viewer = as(role.viewer.cert, role.viewer.key).vms;
    const listed = await unary<object, { vms: unknown[] }>(viewer.listVms.bind(viewer), {});
    expect(listed.vms).toHaveLength(1);
    expect(await expectCode(() => unary(viewer.stopVm.bind(viewer), { id: 'authz-1' }), status.PERMISSION_DENIED)).toContain('role viewer may not call StopVm');

    const peer = as(role.peer.cert, role.peer.key).vms;
    expect(await expectCode(() => unary(peer.createVm.bind(peer), { spec: guestSpec('authz-2') }), status.PERMISSION_DENIED)).toContain('role peer may not call CreateVm');

    const agentAsOperator = agentAs(role.operator.cert, role.operator.key);
    expect(await expectCode(() => unary(agentAsOperator.abortIncoming.bind(agentAsOperator), { uid: 'x', vmId: 'authz-1', reason: 'r' }), status.PERMISSION_DENIED)).toContain('role operator may not call AbortIncoming');
    // The operator's lifecycle calls pass the role check (and meet the VM's own rules).
    const operator = as(role.operator.cert, role.operator.key).vms;
    await expectCode(() => unary(operator.pauseVm.bind(operator), { id: 'authz-1' }), status.FAILED_PRECONDITION);

    // A peer may only act on migrations with itself: nothing migrates here from it.
    const agentAsPeer = agentAs(role.peer.cert, role.peer.key);
    expect(await expectCode(() => unary(agentAsPeer.abortIncoming.bind(agentAsPeer), { uid: 'x', vmId: 'authz-1', reason: 'r' }), status.PERMISSION_DENIED)).toContain('not migrating here from the calling node');

    const nobody = as(role.nobody.cert, role.nobody.key).vms;
    expect(await expectCode(() => unary(nobody.getNodeInfo.bind(nobody), {}), status.PERMISSION_DENIED)).toContain('CN=nobody');

    const metrics = parseMetrics(await httpsGet(`${d.httpAddress}/metrics`, certs.ca));
    const denied = (method: string, r: string) => metrics.find((m) => m.name === 'vmlet_grpc_denied_total' && m.labels.method === method && m.labels.role === r)?.value;
    expect(denied('StopVm', 'viewer')).toBe(1);
    expect(denied('CreateVm', 'peer')).toBe(1);
    expect(denied('AbortIncoming', 'operator')).toBe(1);
    expect(denied('GetNodeInfo', 'none')).toBe(1);
    // Root on the unix socket stays admin.
    await unary(d.clients.vms.deleteVm.bind(d.clients.vms), { id: 'authz-1', force: true });
  });

  it('over HTTPS, the console websocket takes a client certificate with a role; /metrics needs none', async () => {
    expect(d.httpAddress).toMatch(/^https:/);
    const tls = (r: { cert: string; key: string } | undefined) => ({ ca: readFileSync(certs.ca), ...(r ? { cert: readFileSync(r.cert), key: readFileSync(r.key) } : {}) });
    // Past the identity check, a VM that does not exist is the next refusal.
    await expect(wsConsole(d.httpAddress, 'no-such-vm', tls(role.operator))).rejects.toThrow('HTTP 404');
    await expect(wsConsole(d.httpAddress, 'no-such-vm', tls(role.viewer))).rejects.toThrow('HTTP 404');
    await expect(wsConsole(d.httpAddress, 'no-such-vm', tls(role.peer))).rejects.toThrow('HTTP 403');
    await expect(wsConsole(d.httpAddress, 'no-such-vm', tls(role.nobody))).rejects.toThrow('HTTP 403');
    await expect(wsConsole(d.httpAddress, 'no-such-vm', tls(undefined))).rejects.toThrow('HTTP 401');
    expect(await httpsGet(`${d.httpAddress}/healthz`, certs.ca)).toContain('ok');
  });

  it('an expired certificate and one from another CA never reach a handler', async () => {
    for (const c of [as(role.expired.cert, role.expired.key), as(certs.strangerCert, certs.strangerKey)]) {
      await expectCode(() => unary(c.vms.getNodeInfo.bind(c.vms), {}, { deadline: Date.now() + 5000 }), status.UNAVAILABLE);
    }
  });
});

/** GET over HTTPS trusting the CA in `caFile`, without a client certificate. */
function httpsGet(url: string, caFile: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { ca: readFileSync(caFile) }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}
