/**
 * One agent cycle: lease (long-poll; also renews held leases and brings cancel orders) → cancel →
 * submit new leases exactly once → track everything in bulk → report transitions, logs, results.
 * Never throws for a gateway or Slurm failure: it reports what went wrong in its stats.
 */
import { posix } from "node:path";
import { isTerminal } from "../schemas/job.ts";
import { type CancelTarget, cancelJobs } from "./cancel.ts";
import { answerAsks } from "./asks.ts";
import type { AgentContext } from "./context.ts";
import type { Lease, Report } from "./gateway-api.ts";
import { collectLogs, readResult } from "./logs.ts";
import type { Reporter } from "./reporter.ts";
import { jobDirName } from "./paths.ts";
import { Lane, inLane } from "./executor/lane.ts";
import { type SubmitResult, adoptLease, lookupByTag, prepareLease, sbatchReady } from "./submit.ts";
import { type Submission, planSubmissions, submitBatch } from "./submit-batch.ts";
import type { TrackedJob } from "./state.ts";
import { neverRuns, observe, transitions } from "./track.ts";

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

function jobDirOf(ctx: AgentContext, lease: Lease) {
  return posix.join(ctx.roots.real[0]!, lease.owner, jobDirName(lease.jobId, lease.attempt));
}

/**
 * A lease for a later attempt replaces the local record of the earlier one: first ship what is left
 * of the earlier attempt's logs (the gateway keeps an ended attempt's bytes), so a retry loses nothing.
 */
async function flushEndedAttempts(ctx: AgentContext, reporter: Reporter, leases: Lease[]): Promise<void> {
  for (const lease of leases) {
    let job = ctx.state.get(lease.jobId);
    for (let round = 0; job && job.attempt < lease.attempt && job.slurmJobId && round < 64; round++) {
      const shipment = await collectLogs(ctx, job, ctx.config.SLURMGATE_LOG_BYTES_PER_CYCLE);
      if (shipment.chunks.length === 0) {
        break;
      }
      if (!(await reporter.send([{ jobId: job.jobId, epoch: job.epoch, logs: shipment.chunks }]))) {
        break;
      }
      job = { ...job, logOffsets: shipment.offsets, taskLogOffsets: shipment.taskOffsets };
      if (ctx.state.get(lease.jobId)) {
        ctx.state.put(job);
      }
      if (shipment.drained) {
        break;
      }
    }
  }
}

async function handleCancels(
  ctx: AgentContext,
  orders: { jobId: string; epoch: number; slurmJobId: string | null }[],
  leasedNow: Set<string>,
) {
  const reports: Report[] = [];
  const toKill: CancelTarget[] = [];
  for (const order of orders) {
    const job = ctx.state.get(order.jobId);
    const slurmJobId = job?.slurmJobId ?? order.slurmJobId;
    if (slurmJobId) {
      toKill.push({ slurmJobId, owner: job?.owner });
      if (job && !job.cancelRequested) {
        ctx.state.put({ ...job, cancelRequested: true });
      }
      continue;
    }
    if (job?.phase === "submitting") {
      // sbatch's outcome is unknown: the submit path resolves it by tag, then the next cycle cancels.
      continue;
    }
    leasedNow.delete(order.jobId);
    reports.push({
      jobId: order.jobId,
      epoch: order.epoch,
      state: "cancelled",
      reason: "cancelled before it was submitted to Slurm",
      logs: [],
    });
    ctx.state.remove(order.jobId);
  }
  if (toKill.length) {
    const result = await cancelJobs(ctx, toKill);
    if (!result.ok) {
      ctx.log("warn", "scancel reported errors", { message: result.message });
    }
  }
  return { reports, killed: toKill.length };
}

