/**
 * How fast the agent calls sbatch and how often it tracks: sbatch calls stay under the configured
 * rate; tracking runs faster while things change and slower while nothing does.
 */
import type { AgentContext } from "./context.ts";

export type Pacer = {
  /** Waits so that sbatch calls stay under the configured rate. */
  beforeSubmit(): Promise<void>;
  trackDue(now: number): boolean;
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
    tracked(now, changed) {
      interval = changed ? minMs : Math.min(maxMs, interval * 2);
      nextTrack = now + interval;
    },
    submittedNow(now) {
      interval = minMs;
      nextTrack = Math.min(nextTrack, now + minMs);
    },
    msUntilTrack: (now) => Math.max(0, nextTrack - now),
  };
}
