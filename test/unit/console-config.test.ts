import { describe, expect, it } from 'vitest';
import { ConfigError, parseDaemonArgs } from '../../src/config.js';

describe('--console-websocket', () => {
  it('is off by default', () => {
    expect(parseDaemonArgs([]).consoleWebsocket).toBe(false);
  });

  const token = ['--console-token-file', 'token'];
  it('is accepted on a loopback --http-listen with a token', () => {
    expect(parseDaemonArgs(['--console-websocket', ...token]).consoleWebsocket).toBe(true);
    expect(parseDaemonArgs(['--console-websocket', ...token, '--http-listen', '[::1]:9474']).httpAllowedHosts).toEqual(['::1', 'localhost', '127.0.0.1']);
    expect(parseDaemonArgs(['--console-websocket', ...token, '--http-listen', 'localhost:0']).consoleWebsocket).toBe(true);
  });

  it('needs a token, or HTTPS with client certificates and roles', () => {
    expect(() => parseDaemonArgs(['--console-websocket'])).toThrow(/--console-token-file/);
    const https = ['--http-tls-cert', 'c', '--http-tls-key', 'k'];
    const tls = ['--tls-cert', 'c', '--tls-key', 'k', '--tls-ca', 'a'];
    expect(() => parseDaemonArgs(['--console-websocket', ...https, ...tls])).toThrow(/--authz/);
    expect(parseDaemonArgs(['--console-websocket', ...https, ...tls, '--authz', 'p.yaml', '--http-listen', '0.0.0.0:9474']).httpTls).toEqual({ cert: 'c', key: 'k' });
    expect(() => parseDaemonArgs(['--http-tls-cert', 'c'])).toThrow(/go together/);
  });

  it('refuses to start beyond loopback without HTTPS, or without an HTTP listener', () => {
    for (const listen of ['0.0.0.0:9474', '10.1.2.3:9474', '[::]:9474', '']) {
      expect(() => parseDaemonArgs(['--console-websocket', ...token, '--http-listen', listen])).toThrow(ConfigError);
    }
    expect(() => parseDaemonArgs(['--console-websocket', ...token, '--http-listen', '0.0.0.0:9474'])).toThrow(/only served over HTTPS/);
  });

  it('--http-allowed-hosts replaces the default Host names', () => {
    expect(parseDaemonArgs(['--http-allowed-hosts', 'Node-A.example, vmlet.local']).httpAllowedHosts).toEqual(['node-a.example', 'vmlet.local']);
  });
});

describe('--console-log-max-bytes', () => {
  it('is 1 MiB by default', () => {
    expect(parseDaemonArgs([]).consoleLogMaxBytes).toBe(1024 * 1024);
  });

  it('takes a whole number of bytes, at least 64 KiB', () => {
    expect(parseDaemonArgs(['--console-log-max-bytes', '65536']).consoleLogMaxBytes).toBe(65536);
    expect(parseDaemonArgs(['--console-log-max-bytes', '10485760']).consoleLogMaxBytes).toBe(10 * 1024 * 1024);
    for (const bad of ['65535', '0', '-1', '1.5e5', '1MiB', 'abc', '']) {
      expect(() => parseDaemonArgs([`--console-log-max-bytes=${bad}`])).toThrow(ConfigError);
    }
    expect(() => parseDaemonArgs(['--console-log-max-bytes', '1000'])).toThrow(/--console-log-max-bytes: must be a whole number of bytes >= 65536, got "1000"/);
  });
});
