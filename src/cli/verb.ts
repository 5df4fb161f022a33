import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { GLOBAL_OPTIONS, GLOBAL_USAGE, resolveGlobals, UsageError, type GlobalOptions } from './args.js';
import type { CliIo } from './io.js';
import { reportFailure } from './report.js';
import { Session } from './session.js';

export interface Verb {
  name: string;
  /** One line for the overall help. */
  summary: string;
  /** `vmlet NAME …` synopsis and the verb's own options. */
  usage: string;
  run(argv: string[], io: CliIo): Promise<number>;
}

/** parseArgs with the global options and the verb's own. */
export function parseVerbArgs<O extends ParseArgsOptionsConfig>(argv: string[], options: O) {
  return parseArgs({ args: argv, options: { ...GLOBAL_OPTIONS, ...options }, allowPositionals: true, strict: true });
}

export interface ClientVerbContext {
  io: CliIo;
  globals: GlobalOptions;
  session: Session;
}

/** The verb's full help: its usage, then the global options. */
const fullUsage = (usage: string): string => `${usage}\n\n${GLOBAL_USAGE}`;

/** Exactly `count` positionals (named in `names` for the message). */
export function positionals(got: string[], names: readonly string[], optional = 0): string[] {
  const min = names.length - optional;
  if (got.length < min) throw new UsageError(`missing ${names.slice(got.length, min).join(' ')}`);
  if (got.length > names.length) throw new UsageError(`unexpected argument "${got[names.length]}"`);
  return got;
}

/**
 * Runs a client verb: `parse` checks the arguments (without I/O) and returns the action; the action
 * then talks to the daemon. -h prints the usage; errors become messages and exit codes.
 */
export async function runClientVerb<O extends ParseArgsOptionsConfig>(
  verb: Pick<Verb, 'name' | 'usage'>,
  argv: string[],
  io: CliIo,
  options: O,
  parse: (parsed: ReturnType<typeof parseVerbArgs<O>>, globals: GlobalOptions) => (ctx: ClientVerbContext) => Promise<number>,
): Promise<number> {
  const usage = fullUsage(verb.usage);
  let session: Session | undefined;
  try {
    const parsed = parseVerbArgs(argv, options);
    if ((parsed.values as { help?: boolean }).help) {
      io.stdout(`${usage}\n`);
      return 0;
    }
    const globals = resolveGlobals(parsed.values as Record<string, string | undefined>, io.env);
    const action = parse(parsed, globals);
    session = new Session(globals);
    return await action({ io, globals, session });
  } catch (err) {
    const short = `${verb.usage}\n(vmlet ${verb.name} --help also lists the global options)`;
    return reportFailure(err, io, { verb: verb.name, usage: short, endpoint: session?.endpoint, connected: session?.isConnected() });
  } finally {
    session?.close();
  }
}
