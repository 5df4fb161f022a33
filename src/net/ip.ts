import { run, CommandError } from '../host/run.js';

/** iproute2, through the single command runner; `json` reads use `ip -json`. */
export class IpTool {
  constructor(
    readonly netns?: string,
    readonly binary = 'ip',
  ) {}

  private args(args: string[]): string[] {
    return this.netns ? ['-n', this.netns, ...args] : args;
  }

  async exec(args: string[]): Promise<string> {
    return (await run(this.binary, this.args(args), { timeoutMs: 10_000 })).stdout;
  }

  async json<T>(args: string[]): Promise<T> {
    const out = await this.exec(['-json', ...args]);
    return (out.trim() ? JSON.parse(out) : []) as T;
  }
}

export const isNoSuchDevice = (err: unknown): boolean =>
  err instanceof CommandError && /Cannot find device|does not exist/i.test(err.stderr);
