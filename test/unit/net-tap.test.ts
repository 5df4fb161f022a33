import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CommandError } from '../../src/host/run.js';
import type { IpTool } from '../../src/net/ip.js';
import { createTap, listTaps } from '../../src/net/tap.js';

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

describe('listTaps', () => {
  /** An IpTool whose `ip -json … link show type tun` lists `links`, and records that it was asked. */
  function listingIp(netns: string | undefined, links: string[]) {
    const asked: string[][] = [];
    const ip = {
      netns,
      async json(args: string[]): Promise<unknown> {
        asked.push(args);
        return links.map((ifname) => ({ ifname }));
      },
    } as unknown as IpTool;
    return { ip, asked };
  }

  it('in its own namespace reads sysfs: the devices with tun_flags whose names are wanted, without running ip', async () => {
    const sys = await mkdtemp(join(tmpdir(), 'vmlet-sysnet-'));
    try {
      for (const [name, tun] of [['vml0000000000aa', true], ['vml0000000000bb', false], ['eth0', false], ['tap9', true]] as const) {
        await mkdir(join(sys, name));
        if (tun) await writeFile(join(sys, name, 'tun_flags'), '0x1002\n');
      }
      const { ip, asked } = listingIp(undefined, []);
      expect(await listTaps(ip, (n) => n.startsWith('vml'), sys)).toEqual(['vml0000000000aa']);
      expect(await listTaps(ip, () => true, sys)).toEqual(expect.arrayContaining(['vml0000000000aa', 'tap9']));
      expect(asked).toEqual([]);
    } finally {
      await rm(sys, { recursive: true, force: true });
    }
  });

  it('in another namespace (--netns), or without sysfs, asks ip', async () => {
    const { ip, asked } = listingIp('vmlet-ns', ['vml0000000000aa', 'tap9']);
    expect(await listTaps(ip, (n) => n.startsWith('vml'))).toEqual(['vml0000000000aa']);
    expect(asked).toEqual([['-details', 'link', 'show', 'type', 'tun']]);
    const own = listingIp(undefined, ['tap9']);
    expect(await listTaps(own.ip, () => true, '/nonexistent/sys/class/net')).toEqual(['tap9']);
    expect(own.asked).toHaveLength(1);
  });
});
