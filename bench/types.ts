/**
 * What every benchmark section returns: one row per metric, ours next to its raw floor.
 */
export type Row = {
  section: string;
  metric: string;
  /** Our figure and the floor it is compared with, in `unit`. */
  ours: number;
  floor: number | null;
  unit: string;
  /** ours / floor; for throughput higher is better, for latency lower is better. */
  ratio: number | null;
  p50?: number;
  p99?: number;
  n: number;
  target?: string;
};

export type BenchOptions = { quick: boolean; log: (line: string) => void };

export type Section = { name: string; run: (opts: BenchOptions) => Promise<Row[]> };

/** Percentile of an unsorted sample (nearest rank). */
export function percentile(sample: number[], p: number): number {
  if (sample.length === 0) {
    return Number.NaN;
  }
  const sorted = [...sample].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

/** Times `fn` `n` times in sequence; returns milliseconds per call. */
export async function sampleMs(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out;
}
