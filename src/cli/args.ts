import type { ParseArgsOptionsConfig } from 'node:util';
import { normaliseEndpoint } from '../api/grpc/client.js';

export const DEFAULT_ENDPOINT = 'unix:///run/vmlet/vmlet.sock';
const DEFAULT_TIMEOUT_SECONDS = 120;

/** A wrong invocation: exit code 2, printed with the verb's usage. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Options every client verb accepts, before or after the verb. */
export const GLOBAL_OPTIONS = {
  endpoint: { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  output: { type: 'string', short: 'o' },
  timeout: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsOptionsConfig;

export const GLOBAL_USAGE = `Global options (before or after the verb):
  --endpoint ADDR          unix:///path, /path or HOST:PORT
                           (default: $VMLET_ENDPOINT, else ${DEFAULT_ENDPOINT})
  --tls-ca FILE            CA of the daemon's certificate: TLS for a HOST:PORT endpoint
  --tls-cert FILE --tls-key FILE
                           client certificate and key (with --tls-ca)
  -o, --output table|json  table (default) for people; json prints the API message
                           (camelCase fields, enum names, timestamps as RFC 3339 strings)
  --timeout SECONDS        deadline of each call that returns one answer (default ${DEFAULT_TIMEOUT_SECONDS}; 0: none);
                           watch, console and logs -f run until they end or Ctrl-C
  -h, --help               this help`;

export type OutputFormat = 'table' | 'json';

export interface GlobalOptions {
  endpoint: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  output: OutputFormat;
  timeoutSeconds: number;
  /** Whether --timeout was given, so verbs may lengthen the default (stop --grace). */
  timeoutExplicit: boolean;
}

/** The global part of parseArgs values. */
export interface GlobalValues {
  endpoint?: string;
  'tls-ca'?: string;
  'tls-cert'?: string;
  'tls-key'?: string;
  output?: string;
  timeout?: string;
}

const isUnix = (endpoint: string): boolean => normaliseEndpoint(endpoint).startsWith('unix:');

export function resolveGlobals(values: GlobalValues, env: Readonly<Record<string, string | undefined>>): GlobalOptions {
  const endpoint = values.endpoint ?? (env.VMLET_ENDPOINT || DEFAULT_ENDPOINT);
  if (!endpoint) throw new UsageError('--endpoint: must not be empty');
  const output = values.output ?? 'table';
  if (output !== 'table' && output !== 'json') throw new UsageError(`-o/--output: must be table or json, got "${output}"`);
  let timeoutSeconds = DEFAULT_TIMEOUT_SECONDS;
  if (values.timeout !== undefined) {
    timeoutSeconds = Number(values.timeout);
    if (values.timeout.trim() === '' || !Number.isFinite(timeoutSeconds) || timeoutSeconds < 0) {
      throw new UsageError(`--timeout: must be a number of seconds >= 0, got "${values.timeout}"`);
    }
  }
  const tlsCa = values['tls-ca'];
  const tlsCert = values['tls-cert'];
  const tlsKey = values['tls-key'];
  if (Boolean(tlsCert) !== Boolean(tlsKey)) throw new UsageError('--tls-cert and --tls-key go together');
  if (tlsCert && !tlsCa) throw new UsageError('--tls-cert and --tls-key need --tls-ca (the CA of the daemon certificate)');
  if (tlsCa && isUnix(endpoint)) throw new UsageError(`--tls-*: TLS applies to HOST:PORT endpoints, not ${endpoint}`);
  return { endpoint, tlsCa, tlsCert, tlsKey, output, timeoutSeconds, timeoutExplicit: values.timeout !== undefined };
}

/** Global options that take a value, by every spelling parseArgs accepts. */
const VALUE_FLAGS = new Set(['--endpoint', '--tls-ca', '--tls-cert', '--tls-key', '--output', '-o', '--timeout']);
const BOOLEAN_FLAGS = new Set(['--help', '-h']);

export interface SplitArgs {
  /** Undefined when no verb was given. */
  verb?: string;
  /** Global options found before the verb, then everything after it. */
  rest: string[];
}

/** `vmlet [global options] VERB [args]` → the verb and its arguments (leading globals kept). */
export function splitVerb(argv: string[]): SplitArgs {
  const leading: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    const name = token.startsWith('--') ? token.split('=', 1)[0]! : token.startsWith('-o') && token.length > 2 ? '-o=' : token;
    if (name === '-o=' || (token.startsWith('--') && token.includes('=') && VALUE_FLAGS.has(name))) {
      leading.push(token);
    } else if (VALUE_FLAGS.has(name)) {
      const value = argv[i + 1];
      if (value === undefined) throw new UsageError(`${token}: needs a value`);
      leading.push(token, value);
      i++;
    } else if (BOOLEAN_FLAGS.has(name)) {
      leading.push(token);
    } else if (token.startsWith('-') && token !== '-') {
      throw new UsageError(`unknown option ${token} before the verb`);
    } else {
      return { verb: token, rest: [...leading, ...argv.slice(i + 1)] };
    }
  }
  return { rest: leading };
}

/** Parses a non-negative integer flag. */
export function parseCount(flag: string, raw: string, max = 0xffffffff): number {
  if (!/^\d+$/.test(raw.trim())) throw new UsageError(`${flag}: must be a whole number, got "${raw}"`);
  const value = Number(raw.trim());
  if (value > max) throw new UsageError(`${flag}: must be at most ${max}, got "${raw}"`);
  return value;
}