async function handleLeases(ctx: AgentContext, reporter: Reporter, pacer: Pacer, leases: Lease[], stats: CycleStats) {
  await flushEndedAttempts(ctx, reporter, leases);
  const adopt: Report[] = [];
  const fresh: Lease[] = [];
  const unsure: Lease[] = [];
  for (const lease of leases) {
    const known = ctx.state.get(lease.jobId);
    const local = known?.attempt === lease.attempt ? known : undefined;
    if (lease.slurmJobId) {
      adoptLease(ctx, lease, lease.slurmJobId, local?.jobDir ?? jobDirOf(ctx, lease));
      const job = ctx.state.get(lease.jobId)!;
      ctx.state.put({ ...job, reported: "submitted" });
    } else if (local?.slurmJobId && local.attempt === lease.attempt) {
      adopt.push(adoptLease(ctx, lease, local.slurmJobId, local.jobDir));
    } else if (lease.epoch > 1 || local?.phase === "submitting") {
      unsure.push(lease);
    } else {
      fresh.push(lease);
    }
  }
  if (unsure.length) {
    const lookup = await lookupByTag(
      ctx,
      unsure.map((l) => ({
        jobId: l.jobId,
        attempt: l.attempt,
        since: ctx.state.get(l.jobId)?.submittedAt ?? ctx.now() - 86_400_000,
        batch: l.batch,
      })),
    );
    for (const lease of unsure) {
      const found = lookup.found.get(lease.jobId);
      if (found) {
        const held = ctx.state.get(lease.jobId);
        adopt.push(adoptLease(ctx, lease, found, held?.attempt === lease.attempt ? held.jobDir : jobDirOf(ctx, lease)));
      } else if (lookup.complete) {
        fresh.push(lease);
      } else {
        ctx.log("warn", "cannot tell whether an earlier attempt was queued; will retry", { jobId: lease.jobId });
        stats.errors.push(`lookup incomplete for ${lease.jobId}`);
      }
    }
  }
  if (adopt.length && (await reporter.send(adopt))) {
    for (const r of adopt) {
      const job = ctx.state.get(r.jobId);
      if (job) {
        ctx.state.put({ ...job, reported: "submitted", lease: undefined });
      }
    }
  }
  const outbox = createOutbox(ctx, reporter);
  // Sweep elements of one batch go as one array. Unsure ones that the lookup did not find go so
  // too: each element is in at most one array of its batch tag, so a later lookup still finds it.
  const queue = planSubmissions(ctx, fresh);
  const concurrency = Math.min(ctx.config.SLURMGATE_SUBMIT_CONCURRENCY, queue.length);
  let unreachable: string | undefined;
  let full: string | undefined;
  // The next leases' directories and files are made while sbatch runs for the ones before them
  // (as many ahead as there are sbatch slots); sbatch itself stays at SLURMGATE_SUBMIT_CONCURRENCY.
  // An array prepares its members itself, in submitBatch.
  const ahead: { submission: Submission; ready?: ReturnType<typeof prepareLease> }[] = [];
  const fill = () => {
    while (ahead.length < concurrency && queue.length && !unreachable && !full) {
      const submission = queue.shift()!;
      if (submission.kind === "single") {
        const ready = prepareLease(ctx, submission.lease);
        ready.catch(() => {}); // awaited in order below; never an unhandled rejection meanwhile
        ahead.push({ submission, ready });
      } else {
        ahead.push({ submission });
      }
    }
  };
  const settle = async (members: Lease[], results: Promise<SubmitResult[]>) => {
    for (const [i, result] of (await results).entries()) {
      if (result.kind === "retry") {
        stats.errors.push(`sbatch for ${members[i]?.jobId}: ${result.message}`);
        unreachable = result.message;
        continue;
      }
      if (result.kind === "submitted") {
        stats.submitted++;
        pacer.submittedNow(ctx.now());
      }
      full ??= result.kind === "requeue" ? result.full : undefined;
      outbox.push(result.report);
    }
  };
  // Each worker is a lane (agent/executor/lane.ts): one sbatch at a time, and the next one, its
  // "submitting" record written, queued behind it so that it starts the moment the one before ends.
  const worker = async () => {
    const lane = new Lane();
    let inFlight: { members: Lease[]; results: Promise<SubmitResult[]>; withdraw(): void } | undefined;
    const settleInFlight = async () => {
      const last = inFlight;
      inFlight = undefined;
      if (last) {
        await settle(last.members, last.results);
      }
    };
    for (fill(); ahead.length; fill()) {
      const { submission, ready: preparing } = ahead.shift()!;
      fill();
      const ready = await preparing;
      if (submission.kind === "single" && ready?.kind === "ready" && !unreachable && !full) {
        await pacer.beforeSubmit();
        if (!unreachable && !full) {
          const next = inLane(lane, async () => [await sbatchReady(ctx, ready)]);
          await next.handedOver;
          const queued = { members: [submission.lease], results: next.result, withdraw: next.cancel };
          await settleInFlight();
          inFlight = queued;
          if (unreachable) {
            queued.withdraw(); // not started yet: never will; started: its outcome is read as usual
          }
          continue;
        }
      }
      await settleInFlight();
      if (unreachable || full) {
        queue.unshift(submission); // prepared, never submitted: given back below
        continue;
      }
      if (submission.kind === "batch") {
        await pacer.beforeSubmit();
        await settle(submission.leases, submitBatch(ctx, submission.leases));
      } else {
        await settle([submission.lease], Promise.resolve([ready as SubmitResult]));
      }
    }
    await settleInFlight();
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
    if ((unreachable || full) && queue.length) {
      // The controller did not answer, or takes no job now: give the rest back rather than ask for each.
      const reason = full ?? `Slurm did not answer sbatch (${unreachable}); will retry`;
      const retryAfterSeconds = full ? 60 : 30;
      for (const lease of queue.splice(0).flatMap(membersOf)) {
        if (full) {
          ctx.state.remove(lease.jobId); // not submitted: its tag was looked up, or it never ran
        }
        outbox.push({ jobId: lease.jobId, epoch: lease.epoch, logs: [], requeue: { reason, retryAfterSeconds } });
      }
    }
  } finally {
    await outbox.drain();
  }
}

