/**
 * Reading a job's output: one attempt's stream (or one array task's), long-polled until bytes
 * arrive or no more can, cut at a whole UTF-8 character.
 */
import type { Job } from "../../schemas/index.ts";
import { isTerminal } from "../../schemas/index.ts";
import type { Deps, Principal } from "../deps.ts";
import { longPoll } from "../notifier.ts";
import { ApiProblem } from "../problem.ts";
import { getJob } from "../store/jobs.ts";
import { isArrayTask, type LogStreamName, readLog } from "../store/logs.ts";
import { visibleJob } from "./jobs.ts";

/** A log the job cannot have is a 422 naming the parameter, not an empty log that never completes. */
function checkLogSource(job: Job, attempt: number, task: number | undefined, service?: string): void {
  if (attempt > job.attempt) {
    throw new ApiProblem("validation_failed", `attempt ${attempt}: the job has had ${job.attempt} attempt(s) so far`, {
      field: "query.attempt",
    });
  }
  if (service !== undefined && !job.spec?.services?.some((s) => s.name === service)) {
    throw new ApiProblem("validation_failed", `service ${service}: the job has no such service`, {
      field: "query.service",
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

export type LogQuery = {
  stream: LogStreamName;
  offset: number;
  limit: number;
  wait: number;
  task?: number;
  attempt?: number;
  service?: string;
};

export async function readJobLog(deps: Deps, principal: Principal, id: string, q: LogQuery, signal?: AbortSignal) {
  const asked = await visibleJob(deps, principal, id);
  const attempt = q.attempt ?? asked.attempt;
  checkLogSource(asked, attempt, q.task, q.service);
  const source = { stream: q.stream, attempt, task: q.task, service: q.service };
  const read = async () => {
    const chunk = await readLog(deps.db, id, source, q.offset, q.limit);
    if (chunk.bytes.length > 0) {
      return chunk;
    }
    const job = await getJob(deps.db, id);
    return job && attemptEnded(job, attempt) ? chunk : undefined;
  };
  const chunk =
    (await longPoll(deps.notifier, `job:${id}`, q.wait, read, { recheckMs: deps.recheckMs, now: deps.now, signal })) ??
    (await readLog(deps.db, id, source, q.offset, q.limit));
  const job = (await getJob(deps.db, id)) ?? asked;
  const bytes = chunk.bytes.subarray(0, utf8SafeLength(chunk.bytes));
  const nextOffset = q.offset + bytes.length;
  return {
    stream: q.stream,
    attempt,
    attempts: job.attempt,
    task: q.task ?? null,
    offset: q.offset,
    data: new TextDecoder().decode(bytes),
    nextOffset,
    complete: attemptEnded(job, attempt) && nextOffset >= chunk.end,
  };
}
