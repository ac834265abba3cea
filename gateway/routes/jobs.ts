/**
 * User job handlers. Thin: validation is in the route contracts, rules in routing.ts and store/.
 */
import type { Job, JobSpec } from "../../schemas/index.ts";
import { isTerminal } from "../../schemas/index.ts";
import { scopeSpec, scopeView } from "../auth/scope.ts";
import type { Deps, Principal } from "../deps.ts";
import { newId } from "../ids.ts";
import { requireRole } from "../middleware/auth.ts";
import { longPoll } from "../notifier.ts";
import { ApiProblem } from "../problem.ts";
import { admitToQueue } from "../queue-cap.ts";
import { routeJob } from "../routing.ts";
import { routingView } from "../routing-view.ts";
import { iso } from "../store/job-row.ts";
import {
  cancelJob as cancelStored,
  findByIdempotencyKey,
  getJob,
  insertJob,
  listEvents,
  listJobs,
} from "../store/jobs.ts";
import { isArrayTask, readLog } from "../store/logs.ts";
import { readJobTasks } from "../store/tasks.ts";
import { hashJson } from "../tokens.ts";
import { createRouter } from "./common.ts";
import * as routes from "./jobs.routes.ts";

/** A log the job cannot have is a 422 naming the parameter, not an empty log that never completes. */
function checkLogSource(job: Job, attempt: number, task: number | undefined): void {
  if (attempt > job.attempt) {
    throw new ApiProblem("validation_failed", `attempt ${attempt}: the job has had ${job.attempt} attempt(s) so far`, {
      field: "query.attempt",
    });
  }
  if (task === undefined) {
    return;
  }
  const indexes = job.spec?.array?.indexes;
  if (!indexes) {
    throw new ApiProblem("validation_failed", `task ${task}: the job is not an array job`, { field: "query.task" });
  }
  if (!isArrayTask(indexes, task)) {
    throw new ApiProblem("validation_failed", `task ${task} is not in the job's array (${indexes})`, {
      field: "query.task",
    });
  }
}

/**
 * True once no more bytes of `attempt` can arrive: the job is terminal, or a later attempt has
 * reached Slurm (the agent ships what is left of an attempt before it submits the next one).
 */
function attemptEnded(job: Job, attempt: number): boolean {
  if (isTerminal(job.state)) {
    return true;
  }
  return attempt < job.attempt && (attempt + 1 < job.attempt || !["queued", "leased"].includes(job.state));
}

function userOf(p: Principal): string {
  if (p.kind === "agent") {
    throw new ApiProblem("forbidden", "agents cannot use the user API");
  }
  return p.user;
}

/** Owners see their jobs; admins see all. Foreign and missing jobs look the same (404). */
async function visibleJob(deps: Deps, principal: Principal, id: string): Promise<Job> {
  const job = /^job_[0-9a-z]{20,40}$/.test(id) ? await getJob(deps.db, id) : undefined;
  if (!job || (principal.kind !== "admin" && job.owner !== userOf(principal))) {
    throw new ApiProblem("not_found", `job ${id} not found`, { field: "path.id" });
  }
  return job;
}

/**
 * Bytes up to the last complete UTF-8 character, so a read that ends inside a multi-byte character
 * returns it whole on the next read instead of two replacement characters. Falls back to every
 * byte when nothing would be left (binary output, or a stream that really ends mid-character).
 */
export function utf8SafeLength(bytes: Uint8Array): number {
  let lead = bytes.length - 1;
  while (lead >= 0 && bytes.length - lead <= 4 && ((bytes[lead] ?? 0) & 0xc0) === 0x80) {
    lead--;
  }
  if (lead < 0 || bytes.length - lead > 4) {
    return bytes.length;
  }
  const first = bytes[lead] ?? 0;
  const width = first >= 0xf8 ? 1 : first >= 0xf0 ? 4 : first >= 0xe0 ? 3 : first >= 0xc0 ? 2 : 1;
  const safe = bytes.length - lead >= width ? bytes.length : lead;
  return safe > 0 ? safe : bytes.length;
}

/** A job runs on the cluster of the jobs it depends on: Slurm dependencies do not cross clusters. */
async function pinToDependencies(deps: Deps, owner: string, spec: JobSpec): Promise<JobSpec> {
  let cluster = spec.cluster;
  for (const [index, dep] of spec.dependsOn.entries()) {
    const field = `body.dependsOn.${index}.job`;
    const other = await getJob(deps.db, dep.job);
    if (!other || other.owner !== owner) {
      throw new ApiProblem("validation_failed", `${field}: job ${dep.job} not found`, { field });
    }
    if (cluster && cluster !== other.cluster) {
      throw new ApiProblem("validation_failed", `${field}: job ${dep.job} runs on ${other.cluster}, not ${cluster}`, {
        field,
      });
    }
    cluster = other.cluster;
  }
  return cluster === spec.cluster ? spec : { ...spec, cluster };
}

