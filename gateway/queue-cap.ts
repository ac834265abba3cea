/**
 * The per-user cap on live jobs (SLURMGATE_MAX_QUEUED_PER_USER), so one user's runaway loop cannot
 * fill the queue for everyone. The count is read at most once a second per user and counted up
 * locally in between, so a burst of submits costs no extra query each; across processes or Workers
 * isolates a user may overshoot by what they submit within that second.
 */
import type { Deps } from "./deps.ts";
import { ApiProblem } from "./problem.ts";
import { countLiveJobs } from "./store/jobs.ts";

const REFRESH_MS = 1_000;

export type QueueCount = { count: number; at: number };

/** Throws a 429 when `owner` already has the maximum number of live jobs; counts this one otherwise. */
export async function admitToQueue(deps: Deps, owner: string): Promise<void> {
  const cap = deps.config.SLURMGATE_MAX_QUEUED_PER_USER;
  const cache = deps.db.caches.queue;
  const now = deps.now();
  let entry = cache.get(owner);
  if (!entry || now - entry.at > REFRESH_MS) {
    entry = { count: await countLiveJobs(deps.db, owner, cap), at: now };
    cache.set(owner, entry);
  }
  if (entry.count >= cap) {
    throw new ApiProblem(
      "rate_limited",
      `you have ${cap} live jobs, the most one user may have; wait for some to end`,
      {
        field: "body",
        headers: { "retry-after": "30" },
      },
    );
  }
  entry.count++;
}
