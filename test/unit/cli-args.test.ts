import { describe, expect, it } from 'vitest';
import { DEFAULT_ENDPOINT, parseCount, resolveGlobals, splitVerb, UsageError } from '../../src/cli/args.js';
import { CLIENT_VERBS, runCli } from '../../src/cli/cli.js';
import type { CliIo } from '../../src/cli/io.js';
import { parseVerbArgs, positionals } from '../../src/cli/verb.js';

describe('splitVerb', () => {
  it('finds the verb after global options and keeps them for the verb', () => {
    expect(splitVerb(['--endpoint', 'h:1', '-o', 'json', 'ls', '-l', 'a=b'])).toEqual({ verb: 'ls', rest: ['--endpoint', 'h:1', '-o', 'json', '-l', 'a=b'] });
    expect(splitVerb(['--timeout=5', '-ojson', 'get', 'x'])).toEqual({ verb: 'get', rest: ['--timeout=5', '-ojson', 'x'] });
    expect(splitVerb(['-h'])).toEqual({ rest: ['-h'] });
    expect(splitVerb([])).toEqual({ rest: [] });
  });

  it('rejects unknown options before the verb and a global option without its value', () => {
    expect(() => splitVerb(['--force', 'rm', 'x'])).toThrow(UsageError);
    expect(() => splitVerb(['--endpoint'])).toThrow(/needs a value/);
  });
});

describe('resolveGlobals', () => {
  it('defaults: VMLET_ENDPOINT, else the standard socket; table; 120 s', () => {
    expect(resolveGlobals({}, {})).toEqual({ endpoint: DEFAULT_ENDPOINT, output: 'table', timeoutSeconds: 120, timeoutExplicit: false });
    expect(resolveGlobals({}, { VMLET_ENDPOINT: 'unix:///tmp/v.sock' }).endpoint).toBe('unix:///tmp/v.sock');
    expect(resolveGlobals({ endpoint: '127.0.0.1:5000' }, { VMLET_ENDPOINT: 'unix:///tmp/v.sock' }).endpoint).toBe('127.0.0.1:5000');
  });

  it('checks -o, --timeout and the TLS flags', () => {
    expect(resolveGlobals({ output: 'json', timeout: '0' }, {})).toMatchObject({ output: 'json', timeoutSeconds: 0, timeoutExplicit: true });
    expect(() => resolveGlobals({ output: 'yaml' }, {})).toThrow(/must be table or json/);
    expect(() => resolveGlobals({ timeout: '-1' }, {})).toThrow(/--timeout/);
    expect(() => resolveGlobals({ timeout: 'soon' }, {})).toThrow(/--timeout/);
    expect(() => resolveGlobals({ endpoint: 'h:1', 'tls-ca': 'ca', 'tls-cert': 'c' }, {})).toThrow(/go together/);
    expect(() => resolveGlobals({ endpoint: 'h:1', 'tls-cert': 'c', 'tls-key': 'k' }, {})).toThrow(/need --tls-ca/);
    expect(() => resolveGlobals({ 'tls-ca': 'ca' }, {})).toThrow(/HOST:PORT endpoints/);
    expect(resolveGlobals({ endpoint: 'h:1', 'tls-ca': 'ca', 'tls-cert': 'c', 'tls-key': 'k' }, {})).toMatchObject({ tlsCa: 'ca', tlsCert: 'c', tlsKey: 'k' });
  });
});

describe('verb arguments', () => {
  it('parses globals and verb options in any order, with repeatable flags', () => {
    const { values, positionals: rest } = parseVerbArgs(['x', '--force', '-o', 'json', '--disk', 'a', '--disk', 'b'], {
      force: { type: 'boolean' },
      disk: { type: 'string', multiple: true },
    });
    expect(rest).toEqual(['x']);
    expect(values).toMatchObject({ force: true, output: 'json', disk: ['a', 'b'] });
  });

  it('checks positionals', () => {
    expect(positionals(['a'], ['ID'])).toEqual(['a']);
    expect(positionals([], ['ID'], 1)).toEqual([]);
    expect(() => positionals([], ['ID'])).toThrow('missing ID');
    expect(() => positionals(['a', 'b'], ['ID'])).toThrow('unexpected argument "b"');
    expect(parseCount('--grace', '30')).toBe(30);
    expect(() => parseCount('--grace', '1.5')).toThrow(/whole number/);
  });
});

function capture(): { io: CliIo; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    io: {
      stdout: (t) => void (out += t),
      stderr: (t) => void (err += t),
      env: {},
      now: () => new Date(0),
      readFile: () => Promise.reject(new Error('no files here')),
      interrupted: () => new AbortController().signal,
    },
    out: () => out,
    err: () => err,
  };
}

describe('usage errors and help (no daemon needed)', () => {
  it('exits 2 with the verb usage for a missing argument or an unknown option', async () => {
    const c = capture();
    expect(await runCli(['stop'], c.io)).toBe(2);
    expect(c.err()).toMatch(/^vmlet stop: missing ID\n\nUsage: vmlet stop ID \[--grace SECONDS\] \[--force\]/);
    const d = capture();
    expect(await runCli(['ls', '--bogus'], d.io)).toBe(2);
    expect(d.err()).toMatch(/^vmlet ls: Unknown option '--bogus'\n\nUsage: vmlet ls/);
  });

  it('exits 2 for a bad --disk before connecting anywhere', async () => {
    const c = capture();
    expect(await runCli(['create', '--id', 'a', '--disk', 'root'], c.io)).toBe(2);
    expect(c.err()).toMatch(/^vmlet create: --disk "root": unknown key "root"/);
    expect(c.err()).toContain('Usage: vmlet create');
  });

  it('prints help with exit 0, and the overall usage to stderr with exit 2 when no verb is given', async () => {
    const help = capture();
    expect(await runCli(['get', '--help'], help.io)).toBe(0);
    expect(help.out()).toContain('Usage: vmlet get ID');
    expect(help.out()).toContain('--endpoint ADDR');
    const overall = capture();
    expect(await runCli(['--help'], overall.io)).toBe(0);
    expect(overall.out()).toMatch(/watch\s+print VM events/);
    const none = capture();
    expect(await runCli([], none.io)).toBe(2);
    expect(none.err()).toContain('Usage: vmlet [global options] VERB');
    const unknown = capture();
    expect(await runCli(['frobnicate'], unknown.io)).toBe(2);
    expect(unknown.err()).toMatch(/^vmlet: unknown verb "frobnicate"/);
  });

  it.each([...CLIENT_VERBS.map((v) => v.name), 'daemon', 'demo'])('vmlet %s: --help, -h and help VERB print its usage with exit 0', async (name) => {
    for (const argv of [[name, '--help'], [name, '-h'], ['help', name]]) {
      const c = capture();
      expect(await runCli(argv, c.io)).toBe(0);
      expect(c.out()).toContain(`Usage: vmlet ${name}`);
    }
  });

  it('a usage error of vmlet demo exits 2 before anything starts', async () => {
    const c = capture();
    expect(await runCli(['demo', '--bogus'], c.io)).toBe(2);
  });
});
