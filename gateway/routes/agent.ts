/**
 * The agent API: lease (long-poll, carries cancel orders and lease renewals), reports, inventory,
 * and goodbye (an agent that stops says so, and its cluster shows down at once).
 * An agent token is bound to one cluster; everything here is scoped to it.
 */
import { createRoute, z } from "@hono/zod-openapi";
import {
  ClusterPolicy,
  Goodbye,
  GoodbyeResponse,
  Inventory,
  LeaseRequest,
  LeaseResponse,
  ReportBatch,
  ReportResponse,
} from "../../schemas/index.ts";
import type { Deps, Principal } from "../deps.ts";
import { requireRole } from "../middleware/auth.ts";
import { longPoll } from "../notifier.ts";
import { ApiProblem } from "../problem.ts";
import { clusterLiveness } from "../agent-liveness.ts";
import { getCluster, listAgents, markAgentStopped, saveInventory, touchAgent } from "../store/admin.ts";
import { iso, parseStoredSpec } from "../store/job-row.ts";
import { type AgentScope, effectiveAgentId, readAgentScope, servesOf } from "../store/agent-scope.ts";
import { cancelOrders, claimJobs, rejectInvalidClaim, renewLeases } from "../store/leases.ts";
import { applyReport } from "../store/reports.ts";
import { resolveDependencies } from "../store/dependencies.ts";
import { bearer, createRouter, problems } from "./common.ts";

export const leaseRoute = createRoute({
  method: "post",
  path: "/v1/agent/lease",
  operationId: "agentLease",
  tags: ["agent"],
  summary: "Lease queued jobs (long-poll), renew held leases, receive cancel orders",
  security: bearer,
  middleware: requireRole("agent"),
  request: { body: { content: { "application/json": { schema: LeaseRequest } }, required: true } },
  responses: {
    200: { description: "Leases and orders", content: { "application/json": { schema: LeaseResponse } } },
    ...problems(400, 401, 403, 413, 422, 429),
  },
});

export const reportRoute = createRoute({
  method: "post",
  path: "/v1/agent/reports",
  operationId: "agentReports",
  tags: ["agent"],
  summary: "Report transitions, log bytes and results for leased jobs",
  description:
    "Each report is fenced by its epoch; outcomes say applied / duplicate / stale / illegal / not_found per job.",
  security: bearer,
  middleware: requireRole("agent"),
  request: { body: { content: { "application/json": { schema: ReportBatch } }, required: true } },
  responses: {
    200: { description: "One outcome per report", content: { "application/json": { schema: ReportResponse } } },
    ...problems(400, 401, 403, 413, 422, 429),
  },
});

export const inventoryRoute = createRoute({
  method: "put",
  path: "/v1/agent/inventory",
  operationId: "agentInventory",
  tags: ["agent"],
  summary: "Publish what the cluster offers",
  security: bearer,
  middleware: requireRole("agent"),
  request: { body: { content: { "application/json": { schema: Inventory } }, required: true } },
  responses: {
    200: {
      description: "Stored",
      content: { "application/json": { schema: z.object({ ok: z.literal(true), serverTime: z.string() }) } },
    },
    ...problems(400, 401, 403, 404, 413, 422, 429),
  },
});

export const goodbyeRoute = createRoute({
  method: "post",
  path: "/v1/agent/goodbye",
  operationId: "agentGoodbye",
  tags: ["agent"],
  summary: "Say this agent is stopping: its cluster shows down at once unless another agent is alive",
  description:
    "Idempotent: a repeated goodbye keeps the first time; an agentId this cluster has never seen changes nothing. " +
    "The jobs the agent holds keep their leases until they expire, so a restarted agent (same state file) " +
    "renews them and another agent of the cluster takes them over after expiry; nothing is resubmitted. " +
    "The next lease or inventory from the same agentId makes it alive again.",
  security: bearer,
  middleware: requireRole("agent"),
  request: { body: { content: { "application/json": { schema: Goodbye } }, required: true } },
  responses: {
    200: { description: "Recorded", content: { "application/json": { schema: GoodbyeResponse } } },
    ...problems(400, 401, 403, 413, 422, 429),
  },
});

export const agentClusterRoute = createRoute({
  method: "get",
  path: "/v1/agent/cluster",
  operationId: "agentCluster",
  tags: ["agent"],
  summary: "The admin's roots and sbatch allow-list for this agent's cluster",
  description: "For `slurmgate agent doctor`, which reports where the agent's own settings differ.",
  security: bearer,
  middleware: requireRole("agent"),
  responses: {
    200: { description: "The cluster's policy", content: { "application/json": { schema: ClusterPolicy } } },
    ...problems(401, 403, 404, 429),
  },
});

function agentOf(p: Principal): Extract<Principal, { kind: "agent" }> {
  if (p.kind !== "agent") {
    throw new ApiProblem("forbidden", "this route needs an agent token");
  }
  return p;
}

/** A personal agent runs its token's user's jobs only; any other agent what its last inventory published. */
async function scopeFor(deps: Deps, p: Extract<Principal, { kind: "agent" }>, agentId: string): Promise<AgentScope> {
  return p.user !== null ? { kind: "user", user: p.user } : readAgentScope(deps.db, p.cluster, agentId);
}

