import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** `ip` for tests, with stderr in the error. */
export async function ip(args: string[]): Promise<string> {
  try {
    return (await run('ip', args, { timeout: 15_000 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

/**
 * A network namespace of a test's own, with a bridge carrying an address (the "host" side of the
 * lab network). Every test that touches networking works inside one and removes it afterwards.
 */
export class TestNetns {
  private constructor(readonly name: string) {}

  static async create(prefix = 'vmlet-t'): Promise<TestNetns> {
    const ns = new TestNetns(`${prefix}-${randomBytes(3).toString('hex')}`);
    await ip(['netns', 'add', ns.name]);
    await ip(['-n', ns.name, 'link', 'set', 'lo', 'up']);
    return ns;
  }

  async addBridge(name: string, cidr?: string): Promise<void> {
    await ip(['-n', this.name, 'link', 'add', 'name', name, 'type', 'bridge']);
    await ip(['-n', this.name, 'link', 'set', 'dev', name, 'up']);
    if (cidr) await ip(['-n', this.name, 'addr', 'add', cidr, 'dev', name]);
  }

  async links(): Promise<{ ifname: string; master?: string; mtu: number; linkinfo?: { info_kind?: string } }[]> {
    return JSON.parse(await ip(['-n', this.name, '-json', '-details', 'link', 'show'])) as never;
  }

  async linkNames(): Promise<string[]> {
    return (await this.links()).map((l) => l.ifname);
  }

  exec(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], { timeout: 60_000 });
  }

  async delete(): Promise<void> {
    await ip(['netns', 'delete', this.name]).catch(() => undefined);
  }
}
