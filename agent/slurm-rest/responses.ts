/**
 * slurmrestd's answers (OpenAPI v0.0.38, checked against 22.05.8) read into the same values the
 * CLI path produces: a submission's job id or an {@link SbatchCode}, and `squeue -r` rows.
 */
import type { Submitted } from "../slurm-commands.ts";
import { type SbatchCode, type SlurmResult, failed, succeeded } from "../slurm/result.ts";
import { classifySbatchError } from "../slurm/sbatch.ts";
import type { SqueueRow } from "../slurm/squeue.ts";
import { nullable } from "../slurm/fields.ts";
import { toJobState } from "../slurm/states.ts";
import type { RestResponse } from "./client.ts";

/** The `errors` list of any answer, as `error (description)` sentences. */
export function restErrors(body: unknown): string[] {
  const errors = isRecord(body) && Array.isArray(body.errors) ? body.errors : [];
  return errors.filter(isRecord).map((e) => {
    const error = typeof e.error === "string" ? e.error : "";
    const description = typeof e.description === "string" ? e.description : "";
    return [error, description && description !== error ? `(${description})` : ""].filter(Boolean).join(" ");
  });
}

/**
 * A submission's answer. A job id means Slurm queued the job, whatever else the answer says (as
 * with sbatch's stdout); a refusal is classified by the same rules as sbatch's stderr; a 5xx with
 * no error from Slurm is an unknown outcome.
 * @example
 * readSubmitResponse({ status: 500, body: { errors: [{ error: "Invalid partition name specified" }] } })
 * // => { ok: false, code: "slurm_invalid_partition", retryable: false, … }
 */
export function readSubmitResponse(res: RestResponse): SlurmResult<Submitted, SbatchCode> {
  const errors = restErrors(res.body);
  const id = isRecord(res.body) ? res.body.job_id : undefined;
  if (isId(id)) {
    return succeeded({ slurmJobId: String(id), warning: errors.length > 0 ? errors.join("; ") : undefined });
  }
  if (res.status === 401 || res.status === 403 || res.status === 404) {
    // The daemon turned the agent away (credentials, or no v0.0.38 plugin) before asking Slurm:
    // nothing was queued, and the job is not at fault. Give it back and say why.
    const why =
      res.status === 404 ? "does not serve this API (load openapi/v0.0.38)" : "refused the agent's credentials";
    const detail = errors.length > 0 ? `: ${errors.join("; ")}` : "";
    return failed("backpressure", `slurmrestd ${why} (HTTP ${res.status})${detail}`.slice(0, 1_000), true);
  }
  if (errors.length === 0) {
    return failed("transient", `slurmrestd answered HTTP ${res.status} without a job id or an error`, true);
  }
  if (res.status >= 400 && res.status < 500) {
    // The daemon could not read the request: nothing reached slurmctld, and resending will not help.
    return failed("invalid_argument", `slurmrestd refused the request: ${errors.join("; ")}`, false);
  }
  // Same rules as sbatch: "Batch job submission failed: <Slurm's error>" is a refusal by slurmctld.
  // A submit limit comes as Slurm's text only, "Job violates accounting/QOS policy (job submit
  // limit, …)" (error_code 2050), without the QOSMaxSubmitJobPerUserLimit line sbatch prints: it
  // is back-pressure that splits an array, but it cannot say per-user from group, so the never-fits
  // refusal (agent/submit-limit.ts) never applies here: such a job waits.
  const stderr = errors.map((e) => `sbatch: error: Batch job submission failed: ${e}`).join("\n");
  const { code, message } = classifySbatchError(stderr);
  return failed(code, message, code === "backpressure" || code === "transient");
}

/**
 * `GET /slurm/v0.0.38/jobs` as `squeue -r` rows: a pending array's one record becomes one row per
 * task (`123_4`, raw id 123), as squeue prints them. Records that are not objects, or lack a
 * numeric id, are skipped, as malformed squeue lines are.
 */
