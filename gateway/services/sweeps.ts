/**
 * The user's use cases on sweeps: submit, see, list, read results, cancel. A sweep's elements are
 * jobs: they are admitted by the same code as POST /v1/jobs (services/jobs.ts admitSpecs: scope,
 * routing, grants, limits) and count against the same per-user cap; everything per element
 * (logs, result, tasks, events, cancel one, retries) is the jobs API's.
 */
import {
  type Job,
  LIVE_STATES,
  type Sweep,
  type SweepCreated,
  type SweepDetail,
  type SweepElement,
  type SweepRequest,
  type SweepResultLine,
  type SweepState,
} from "../../schemas/index.ts";
import type { Deps, Principal } from "../deps.ts";
import { newId } from "../ids.ts";
import { FEED_TOPIC, notifyJob } from "../notifier.ts";
import { ApiProblem, listedProblem } from "../problem.ts";
import { admitToQueue } from "../queue-cap.ts";
import { iso } from "../store/job-row.ts";
import { insertJobs } from "../store/jobs.ts";
import {
  type StoredSweep,
  cancelSweepElements,
  findSweepByIdempotencyKey,
  getSweep,
  listElements,
  listSweeps,
  sweepCounts,
  sweepInsert,
  sweepJobIds,
} from "../store/sweeps.ts";
import { hashJson } from "../tokens.ts";
import { admitSpecs, userOf } from "./jobs.ts";
import { expandSweep } from "./sweep-expand.ts";

const LIVE: readonly string[] = LIVE_STATES;

/**
 * The sweep's state from its elements' (see SweepState): never `completed` while an element is
 * live, failed, or missing.
 */
export function foldSweepState(counts: Record<string, number>, total: number): SweepState {
  let live = 0;
  let completed = 0;
  let cancelled = 0;
  let other = 0;
  for (const [state, n] of Object.entries(counts)) {
    if (LIVE.includes(state)) {
      live += n;
    } else if (state === "completed") {
      completed += n;
    } else if (state === "cancelled") {
      cancelled += n;
    } else {
      other += n;
    }
  }
  if (live > 0) {
    return "active";
  }
  if (other > 0 || completed + cancelled < total) {
    return "failed";
  }
  return cancelled > 0 ? "cancelled" : "completed";
}

async function sweepOf(deps: Deps, stored: StoredSweep): Promise<Sweep> {
  const { counts, changedAt } = await sweepCounts(deps.db, stored.id);
  const done = Object.entries(counts)
    .filter(([state]) => !LIVE.includes(state))
    .reduce((sum, [, n]) => sum + n, 0);
  return {
    id: stored.id,
    owner: stored.owner,
    name: stored.name,
    state: foldSweepState(counts, stored.total),
    total: stored.total,
    counts,
    done,
    maxParallel: stored.maxParallel,
    createdAt: iso(stored.createdAt),
    updatedAt: iso(Math.max(stored.updatedAt, changedAt ?? 0)),
  };
}

/** Owners see their sweeps; admins see all. Foreign and missing sweeps look the same (404). */
export async function visibleSweep(deps: Deps, principal: Principal, id: string): Promise<StoredSweep> {
  const sweep = /^swp_[0-9a-z]{20,40}$/.test(id) ? await getSweep(deps.db, id) : undefined;
  if (!sweep || (principal.kind !== "admin" && sweep.owner !== userOf(principal))) {
    throw new ApiProblem("not_found", `sweep ${id} not found`, { field: "path.id" });
  }
  return sweep;
}

type Replay = { key: string; specHash: string };

/** The earlier sweep of this Idempotency-Key; 409 when it was made from another body. */
async function replayOf(deps: Deps, owner: string, replay: Replay | undefined): Promise<SweepCreated | undefined> {
  if (!replay) {
    return undefined;
  }
  const earlier = await findSweepByIdempotencyKey(deps.db, owner, replay.key);
  if (!earlier) {
    return undefined;
  }
  if (earlier.specHash !== replay.specHash) {
    throw new ApiProblem("idempotency_conflict", "this Idempotency-Key was used with a different body", {
      field: "header.idempotency-key",
    });
  }
  return { ...(await sweepOf(deps, earlier)), jobIds: await sweepJobIds(deps.db, earlier.id) };
}

export type SweepSubmitted = { sweep: SweepCreated; created: boolean };

/**
 * Expands the request, admits every element like a job submission (all refusals at once, named by
 * element), counts them all against the owner's cap, and stores the sweep and its elements in one
 * transaction. With an Idempotency-Key, the same body answers the earlier sweep.
 */
