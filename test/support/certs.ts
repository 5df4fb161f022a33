import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { writeFile } from 'node:fs/promises';

const openssl = (args: string[], cwd: string) => promisify(execFile)('openssl', args, { cwd, timeout: 30_000 });

export interface TestCerts {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate from a CA the server does not trust. */
  strangerCert: string;
  strangerKey: string;
}

async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.crt`], dir);
}

async function makeLeaf(dir: string, ca: string, name: string, ext: string, days = 1): Promise<void> {
  await writeFile(join(dir, `${name}.ext`), ext);
  await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
  await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', String(days), '-extfile', `${name}.ext`, '-out', `${name}.crt`], dir);
}

/** A throw-away CA with a server certificate for 127.0.0.1/localhost and a client certificate. */
export async function makeTestCerts(dir: string, serverIps: string[] = ['127.0.0.1']): Promise<TestCerts> {
  await makeCa(dir, 'ca');
  await makeCa(dir, 'otherca');
  const san = [...serverIps.map((ip) => `IP:${ip}`), 'DNS:localhost'].join(',');
  // The server certificate also serves as a node's client certificate for agent-to-agent calls.
  await makeLeaf(dir, 'ca', 'server', `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  await makeLeaf(dir, 'ca', 'client', 'extendedKeyUsage=clientAuth\n');
  await makeLeaf(dir, 'otherca', 'stranger', 'extendedKeyUsage=clientAuth\n');
  const p = (f: string) => join(dir, f);
  return {
    ca: p('ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    strangerCert: p('stranger.crt'),
    strangerKey: p('stranger.key'),
  };
}

/**
 * One more client certificate with subject CN=`name` from the CA of makeTestCerts (run first, in
 * the same dir); `days` -1 makes one that expired yesterday.
 */
export async function makeClientCert(dir: string, name: string, days = 1): Promise<{ cert: string; key: string }> {
  await makeLeaf(dir, 'ca', name, 'extendedKeyUsage=clientAuth\n', days);
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}
