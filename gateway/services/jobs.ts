/**
 * The user's use cases on jobs: submit, see, list, cancel. Handlers (routes/jobs.ts) parse and
 * shape the answer; the rules are here, routing.ts and store/.
 */
import type { Job, JobSpec, Preflight } from "../../schemas/index.ts";
import { isTerminal } from "../../schemas/index.ts";
import { scopeSpec, scopeView } from "../auth/scope.ts";
import type { Deps, Principal } from "../deps.ts";
import { newId } from "../ids.ts";
import { notifyJob } from "../notifier.ts";
import { checkInputsOwned } from "../files/uploads.ts";
import { ApiProblem, listedProblem } from "../problem.ts";
import { admitToQueue } from "../queue-cap.ts";
import { type Route, routeJob } from "../routing.ts";
import { explainRouting } from "../routing-explain.ts";
import { withEstimates } from "./estimates.ts";
import { routingView } from "../routing-view.ts";
import {
  cancelJob as cancelStored,
  findByIdempotencyKey,
  getJob,
  insertJob,
  type JobFilter,
  listJobs,
} from "../store/jobs.ts";
import { hashJson } from "../tokens.ts";
import { groupKey, sharedPart, withOwnFields } from "./sweep-group.ts";

export function userOf(p: Principal): string {
  if (p.kind === "agent") {
    throw new ApiProblem("forbidden", "agents cannot use the user API");
  }
  return p.user;
}

