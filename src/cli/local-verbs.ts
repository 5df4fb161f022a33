/**
 * The verbs that run vmlet itself. Nothing here loads the gRPC client: `vmlet daemon` starts
 * without reading in the client verbs, so a restarted agent serves sooner.
 */
import type { Verb } from './verb.js';

export const hasHelp = (argv: string[]): boolean => argv.some((a) => a === '-h' || a === '--help');

const DEMO_USAGE = `Usage: vmlet demo [daemon options]

Runs the daemon in the foreground (what \`npm start\` runs), creates and starts the VM "demo" from
the repo's .guest/ and prints its serial console as it boots. Ctrl-C stops vmlet; the guest keeps
running and the next start adopts it. It takes the daemon's options, with --image-root .guest and
--log-format pretty added:`;

/** Verbs that run vmlet itself rather than talk to it; loaded only when used. */
export const LOCAL_VERBS: readonly Verb[] = [
  {
    name: 'daemon',
    summary: 'run the vmlet daemon (vmlet daemon --help for its options)',
    usage: 'Usage: vmlet daemon [options]',
    async run(argv, io) {
      if (hasHelp(argv)) {
        const { DAEMON_USAGE } = await import('../config.js');
        io.stdout(`${DAEMON_USAGE}\n`);
        return 0;
      }
      const { daemonMain } = await import('../main.js');
      return daemonMain(argv);
    },
  },
  {
    name: 'demo',
    summary: 'run the daemon with a demo VM and show its serial console',
    usage: 'Usage: vmlet demo [daemon options]',
    async run(argv, io) {
      if (hasHelp(argv)) {
        const { DAEMON_OPTIONS } = await import('../config.js');
        io.stdout(`${DEMO_USAGE}\n${DAEMON_OPTIONS}\n`);
        return 0;
      }
      const { demoMain } = await import('./demo.js');
      return demoMain(argv);
    },
  },
];

/** The local verb `argv` names, if it names one up front (no global options before it). */
export function localVerbOf(argv: readonly string[]): Verb | undefined {
  return LOCAL_VERBS.find((v) => v.name === argv[0]);
}
