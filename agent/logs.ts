/**
 * Ships new bytes of each job's stdout and stderr, bounded per job and per cycle, and the small
 * result.json once the job has ended. Offsets only advance after the gateway accepted the bytes.
 */
import { expandArrayIndexes } from "./array-indexes.ts";
import type { AgentContext } from "./context.ts";
import { JOB_FILES, decodeNulList } from "./render/data-files.ts";
import { serviceNamesOf } from "./render/services.ts";
import type { Report } from "./gateway-api.ts";
import type { TrackedJob } from "./state.ts";

const STREAMS = ["stdout", "stderr"] as const;
const MAX_RESULT_BYTES = 65_536;

export type LogShipment = {
  chunks: Report["logs"];
  offsets: TrackedJob["logOffsets"];
  /** Array jobs: how far each task's file was shipped, keyed `<stream>.<task>`. */
  taskOffsets: Record<string, number>;
  drained: boolean;
};

/**
 * Reads what is new in one job's logs within `budget` bytes: its stdout and stderr, or for an array
 * job each task's stdout.<task> and stderr.<task>. Every chunk names its attempt (and task), so the
 * gateway files it under that attempt even after the job has moved on to the next one.
 */
export async function collectLogs(ctx: AgentContext, job: TrackedJob, budget: number): Promise<LogShipment> {
  const chunks: Report["logs"] = [];
  const offsets = { ...job.logOffsets };
  const taskOffsets = { ...job.taskLogOffsets };
  let drained = true;
  let left = Math.min(ctx.config.SLURMGATE_LOG_BYTES_PER_JOB, budget);
  const files: { stream: (typeof STREAMS)[number]; task?: number; service?: string }[] = job.isArray
    ? expandArrayIndexes(job.arrayIndexes ?? "").flatMap((task) => STREAMS.map((stream) => ({ stream, task })))
    : STREAMS.map((stream) => ({ stream }));
  if (!job.isArray) {
    // Each service's service-<name>.out/.err is a stream of its own (its offsets kept with the tasks').
    const listed = await ctx.executor.readFile(`${job.jobDir}/${JOB_FILES.services}`, { length: 1_048_576 });
    for (const service of listed ? serviceNamesOf(decodeNulList(listed)) : []) {
      files.push(...STREAMS.map((stream) => ({ stream, service })));
    }
  }
  for (const { stream, task, service } of files) {
    if (left <= 0) {
      drained = false;
      break;
    }
    const key = service ? `service:${service}:${stream}` : `${stream}.${task}`;
    const path = service
      ? `${job.jobDir}/service-${service}.${stream === "stdout" ? "out" : "err"}`
      : `${job.jobDir}/${task === undefined ? stream : key}`;
    const plain = task === undefined && service === undefined;
    const from = plain ? offsets[stream] : (taskOffsets[key] ?? 0);
    const bytes = await ctx.executor.readFile(path, {
      offset: from,
      length: left + 1,
    });
    if (!bytes || bytes.length === 0) {
      continue;
    }
    const send = bytes.subarray(0, left);
    if (bytes.length > left) {
      drained = false;
    }
    chunks.push({
      stream,
      offset: from,
      data: Buffer.from(send).toString("base64"),
      attempt: job.attempt,
      ...(task === undefined ? {} : { task }),
      ...(service === undefined ? {} : { service }),
    });
    if (plain) {
      offsets[stream] += send.length;
    } else {
      taskOffsets[key] = from + send.length;
    }
    left -= send.length;
  }
  return { chunks, offsets, taskOffsets, drained };
}

/** One result file, parsed; a note instead when it is too big or not JSON; undefined when absent. */
async function readResultFile(ctx: AgentContext, path: string, maxBytes: number): Promise<unknown> {
  const bytes = await ctx.executor.readFile(path, { length: maxBytes + 1 });
  if (!bytes) {
    return undefined;
  }
  if (bytes.length > maxBytes) {
    return { error: `${path} is larger than ${maxBytes} bytes; read it from the job directory` };
  }
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch {
    return { error: `${path} is not valid JSON`, text: bytes.toString("utf8").slice(0, 4_096) };
  }
}

/**
 * The job's result: its result.json, or for an array job `{ tasks: { "<task>": … } }` gathered from
 * each task's result.<task>.json, within the same size budget.
 */
export async function readResult(ctx: AgentContext, job: TrackedJob): Promise<unknown> {
  if (!job.arrayIndexes) {
    return readResultFile(ctx, `${job.jobDir}/result.json`, MAX_RESULT_BYTES);
  }
  const tasks: Record<string, unknown> = {};
  let budget = MAX_RESULT_BYTES;
  for (const task of expandArrayIndexes(job.arrayIndexes)) {
    if (budget <= 0) {
      return { tasks, truncated: true };
    }
    const value = await readResultFile(ctx, `${job.jobDir}/result.${task}.json`, budget);
    if (value !== undefined) {
      tasks[task] = value;
      budget -= JSON.stringify(value).length;
    }
  }
  return Object.keys(tasks).length ? { tasks } : undefined;
}
