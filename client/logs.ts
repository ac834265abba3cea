/**
 * `logs`: a job's stdout or stderr as an async iterator of text chunks, read by byte offset. With
 * `follow`, each read is held by the gateway until new bytes arrive or the job ends.
 */
import type { RawClient } from "./raw.ts";
import { type RetryPolicy, resolveRetry, rideOutOutage, sleep } from "./retry.ts";
import type { LogChunk } from "./types.ts";
import { shapes, unwrap } from "./unwrap.ts";

/**
 * Which stream.
 * @example const s: LogStream = "stderr";
 */
export type LogStream = LogChunk["stream"];

/**
 * Options of one log read.
 * @example await client.logChunk(id, { stream: "stderr", offset: 1024, wait: 10 });
 */
export type LogChunkOptions = {
  stream?: LogStream;
  /** Which attempt (1 = the first run). Default: the latest. */
  attempt?: number;
  /** An array job's task: that task's own log. */
  task?: number;
  /** A service of the job (JobSpec.services): its own log. */
  service?: string;
  /** Byte offset to read from. Default 0. */
  offset?: number;
  /** Most bytes to return (gateway default 256 KiB, max 1 MiB). */
  limit?: number;
  /** Seconds to hold the read when there are no new bytes (0–25). Default 0. */
  wait?: number;
  signal?: AbortSignal;
};

/**
 * Options of `logs`.
 * @example for await (const text of client.logs(id, { follow: true, stream: "stderr" })) process.stderr.write(text);
 */
export type LogsOptions = {
  stream?: LogStream;
  /**
   * Which attempt (1 = the first run). Default: the latest; while following, a retry's new attempt is
   * followed too, from its first byte.
   */
  attempt?: number;
  /**
   * Every attempt's log, one after the other, from attempt 1 through the latest (with `follow`, until
   * the job ends): one continuous log of a job that resumed from its checkpoint. Overrides `attempt`.
   */
  allAttempts?: boolean;
  /** An array job's task: that task's own log (`stdout.<task>` on the cluster). */
  task?: number;
  /** A service of the job (JobSpec.services): its `service-<name>.out` (or `.err` with stream stderr). */
  service?: string;
  /** Keep reading until the job ends and every byte has been shipped. Default false: what exists now. */
  follow?: boolean;
  /** Start at this byte offset. Default 0. */
  offset?: number;
  /** Stop the iteration; the iterator rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Longest hold per read while following, seconds (1–25). Default 25. */
  pollSeconds?: number;
};

/**
 * One read of the logs endpoint.
 * @example const chunk = await readLogChunk(raw, id, { offset: 0 });
 */
export function readLogChunk(raw: RawClient, id: string, options: LogChunkOptions = {}): Promise<LogChunk> {
  return unwrap(
    raw.GET("/v1/jobs/{id}/logs", {
      params: {
        path: { id },
        query: {
          stream: options.stream ?? "stdout",
          ...(options.attempt === undefined ? {} : { attempt: options.attempt }),
          ...(options.task === undefined ? {} : { task: options.task }),
          ...(options.service === undefined ? {} : { service: options.service }),
          offset: options.offset ?? 0,
          wait: options.wait ?? 0,
          ...(options.limit === undefined ? {} : { limit: options.limit }),
        },
      },
      signal: options.signal,
    }),
    shapes.logChunk,
  ) as Promise<LogChunk>;
}

/**
 * Yields the log's text chunk by chunk. With `follow`, rides out a gateway outage of up to `policy.outageMs`.
 * @example for await (const text of followLogs(raw, id, { follow: true })) console.log(text);
 */
export async function* followLogs(
  raw: RawClient,
  id: string,
  options: LogsOptions = {},
  policy: RetryPolicy = resolveRetry(),
): AsyncGenerator<string> {
  const { stream = "stdout", follow = false, signal, task, service } = options;
  const pollSeconds = Math.min(25, Math.max(1, Math.floor(options.pollSeconds ?? 25)));
  let offset = options.offset ?? 0;
  // Offsets belong to one attempt's file: pin the attempt the first read served.
  let attempt = options.allAttempts ? 1 : options.attempt;
  const chained = options.allAttempts === true || (follow && options.attempt === undefined);
  for (;;) {
    signal?.throwIfAborted();
    const wait = follow ? pollSeconds : 0;
    const started = Date.now();
    const read = () => readLogChunk(raw, id, { stream, attempt, task, service, offset, wait, signal });
    // Following rides out a gateway restart (bounded by policy.outageMs); a one-off read does not.
    const chunk = follow ? await rideOutOutage(policy, read, signal) : await read();
    attempt = chunk.attempt;
    if (chunk.data.length > 0) {
      yield chunk.data;
    }
    const advanced = chunk.nextOffset > offset;
    offset = Math.max(offset, chunk.nextOffset);
    if ((chunk.complete || (!follow && !advanced)) && chained && chunk.attempt < chunk.attempts) {
      // A later attempt exists: go on with it from its first byte.
      attempt = chunk.attempt + 1;
      offset = 0;
      continue;
    }
    if (chunk.complete || (!follow && !advanced)) {
      return;
    }
    // Never spin: a read that came back at once with nothing new waits a moment before the next.
    if (follow && !advanced && Date.now() - started < (wait * 1000) / 2) {
      await sleep(1_000, signal);
    }
  }
}
