import { describe, expect, it } from 'vitest';
import { migrationAddress, parseDaemonArgs } from '../../src/config.js';
import { qmpConnectTimeoutMs } from '../../src/qemu/qmp.js';

describe('parseDaemonArgs', () => {
  it('has defaults for everything', () => {
    const c = parseDaemonArgs([]);
    expect(c.stateDir).toBe('/var/lib/vmlet');
    expect(c.grpcListen).toEqual(['unix:///run/vmlet/vmlet.sock']);
    expect(c.httpListen).toBe('127.0.0.1:9474');
    expect(c.accelerator).toBe('auto');
    expect(c.cpuOvercommit).toBe(10);
    expect(c.memoryOvercommit).toBe(1);
  });

  it.each(['0.0.0.0:7443', '10.0.0.1:7443', '127.0.0.1:7443', 'localhost:7443', '[::1]:7443'])('plaintext TCP listener %s needs --insecure-tcp', (address) => {
    expect(() => parseDaemonArgs(['--grpc-listen', address])).toThrow(/--insecure-tcp/);
    expect(parseDaemonArgs(['--grpc-listen', address, '--insecure-tcp']).grpcListen).toEqual([address]);
  });

  it('--authz names a policy file, resolved', () => {
    expect(parseDaemonArgs(['--authz', 'policy.yaml']).authzFile).toMatch(/^\/.*policy\.yaml$/);
    expect(parseDaemonArgs([]).authzFile).toBeUndefined();
  });

  it('TLS flags go together and then allow any TCP listener', () => {
    expect(() => parseDaemonArgs(['--tls-cert', 'c'])).toThrow(/go together/);
    const c = parseDaemonArgs(['--grpc-listen', '0.0.0.0:7443', '--tls-cert', 'c', '--tls-key', 'k', '--tls-ca', 'a']);
    expect(c.tls).toEqual({ cert: 'c', key: 'k', ca: 'a' });
  });

  it('rejects bad numbers and enums with the flag name', () => {
    expect(() => parseDaemonArgs(['--cpu-overcommit', 'lots'])).toThrow(/--cpu-overcommit/);
    expect(() => parseDaemonArgs(['--accel', 'xen'])).toThrow(/--accel/);
    expect(() => parseDaemonArgs(['--no-such-flag'])).toThrow();
  });

  it('migration address: explicit, else the first TCP listener host, never a wildcard', () => {
    expect(migrationAddress({ migrationAddress: '10.0.0.5', grpcListen: [] })).toBe('10.0.0.5');
    expect(migrationAddress({ grpcListen: ['unix:///x', '10.0.0.2:7443'] })).toBe('10.0.0.2');
    expect(migrationAddress({ grpcListen: ['0.0.0.0:7443'] })).toBeUndefined();
    expect(migrationAddress({ grpcListen: ['unix:///x'] })).toBeUndefined();
  });

  it('migration streams beyond loopback need TLS or an explicit --insecure-migration', () => {
    expect(() => parseDaemonArgs(['--migration-address', '10.0.0.5'])).toThrow(/--insecure-migration/);
    expect(parseDaemonArgs(['--migration-address', '10.0.0.5', '--insecure-migration']).insecureMigration).toBe(true);
    expect(parseDaemonArgs(['--migration-address', '127.0.0.1']).migrationAddress).toBe('127.0.0.1');
    const tls = ['--tls-cert', 'c', '--tls-key', 'k', '--tls-ca', 'a'];
    expect(parseDaemonArgs(['--migration-address', '10.0.0.5', ...tls]).insecureMigration).toBe(false);
    expect(parseDaemonArgs([]).incomingTimeoutSeconds).toBe(600);
  });
});

describe('guests CPU weight', () => {
  it('--guests-cpu-weight is a whole cgroup weight, 1..10000', () => {
    expect(parseDaemonArgs(['--guests-cpu-weight', '20']).guestsCpuWeight).toBe(20);
    for (const bad of ['0', '10001', '2.5', 'low']) expect(() => parseDaemonArgs(['--guests-cpu-weight', bad])).toThrow(/--guests-cpu-weight/);
  });
});

describe('start deadlines', () => {
  it('--start-timeout-seconds is a floor of at least 1 s, default 5', () => {
    expect(parseDaemonArgs([]).startTimeoutSeconds).toBe(5);
    expect(parseDaemonArgs(['--start-timeout-seconds', '20']).startTimeoutSeconds).toBe(20);
    expect(() => parseDaemonArgs(['--start-timeout-seconds', '0'])).toThrow(/start-timeout-seconds/);
  });

  it('the QMP deadline grows by a second per GiB of guest memory above the floor', () => {
    expect(qmpConnectTimeoutMs(5000, 128)).toBe(6000);
    expect(qmpConnectTimeoutMs(5000, 4096)).toBe(9000);
    expect(qmpConnectTimeoutMs(20_000, 0)).toBe(20_000);
  });
});
