/**
 * User job handlers. Thin: validation and the role are in the route contracts (jobs.routes.ts),
 * the use cases in services/.
 */
import type { RouteHandler } from "@hono/zod-openapi";
import type { Deps } from "../deps.ts";
import { longPoll } from "../notifier.ts";
import { streamJobEvents } from "../services/event-streams.ts";
import { wantsEventStream } from "../sse.ts";
import { readJobLog } from "../services/job-logs.ts";
import { readVisibleScript } from "../services/job-script.ts";
import { cancelJob, listVisibleJobs, preflightJob, submitJob, visibleJob } from "../services/jobs.ts";
import { listEvents } from "../store/jobs.ts";
import { readJobTasks } from "../store/tasks.ts";
import { createRouter } from "./common.ts";
import * as routes from "./jobs.routes.ts";

export function jobsRouter(deps: Deps) {
  const submit: RouteHandler<typeof routes.submitJob> = async (c) => {
    const { job, created } = await submitJob(deps, c.get("principal"), {
      spec: c.req.valid("json"),
      idempotencyKey: c.req.valid("header")["idempotency-key"],
    });
    if (!created) {
      return c.json(job, 200);
    }
    c.header("location", `/v1/jobs/${job.id}`);
    return c.json(job, 201);
  };

  const preflight: RouteHandler<typeof routes.preflightJob> = async (c) =>
    c.json(
      await preflightJob(deps, c.get("principal"), c.req.valid("json"), {
        estimate: c.req.valid("query").estimate === "true",
        signal: c.req.raw.signal,
      }),
      200,
    );

  const list: RouteHandler<typeof routes.listJobs> = async (c) =>
    c.json(await listVisibleJobs(deps, c.get("principal"), c.req.valid("query")), 200);

  const get: RouteHandler<typeof routes.getJob> = async (c) => {
    const { id } = c.req.valid("param");
    const job = await visibleJob(deps, c.get("principal"), id);
    const etag = `W/"${job.id}.${job.lastSeq}"`;
    c.header("etag", etag);
    c.header("cache-control", "private, no-cache");
    if (c.req.header("if-none-match") === etag) {
      return c.body(null, 304);
    }
    return c.json({ ...job, events: await listEvents(deps.db, id) }, 200);
  };

  const events: RouteHandler<typeof routes.jobEvents> = async (c) => {
    const { id } = c.req.valid("param");
    const { after, wait } = c.req.valid("query");
    const principal = c.get("principal");
    const seen = await visibleJob(deps, principal, id);
    if (wantsEventStream(c)) {
      const lastEventId = c.req.valid("header")["last-event-id"];
      const from = lastEventId === undefined ? after : Number(lastEventId);
      return streamJobEvents(c, deps, principal, seen, from) as never;
    }
    const check = async () => {
      const found = await listEvents(deps.db, id, after);
      return found.length ? found : undefined;
    };
    const options = { recheckMs: deps.recheckMs, now: deps.now, signal: c.req.raw.signal };
    const found = (await longPoll(deps.notifier, `job:${id}`, wait, check, options)) ?? [];
    const job = await visibleJob(deps, principal, id);
    return c.json({ job, events: found, lastSeq: found.at(-1)?.seq ?? Math.max(after, 0) }, 200);
  };

  const tasks: RouteHandler<typeof routes.jobTasks> = async (c) => {
    const job = await visibleJob(deps, c.get("principal"), c.req.valid("param").id);
    return c.json(await readJobTasks(deps.db, job), 200);
  };

  const cancel: RouteHandler<typeof routes.cancelJob> = async (c) =>
    c.json(await cancelJob(deps, c.get("principal"), c.req.valid("param").id), 202);

  const logs: RouteHandler<typeof routes.jobLogs> = async (c) => {
    const { id } = c.req.valid("param");
    return c.json(await readJobLog(deps, c.get("principal"), id, c.req.valid("query"), c.req.raw.signal), 200);
  };

  const script: RouteHandler<typeof routes.jobScript> = async (c) =>
    c.body(await readVisibleScript(deps, c.get("principal"), c.req.valid("param").id), 200, {
      "content-type": "text/plain; charset=utf-8",
      "x-content-type-options": "nosniff",
      "cache-control": "private, no-cache",
    }) as never;

  return createRouter()
    .openapi(routes.submitJob, submit)
    .openapi(routes.preflightJob, preflight)
    .openapi(routes.listJobs, list)
    .openapi(routes.getJob, get)
    .openapi(routes.jobEvents, events)
    .openapi(routes.jobTasks, tasks)
    .openapi(routes.cancelJob, cancel)
    .openapi(routes.jobLogs, logs)
    .openapi(routes.jobScript, script);
}
