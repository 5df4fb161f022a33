import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { TestDaemon, tempDirForQemu } from './daemon.js';
import { TestNetns, ip } from './netns.js';
import { makeTestCerts, type TestCerts } from './certs.js';

export const NODE_IPS = { a: '10.99.0.1', b: '10.99.0.2' } as const;
export const AGENT_PORT = 7443;

export interface Node {
  name: 'a' | 'b';
  ns: TestNetns;
  daemon: TestDaemon;
  /** host:port of its vmlet, as the other node dials it. */
  address: string;
}

/**
 * Two vmlet "nodes": two network namespaces joined by a veth pair (10.99.0.0/24), each with its
 * own bridge br0 (a lab network 10.98.0.0/24 with the node at .1), state dir and daemon running
 * inside its namespace with mutual TLS on its node address. Images live in one shared folder, as
 * base images at the same path on both nodes.
 */
export class TwoNodes {
  private constructor(
    readonly a: Node,
    readonly b: Node,
    readonly certs: TestCerts,
    readonly images: string,
    private readonly dir: string,
  ) {}

  static async start(options: { bridgeOnB?: boolean; extraArgs?: string[] } = {}): Promise<TwoNodes> {
    const dir = await tempDirForQemu('vmlet-2n-');
    const images = join(dir, 'images');
    await promisify(execFile)('mkdir', ['-p', images]);
    const certs = await makeTestCerts(dir, [NODE_IPS.a, NODE_IPS.b]);
    // Each node calls the other with the node certificate (CN=server): a peer. Tests that call
    // a node over TCP use the client certificate: an admin.
    const policy = join(dir, 'authz.yaml');
    await writeFile(policy, 'rules:\n  - role: peer\n    match: { cn: server }\n  - role: admin\n    match: { cn: client }\n');
    const nsA = await TestNetns.create('vmlet-na');
    const nsB = await TestNetns.create('vmlet-nb');
    const vethA = `va${nsA.name.slice(-6)}`;
    const vethB = `vb${nsB.name.slice(-6)}`;
    await ip(['link', 'add', vethA, 'netns', nsA.name, 'type', 'veth', 'peer', 'name', vethB, 'netns', nsB.name]);
    for (const [ns, veth, addr] of [[nsA, vethA, NODE_IPS.a], [nsB, vethB, NODE_IPS.b]] as const) {
      await ip(['-n', ns.name, 'addr', 'add', `${addr}/24`, 'dev', veth]);
      await ip(['-n', ns.name, 'link', 'set', 'dev', veth, 'up']);
    }
    await nsA.addBridge('br0', '10.98.0.1/24');
    if (options.bridgeOnB !== false) await nsB.addBridge('br0', '10.98.0.1/24');
    const node = async (name: 'a' | 'b', ns: TestNetns): Promise<Node> => {
      const address = `${NODE_IPS[name]}:${AGENT_PORT}`;
      const daemon = await TestDaemon.start({
        netns: ns.name,
        extraArgs: [
          '--netns', ns.name,
          '--node-name', `node-${name}`,
          '--grpc-listen', address,
          '--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-ca', certs.ca,
          '--authz', policy,
          '--image-root', images,
          ...(options.extraArgs ?? []),
        ],
      });
      return { name, ns, daemon, address };
    };
    const [a, b] = await Promise.all([node('a', nsA), node('b', nsB)]);
    return new TwoNodes(a, b, certs, images, dir);
  }

  async cleanup(): Promise<void> {
    await Promise.all([this.a.daemon.cleanup(), this.b.daemon.cleanup()]);
    await this.a.ns.delete();
    await this.b.ns.delete();
    if (!process.env.VMLET_KEEP_TEST_DIRS) await rm(this.dir, { recursive: true, force: true });
  }
}
