/**
 * A user creates a personal agent token for themselves: bound to (cluster, that user), so the agent
 * they run under their own account leases only their jobs. Tokens for others, and site agent tokens,
 * stay on the admin route.
 */
import { createRoute } from "@hono/zod-openapi";
import { CreatePersonalAgentToken, CreatedToken } from "../../schemas/index.ts";
import type { Deps } from "../deps.ts";
import { requireRole } from "../middleware/auth.ts";
import { issuePersonalAgentToken } from "../services/admin.ts";
import { bearer, createRouter, problems } from "./common.ts";

export const createPersonalAgentTokenRoute = createRoute({
  method: "post",
  path: "/v1/agent-tokens",
  operationId: "createPersonalAgentToken",
  tags: ["tokens"],
  summary: "Create a personal agent token for yourself on one cluster (shown once)",
  description: "The agent that uses it leases only your jobs, and must run as your account on the cluster.",
  security: bearer,
  middleware: requireRole("user"),
  request: {
    body: { content: { "application/json": { schema: CreatePersonalAgentToken } }, required: true },
  },
  responses: {
    201: { description: "The new token; store it now", content: { "application/json": { schema: CreatedToken } } },
    ...problems(400, 401, 403, 404, 422, 429),
  },
});

export function agentTokensRouter(deps: Deps) {
  const app = createRouter();
  app.openapi(createPersonalAgentTokenRoute, async (c) => {
    const principal = c.get("principal");
    const user = principal.kind === "agent" ? "" : principal.user;
    return c.json(await issuePersonalAgentToken(deps, user, c.req.valid("json")), 201);
  });
  return app;
}
