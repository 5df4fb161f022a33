import type { NodeInfo__Output } from '../../api/grpc/generated/vmlet/v1/NodeInfo.js';
import { formatNodeInfo, toJson } from '../format.js';
import { positionals, runClientVerb, type Verb } from '../verb.js';

export const nodeVerb: Verb = {
  name: 'node',
  summary: 'show the node: accelerator, QEMU version, CPUs and memory',
  usage: 'Usage: vmlet node',
  run: (argv, io) =>
    runClientVerb(nodeVerb, argv, io, {}, ({ positionals: rest }) => {
      positionals(rest, []);
      return async ({ globals, session }) => {
        const info: NodeInfo__Output = await session.call((c) => c.getNodeInfo.bind(c), {});
        io.stdout(globals.output === 'json' ? toJson(info) : formatNodeInfo(info));
        return 0;
      };
    }),
};
