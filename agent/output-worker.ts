/**
 * Output uploads beside the tracking cycle: a 200 MiB output over a slow link takes minutes, and
 * while it ran inside the cycle no other job's state was reported. The cycle hands a terminal job
 * with outputs over and goes on; on later cycles it asks again and reports the end once the
 * uploads have settled. A job's uploads are started once at a time; nothing here is on disk: an
 * agent restarted midway starts them again (uploads are idempotent by job, path and sha256).
 */
import type { AgentContext } from "./context.ts";
import { type OutputsOutcome, bringBackOutputs } from "./outputs.ts";
import type { TrackedJob } from "./state.ts";

/**
 * Jobs whose outputs are uploaded at once per agent: one link's worth, with a small job's outputs
 * not stuck behind a large one. Others wait their turn (their end is held back meanwhile).
 */
export const OUTPUT_UPLOADS_AT_ONCE = 2;

type Upload = { attempt: string; promise: Promise<void>; outcome?: OutputsOutcome };

const uploadsOf = new WeakMap<AgentContext, Map<string, Upload>>();

function uploads(ctx: AgentContext): Map<string, Upload> {
  let map = uploadsOf.get(ctx);
  if (!map) {
    map = new Map();
    uploadsOf.set(ctx, map);
  }
  return map;
}

const attemptOf = (job: TrackedJob) => `${job.epoch}.${job.attempt}`;

export type OutputsProgress = { settled: OutputsOutcome } | { settled?: undefined; waiting: "uploading" | "queued" };

/**
 * Where `job`'s outputs stand: settled (once: the answer is handed out and forgotten), uploading,
 * or queued behind {@link OUTPUT_UPLOADS_AT_ONCE} others. Starts the upload when there is room.
 */
export function outputsProgress(ctx: AgentContext, job: TrackedJob): OutputsProgress {
  const map = uploads(ctx);
  const known = map.get(job.jobId);
  if (known && known.attempt === attemptOf(job)) {
    if (!known.outcome) {
      return { waiting: "uploading" };
    }
    map.delete(job.jobId);
    return { settled: known.outcome };
  }
  if (known?.outcome) {
    map.delete(job.jobId); // an earlier lease's: what it found is not this attempt's
  }
  if (uploadsRunning(ctx) >= OUTPUT_UPLOADS_AT_ONCE) {
    return { waiting: "queued" };
  }
  const upload: Upload = { attempt: attemptOf(job), promise: Promise.resolve() };
  upload.promise = bringBackOutputs(ctx, job).then(
    (outcome) => {
      upload.outcome = outcome;
    },
    (err: unknown) => {
      upload.outcome = { done: false, message: (err as Error).message };
    },
  );
  map.set(job.jobId, upload);
  return { waiting: "uploading" };
}

export function uploadsRunning(ctx: AgentContext): number {
  return [...uploads(ctx).values()].filter((u) => !u.outcome).length;
}

/** Forgets uploads of jobs this agent no longer holds (a lost lease); a running one finishes unheard. */
export function forgetOutputs(ctx: AgentContext, held: Set<string>): void {
  for (const [jobId, upload] of uploads(ctx)) {
    if (!held.has(jobId) && upload.outcome) {
      uploads(ctx).delete(jobId);
    }
  }
}

/** Resolves when every upload started so far has settled (a one-shot agent waits for them). */
export async function outputsSettled(ctx: AgentContext): Promise<void> {
  await Promise.all([...uploads(ctx).values()].map((u) => u.promise));
}
