import { describe, expect, it } from 'vitest';
import { CommandError } from '../../src/host/run.js';
import type { IpTool } from '../../src/net/ip.js';
import { createTap } from '../../src/net/tap.js';

/** An IpTool that records its calls and fails the first `tuntap add` with `failure`. */
function fakeIp(failure: CommandError) {
  const calls: string[] = [];
  const ip = {
    netns: undefined,
    async exec(args: string[]): Promise<string> {
      calls.push(args.slice(0, 2).join(' '));
      if (args[0] === 'tuntap') throw failure;
      return '';
    },
  } as unknown as IpTool;
  return { ip, calls };
}

const bridge = { name: 'br0', mtu: 1500 };

describe('createTap', () => {
  it('removes the TAP a `tuntap add` killed at its deadline may have made', async () => {
    const { ip, calls } = fakeIp(new CommandError('ip', ['tuntap', 'add'], null, '', 'timed out after 10000 ms', true));
    await expect(createTap(ip, 'vml000000000001', bridge, false)).rejects.toThrow('timed out');
    expect(calls).toEqual(['tuntap add', 'link del']);
  });

  it('leaves the name alone when `tuntap add` plainly failed (it made nothing)', async () => {
    const { ip, calls } = fakeIp(new CommandError('ip', ['tuntap', 'add'], 1, 'ioctl(TUNSETIFF): Device or resource busy', 'failed (exit 1)'));
    await expect(createTap(ip, 'vml000000000001', bridge, false)).rejects.toThrow('Device or resource busy');
    expect(calls).toEqual(['tuntap add']);
  });
});