export async function submitSweep(
  deps: Deps,
  principal: Principal,
  input: { request: SweepRequest; idempotencyKey: string | undefined },
): Promise<SweepSubmitted> {
  const owner = userOf(principal);
  const { request } = input;
  const replay = input.idempotencyKey ? { key: input.idempotencyKey, specHash: await hashJson(request) } : undefined;
  const earlier = await replayOf(deps, owner, replay);
  if (earlier) {
    return { sweep: earlier, created: false };
  }
  const expansion = expandSweep(request);
  if (!expansion.ok) {
    throw listedProblem("validation_failed", expansion.errors);
  }
  const admitted = await admitSpecs(deps, principal, expansion.elements, { grouped: true });
  await admitToQueue(deps, owner, admitted.length);
  const now = deps.now();
  const sweepId = newId("swp", now);
  const stored: StoredSweep = {
    id: sweepId,
    owner,
    name: request.name ?? request.base?.name ?? admitted[0]?.spec.name ?? "sweep",
    maxParallel: request.maxParallel ?? null,
    total: admitted.length,
    specHash: replay?.specHash ?? null,
    createdAt: now,
    updatedAt: now,
  };
  const rows = admitted.map((element, index) => ({
    id: newId("job", now),
    owner,
    spec: element.spec,
    cluster: element.cluster,
    partition: element.partition,
    reason: element.reason,
    idempotencyKey: null,
    specHash: null,
    now,
    sweep: { id: sweepId, index, group: element.group },
  }));
  let jobs: Job[];
  try {
    jobs = await insertJobs(deps.db, rows, [sweepInsert({ ...stored, idempotencyKey: replay?.key ?? null })]);
  } catch (err) {
    // Two requests with one key raced; the loser answers like a replay.
    const winner = await replayOf(deps, owner, replay);
    if (!winner) {
      throw err;
    }
    return { sweep: winner, created: false };
  }
  for (const cluster of new Set(jobs.map((j) => j.cluster))) {
    deps.notifier.notify(`cluster:${cluster}`);
  }
  deps.notifier.notify(FEED_TOPIC);
  const sweep: Sweep = {
    id: sweepId,
    owner,
    name: stored.name,
    state: "active",
    total: jobs.length,
    counts: { queued: jobs.length },
    done: 0,
    maxParallel: stored.maxParallel,
    createdAt: iso(now),
    updatedAt: iso(now),
  };
  return { sweep: { ...sweep, jobIds: jobs.map((j) => j.id) }, created: true };
}

const MAX_CURSOR_INDEX = 10_000_000;

/** A page of the caller's sweeps (an admin's: everyone's), newest first, each with its counts. */
export async function listVisibleSweeps(
  deps: Deps,
  principal: Principal,
  query: { cursor?: string; limit: number },
): Promise<{ items: Sweep[]; nextCursor: string | null }> {
  const owner = principal.kind === "admin" ? undefined : userOf(principal);
  const page = await listSweeps(deps.db, { owner, cursor: query.cursor, limit: query.limit });
  const items: Sweep[] = [];
  for (const stored of page.items) {
    items.push(await sweepOf(deps, stored));
  }
  return { items, nextCursor: page.nextCursor };
}

function toElement(job: Job): SweepElement {
  return {
    index: job.sweep?.index ?? 0,
    jobId: job.id,
    name: job.name,
    state: job.state,
    reason: job.reason,
    code: job.code,
    attempt: job.attempt,
    slurmJobId: job.slurmJobId,
    exitCode: job.exitCode,
    labels: job.labels,
  };
}

/** The sweep with its counts and one page of elements in element order (`cursor`: the last index seen). */
export async function sweepDetail(
  deps: Deps,
  principal: Principal,
  id: string,
  query: { cursor?: string; limit: number },
): Promise<SweepDetail> {
  const stored = await visibleSweep(deps, principal, id);
  const after = query.cursor === undefined ? -1 : Math.min(Number(query.cursor), MAX_CURSOR_INDEX);
  const jobs = await listElements(deps.db, stored.id, after, query.limit + 1);
  const page = jobs.slice(0, query.limit).map(toElement);
  const last = page.at(-1);
  return {
    ...(await sweepOf(deps, stored)),
    elements: page,
    nextCursor: jobs.length > query.limit && last ? String(last.index) : null,
  };
}

const RESULTS_PAGE = 500;

/**
 * Every element's result line in element order, read a page at a time, so a 10,000-element sweep
 * never sits in memory at once. Visibility is checked before the first line.
 */
export async function sweepResults(
  deps: Deps,
  principal: Principal,
  id: string,
): Promise<AsyncGenerator<SweepResultLine>> {
  const stored = await visibleSweep(deps, principal, id);
  return (async function* lines() {
    let after = -1;
    for (;;) {
      const jobs = await listElements(deps.db, stored.id, after, RESULTS_PAGE);
      for (const job of jobs) {
        yield {
          index: job.sweep?.index ?? 0,
          jobId: job.id,
          state: job.state,
          exitCode: job.exitCode,
          code: job.code,
          reason: job.reason,
          result: job.result,
        };
      }
      const last = jobs.at(-1);
      if (jobs.length < RESULTS_PAGE || !last) {
        return;
      }
      after = last.sweep?.index ?? MAX_CURSOR_INDEX;
    }
  })();
}

/** Cancels every live element of the sweep (ended ones stay as they are); answers the sweep as it is now. */
export async function cancelSweep(deps: Deps, principal: Principal, id: string): Promise<Sweep> {
  const stored = await visibleSweep(deps, principal, id);
  const actor = `user:${userOf(principal)}`;
  const now = deps.now();
  const touched = await cancelSweepElements(deps.db, { id: stored.id, actor, now, token: newId("cancel", now) });
  for (const { jobId } of touched) {
    notifyJob(deps.notifier, jobId);
  }
  for (const cluster of new Set(touched.map((t) => t.cluster))) {
    deps.notifier.notify(`cluster:${cluster}`);
  }
  return sweepOf(deps, stored);
}