export function jobsRouter(deps: Deps) {
  const app = createRouter();
  app.use("/v1/jobs", requireRole("user"));
  app.use("/v1/jobs/*", requireRole("user"));

  app.openapi(routes.submitJob, async (c) => {
    const principal = c.get("principal");
    const owner = userOf(principal);
    const spec = scopeSpec(principal, c.req.valid("json"));
    const key = c.req.valid("header")["idempotency-key"] ?? null;
    const specHash = key ? await hashJson(spec) : null;
    if (key) {
      const earlier = await findByIdempotencyKey(deps.db, owner, key);
      if (earlier) {
        if (earlier.specHash !== specHash) {
          throw new ApiProblem("idempotency_conflict", "this Idempotency-Key was used with a different body", {
            field: "header.idempotency-key",
          });
        }
        return c.json(earlier.job, 200);
      }
    }
    await admitToQueue(deps, owner);
    const now = deps.now();
    const view = scopeView(principal, await routingView(deps, owner));
    const route = routeJob(await pinToDependencies(deps, owner, spec), view.grants, view.clusters, now);
    const id = newId("job", now);
    try {
      await insertJob(deps.db, {
        id,
        owner,
        spec: route.spec,
        cluster: route.cluster,
        partition: route.partition,
        reason: route.reason,
        idempotencyKey: key,
        specHash,
        now,
      });
    } catch (err) {
      // Two submissions with one key raced; the loser answers like a replay.
      const winner = key ? await findByIdempotencyKey(deps.db, owner, key) : undefined;
      if (!winner) {
        throw err;
      }
      if (winner.specHash !== specHash) {
        throw new ApiProblem("idempotency_conflict", "this Idempotency-Key was used with a different body", {
          field: "header.idempotency-key",
        });
      }
      return c.json(winner.job, 200);
    }
    deps.notifier.notify(`cluster:${route.cluster}`);
    const job: Job = {
      id,
      owner,
      name: route.spec.name,
      state: "queued",
      reason: route.reason,
      code: null,
      cluster: route.cluster,
      partition: route.partition,
      attempt: 1,
      slurmJobId: null,
      exitCode: null,
      signal: null,
      cancelRequested: false,
      labels: route.spec.labels,
      spec: route.spec,
      result: null,
      lastSeq: 1,
      createdAt: iso(now),
      updatedAt: iso(now),
    };
    c.header("location", `/v1/jobs/${id}`);
    return c.json(job, 201);
  });

  app.openapi(routes.listJobs, async (c) => {
    const principal = c.get("principal");
    const q = c.req.valid("query");
    const [key, ...rest] = (q.label ?? "").split("=");
    const page = await listJobs(deps.db, {
      owner: principal.kind === "admin" ? undefined : userOf(principal),
      state: q.state,
      cluster: q.cluster,
      label: q.label && key ? { key, value: rest.join("=") } : undefined,
      cursor: q.cursor,
      limit: q.limit,
    });
    return c.json(page, 200);
  });

  app.openapi(routes.getJob, async (c) => {
    const { id } = c.req.valid("param");
    const job = await visibleJob(deps, c.get("principal"), id);
    const etag = `W/"${job.id}.${job.lastSeq}"`;
    c.header("etag", etag);
    c.header("cache-control", "private, no-cache");
    if (c.req.header("if-none-match") === etag) {
      return c.body(null, 304);
    }
    return c.json({ ...job, events: await listEvents(deps.db, id) }, 200);
  });

  app.openapi(routes.jobEvents, async (c) => {
    const { id } = c.req.valid("param");
    const { after, wait } = c.req.valid("query");
    const principal = c.get("principal");
    await visibleJob(deps, principal, id);
    const found = await longPoll(
      deps.notifier,
      `job:${id}`,
      wait,
      async () => {
        const events = await listEvents(deps.db, id, after);
        return events.length ? events : undefined;
      },
      { recheckMs: deps.recheckMs, now: deps.now, signal: c.req.raw.signal },
    );
    const job = await visibleJob(deps, principal, id);
    const events = found ?? [];
    return c.json({ job, events, lastSeq: events.at(-1)?.seq ?? Math.max(after, 0) }, 200);
  });

  app.openapi(routes.jobTasks, async (c) => {
    const { id } = c.req.valid("param");
    const job = await visibleJob(deps, c.get("principal"), id);
    return c.json(await readJobTasks(deps.db, job), 200);
  });

  app.openapi(routes.cancelJob, async (c) => {
    const { id } = c.req.valid("param");
    const principal = c.get("principal");
    await visibleJob(deps, principal, id);
    const actor = principal.kind === "agent" ? "agent" : `user:${principal.user}`;
    await cancelStored(deps.db, id, actor, deps.now());
    deps.notifier.notify(`job:${id}`);
    const job = await visibleJob(deps, principal, id);
    if (!isTerminal(job.state)) {
      deps.notifier.notify(`cluster:${job.cluster}`);
    }
    return c.json(job, 202);
  });

  app.openapi(routes.jobLogs, async (c) => {
    const { id } = c.req.valid("param");
    const { stream, offset, limit, wait, task } = c.req.valid("query");
    const principal = c.get("principal");
    const asked = await visibleJob(deps, principal, id);
    const attempt = c.req.valid("query").attempt ?? asked.attempt;
    checkLogSource(asked, attempt, task);
    const source = { stream, attempt, task };
    const read = async () => {
      const chunk = await readLog(deps.db, id, source, offset, limit);
      if (chunk.bytes.length > 0) {
        return chunk;
      }
      const job = await getJob(deps.db, id);
      return job && attemptEnded(job, attempt) ? chunk : undefined;
    };
    const chunk =
      (await longPoll(deps.notifier, `job:${id}`, wait, read, {
        recheckMs: deps.recheckMs,
        now: deps.now,
        signal: c.req.raw.signal,
      })) ?? (await readLog(deps.db, id, source, offset, limit));
    const job = (await getJob(deps.db, id)) ?? asked;
    const bytes = chunk.bytes.subarray(0, utf8SafeLength(chunk.bytes));
    const nextOffset = offset + bytes.length;
    return c.json(
      {
        stream,
        attempt,
        attempts: job.attempt,
        task: task ?? null,
        offset,
        data: new TextDecoder().decode(bytes),
        nextOffset,
        complete: attemptEnded(job, attempt) && nextOffset >= chunk.end,
      },
      200,
    );
  });

  return app;
}
