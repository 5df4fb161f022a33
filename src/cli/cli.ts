import { GLOBAL_USAGE, splitVerb, UsageError } from './args.js';
import type { CliIo } from './io.js';
import { reportFailure } from './report.js';
import type { Verb } from './verb.js';
import { createVerb } from './verbs/create.js';
import { getVerb } from './verbs/get.js';
import { lsVerb } from './verbs/ls.js';
import { pauseVerb, rebootVerb, resumeVerb, rmVerb, startVerb, stopVerb } from './verbs/lifecycle.js';
import { nodeVerb } from './verbs/node.js';
import { watchVerb } from './verbs/watch.js';
import { migrateVerb, migrationVerb } from './verbs/migrate.js';
import { consoleVerb } from './verbs/console.js';
import { logsVerb } from './verbs/logs.js';
import { imageVerb } from './verbs/image.js';
import { hasHelp, LOCAL_VERBS } from './local-verbs.js';

/** The client verbs, in help order. */
export const CLIENT_VERBS: readonly Verb[] = [createVerb, getVerb, lsVerb, startVerb, stopVerb, pauseVerb, resumeVerb, rebootVerb, rmVerb, watchVerb, consoleVerb, logsVerb, migrateVerb, migrationVerb, imageVerb, nodeVerb];

function overallUsage(): string {
  const line = (v: Verb): string => `  ${v.name.padEnd(8)} ${v.summary}`;
  return `vmlet: a node-local VM agent (QEMU) and its command-line client

Usage: vmlet [global options] VERB [args]
       vmlet VERB --help

Run vmlet:
${LOCAL_VERBS.map(line).join('\n')}

Talk to it (gRPC):
${CLIENT_VERBS.map(line).join('\n')}

${GLOBAL_USAGE}

Exit status: 0 done; 1 the call failed (gRPC error, printed as "vmlet: CODE: details",
or the daemon could not be reached); 2 usage error.`;
}

/** `vmlet …` without the process: returns the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let split;
  try {
    split = splitVerb(argv);
  } catch (err) {
    return reportFailure(err instanceof UsageError ? err : new UsageError(String(err)), io, { verb: '', usage: overallUsage() });
  }
  const { verb: name, rest } = split;
  if (name === undefined) {
    if (hasHelp(rest)) {
      io.stdout(`${overallUsage()}\n`);
      return 0;
    }
    io.stderr(`${overallUsage()}\n`);
    return 2;
  }
  if (name === 'help') {
    const topic = rest.find((a) => !a.startsWith('-'));
    const verb = [...LOCAL_VERBS, ...CLIENT_VERBS].find((v) => v.name === topic);
    if (verb) return verb.run(['--help'], io);
    io.stdout(`${overallUsage()}\n`);
    return 0;
  }
  const verb = [...LOCAL_VERBS, ...CLIENT_VERBS].find((v) => v.name === name);
  if (!verb) {
    io.stderr(`vmlet: unknown verb "${name}"\n\n${overallUsage()}\n`);
    return 2;
  }
  return verb.run(rest, io);
}
