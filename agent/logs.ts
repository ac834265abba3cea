/**
 * Ships new bytes of each job's stdout and stderr, bounded per job and per cycle, and the small
 * result.json once the job has ended. Offsets only advance after the gateway accepted the bytes.
 */
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

/** The job's result.json, parsed; a note instead when it is too big or not JSON; undefined when absent. */
export async function readResult(ctx: AgentContext, job: TrackedJob): Promise<unknown> {
  const bytes = await ctx.executor.readFile(`${job.jobDir}/result.json`, { length: MAX_RESULT_BYTES + 1 });
  if (!bytes) {
    return undefined;
  }
  if (bytes.length > MAX_RESULT_BYTES) {
    return { error: `result.json is larger than ${MAX_RESULT_BYTES} bytes; read it from ${job.jobDir}` };
  }
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch {
    return { error: "result.json is not valid JSON", text: bytes.toString("utf8").slice(0, 4_096) };
  }
}
