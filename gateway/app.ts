/**
 * createApp(deps): the whole HTTP API, shared by the Node entry, the Workers entry and the tests.
 * No environment or global reads here: everything comes in through deps.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import { Problem } from "../schemas/index.ts";
import { VERSION } from "../schemas/version.ts";
import type { AppEnv, Deps } from "./deps.ts";
import { enforceScope } from "./auth/scope.ts";
import { authenticate } from "./middleware/auth.ts";
import { bodyLimit } from "./middleware/body-limit.ts";
import { cors } from "./middleware/cors.ts";
import { requestIds } from "./middleware/request-id.ts";
import { settleUnreadBody } from "./middleware/unread-body.ts";
import { createErrorHandler, createNotFoundHandler, logServerResponse } from "./problem.ts";
import { adminRouter } from "./routes/admin.ts";
import { agentRouter } from "./routes/agent.ts";
import { agentTokensRouter } from "./routes/agent-tokens.ts";
import { clustersRouter } from "./routes/clusters.ts";
import { eventsRouter } from "./routes/events.ts";
import { browseRouter } from "./routes/browse.ts";
import { filesRouter } from "./routes/files.ts";
import { OUTPUT_UPLOAD_PATH, jobFilesRouter } from "./routes/job-files.ts";
import { jobsRouter } from "./routes/jobs.ts";
import { sweepsRouter } from "./routes/sweeps.ts";
import { webRouter } from "./routes/web.ts";
import { webhooksRouter } from "./routes/webhooks.ts";

export const API_VERSION = VERSION;

const OPENAPI_CONFIG = {
  openapi: "3.1.0",
  info: {
    title: "slurmgate",
    version: API_VERSION,
    description:
      "Submit and watch Slurm jobs from anywhere over HTTPS. Agents on cluster login nodes connect outbound only.",
  },
};

/** How long an early answer waits for the unread rest of a body before it closes the connection instead. */
const DRAIN_MS = 5_000;

export function createApp(deps: Deps) {
  const app = new OpenAPIHono<AppEnv>();
  app.onError(createErrorHandler(deps.log));
  app.notFound(createNotFoundHandler(() => app.routes));
  // Outermost: every answer, problem or not, carries the request id its log lines use.
  app.use("*", requestIds());
  app.use("*", async (c, next) => {
    await next();
    logServerResponse(c, deps.log);
  });
  // Before the body limits and authentication: a preflight has neither body nor token, and a
  // refusal from either must still reach the page (a browser hides an answer without CORS headers).
  app.use("*", cors({ origins: deps.config.SLURMGATE_CORS_ORIGINS, routes: () => app.routes }));
  app.use(
    "*",
    settleUnreadBody({
      maxDrainBytes: Math.max(deps.config.SLURMGATE_BODY_LIMIT_BYTES, deps.config.SLURMGATE_AGENT_BODY_LIMIT_BYTES),
      drainMs: DRAIN_MS,
    }),
  );
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "sgu_… (user), sga_… (agent, bound to one cluster) or sgk_… (admin) token",
  });

  app.get("/healthz", (c) => c.json({ ok: true, version: API_VERSION }));
  app.doc31("/openapi.json", OPENAPI_CONFIG);
  app.route("/", webRouter(deps));

  const agentLimit = bodyLimit(deps.config.SLURMGATE_AGENT_BODY_LIMIT_BYTES);
  app.use("/v1/agent/*", (c, next) => (OUTPUT_UPLOAD_PATH.test(c.req.path) ? next() : agentLimit(c, next)));
  app.use("/v1/jobs/*", bodyLimit(deps.config.SLURMGATE_BODY_LIMIT_BYTES));
  app.use("/v1/jobs", bodyLimit(deps.config.SLURMGATE_BODY_LIMIT_BYTES));
  app.use("/v1/sweeps/*", bodyLimit(deps.config.SLURMGATE_BODY_LIMIT_BYTES));
  app.use("/v1/sweeps", bodyLimit(deps.config.SLURMGATE_BODY_LIMIT_BYTES));
  app.use("/v1/webhooks/*", bodyLimit(deps.config.SLURMGATE_BODY_LIMIT_BYTES));
  app.use("/v1/webhooks", bodyLimit(deps.config.SLURMGATE_BODY_LIMIT_BYTES));
  // Uploads stream into the blob store under their own per-file cap; only compose's JSON is limited here.
  app.use("/v1/files/compose", bodyLimit(deps.config.SLURMGATE_BODY_LIMIT_BYTES));
  app.use("/v1/admin/*", bodyLimit(deps.config.SLURMGATE_BODY_LIMIT_BYTES));
  app.use("/v1/*", authenticate(deps));
  app.use("/v1/*", enforceScope());

  app.route("/", jobsRouter(deps));
  app.route("/", browseRouter(deps));
  app.route("/", sweepsRouter(deps));
  app.route("/", eventsRouter(deps));
  app.route("/", webhooksRouter(deps));
  app.route("/", filesRouter(deps));
  app.route("/", jobFilesRouter(deps));
  app.route("/", clustersRouter(deps));
  app.route("/", agentRouter(deps));
  app.route("/", agentTokensRouter(deps));
  app.route("/", adminRouter(deps));
  documentMediaTypeRefusals(app);
  return app;
}

/**
 * Every route with a body can answer 415: @hono/zod-openapi's media-type gate runs before the
 * handler. Said here once for all of them, so the document cannot forget a route.
 */
function documentMediaTypeRefusals(app: OpenAPIHono<AppEnv>) {
  for (const definition of app.openAPIRegistry.definitions) {
    if (definition.type === "route" && definition.route.request?.body && !definition.route.responses[415]) {
      definition.route.responses[415] = {
        description: "The body was not sent as application/json; `field` is header.content-type",
        content: { "application/problem+json": { schema: Problem } },
      };
    }
  }
}

export function openApiDocument(app: ReturnType<typeof createApp>) {
  return app.getOpenAPI31Document(OPENAPI_CONFIG);
}