export function agentRouter(deps: Deps) {
  const app = createRouter();
  const leaseMs = () => deps.config.SLURMGATE_LEASE_SECONDS * 1000;

  app.openapi(leaseRoute, async (c) => {
    const principal = agentOf(c.get("principal"));
    const cluster = principal.cluster;
    const input = c.req.valid("json");
    const body = { ...input, agentId: effectiveAgentId(principal.user, input.agentId) };
    const now = deps.now();
    await touchAgent(
      deps.db,
      {
        cluster,
        agentId: body.agentId,
        version: body.version,
        mode: body.mode,
        cycleMs: body.cycleMs,
        user: principal.user,
      },
      now,
    );
    const scope = await scopeFor(deps, principal, body.agentId);
    const lost = await renewLeases(deps.db, {
      cluster,
      agentId: body.agentId,
      holding: body.holding,
      now,
      leaseMs: leaseMs(),
    });
    const pendingCancels = await cancelOrders(deps.db, cluster, body.agentId);
    const wait = pendingCancels.length > 0 || lost.length > 0 ? 0 : body.wait;
    const claimed =
      (await longPoll(
        deps.notifier,
        `cluster:${cluster}`,
        wait,
        async () => {
          const rows = await claimJobs(deps.db, {
            cluster,
            agentId: body.agentId,
            max: body.max,
            now: deps.now(),
            leaseMs: leaseMs(),
            scope,
          });
          if (rows.length) {
            return rows;
          }
          // A cancel for a job this agent holds ends the wait too.
          return (await cancelOrders(deps.db, cluster, body.agentId)).length ? [] : undefined;
        },
        { recheckMs: deps.recheckMs, now: deps.now, signal: c.req.raw.signal },
      )) ?? [];
    const leases = [];
    for (const claim of claimed) {
      const stored = parseStoredSpec(claim.spec);
      if (!stored.ok) {
        // One unreadable row ends here, in this call; the rest of the batch is still served.
        await rejectInvalidClaim(deps.db, claim, { reason: stored.reason, now: deps.now() });
        deps.notifier.notify(`job:${claim.jobId}`);
        continue;
      }
      const resolution = await resolveDependencies(deps.db, claim.jobId, stored.spec, deps.now());
      if (resolution.status === "ready") {
        const { jobId, epoch, attempt, owner, slurmJobId, expiresAt } = claim;
        leases.push({
          jobId,
          epoch,
          attempt,
          owner,
          expiresAt,
          spec: stored.spec,
          slurmJobId,
          dependsOnSlurmIds: resolution.slurmIds,
        });
      }
      deps.notifier.notify(`job:${claim.jobId}`);
    }
    const cancels = await cancelOrders(deps.db, cluster, body.agentId);
    return c.json(
      { leases, cancels, lost, leaseSeconds: deps.config.SLURMGATE_LEASE_SECONDS, serverTime: iso(deps.now()) },
      200,
    );
  });

  app.openapi(reportRoute, async (c) => {
    const principal = agentOf(c.get("principal"));
    const cluster = principal.cluster;
    const { reports } = c.req.valid("json");
    const agentId = effectiveAgentId(principal.user, c.req.valid("json").agentId ?? "unknown");
    const scope = await scopeFor(deps, principal, agentId);
    const outcomes = [];
    for (const report of reports) {
      outcomes.push(await applyReport(deps.db, { cluster, agentId, now: deps.now(), scope }, report));
      deps.notifier.notify(`job:${report.jobId}`);
    }
    return c.json({ outcomes }, 200);
  });

  app.openapi(agentClusterRoute, async (c) => {
    const cluster = agentOf(c.get("principal")).cluster;
    const record = await getCluster(deps.db, cluster);
    if (!record) {
      throw new ApiProblem("not_found", `cluster ${cluster} is not registered`);
    }
    const { name, sharedRoots, allowedSbatchArgs } = record.config;
    return c.json({ name, sharedRoots, allowedSbatchArgs }, 200);
  });

  app.openapi(inventoryRoute, async (c) => {
    const principal = agentOf(c.get("principal"));
    const cluster = principal.cluster;
    const inventory = c.req.valid("json");
    const now = deps.now();
    if (!(await getCluster(deps.db, cluster))) {
      throw new ApiProblem("not_found", `cluster ${cluster} is not registered`);
    }
    // The mapped names are the gateway's to route by, not every user's to read on GET /v1/clusters.
    const { identity: _identity, ...shared } = inventory;
    await saveInventory(deps.db, cluster, shared, now);
    await touchAgent(
      deps.db,
      {
        cluster,
        agentId: effectiveAgentId(principal.user, inventory.agentId),
        version: inventory.agentVersion,
        mode: inventory.mode,
        cycleMs: inventory.cycleMs ?? null,
        user: principal.user,
        serves: principal.user === null ? servesOf(inventory.identity) : null,
      },
      now,
    );
    return c.json({ ok: true as const, serverTime: iso(now) }, 200);
  });

  app.openapi(goodbyeRoute, async (c) => {
    const cluster = agentOf(c.get("principal")).cluster;
    const { agentId } = c.req.valid("json");
    const now = deps.now();
    // Leases are deliberately left alone. A job the agent left in `submitting` had an sbatch whose
    // outcome is unknown (it timed out; the controller may still queue it): handed over now, the
    // next holder's tag lookup could run before the controller settles and submit a second time.
    // Expiry gives it the lease's length to settle, and a restarted agent renews its leases at once.
    const stoppedAt = await markAgentStopped(deps.db, { cluster, agentId }, now);
    const own = (await listAgents(deps.db)).filter((a) => a.cluster === cluster);
    const { alive } = clusterLiveness(own, now, deps.config.SLURMGATE_AGENT_LIVENESS_SECONDS * 1000);
    return c.json({ agentId, stoppedAt: stoppedAt === null ? null : iso(stoppedAt), clusterAlive: alive }, 200);
  });

  return app;
}
