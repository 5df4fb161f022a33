import type { Vm__Output } from '../../api/grpc/generated/vmlet/v1/Vm.js';
import { parseCount } from '../args.js';
import { actionLine, toJson } from '../format.js';
import type { Session } from '../session.js';
import { positionals, runClientVerb, type ClientVerbContext, type Verb } from '../verb.js';

/** The daemon's StopVm default grace period; the deadline leaves room for it. */
const DEFAULT_GRACE_SECONDS = 30;

function printVm(ctx: ClientVerbContext, id: string, done: string, vm: Vm__Output): number {
  ctx.io.stdout(ctx.globals.output === 'json' ? toJson(vm) : actionLine(id, done, vm));
  return 0;
}

/** A verb taking just an ID and returning the Vm. */
function simpleVerb(name: string, summary: string, done: string, call: (session: Session, id: string) => Promise<Vm__Output>): Verb {
  const verb: Verb = {
    name,
    summary,
    usage: `Usage: vmlet ${name} ID`,
    run: (argv, io) =>
      runClientVerb(verb, argv, io, {}, ({ positionals: rest }) => {
        const [id = ''] = positionals(rest, ['ID']);
        return async (ctx) => printVm(ctx, id, done, await call(ctx.session, id));
      }),
  };
  return verb;
}

export const startVerb = simpleVerb('start', 'start a VM; returns once the guest runs', 'started', (s, id) => s.call((c) => c.startVm.bind(c), { id }));
export const pauseVerb = simpleVerb('pause', "pause a VM's vCPUs", 'paused', (s, id) => s.call((c) => c.pauseVm.bind(c), { id }));
export const resumeVerb = simpleVerb('resume', 'resume a paused VM', 'resumed', (s, id) => s.call((c) => c.resumeVm.bind(c), { id }));
export const rebootVerb = simpleVerb('reboot', 'hard-reset a running VM', 'rebooted', (s, id) => s.call((c) => c.rebootVm.bind(c), { id }));

export const stopVerb: Verb = {
  name: 'stop',
  summary: 'stop a VM: ACPI power-down, killed after the grace period',
  usage: `Usage: vmlet stop ID [--grace SECONDS] [--force]
  --grace SECONDS  how long the guest may take to power off before it is killed
                   (default: the daemon's, 30 s)
  --force          kill the guest at once`,
  run: (argv, io) =>
    runClientVerb(stopVerb, argv, io, { grace: { type: 'string' }, force: { type: 'boolean' } }, ({ values, positionals: rest }) => {
      const [id = ''] = positionals(rest, ['ID']);
      const grace = values.grace === undefined ? 0 : parseCount('--grace', values.grace);
      const force = values.force ?? false;
      // Without --timeout, wait at least the grace period plus a margin for the kill.
      const minSeconds = (grace || DEFAULT_GRACE_SECONDS) + 60;
      return async (ctx) => printVm(ctx, id, 'stopped', await ctx.session.call((c) => c.stopVm.bind(c), { id, gracePeriodSeconds: grace, force }, minSeconds));
    }),
};

export const rmVerb: Verb = {
  name: 'rm',
  summary: 'delete a VM and every host trace of it (stops it first)',
  usage: `Usage: vmlet rm ID [--force]
  --force  kill a running guest at once instead of a graceful stop`,
  run: (argv, io) =>
    runClientVerb(rmVerb, argv, io, { force: { type: 'boolean' } }, ({ values, positionals: rest }) => {
      const [id = ''] = positionals(rest, ['ID']);
      const force = values.force ?? false;
      return async ({ io: out, globals, session }) => {
        const res = await session.call((c) => c.deleteVm.bind(c), { id, force }, DEFAULT_GRACE_SECONDS + 60);
        out.stdout(globals.output === 'json' ? toJson(res) : `${id} deleted\n`);
        return 0;
      };
    }),
};
