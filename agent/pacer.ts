/**
 * How fast the agent calls sbatch and how often it tracks: sbatch calls stay under the configured
 * rate; tracking runs faster while things change and slower while nothing does, and never takes
 * more than its share of the agent's time.
 */
import type { AgentContext } from "./context.ts";

/**
 * The most of the agent's time listing Slurm's queue may take: after a listing that took d ms the
 * next track waits at least d × (1 / share − 1), up to SLURMGATE_TRACK_MAX_SECONDS. Tracking runs
 * between submissions in one cycle, so a listing that takes seconds (slurmrestd 22.05 renders every
 * user's queue: ~7 s for 2,000 jobs under load) would otherwise stall submission every few seconds;
 * an squeue of the agent's own jobs (tens of ms) is never slowed by it. Only the listing counts:
 * shipping logs and results is the tracking users wait for.
 */
export const TRACK_SHARE = 0.2;

export type Pacer = {
  /** Waits so that sbatch calls stay under the configured rate. */
  beforeSubmit(): Promise<void>;
  trackDue(now: number): boolean;
  /** How long this track's listing of Slurm's queue took: it sets the least wait before the next (TRACK_SHARE). */
  listed(ms: number): void;
  /** After a track: faster while things change, slower (up to the max) while nothing does. */
  tracked(now: number, changed: boolean): void;
  submittedNow(now: number): void;
  msUntilTrack(now: number): number;
};

export function createPacer(ctx: AgentContext, sleep: (ms: number) => Promise<void>): Pacer {
  const minMs = ctx.config.SLURMGATE_TRACK_MIN_SECONDS * 1000;
  const maxMs = ctx.config.SLURMGATE_TRACK_MAX_SECONDS * 1000;
  const gapMs = 1000 / ctx.config.SLURMGATE_SUBMITS_PER_SECOND;
  let nextSlot = 0;
  let interval = minMs;
  let nextTrack = 0;
  let listedMs = 0;
  // No track before this, whatever changes: the last listing's duration, paid back.
  let earliest = 0;
  return {
    async beforeSubmit() {
      // Reserve a slot before waiting, so concurrent submitters never share one.
      const now = ctx.now();
      const slot = Math.max(now, nextSlot);
      nextSlot = slot + gapMs;
      if (slot > now) {
        await sleep(slot - now);
      }
    },
    trackDue: (now) => now >= nextTrack,
    listed(ms) {
      listedMs = Math.max(0, ms);
    },
    tracked(now, changed) {
      earliest = now + Math.min(maxMs, listedMs * (1 / TRACK_SHARE - 1));
      listedMs = 0;
      interval = changed ? minMs : Math.min(maxMs, interval * 2);
      nextTrack = Math.max(earliest, now + interval);
    },
    submittedNow(now) {
      interval = minMs;
      nextTrack = Math.max(earliest, Math.min(nextTrack, now + minMs));
    },
    msUntilTrack: (now) => Math.max(0, nextTrack - now),
  };
}
