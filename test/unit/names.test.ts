import { describe, expect, it } from 'vitest';
import { VmletError } from '../../src/model/errors.js';
import { isVmletTapName, stableMac, tapName } from '../../src/net/names.js';
import { ifNameProblem, validateMac } from '../../src/model/names.js';

describe('tapName', () => {
  it.each([
    ['web-1', 'eth0'],
    ['a', 'b'],
    ['x'.repeat(63), 'y'.repeat(15)],
  ])('%s/%s is a 15-byte vmlet TAP name', (vm, nic) => {
    const name = tapName(vm, nic);
    expect(Buffer.byteLength(name)).toBe(15);
    expect(name).toMatch(/^vml[0-9a-f]{12}$/);
    expect(isVmletTapName(name)).toBe(true);
  });

  it('is stable and pinned (changing it would orphan TAPs of running VMs)', () => {
    expect(tapName('web-1', 'eth0')).toBe(tapName('web-1', 'eth0'));
    expect(tapName('web-1', 'eth0')).toBe('vml3e4e09163ef5');
  });

  it.each([
    [['web-1', 'eth0'], ['web-1', 'eth1']],
    [['web-1', 'eth0'], ['web-2', 'eth0']],
    [['a-b', 'c'], ['a', 'b-c']],
  ])('%j and %j differ', ([a, b], [c, d]) => {
    expect(tapName(a as string, b as string)).not.toBe(tapName(c as string, d as string));
  });
});

describe('isVmletTapName', () => {
  it.each([
    ['vml0123456789ab', true],
    ['vml0123456789AB', false],
    ['vml0123456789a', false],
    ['vml0123456789abc', false],
    ['tap0', false],
    ['eth0', false],
    ['vmlx123456789ab', false],
  ])('%s → %s', (name, ok) => expect(isVmletTapName(name)).toBe(ok));
});

describe('stableMac', () => {
  it.each([
    ['web-1', 'eth0'],
    ['a', 'b'],
  ])('%s/%s is a lowercase locally administered unicast MAC', (vm, nic) => {
    const mac = stableMac(vm, nic);
    expect(mac).toMatch(/^02(:[0-9a-f]{2}){5}$/);
    expect(validateMac(mac, 'f')).toBe(mac);
  });

  it('is stable and pinned (a VM keeps its MAC across restarts, upgrades and migration)', () => {
    expect(stableMac('web-1', 'eth0')).toBe('02:2b:9e:f9:71:22');
  });

  it('differs per NIC and per VM', () => {
    expect(stableMac('web-2', 'eth0')).not.toBe(stableMac('web-1', 'eth0'));
    expect(stableMac('web-1', 'eth0')).not.toBe(stableMac('web-1', 'eth1'));
  });
});

describe('validateMac', () => {
  it.each([
    ['02:00:00:00:00:01', '02:00:00:00:00:01'],
    ['52:54:00:AB:cd:EF', '52:54:00:ab:cd:ef'],
    ['00:00:00:00:00:01', '00:00:00:00:00:01'],
  ])('accepts %s as %s', (mac, out) => expect(validateMac(mac, 'spec.nics[0].mac')).toBe(out));

  it.each([
    ['02:00:00:00:00', /not a MAC address/],
    ['02-00-00-00-00-01', /not a MAC address/],
    ['0200.0000.0001', /not a MAC address/],
    ['02:00:00:00:00:0g', /not a MAC address/],
    [' 02:00:00:00:00:01', /not a MAC address/],
    ['01:00:5e:00:00:01', /multicast/],
    ['ff:ff:ff:ff:ff:ff', /multicast/],
    ['03:00:00:00:00:01', /multicast/],
    ['00:00:00:00:00:00', /all-zero/],
  ])('rejects %s', (mac, why) => {
    let err: unknown;
    try {
      validateMac(mac, 'spec.nics[2].mac');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VmletError);
    expect((err as VmletError).code).toBe('INVALID_ARGUMENT');
    expect((err as VmletError).message).toMatch(/^spec\.nics\[2\]\.mac: /);
    expect((err as VmletError).message).toMatch(why);
  });
});

describe('ifNameProblem', () => {
  it.each(['br0', 'virbr-lab_1', 'a', 'x'.repeat(15), 'br.100', 'ünï'])('accepts %j', (name) => {
    expect(ifNameProblem(name)).toBeUndefined();
  });

  it.each([
    ['', /empty/],
    ['x'.repeat(16), /16 bytes/],
    ['ü'.repeat(8), /16 bytes/],
    ['.', /not a valid/],
    ['..', /not a valid/],
    ['br/0', /contains/],
    ['br:0', /contains/],
    ['br 0', /contains/],
    ['br\t0', /contains/],
    ['br\0', /contains/],
  ])('rejects %j', (name, why) => {
    expect(ifNameProblem(name)).toMatch(why);
  });
});
