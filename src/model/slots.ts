import { boundExceeded, type Bound } from './bounds.js';

/** A counted number of places (open streams, clients, migrations); one more than `max` is RESOURCE_EXHAUSTED. */
export class Slots {
  private used = 0;

  constructor(
    readonly bound: Bound,
    readonly max: number,
    /** What a slot holds, plural, for the error: "watch streams". */
    private readonly what: string,
  ) {}

  get inUse(): number {
    return this.used;
  }

  /** Takes a place or throws; the function returned gives it back (calling it again does nothing). */
  take(): () => void {
    if (this.used >= this.max) {
      throw boundExceeded(this.bound, 'RESOURCE_EXHAUSTED', `${this.used} ${this.what} are open, the most this node allows (${this.max}); close one and try again`);
    }
    this.used++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.used--;
    };
  }

  /** Runs `fn` holding a place. */
  async hold<T>(fn: () => Promise<T>): Promise<T> {
    const release = this.take();
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
