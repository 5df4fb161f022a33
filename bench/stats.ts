/** Summary statistics of benchmark samples (milliseconds). Pure. */

export interface Stats {
  median: number;
  p90: number;
  min: number;
  max: number;
  mean: number;
  /** In the order they were measured. */
  samples: number[];
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

const sorted = (xs: readonly number[]): number[] => [...xs].sort((a, b) => a - b);

function nonEmpty(xs: readonly number[], what: string): void {
  if (xs.length === 0) throw new Error(`${what} of no samples`);
}

/** The middle value; the mean of the two middle values for an even count. */
export function median(xs: readonly number[]): number {
  nonEmpty(xs, 'median');
  const s = sorted(xs);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile (p in 0..100): the smallest sample with at least p% of samples at or below it. */
export function percentile(xs: readonly number[], p: number): number {
  nonEmpty(xs, `p${p}`);
  const s = sorted(xs);
  const rank = Math.max(1, Math.ceil((p / 100) * s.length));
  return s[Math.min(rank, s.length) - 1]!;
}

export function summarise(xs: readonly number[]): Stats {
  nonEmpty(xs, 'summary');
  const s = sorted(xs);
  return {
    median: round(median(xs)),
    p90: round(percentile(xs, 90)),
    min: round(s[0]!),
    max: round(s[s.length - 1]!),
    mean: round(xs.reduce((a, b) => a + b, 0) / xs.length),
    samples: xs.map(round),
  };
}

export const ms = (x: number): string => `${x.toFixed(1)} ms`;
