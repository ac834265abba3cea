/**
 * The agent API: lease (long-poll, carries cancel orders and lease renewals), reports, inventory,
 * and goodbye (an agent that stops says so, and its cluster shows down at once).
 * An agent token is bound to one cluster; everything here is scoped to it.
 */
import { type RouteHandler, createRoute, z } from "@hono/zod-openapi";
import {
  AnswerRequest,
  ClusterPolicy,
  Goodbye,
  GoodbyeResponse,
  Inventory,
  LeaseRequest,
  LeaseResponse,
  ReportBatch,
  ReportResponse,
} from "../../schemas/index.ts";
import type { Deps } from "../deps.ts";
import { requireRole } from "../middleware/auth.ts";
import {
  agentOf,
  applyReports,
  clusterPolicy,
  leaseForAgent,
  publishInventory,
  sayGoodbye,
} from "../services/agent.ts";
import { takeAnswer } from "../services/asks.ts";
import { effectiveAgentId } from "../store/agent-scope.ts";
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

export const answerRoute = createRoute({
  method: "post",
  path: "/v1/agent/asks/{id}/answer",
  operationId: "agentAnswer",
  tags: ["agent"],
  summary: "Answer a question the gateway handed this agent in a lease call",
  description:
    "Once per ask, by the agent that took it. 404 when the ask is not this agent's, was answered, or its asker stopped waiting.",
  security: bearer,
  middleware: requireRole("agent"),
  request: {
    // Any short string: a malformed id is simply not an ask waiting for this agent (404), and a body
    // sent with the wrong content type is still answered 415 first.
    params: z.object({ id: z.string().max(64).openapi({ example: "ask_01jd7x2k9m4q8r6t5v3w1y0z00" }) }),
    body: { content: { "application/json": { schema: AnswerRequest } }, required: true },
  },
  responses: {
    204: { description: "Taken" },
    ...problems(400, 401, 403, 404, 413, 422, 429),
  },
});

export function agentRouter(deps: Deps) {
  const lease: RouteHandler<typeof leaseRoute> = async (c) => {
    const principal = agentOf(c.get("principal"));
    return c.json(await leaseForAgent(deps, principal, c.req.valid("json"), c.req.raw.signal), 200);
  };
  const reports: RouteHandler<typeof reportRoute> = async (c) =>
    c.json(await applyReports(deps, agentOf(c.get("principal")), c.req.valid("json")), 200);
  const cluster: RouteHandler<typeof agentClusterRoute> = async (c) =>
    c.json(await clusterPolicy(deps, agentOf(c.get("principal"))), 200);
  const inventory: RouteHandler<typeof inventoryRoute> = async (c) =>
    c.json(await publishInventory(deps, agentOf(c.get("principal")), c.req.valid("json")), 200);
  const goodbye: RouteHandler<typeof goodbyeRoute> = async (c) =>
    c.json(await sayGoodbye(deps, agentOf(c.get("principal")), c.req.valid("json")), 200);

  const answer: RouteHandler<typeof answerRoute> = async (c) => {
    const { cluster, user } = agentOf(c.get("principal"));
    const body = c.req.valid("json");
    const agentId = effectiveAgentId(user, body.agentId);
    await takeAnswer(deps, { cluster, agentId }, c.req.valid("param").id, body.answer);
    return c.body(null, 204);
  };

  return createRouter()
    .openapi(leaseRoute, lease)
    .openapi(answerRoute, answer)
    .openapi(reportRoute, reports)
    .openapi(agentClusterRoute, cluster)
    .openapi(inventoryRoute, inventory)
    .openapi(goodbyeRoute, goodbye);
}
