import { describe, expect, it } from 'vitest';
import { ConfigError, parseDaemonArgs } from '../../src/config.js';

describe('--console-websocket', () => {
  it('is off by default', () => {
    expect(parseDaemonArgs([]).consoleWebsocket).toBe(false);
  });

  it('is accepted on a loopback --http-listen', () => {
    expect(parseDaemonArgs(['--console-websocket']).consoleWebsocket).toBe(true);
    expect(parseDaemonArgs(['--console-websocket', '--http-listen', '[::1]:9474']).consoleWebsocket).toBe(true);
    expect(parseDaemonArgs(['--console-websocket', '--http-listen', 'localhost:0']).consoleWebsocket).toBe(true);
  });

  it('refuses to start on a non-loopback or disabled --http-listen', () => {
    for (const listen of ['0.0.0.0:9474', '10.1.2.3:9474', '[::]:9474', '']) {
      expect(() => parseDaemonArgs(['--console-websocket', '--http-listen', listen])).toThrow(ConfigError);
    }
    expect(() => parseDaemonArgs(['--console-websocket', '--http-listen', '0.0.0.0:9474'])).toThrow(/only served on a loopback --http-listen/);
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