const membersOf = (submission: Submission): Lease[] =>
  submission.kind === "batch" ? submission.leases : [submission.lease];

/**
 * How long a submission report waits for others to join it, and how many make a request at once.
 * Why: one report per request cost the agent (fetch) and the gateway (a request, its transaction)
 * a few ms of CPU per job, on the same CPUs as sbatch and slurmctld (bench/RESULTS-agent.md). The
 * last reports of a cycle never wait: the cycle drains the outbox as soon as its sbatch calls end.
 */
const OUTBOX_HOLD_MS = 1000;
const OUTBOX_MAX = 100;

/**
 * Sends submission reports while the next sbatch runs, instead of waiting for each round trip:
 * one request in flight, reports gathered for up to OUTBOX_HOLD_MS go together. The Slurm job id
 * is already in the state file before its report is queued, so a lost report only means a later
 * re-report.
 */
function createOutbox(ctx: AgentContext, reporter: Reporter) {
  let queue: Report[] = [];
  let flushing: Promise<void> | undefined;
  let draining = false;
  let wake: (() => void) | undefined;
  const gather = () =>
    new Promise<void>((resolve) => {
      if (draining || queue.length >= OUTBOX_MAX) {
        resolve();
        return;
      }
      const done = () => {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, OUTBOX_HOLD_MS);
      wake = done;
    });
  const flush = async () => {
    try {
      while (queue.length) {
        await gather();
        const batch = queue;
        queue = [];
        if (await reporter.send(batch)) {
          ctx.state.batch(() => {
            for (const report of batch) {
              const job = ctx.state.get(report.jobId);
              if (job) {
                ctx.state.put({ ...job, reported: "submitted", lease: undefined });
              }
            }
          });
        }
      }
    } finally {
      flushing = undefined;
    }
  };
  return {
    push(report: Report) {
      queue.push(report);
      if (queue.length >= OUTBOX_MAX) {
        wake?.();
      }
      if (!flushing) {
        flushing = flush();
        flushing.catch(() => {}); // surfaced by drain(); never an unhandled rejection meanwhile
      }
    },
    async drain() {
      draining = true;
      wake?.();
      while (flushing) {
        await flushing;
      }
    },
  };
}

/** Re-runs submissions whose sbatch outcome was unknown in an earlier cycle (or before a crash). */
function unfinishedSubmissions(ctx: AgentContext, leasedNow: Set<string>): Lease[] {
  return ctx.state
    .all()
    .filter((j) => j.phase === "submitting" && j.lease && !leasedNow.has(j.jobId))
    .map((j) => ({ ...j.lease!, epoch: j.epoch }));
}

