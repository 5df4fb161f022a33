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

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/** vmlet's times against raw QEMU's: both summaries, the ratio of medians with its 95 % interval, the target. */
export function compareToRaw(vmletMs: readonly number[], rawMs: readonly number[], target: number) {
  const vmlet = summarise(vmletMs);
  const raw = summarise(rawMs);
  const ratio = round3(vmlet.median / raw.median);
  return {
    vmletMs: vmlet,
    rawQemuMs: raw,
    ratio,
    /** 95 % bootstrap interval of the ratio: where another run of this length on this host could land. */
    ratioInterval95: ratioOfMediansInterval(vmletMs, rawMs),
    target,
    meetsTarget: ratio <= target,
    overheadMs: round3(vmlet.median - raw.median),
  };
}

/** A small seeded generator (mulberry32): the same samples give the same interval on every run. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function resample(xs: readonly number[], random: () => number): number[] {
  return xs.map(() => xs[Math.floor(random() * xs.length)]!);
}

/**
 * Percentile-bootstrap interval of median(a) / median(b): how far the ratio of two medians could
 * move on another run of the same length on the same host. Both sides are resampled on their own.
 */
export function ratioOfMediansInterval(a: readonly number[], b: readonly number[], level = 0.95, resamples = 2000, seed = 1): [number, number] {
  nonEmpty(a, 'interval');
  nonEmpty(b, 'interval');
  const random = seededRandom(seed);
  const ratios: number[] = [];
  for (let i = 0; i < resamples; i++) ratios.push(median(resample(a, random)) / median(resample(b, random)));
  const tail = ((1 - level) / 2) * 100;
  return [round(percentile(ratios, tail)), round(percentile(ratios, 100 - tail))];
}
