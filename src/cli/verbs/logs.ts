import { StringDecoder } from 'node:string_decoder';
import * as grpc from '@grpc/grpc-js';
import type { ConsoleOutput__Output } from '../../api/grpc/generated/vmlet/v1/ConsoleOutput.js';
import { parseCount, UsageError } from '../args.js';
import { isServiceError } from '../report.js';
import { positionals, runClientVerb, type Verb } from '../verb.js';

export const logsVerb: Verb = {
  name: 'logs',
  summary: "print a VM's serial console log (-f: then follow it)",
  usage: `Usage: vmlet logs ID [--tail N] [-f]
Prints what the guest wrote on its serial console (kept across restarts of the VM and of vmlet).
  --tail N      only the last N lines
  -f, --follow  then print the output as it comes, until the VM stops (or Ctrl-C)`,
  run: (argv, io) =>
    runClientVerb(logsVerb, argv, io, { tail: { type: 'string' }, follow: { type: 'boolean', short: 'f' } }, ({ values, positionals: rest }) => {
      const [id = ''] = positionals(rest, ['ID']);
      const tailLines = values.tail === undefined ? 0 : parseCount('--tail', values.tail);
      if (values.tail !== undefined && tailLines === 0) throw new UsageError('--tail: must be at least 1 (leave it out for the whole log)');
      const follow = values.follow ?? false;
      return async ({ session }) => {
        const signal = io.interrupted();
        if (signal.aborted) return 0;
        // Following has no deadline; a plain read has the usual one.
        const call = session.vms.getConsoleLog({ id, tailLines, follow }, follow ? {} : session.callOptions());
        const onAbort = (): void => call.cancel();
        signal.addEventListener('abort', onAbort, { once: true });
        const text = new StringDecoder('utf8');
        try {
          for await (const chunk of call) io.stdout(text.write((chunk as ConsoleOutput__Output).data));
        } catch (err) {
          if (signal.aborted && isServiceError(err) && err.code === grpc.status.CANCELLED) return 0;
          throw err;
        } finally {
          signal.removeEventListener('abort', onAbort);
          io.stdout(text.end());
        }
        return 0;
      };
    }),
};
