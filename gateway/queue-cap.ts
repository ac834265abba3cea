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

/**
 * Throws a 429 when `count` more live jobs (a sweep's elements; 1 for a job) would take `owner` over
 * the cap; counts them otherwise.
 */
export async function admitToQueue(deps: Deps, owner: string, count = 1): Promise<void> {
  const cap = deps.config.SLURMGATE_MAX_QUEUED_PER_USER;
  const cache = deps.db.caches.queue;
  const now = deps.now();
  let entry = cache.get(owner);
  if (!entry || now - entry.at > REFRESH_MS) {
    entry = { count: await countLiveJobs(deps.db, owner, cap), at: now };
    cache.set(owner, entry);
  }
  if (count > cap) {
    // Waiting would never help: say so instead of asking to retry.
    throw new ApiProblem(
      "validation_failed",
      `${count} jobs at once is more than the ${cap} live jobs one user may have`,
      { field: "body" },
    );
  }
  if (entry.count + count > cap) {
    const detail =
      count === 1
        ? `you have ${cap} live jobs, the most one user may have; wait for some to end`
        : `you have ${entry.count} live jobs and these ${count} would take you over ${cap}, the most one user may have; wait for some to end`;
    throw new ApiProblem("rate_limited", detail, { field: "body", headers: { "retry-after": "30" } });
  }
  entry.count += count;
}
