/**
 * The agent's use cases: lease (renew, claim, cancel orders), reports, inventory, goodbye. An agent
 * token is bound to one cluster; everything here is scoped to it. Handlers: routes/agent.ts.
 */
import type { AgentAsk, Inventory, LeaseRequest, LeaseResponse, Report } from "../../schemas/index.ts";
import { clusterLiveness } from "../agent-liveness.ts";
import type { Deps, Principal } from "../deps.ts";
import { longPoll, notifyJob } from "../notifier.ts";
import { ApiProblem, listedProblem } from "../problem.ts";
import { listAgents, markAgentStopped, touchAgent } from "../store/agents.ts";
import { getCluster, saveInventory } from "../store/clusters.ts";
import { type AgentScope, effectiveAgentId, readAgentScope, servesOf } from "../store/agent-scope.ts";
import { resolveDependencies } from "../store/dependencies.ts";
import { iso } from "../store/job-row.ts";
import {
  type CancelOrderRow,
  type ClaimedRow,
  cancelOrders,
  claimJobs,
  rejectInvalidClaim,
  renewLeases,
} from "../store/leases.ts";
import { applyReportBatch, type ReportOutcome } from "../store/reports.ts";
import { takeAsks } from "../store/asks.ts";
import { misnamedBodies, scriptBodyInserts } from "../store/script-bodies.ts";

export type AgentPrincipal = Extract<Principal, { kind: "agent" }>;

export function agentOf(p: Principal): AgentPrincipal {
  if (p.kind !== "agent") {
    throw new ApiProblem("forbidden", "this route needs an agent token");
  }
  return p;
}

/** A personal agent runs its token's user's jobs only; any other agent what its last inventory published. */
async function scopeFor(deps: Deps, p: AgentPrincipal, agentId: string): Promise<AgentScope> {
  return p.user !== null ? { kind: "user", user: p.user } : readAgentScope(deps.db, p.cluster, agentId);
}

/**
 * Each claimed job as a lease, or nothing: one whose stored spec no longer parses is rejected here,
 * in this call (the rest of the batch is still served); one whose dependencies are not ready went
 * back to the queue or ended inside resolveDependencies.
 */
async function toLeases(deps: Deps, claimed: ClaimedRow[]): Promise<LeaseResponse["leases"]> {
  const leases: LeaseResponse["leases"] = [];
  for (const claim of claimed) {
    const { jobId, epoch, attempt, owner, slurmJobId, expiresAt, spec, batch } = claim;
    if (!spec.ok) {
      await rejectInvalidClaim(deps.db, claim, { reason: spec.reason, now: deps.now() });
    } else {
      const resolution = await resolveDependencies(deps.db, jobId, spec.spec, deps.now());
      if (resolution.status === "ready") {
        const dependsOnSlurmIds = resolution.slurmIds;
        leases.push({
          jobId,
          epoch,
          attempt,
          owner,
          expiresAt,
          spec: spec.spec,
          slurmJobId,
          dependsOnSlurmIds,
          batch,
        });
      }
    }
    notifyJob(deps.notifier, jobId);
  }
  return leases;
}

/**
 * One lease call: the agent is seen, its held leases renewed, queued work claimed (long-polling up
 * to `wait` seconds), and its pending cancel orders returned. Each check reads the cancel orders
 * once, after the claim, so a job taken over with a pending cancel is ordered cancelled at once and a
 * call that does not wait reads them exactly once.
 */
export async function leaseForAgent(
  deps: Deps,
  principal: AgentPrincipal,
  input: LeaseRequest,
  signal?: AbortSignal,
): Promise<LeaseResponse> {
  const { cluster } = principal;
  const agentId = effectiveAgentId(principal.user, input.agentId);
  const leaseMs = deps.config.SLURMGATE_LEASE_SECONDS * 1000;
  const now = deps.now();
  const { version, mode, cycleMs } = input;
  await touchAgent(deps.db, { cluster, agentId, version, mode, cycleMs, user: principal.user }, now);
  const scope = await scopeFor(deps, principal, agentId);
  const lost = await renewLeases(deps.db, { cluster, agentId, holding: input.holding, now, leaseMs });
  const leaseSeconds = deps.config.SLURMGATE_LEASE_SECONDS;
  if (input.max === 0) {
    // A renewal only: cancel orders and asks wait for the agent's claiming call, which handles them.
    return { leases: [], cancels: [], asks: [], lost, leaseSeconds, serverTime: iso(deps.now()) };
  }
  let cancels: CancelOrderRow[] = [];
  let asks: AgentAsk[] = [];
  const check = async () => {
    const rows = await claimJobs(deps.db, { cluster, agentId, max: input.max, now: deps.now(), leaseMs, scope });
    cancels = await cancelOrders(deps.db, cluster, agentId);
    asks = await takeAsks(deps.db, { cluster, agentId, user: principal.user, now: deps.now() });
    // A cancel for a job this agent holds, or a question for it, ends the wait too.
    return rows.length > 0 || cancels.length > 0 || asks.length > 0 ? rows : undefined;
  };
  const wait = lost.length > 0 ? 0 : input.wait;
  const options = { recheckMs: deps.recheckMs, now: deps.now, signal };
  const claimed = (await longPoll(deps.notifier, `cluster:${cluster}`, wait, check, options)) ?? [];
  const leases = await toLeases(deps, claimed);
  return { leases, cancels, lost, asks, leaseSeconds, serverTime: iso(deps.now()) };
}