/** Owners see their jobs; admins see all. Foreign and missing jobs look the same (404). */
export async function visibleJob(deps: Deps, principal: Principal, id: string): Promise<Job> {
  const job = /^job_[0-9a-z]{20,40}$/.test(id) ? await getJob(deps.db, id) : undefined;
  if (!job || (principal.kind !== "admin" && job.owner !== userOf(principal))) {
    throw new ApiProblem("not_found", `job ${id} not found`, { field: "path.id" });
  }
  return job;
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

type Replay = { key: string; specHash: string };

/**
 * The earlier job of this Idempotency-Key, or undefined when there is none. The one place a key is
 * checked: before routing (a replay answers even when the queue is full) and after an insert lost
 * a race to the same key.
 */
async function replayOf(deps: Deps, owner: string, replay: Replay | undefined): Promise<Job | undefined> {
  if (!replay) {
    return undefined;
  }
  const earlier = await findByIdempotencyKey(deps.db, owner, replay.key);
  if (earlier && earlier.specHash !== replay.specHash) {
    throw new ApiProblem("idempotency_conflict", "this Idempotency-Key was used with a different body", {
      field: "header.idempotency-key",
    });
  }
  return earlier?.job;
}

/**
 * A spec to admit, and the path its refusals are named under (`body`; `body.specs.3` in a sweep).
 * `shared`: its sharedPart when already known (every element made from one base has the base's).
 */
export type Candidate = { spec: JobSpec; at: string; shared?: string };

/** A spec that routing accepted: where it goes, and (for sweep elements) its grouping key. */
export type Admitted = {
  spec: JobSpec;
  cluster: string;
  partition: string | null;
  reason: string | null;
  group: string | null;
};

type Refusal = { problem: ApiProblem; at: string };

/** `body.resources.time` said of the element at `body.specs.3` → `body.specs.3.resources.time`. */
function reroot(field: string | undefined, at: string): string {
  if (field === undefined || field === "body") {
    return at;
  }
  if (field.startsWith("body.")) {
    return at + field.slice(4);
  }
  return field.startsWith("header.") ? field : `${at}.${field}`;
}

/** Every refusal as one problem, each field under its element's path; the first one's code decides the status. */
function refusalsProblem(refusals: Refusal[]): ApiProblem {
  const [first] = refusals;
  if (refusals.length === 1 && first?.at === "body") {
    return first.problem;
  }
  const errors = refusals.flatMap(({ problem, at }) =>
    (problem.errors ?? [{ field: problem.field ?? "body", message: problem.message }]).map((e) => ({
      field: reroot(e.field, at),
      message: e.message,
    })),
  );
  return listedProblem(first?.problem.code ?? "validation_failed", errors);
}

/**
 * Routes each spec exactly as a single submission is routed (scope, dependencies, grants,
 * limits, the agent's policy) and refuses all of them with every fault at once, each named under
 * its element's path. Specs equal but for the per-element fields are routed once: routing never
 * reads those fields, and a 10,000-element grid is then one routing decision, not 10,000.
 */
export async function admitSpecs(
  deps: Deps,
  principal: Principal,
  candidates: Candidate[],
  options: { grouped: boolean } = { grouped: false },
): Promise<Admitted[]> {
  const owner = userOf(principal);
  const now = deps.now();
  const view = scopeView(principal, await routingView(deps, owner));
  const routes = new Map<string, { route: Route; group: string | null } | ApiProblem>();
  const refusals = new Map<string, Refusal>();
  const admitted: Admitted[] = [];
  for (const { spec, at, shared } of candidates) {
    try {
      // A scope changes only labels (a per-element field) or refuses: the shared part stays.
      const scoped = scopeSpec(principal, spec);
      await checkInputsOwned(deps, owner, scoped.inputs, "body");
      // One spec (POST /v1/jobs) has nothing to share a route with: no key to compute.
      const key = candidates.length === 1 ? "" : (shared ?? sharedPart(scoped));
      let routed = routes.get(key);
      if (routed === undefined) {
        try {
          const route = routeJob(await pinToDependencies(deps, owner, scoped), view.grants, view.clusters, now);
          const group = options.grouped
            ? await groupKey(route.spec, { owner, cluster: route.cluster, partition: route.partition })
            : null;
          routed = { route, group };
        } catch (err) {
          if (!(err instanceof ApiProblem)) {
            throw err;
          }
          routed = err;
        }
        routes.set(key, routed);
      }
      if (routed instanceof ApiProblem) {
        throw routed;
      }
      const { route, group } = routed;
      const { cluster, partition, reason } = route;
      admitted.push({ spec: withOwnFields(route.spec, scoped), cluster, partition, reason, group });
    } catch (err) {
      if (!(err instanceof ApiProblem)) {
        throw err;
      }
      // Elements made from one base share their refusals: each is listed once.
      const id = `${at}\n${err.code}\n${err.field}\n${err.message}`;
      refusals.set(id, { problem: err, at });
    }
  }
  if (refusals.size > 0) {
    throw refusalsProblem([...refusals.values()]);
  }
  return admitted;
}

export type Submitted = { job: Job; created: boolean };

/**
 * Routes and queues a job, or answers the earlier job of the same Idempotency-Key. Only a job that
 * routing accepted counts against the owner's queue cap: a refused one takes no slot.
 */
export async function submitJob(
  deps: Deps,
  principal: Principal,
  input: { spec: JobSpec; idempotencyKey: string | undefined },
): Promise<Submitted> {
  const owner = userOf(principal);
  const spec = scopeSpec(principal, input.spec);
  const replay = input.idempotencyKey ? { key: input.idempotencyKey, specHash: await hashJson(spec) } : undefined;
  const earlier = await replayOf(deps, owner, replay);
  if (earlier) {
    return { job: earlier, created: false };
  }
  const now = deps.now();
  const [route] = await admitSpecs(deps, principal, [{ spec, at: "body" }]);
  await admitToQueue(deps, owner);
  let job: Job;
  try {
    job = await insertJob(deps.db, {
      id: newId("job", now),
      owner,
      spec: route!.spec,
      cluster: route!.cluster,
      partition: route!.partition,
      reason: route!.reason,
      idempotencyKey: replay?.key ?? null,
      specHash: replay?.specHash ?? null,
      now,
    });
  } catch (err) {
    // Two submissions with one key raced; the loser answers like a replay.
    const winner = await replayOf(deps, owner, replay);
    if (!winner) {
      throw err;
    }
    return { job: winner, created: false };
  }
  deps.notifier.notify(`cluster:${job.cluster}`);
  notifyJob(deps.notifier, job.id);
  return { job, created: true };
}

/**
 * Where a job would go and why, on every cluster the caller may use; nothing is stored and no
 * queue slot is taken. Refusals a submission would get are reported, not thrown (except a spec
 * the caller's scope or dependencies forbid, which a submission would refuse the same way).
 */
export async function preflightJob(
  deps: Deps,
  principal: Principal,
  spec: JobSpec,
  options: { estimate?: boolean; signal?: AbortSignal } = {},
): Promise<Preflight> {
  const owner = userOf(principal);
  const view = scopeView(principal, await routingView(deps, owner));
  const pinned = await pinToDependencies(deps, owner, scopeSpec(principal, spec));
  const plan = explainRouting(pinned, view.grants, view.clusters, deps.now());
  return options.estimate === false ? plan.preflight : withEstimates(deps, owner, plan, options.signal);
}

/** Admins list everyone's jobs; anyone else their own. */
export function listVisibleJobs(
  deps: Deps,
  principal: Principal,
  query: Omit<JobFilter, "owner" | "label"> & { label?: string },
) {
  const [key, ...rest] = (query.label ?? "").split("=");
  return listJobs(deps.db, {
    ...query,
    owner: principal.kind === "admin" ? undefined : userOf(principal),
    label: query.label && key ? { key, value: rest.join("=") } : undefined,
  });
}

/** Cancels a queued job at once, or asks the agent of a live one; answers the job as it is now. */
export async function cancelJob(deps: Deps, principal: Principal, id: string): Promise<Job> {
  await visibleJob(deps, principal, id);
  const actor = principal.kind === "agent" ? "agent" : `user:${principal.user}`;
  await cancelStored(deps.db, id, actor, deps.now());
  notifyJob(deps.notifier, id);
  const job = await visibleJob(deps, principal, id);
  if (!isTerminal(job.state)) {
    deps.notifier.notify(`cluster:${job.cluster}`);
  }
  return job;
}