export function parseRestJobs(body: unknown, user?: string): SqueueRow[] {
  const jobs = isRecord(body) && Array.isArray(body.jobs) ? body.jobs : [];
  const rows: SqueueRow[] = [];
  for (const job of jobs) {
    if (!isRecord(job) || !isId(job.job_id)) {
      continue;
    }
    if (user !== undefined && job.user_name !== user) {
      continue;
    }
    const state = str(job.job_state) ?? "";
    const base = {
      rawJobId: String(job.job_id),
      state,
      jobState: toJobState(state),
      reason: nullable(str(job.state_reason) ?? undefined),
      partition: nullable(str(job.partition) ?? undefined),
      submitTime: isId(job.submit_time) ? new Date(job.submit_time * 1000).toISOString().slice(0, 19) : null,
      comment: str(job.comment) || null,
    };
    const arrayJob = isId(job.array_job_id) ? String(job.array_job_id) : null;
    if (arrayJob && typeof job.array_task_id === "number" && job.array_task_id >= 0) {
      const task = String(job.array_task_id);
      rows.push({ ...base, slurmJobId: `${arrayJob}_${task}`, arrayJobId: arrayJob, arrayTaskId: task });
      continue;
    }
    const pending = arrayJob ? expandTasks(str(job.array_task_string) ?? "") : [];
    if (arrayJob && pending.length > 0) {
      for (const task of pending) {
        rows.push({ ...base, slurmJobId: `${arrayJob}_${task}`, arrayJobId: arrayJob, arrayTaskId: String(task) });
      }
      continue;
    }
    rows.push({ ...base, slurmJobId: String(job.job_id), arrayJobId: null, arrayTaskId: null });
  }
  return rows;
}

/** The most tasks one pending record expands to (Slurm's own MaxArraySize ceiling is 4 000 001). */
const MAX_EXPANDED_TASKS = 4_000_001;

/**
 * The task ids of `array_task_string` (`0-3,7`, `0-9:2`, with a `%N` limit): an unreadable string
 * expands to nothing, never to a guess.
 * @example expandTasks("0-3,7%2") // => [0, 1, 2, 3, 7]
 */
export function expandTasks(spec: string): number[] {
  const tasks: number[] = [];
  const list = spec.replace(/%\d+$/, "");
  for (const part of list.split(",")) {
    const m = /^(\d{1,7})(?:-(\d{1,7})(?::(\d{1,7}))?)?$/.exec(part.trim());
    if (!m) {
      return [];
    }
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    const step = m[3] === undefined ? 1 : Number(m[3]);
    if (to < from || step < 1 || tasks.length + (to - from) / step >= MAX_EXPANDED_TASKS) {
      return [];
    }
    for (let i = from; i <= to; i += step) {
      tasks.push(i);
    }
  }
  return tasks;
}

/**
 * A cancel's answer: `gone` when Slurm no longer knows the id (cancelling is idempotent), an
 * error sentence otherwise, null for success.
 */
export function readCancelResponse(res: RestResponse): "gone" | string | null {
  const errors = restErrors(res.body);
  if (errors.some((e) => /Invalid job id specified|Unable to find JobId/i.test(e))) {
    return "gone";
  }
  if (res.status < 300 && errors.every((e) => /already completing or completed|Job\/step already/i.test(e))) {
    return null;
  }
  return errors.join("; ") || `slurmrestd answered HTTP ${res.status}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isId(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}

function str(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

/**
 * The latest moment, on slurmctld's clock, that the listing shows an event from: the newest
 * submission or scheduling pass (never start or end times, which may lie in the future). Slurm
 * changed nothing since the listing if it changed nothing since this moment, so it is a safe
 * `update_time` for the next request, whatever the agent's own clock says. 0 when unknown.
 */
export function listingTime(body: unknown): number {
  const jobs = isRecord(body) && Array.isArray(body.jobs) ? body.jobs : [];
  let latest = 0;
  for (const job of jobs) {
    if (isRecord(job)) {
      for (const t of [job.submit_time, job.last_sched_evaluation]) {
        if (isId(t) && t > latest) {
          latest = t;
        }
      }
    }
  }
  return latest;
}
