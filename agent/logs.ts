/**
 * Ships new bytes of each job's stdout and stderr, bounded per job and per cycle, and the small
 * result.json once the job has ended. Offsets only advance after the gateway accepted the bytes.
 */
import { expandArrayIndexes } from "./array-indexes.ts";
import type { AgentContext } from "./context.ts";
import type { Report } from "./gateway-api.ts";
import type { TrackedJob } from "./state.ts";

const STREAMS = ["stdout", "stderr"] as const;
const MAX_RESULT_BYTES = 65_536;

export type LogShipment = { chunks: Report["logs"]; offsets: TrackedJob["logOffsets"]; drained: boolean };

/** Reads what is new in one job's logs within `budget` bytes. */
export async function collectLogs(ctx: AgentContext, job: TrackedJob, budget: number): Promise<LogShipment> {
  const chunks: Report["logs"] = [];
  const offsets = { ...job.logOffsets };
  let drained = true;
  if (job.isArray) {
    return { chunks, offsets, drained };
  }
  for (const stream of STREAMS) {
    const limit = Math.min(ctx.config.SLURMGATE_LOG_BYTES_PER_JOB, budget);
    if (limit <= 0) {
      drained = false;
      break;
    }
    const bytes = await ctx.executor.readFile(`${job.jobDir}/${stream}`, {
      offset: offsets[stream],
      length: limit + 1,
    });
    if (!bytes || bytes.length === 0) {
      continue;
    }
    const send = bytes.subarray(0, limit);
    if (bytes.length > limit) {
      drained = false;
    }
    chunks.push({ stream, offset: offsets[stream], data: Buffer.from(send).toString("base64") });
    offsets[stream] += send.length;
    budget -= send.length;
  }
  return { chunks, offsets, drained };
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
