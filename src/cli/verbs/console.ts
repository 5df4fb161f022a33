import { positionals, runClientVerb, type Verb } from '../verb.js';
import { joinTerminal, processTerminal } from './console-terminal.js';

export const consoleVerb: Verb = {
  name: 'console',
  summary: "attach the terminal to a running VM's serial console (Ctrl-] leaves)",
  usage: `Usage: vmlet console ID
Shows the recent console output, then the live output; what you type goes to the guest. The
terminal is in raw mode meanwhile, so Ctrl-C and Ctrl-D go to the guest too. Ctrl-] leaves
(exit 0); the guest keeps running. Several clients may attach to the same console at once.`,
  run: (argv, io) =>
    runClientVerb(consoleVerb, argv, io, {}, ({ positionals: rest }) => {
      const [id = ''] = positionals(rest, ['ID']);
      return async ({ session }) => {
        // No deadline: a console stays open until it is left or the VM stops.
        const call = session.vms.console();
        return joinTerminal(call, id, processTerminal(), io.interrupted());
      };
    }),
};