/**
 * Applies each report in order, fenced by its epoch; one outcome per report. The script bodies the
 * reports name are checked against their hashes and stored first (the schema already checked that
 * every named body is carried).
 */
export async function applyReports(
  deps: Deps,
  principal: AgentPrincipal,
  batch: { reports: Report[]; agentId?: string; scriptBodies?: Record<string, string> },
): Promise<{ outcomes: ReportOutcome[] }> {
  const { cluster } = principal;
  const agentId = effectiveAgentId(principal.user, batch.agentId ?? "unknown");
  const scope = await scopeFor(deps, principal, agentId);
  const bodies = namedBodies(batch.reports, await checkedBodies(batch.scriptBodies ?? {}));
  const outcomes = await applyReportBatch(
    deps.db,
    { cluster, agentId, now: deps.now(), scope },
    batch.reports,
    scriptBodyInserts(bodies, deps.now()),
  );
  for (const report of batch.reports) {
    notifyJob(deps.notifier, report.jobId);
  }
  return { outcomes };
}

async function checkedBodies(bodies: Record<string, string>): Promise<Record<string, string>> {
  const wrong = await misnamedBodies(bodies);
  if (wrong.length) {
    const message = "is not the sha256 of its text";
    throw listedProblem(
      "validation_failed",
      wrong.map((key) => ({ field: `body.scriptBodies.${key}`, message })),
    );
  }
  return bodies;
}

/** A body no report names is not kept: the store holds only what some job's script is made of. */
function namedBodies(reports: Report[], bodies: Record<string, string>): Record<string, string> {
  const named = new Set(reports.map((report) => report.scriptBody));
  return Object.fromEntries(Object.entries(bodies).filter(([key]) => named.has(key)));
}

async function registered(deps: Deps, cluster: string) {
  const record = await getCluster(deps.db, cluster);
  if (!record) {
    throw new ApiProblem("not_found", `cluster ${cluster} is not registered`);
  }
  return record;
}

/** The admin's roots and sbatch allow-list for the agent's cluster (for `agent doctor`). */
export async function clusterPolicy(deps: Deps, principal: AgentPrincipal) {
  const { name, sharedRoots, allowedSbatchArgs } = (await registered(deps, principal.cluster)).config;
  return { name, sharedRoots, allowedSbatchArgs };
}

/** Stores what the cluster offers and whom the agent serves; routing sees it at once (the store clears its cache). */
export async function publishInventory(deps: Deps, principal: AgentPrincipal, inventory: Inventory) {
  const { cluster, user } = principal;
  const now = deps.now();
  await registered(deps, cluster);
  // The mapped names are the gateway's to route by, not every user's to read on GET /v1/clusters.
  const { identity: _identity, ...shared } = inventory;
  await saveInventory(deps.db, cluster, shared, now);
  const agentId = effectiveAgentId(user, inventory.agentId);
  const { agentVersion: version, mode } = inventory;
  const serves = user === null ? servesOf(inventory.identity) : null;
  await touchAgent(deps.db, { cluster, agentId, version, mode, cycleMs: inventory.cycleMs ?? null, user, serves }, now);
  return { ok: true as const, serverTime: iso(now) };
}

/**
 * Records that an agent stops. Its leases are deliberately left alone: a job it left in
 * `submitting` had an sbatch whose outcome is unknown (it timed out; the controller may still queue
 * it): handed over now, the next holder's tag lookup could run before the controller settles and
 * submit a second time. Expiry gives it the lease's length to settle, and a restarted agent renews
 * its leases at once.
 */
export async function sayGoodbye(deps: Deps, principal: AgentPrincipal, { agentId }: { agentId: string }) {
  const { cluster } = principal;
  const now = deps.now();
  const stoppedAt = await markAgentStopped(deps.db, { cluster, agentId }, now);
  const own = (await listAgents(deps.db)).filter((a) => a.cluster === cluster);
  const { alive } = clusterLiveness(own, now, deps.config.SLURMGATE_AGENT_LIVENESS_SECONDS * 1000);
  return { agentId, stoppedAt: stoppedAt === null ? null : iso(stoppedAt), clusterAlive: alive };
}
