/**
 * Tracking takes at most its share of the agent's time (agent/pacer.ts TRACK_SHARE): real agent
 * cycles on a simulated clock, with Slurm's listing made slow (slurmrestd 22.05 renders every user's
 * queue) or fast (squeue of the agent's own jobs), while leases keep arriving.
 */
import { basename } from "node:path";
import { describe, expect, it } from "vitest";
import { runCycle } from "../../agent/cycle.ts";
import { TRACK_SHARE, createPacer } from "../../agent/pacer.ts";
import { createReporter } from "../../agent/reporter.ts";
import { agentOn, lease, world } from "./helpers/agent-doubles.ts";

const PER_CYCLE = 5;

/** Runs `cycles` cycles of PER_CYCLE new leases each; each listing takes `listingMs` of the clock. */
async function busyAgent(listingMs: number, cycles: number) {
  const w = world();
  let clock = 1_000_000;
  const run = w.slurm.run;
  w.slurm.run = (cmd, args) => {
    const name = basename(cmd);
    clock += name === "squeue" ? listingMs : name === "sbatch" ? 10 : 0;
    return run(cmd, args);
  };
  const agent = await agentOn(w, undefined, { SLURMGATE_TRACK_MIN_SECONDS: "2", SLURMGATE_TRACK_MAX_SECONDS: "60" });
  agent.ctx.now = () => clock;
  const reporter = createReporter(agent.ctx);
  const pacer = createPacer(agent.ctx, async (ms) => {
    clock += ms;
  });
  const start = clock;
  for (let c = 0; c < cycles; c++) {
    w.gateway.pending.push({ leases: Array.from({ length: PER_CYCLE }, (_, i) => lease(c * PER_CYCLE + i + 1)) });
    clock += 100; // the lease call's round trip
    const stats = await runCycle(agent.ctx, reporter, pacer, { wait: 0 });
    expect(stats.errors).toEqual([]);
  }
  const listings = w.slurm.calls.filter((c) => c[0] === "squeue").length;
  return { listings, elapsed: clock - start, sbatches: w.slurm.sbatches().length };
}

describe("tracking's share of the agent's time", () => {
  it("a listing that takes 7 s runs at most a fifth of the time while leases keep coming, and still runs", async () => {
    const { listings, elapsed, sbatches } = await busyAgent(7_000, 200);
    expect(sbatches).toBe(200 * PER_CYCLE);
    const share = (listings * 7_000) / elapsed;
    // The first listing is not paid for in advance: allow one listing's worth over the share.
    expect(share).toBeLessThanOrEqual(TRACK_SHARE + 7_000 / elapsed);
    // Not starved either: one listing per (7 s + 4 × 7 s), give or take one cycle.
    expect(listings).toBeGreaterThanOrEqual(Math.floor(elapsed / (7_000 / TRACK_SHARE + 1_000)));
  });

  it("a listing of tens of milliseconds keeps its SLURMGATE_TRACK_MIN_SECONDS pace", async () => {
    const { listings, elapsed } = await busyAgent(20, 400);
    // Every 2 s, give or take one cycle (5 sbatch + the lease call: 150 ms) and the listing itself.
    expect(listings).toBeGreaterThanOrEqual(Math.floor(elapsed / (2_000 + 150 + 20)));
    expect(listings).toBeLessThanOrEqual(Math.ceil(elapsed / 2_000) + 1);
  });
});
