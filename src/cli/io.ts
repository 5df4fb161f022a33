import { readFile } from 'node:fs/promises';

/**
 * Everything a verb touches outside itself, so verbs run the same from `main.ts` and from tests.
 */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Readonly<Record<string, string | undefined>>;
  now(): Date;
  /** Reads a file; `-` is standard input. */
  readFile(path: string): Promise<string>;
  /** A signal that fires on Ctrl-C (or SIGTERM); only long-running verbs (watch) ask for it. */
  interrupted(): AbortSignal;
  /** Whether stderr is a terminal (progress bars); absent: no. */
  stderrIsTty?: boolean;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

/** The real process: stdout, stderr, environment, files and signals. */
export function processIo(): CliIo {
  let controller: AbortController | undefined;
  return {
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
    env: process.env,
    now: () => new Date(),
    stderrIsTty: process.stderr.isTTY === true,
    readFile: (path) => (path === '-' ? readStdin() : readFile(path, 'utf8')),
    interrupted() {
      if (!controller) {
        const c = new AbortController();
        const onSignal = (): void => c.abort();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        controller = c;
      }
      return controller.signal;
    },
  };
}