async function track(ctx: AgentContext, reporter: Reporter, pacer: Pacer, stats: CycleStats) {
  const jobs = ctx.state.all().filter((j) => j.phase === "submitted" && j.slurmJobId);
  stats.tracked = jobs.length;
  if (jobs.length === 0) {
    pacer.tracked(ctx.now(), false);
    return;
  }
  const live = jobs.filter((j) => !j.reported || !isTerminal(j.reported));
  const seen = await observe(ctx, live);
  const doomed = neverRuns(seen);
  if (doomed.size > 0) {
    const targets = live.filter((j) => doomed.has(j.jobId)).map((j) => ({ slurmJobId: j.slurmJobId!, owner: j.owner }));
    await cancelJobs(ctx, targets);
    for (const [jobId, obs] of doomed) {
      seen.set(jobId, obs);
    }
  }
  const { reports, updates } = transitions(ctx, live, seen);
  const byJob = new Map(reports.map((r) => [r.jobId, r]));
  const next = new Map<string, TrackedJob>(jobs.map((j) => [j.jobId, j]));
  for (const u of updates) {
    next.set(u.jobId, u);
  }
  let budget = ctx.config.SLURMGATE_LOG_BYTES_PER_CYCLE;
  const drainedJobs = new Set<string>();
  for (const job of next.values()) {
    const state = byJob.get(job.jobId)?.state ?? job.reported;
    if (state !== "running" && !(state && isTerminal(state))) {
      continue;
    }
    const shipment = await collectLogs(ctx, job, budget);
    budget -= shipment.chunks.reduce((n, c) => n + Math.floor((c.data.length * 3) / 4), 0);
    let report = byJob.get(job.jobId);
    if (shipment.chunks.length) {
      report ??= { jobId: job.jobId, epoch: job.epoch, logs: [] };
      report.logs = shipment.chunks;
      byJob.set(job.jobId, report);
    }
    next.set(job.jobId, { ...job, logOffsets: shipment.offsets, taskLogOffsets: shipment.taskOffsets });
    if (state && isTerminal(state) && shipment.drained) {
      drainedJobs.add(job.jobId);
      const terminalReport = byJob.get(job.jobId);
      if (terminalReport?.state && isTerminal(terminalReport.state)) {
        terminalReport.result = await readResult(ctx, job);
      }
    }
  }
  const batch = [...byJob.values()];
  if (!(await reporter.send(batch))) {
    stats.errors.push("reports not delivered; will resend");
    pacer.tracked(ctx.now(), true);
    return;
  }
  stats.reported += batch.length;
  // One state-file write for the whole cycle (a write per job rewrote the file N times: O(N²)).
  ctx.state.batch(() => {
    for (const job of next.values()) {
      if (!ctx.state.get(job.jobId)) {
        continue; // dropped by the reporter: the lease belongs to someone else now
      }
      if (drainedJobs.has(job.jobId)) {
        ctx.state.remove(job.jobId);
      } else {
        ctx.state.put(job);
      }
    }
  });
  pacer.tracked(ctx.now(), reports.length > 0);
}

export async function runCycle(
  ctx: AgentContext,
  reporter: Reporter,
  pacer: Pacer,
  options: {
    wait: number;
    forceTrack?: boolean;
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
  const holding = ctx.state.all().map((j) => j.jobId);
  // An agent that does not know yet whose jobs it may run asks for none (max 0 is not allowed: skip).
  if (ctx.identity && !(await ctx.identity.ready().catch(() => false))) {
    stats.gatewayReachable = false;
    stats.errors.push("identity: could not learn from the gateway whose jobs this agent runs");
    return stats;
  }
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
    for (const id of lost) {
      const job = ctx.state.get(id);
      if (job && !(job.reported && isTerminal(job.reported))) {
        ctx.log("warn", "lease lost: another agent holds this job now, or it ended", { jobId: id });
        ctx.state.remove(id);
      }
    }
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
      await track(ctx, reporter, pacer, stats);
    } catch (err) {
      stats.errors.push(`track: ${(err as Error).message}`);
      pacer.tracked(ctx.now(), false);
    }
  }
  stats.cycleMs = ctx.now() - started;
  return stats;
}
