/**
 * One agent cycle: lease (long-poll; also renews held leases and brings cancel orders) → cancel →
 * submit new leases exactly once → track everything in bulk → report transitions, logs, results.
 * Never throws for a gateway or Slurm failure: it reports what went wrong in its stats.
 *
 * Each step is its own module: cycle-cancels.ts, cycle-submissions.ts (with lease-sort.ts and
 * cycle-outbox.ts), cycle-track.ts; every change to a tracked job goes through job-life.ts.
 */
import { MAX_HOLDING_PER_LEASE } from "../schemas/agent.ts";
import { answerAsks } from "./asks.ts";
import type { AgentContext } from "./context.ts";
import { forgetLost, handleCancels } from "./cycle-cancels.ts";
import { handleLeases, unfinishedSubmissions } from "./cycle-submissions.ts";
import { track } from "./cycle-track.ts";
import type { Pacer } from "./pacer.ts";
import type { Reporter } from "./reporter.ts";

export { type Pacer, createPacer } from "./pacer.ts";

export type CycleStats = {
  leased: number;
  submitted: number;
  cancelled: number;
  reported: number;
  tracked: number;
  errors: string[];
  gatewayReachable: boolean;
  cycleMs: number;
};

export async function runCycle(
  ctx: AgentContext,
  reporter: Reporter,
  pacer: Pacer,
  options: {
    wait: number;
    forceTrack?: boolean;
    /** A one-shot agent: outputs are uploaded within this cycle, not beside it (output-worker.ts). */
    waitForOutputs?: boolean;
    signal?: AbortSignal;
    /** Shown on GET /v1/clusters: what this agent is and how long its last cycle's work took. */
    heartbeat?: { version: string; cycleMs?: number; mode: "local" | "ssh" };
  },
): Promise<CycleStats> {
  const stats: CycleStats = {
    leased: 0,
    submitted: 0,
    cancelled: 0,
    reported: 0,
    tracked: 0,
    errors: [],
    gatewayReachable: true,
    cycleMs: 0,
  };
  // An agent that does not know yet whose jobs it may run makes no lease call at all.
  if (ctx.identity && !(await ctx.identity.ready().catch(() => false))) {
    stats.gatewayReachable = false;
    stats.errors.push("identity: could not learn from the gateway whose jobs this agent runs");
    return stats;
  }
  const holding = await renewBeyondOneCall(ctx, stats, options.signal);
  const response = await ctx.api.lease(
    { agentId: ctx.agentId, max: ctx.config.SLURMGATE_MAX_LEASE, wait: options.wait, holding, ...options.heartbeat },
    options.signal,
  );
  // The cycle's own work starts when the long-poll returns; its wait is not work.
  const started = ctx.now();
  if (!response.ok) {
    stats.gatewayReachable = false;
    stats.errors.push(`lease: ${response.message}`);
  } else {
    const { leases, cancels, lost, asks } = response.value;
    answerAsks(ctx, asks ?? []);
    stats.leased = leases.length;
    forgetLost(ctx, lost);
    const leasedNow = new Set(leases.map((l) => l.jobId));
    const cancelled = await handleCancels(ctx, cancels, leasedNow);
    stats.cancelled = cancelled.killed + cancelled.reports.length;
    if (cancelled.killed) {
      pacer.submittedNow(ctx.now());
    }
    await reporter.send(cancelled.reports);
    const pending = [...leases.filter((l) => leasedNow.has(l.jobId)), ...unfinishedSubmissions(ctx, leasedNow)];
    await handleLeases(ctx, reporter, pacer, pending, stats);
  }
  if (options.forceTrack || pacer.trackDue(ctx.now())) {
    try {
      await track(ctx, reporter, pacer, stats, { waitForOutputs: options.waitForOutputs });
    } catch (err) {
      stats.errors.push(`track: ${(err as Error).message}`);
      pacer.tracked(ctx.now(), false);
    }
  }
  stats.cycleMs = ctx.now() - started;
  return stats;
}

/**
 * Held jobs beyond what one lease call may list are renewed first, in renewal-only calls (`max: 0`),
 * so that no lease lapses however many jobs this agent tracks. Returns the ones left for the
 * claiming call.
 */
async function renewBeyondOneCall(ctx: AgentContext, stats: CycleStats, signal?: AbortSignal): Promise<string[]> {
  const holding = ctx.state.all().map((j) => j.jobId);
  for (let start = MAX_HOLDING_PER_LEASE; start < holding.length; start += MAX_HOLDING_PER_LEASE) {
    const chunk = holding.slice(start, start + MAX_HOLDING_PER_LEASE);
    const renewed = await ctx.api.lease({ agentId: ctx.agentId, max: 0, wait: 0, holding: chunk }, signal);
    if (renewed.ok) {
      forgetLost(ctx, renewed.value.lost);
    } else {
      stats.errors.push(`lease (renewal only): ${renewed.message}`);
    }
  }
  return holding.slice(0, MAX_HOLDING_PER_LEASE);
}
