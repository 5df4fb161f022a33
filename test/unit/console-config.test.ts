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
