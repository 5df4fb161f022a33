import type { Vm__Output } from '../../api/grpc/generated/vmlet/v1/Vm.js';
import { formatVmDetail, toJson } from '../format.js';
import { positionals, runClientVerb, type Verb } from '../verb.js';

export const getVerb: Verb = {
  name: 'get',
  summary: 'show one VM: spec, status, disks and NICs',
  usage: 'Usage: vmlet get ID',
  run: (argv, io) =>
    runClientVerb(getVerb, argv, io, {}, ({ positionals: rest }) => {
      const [id = ''] = positionals(rest, ['ID']);
      return async ({ globals, session }) => {
        const vm: Vm__Output = await session.call((c) => c.getVm.bind(c), { id });
        io.stdout(globals.output === 'json' ? toJson(vm) : formatVmDetail(vm, io.now()));
        return 0;
      };
    }),
};
