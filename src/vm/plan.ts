import type { Logger } from '../host/log.js';

/** One named step of an operation, with the undo that takes it back. */
export interface Step<C> {
  name: string;
  run(ctx: C): Promise<void> | void;
  /**
   * Takes back what run did, also when run itself failed half-way (so it must cope with partial
   * work); called in reverse order when this or a later step fails.
   */
  undo?(ctx: C): Promise<void> | void;
}

/** Steps that do not depend on each other, run at once: one step whose undo takes back all of them. */
export function together<C>(name: string, steps: readonly Step<C>[]): Step<C> {
  return {
    name,
    async run(ctx) {
      const results = await Promise.allSettled(steps.map((s) => s.run(ctx)));
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
    async undo(ctx) {
      for (const s of [...steps].reverse()) await s.undo?.(ctx);
    },
  };
}

/**
 * Runs the steps in order. When one fails, it and the steps before it are undone in reverse (an
 * undo that fails is logged and the others still run) and the step's error is thrown.
 */
export async function runPlan<C>(steps: readonly Step<C>[], ctx: C, log: Logger): Promise<void> {
  const done: Step<C>[] = [];
  for (const step of steps) {
    const began = performance.now();
    try {
      await step.run(ctx);
      if (log.isLevelEnabled('debug')) log.debug({ step: step.name, ms: +(performance.now() - began).toFixed(2) }, 'step done');
    } catch (err) {
      log.debug({ step: step.name }, 'step failed; undoing it and the steps before it');
      for (const completed of [...done, step].reverse()) {
        try {
          await completed.undo?.(ctx);
        } catch (undoErr) {
          log.error({ err: undoErr, step: completed.name }, 'undo failed');
        }
      }
      throw err;
    }
    done.push(step);
  }
}
