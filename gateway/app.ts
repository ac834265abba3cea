/**
 * createApp(deps): the whole HTTP API, shared by the Node entry, the Workers entry and the tests.
 * No environment or global reads here: everything comes in through deps.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import type { AppEnv, Deps } from "./deps.ts";
import { renderDocsPage } from "./docs-page.ts";
import { authenticate } from "./middleware/auth.ts";
import { ApiProblem, createErrorHandler, notFound } from "./problem.ts";
import { adminRouter } from "./routes/admin.ts";
import { agentRouter } from "./routes/agent.ts";
import { agentTokensRouter } from "./routes/agent-tokens.ts";
import { clustersRouter } from "./routes/clusters.ts";
import { jobsRouter } from "./routes/jobs.ts";

export const API_VERSION = "0.1.0";

const OPENAPI_CONFIG = {
  openapi: "3.1.0",
  info: {
    title: "slurmgate",
    version: API_VERSION,
    description:
      "Submit and watch Slurm jobs from anywhere over HTTPS. Agents on cluster login nodes connect outbound only.",
  },
};

function limit(bytes: number) {
  return bodyLimit({
    maxSize: bytes,
    onError: () => {
      throw new ApiProblem("payload_too_large", `request body is larger than ${bytes} bytes`, { field: "body" });
    },
  });
}

export function createApp(deps: Deps) {
  const app = new OpenAPIHono<AppEnv>();
  app.onError(createErrorHandler(deps.log));
  app.notFound(notFound);
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "sgu_… (user), sga_… (agent, bound to one cluster) or sgk_… (admin) token",
  });

  app.get("/healthz", (c) => c.json({ ok: true, version: API_VERSION }));
  app.doc31("/openapi.json", OPENAPI_CONFIG);
  app.get("/docs", (c) => c.html(renderDocsPage(app.getOpenAPI31Document(OPENAPI_CONFIG) as never)));

  app.use("/v1/agent/*", limit(deps.config.SLURMGATE_AGENT_BODY_LIMIT_BYTES));
  app.use("/v1/jobs/*", limit(deps.config.SLURMGATE_BODY_LIMIT_BYTES));
  app.use("/v1/jobs", limit(deps.config.SLURMGATE_BODY_LIMIT_BYTES));
  app.use("/v1/admin/*", limit(deps.config.SLURMGATE_BODY_LIMIT_BYTES));
  app.use("/v1/*", authenticate(deps));

  app.route("/", jobsRouter(deps));
  app.route("/", clustersRouter(deps));
  app.route("/", agentRouter(deps));
  app.route("/", agentTokensRouter(deps));
  app.route("/", adminRouter(deps));
  return app;
}

export function openApiDocument(app: ReturnType<typeof createApp>) {
  return app.getOpenAPI31Document(OPENAPI_CONFIG);
}
