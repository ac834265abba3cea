/**
 * Cloudflare Workers entry (wrangler.toml `main`). Same createApp(deps) as Node; only the wiring
 * differs: deps are built from `env` once per isolate, the first admin is ensured once per isolate,
 * and the cron trigger sweeps expired leases, runs a bounded webhook delivery pass and, every
 * RETENTION_EVERY_MS, a bounded file retention pass (Node does all three on timers, which Workers do not keep; docs/deploy-cloudflare.md says what that means for latency).
 * Migrations never run here: `npm run db:migrate -- --url …` applies them before a deploy.
 */
import { createApp } from "./app.ts";
import { ensureAdmin } from "./bootstrap.ts";
import type { Deps } from "./deps.ts";
import { collectFiles, RETENTION_EVERY_MS } from "./files/retention.ts";
import { corsAnswerHeaders } from "./middleware/cors.ts";
import { requestIdFor } from "./middleware/request-id.ts";
import { ApiProblem, problemBody } from "./problem.ts";
import { fetchTransport, runDeliveryPass } from "./services/webhook-delivery.ts";
import { expireLeases } from "./store/leases.ts";
import { createWorkerDeps, hasFileStorage, type WorkerEnv } from "./worker-deps.ts";

/** The part of Workers' ExecutionContext this entry uses. */
type Context = { waitUntil(promise: Promise<unknown>): void };

/** Blobs one cron's retention pass may delete: two subrequests each, inside the cron's budget. */
const RETENTION_BLOBS_PER_CRON = 200;

type Isolate = { deps: Deps; app: ReturnType<typeof createApp>; ready: Promise<void> };

let isolate: Isolate | undefined;

function bootstrap(deps: Deps): Promise<void> {
  const token = deps.config.SLURMGATE_BOOTSTRAP_TOKEN;
  if (!token) {
    return Promise.resolve();
  }
  return ensureAdmin(deps, token).then((admin) => {
    if (admin.created) {
      deps.log({ level: "info", msg: "created user 'admin' with the token from SLURMGATE_BOOTSTRAP_TOKEN" });
    }
  });
}

/** Bindings are fixed for an isolate's life, so deps, app and the bootstrap run once. */
function getIsolate(env: WorkerEnv): Isolate {
  if (!isolate) {
    const deps = createWorkerDeps(env);
    const current: Isolate = { deps, app: createApp(deps), ready: bootstrap(deps) };
    // A failed bootstrap (database unreachable) is retried by the next request, not cached.
    current.ready.catch(() => {
      if (isolate === current) {
        isolate = undefined;
      }
    });
    isolate = current;
  }
  return isolate;
}

/**
 * Configuration or database trouble before the app could run: an RFC 9457 problem, logged. With
 * the configuration read (the database is what failed), a listed origin's page can read it too.
 */
function unavailable(request: Request, err: unknown, corsOrigins: readonly string[]): Response {
  const cause = err instanceof Error && err.cause !== undefined ? String(err.cause) : undefined;
  const requestId = requestIdFor(request.headers.get("x-request-id"));
  console.error(JSON.stringify({ level: "error", msg: "gateway not ready", requestId, error: String(err), cause }));
  const problem = new ApiProblem("unavailable", "the gateway is misconfigured or cannot reach its database");
  return Response.json(problemBody(problem, new URL(request.url).pathname, requestId), {
    status: problem.status,
    headers: {
      "content-type": "application/problem+json",
      "retry-after": "5",
      "x-request-id": requestId,
      ...corsAnswerHeaders(corsOrigins, request.headers.get("origin"), null),
    },
  });
}

export default {
  async fetch(request: Request, env: WorkerEnv, ctx: Context): Promise<Response> {
    let current: Isolate | undefined;
    try {
      current = getIsolate(env);
      await current.ready;
    } catch (err) {
      return unavailable(request, err, current?.deps.config.SLURMGATE_CORS_ORIGINS ?? []);
    }
    return current.app.fetch(request, env, ctx as never);
  },

  /** Cron trigger (wrangler.toml `[triggers]`): housekeeping that Node runs on a timer. */
  async scheduled(controller: { scheduledTime?: number } | undefined, env: WorkerEnv, ctx: Context): Promise<void> {
    const { deps } = getIsolate(env);
    const leases = expireLeases(deps.db, deps.now()).then((swept) => {
      deps.log({ level: swept > 0 ? "info" : "debug", msg: "lease sweep", swept });
    });
    const webhooks = runDeliveryPass(deps, fetchTransport).then((delivered) => {
      deps.log({ level: delivered > 0 ? "info" : "debug", msg: "webhook pass", delivered });
    });
    // The cron fires every minute; retention needs only every RETENTION_EVERY_MS.
    const minute = Math.floor((controller?.scheduledTime ?? deps.now()) / 60_000);
    const files =
      hasFileStorage(env) && minute % Math.round(RETENTION_EVERY_MS / 60_000) === 0
        ? collectFiles(deps, RETENTION_BLOBS_PER_CRON).then((removed) => {
            deps.log({
              level: removed.blobs + removed.uploads > 0 ? "info" : "debug",
              msg: "file retention",
              ...removed,
            });
          })
        : Promise.resolve();
    const work = Promise.all([leases, webhooks, files]);
    ctx.waitUntil(work);
    await work;
  },
};
