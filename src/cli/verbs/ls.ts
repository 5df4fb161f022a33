import type { ListVmsResponse__Output } from '../../api/grpc/generated/vmlet/v1/ListVmsResponse.js';
import { formatVmList, toJson } from '../format.js';
import { positionals, runClientVerb, type Verb } from '../verb.js';

export const lsVerb: Verb = {
  name: 'ls',
  summary: 'list VMs',
  usage: `Usage: vmlet ls [-l SELECTOR]
  -l, --selector SELECTOR  only VMs whose labels match, e.g. app=web,tier!=db`,
  run: (argv, io) =>
    runClientVerb(lsVerb, argv, io, { selector: { type: 'string', short: 'l' } }, ({ values, positionals: rest }) => {
      positionals(rest, []);
      const labelSelector = values.selector ?? '';
      return async ({ globals, session }) => {
        const res: ListVmsResponse__Output = await session.call((c) => c.listVms.bind(c), { labelSelector });
        if (globals.output === 'json') io.stdout(toJson(res));
        else if (res.vms.length === 0) io.stderr(labelSelector ? `No VMs match ${labelSelector}.\n` : 'No VMs.\n');
        else io.stdout(formatVmList(res.vms, io.now()));
        return 0;
      };
    }),
};
