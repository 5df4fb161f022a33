import * as grpc from '@grpc/grpc-js';
import type { VmEvent__Output } from '../../api/grpc/generated/vmlet/v1/VmEvent.js';
import { eventTypeName, oneLine, phaseName, StreamTable, toJson } from '../format.js';
import { isServiceError } from '../report.js';
import { positionals, runClientVerb, type Verb } from '../verb.js';

export const watchVerb: Verb = {
  name: 'watch',
  summary: 'print VM events (current VMs first, then every change) until Ctrl-C',
  usage: `Usage: vmlet watch [ID] [-l SELECTOR]
Prints one line per event: TYPE ID PHASE REASON (with -o json: one VmEvent object per line).
  -l, --selector SELECTOR  only VMs whose labels match, e.g. app=web`,
  run: (argv, io) =>
    runClientVerb(watchVerb, argv, io, { selector: { type: 'string', short: 'l' } }, ({ values, positionals: rest }) => {
      const [id = ''] = positionals(rest, ['ID'], 1);
      const labelSelector = values.selector ?? '';
      return async ({ globals, session }) => {
        const signal = io.interrupted();
        if (signal.aborted) return 0;
        const call = session.vms.watchVms({ id, labelSelector });
        const onAbort = (): void => call.cancel();
        signal.addEventListener('abort', onAbort, { once: true });
        const table = new StreamTable([8, 12, 9]);
        if (globals.output === 'table') io.stdout(table.line(['TYPE', 'ID', 'PHASE', 'REASON']));
        try {
          for await (const chunk of call) {
            const event = chunk as VmEvent__Output;
            if (globals.output === 'json') io.stdout(toJson(event, false));
            else io.stdout(table.line([eventTypeName(event.type), event.vm?.spec?.id ?? '', phaseName(event.vm?.status?.phase), oneLine(event.vm?.status?.reason ?? '')]));
          }
        } catch (err) {
          if (signal.aborted && isServiceError(err) && err.code === grpc.status.CANCELLED) return 0;
          throw err;
        } finally {
          signal.removeEventListener('abort', onAbort);
        }
        if (signal.aborted) return 0;
        io.stderr('vmlet watch: the daemon ended the watch\n');
        return 1;
      };
    }),
};
