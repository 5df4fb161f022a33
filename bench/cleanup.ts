/** Undo steps registered while a benchmark sets things up; run last-in first-out, each one even if another failed. */
export class Cleanup {
  private readonly steps: { name: string; fn: () => Promise<void> }[] = [];
  private running: Promise<Error[]> | undefined;

  /** True once cleanup has begun: a benchmark must not start anything new then. */
  get closing(): boolean {
    return this.running !== undefined;
  }

  /** Throws once cleanup has begun (an interrupt): call it before starting each VM. */
  checkOpen(): void {
    if (this.closing) throw new Error('interrupted');
  }

  defer(name: string, fn: () => Promise<void>): void {
    this.steps.push({ name, fn });
  }

  /** Idempotent: a second call (a signal during cleanup) waits for the first. Returns what failed. */
  runAll(): Promise<Error[]> {
    this.running ??= this.drain();
    return this.running;
  }

  private async drain(): Promise<Error[]> {
    const errors: Error[] = [];
    for (let step = this.steps.pop(); step; step = this.steps.pop()) {
      try {
        await step.fn();
      } catch (err) {
        errors.push(new Error(`cleanup "${step.name}" failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
      }
    }
    return errors;
  }
}
