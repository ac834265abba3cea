/**
 * Waiting and following for `submit --wait/--follow`, `wait` and `logs -f`, through the client
 * (a wait follows the job's event stream, or long-polls where none gets through; a log follow holds
 * each read until bytes arrive; both ride out gateway restarts). Draws a progress line only on a
 * terminal, and maps the final state to an exit code. A wait ends at the job's final attempt:
 * client.wait's one rule.
 */
import { type Job, type JobState, type LogStream, type SlurmgateClient, WaitTimeoutError } from "../client/index.ts";
import { EXIT } from "./errors.ts";
import type { Io } from "./io.ts";
import { progress } from "./output.ts";

export type WatchOptions = { timeout?: number; until?: readonly JobState[] };

/** Waits for the job with a spinner showing its state (terminal only). */
export async function waitWithProgress(
  client: SlurmgateClient,
  id: string,
  io: Io,
  options: WatchOptions = {},
): Promise<Job> {
  const line = progress(io);
  line.update(`${id} waiting`);
  try {
    return await client.wait(id, {
      until: options.until ?? "terminal",
      timeout: options.timeout,
      signal: io.signal,
      onEvent: (event, job) => line.update(`${id} ${event.state ?? job.state}${job.reason ? ` (${job.reason})` : ""}`),
    });
  } finally {
    line.stop();
  }
}

/** Copies the job's log to stdout until the job ends and every byte has been shipped. */
export async function followLogs(
  client: SlurmgateClient,
  id: string,
  io: Io,
  options: {
    stream?: LogStream;
    timeout?: number;
    attempt?: number;
    allAttempts?: boolean;
    task?: number;
    service?: string;
  } = {},
): Promise<void> {
  const deadline = options.timeout === undefined ? undefined : AbortSignal.timeout(options.timeout);
  const signal = deadline ? AbortSignal.any([io.signal, deadline]) : io.signal;
  try {
    const { stream, attempt, allAttempts, task, service } = options;
    for await (const text of client.logs(id, { follow: true, stream, attempt, allAttempts, task, service, signal })) {
      io.stdout.write(text);
    }
  } catch (err) {
    if (deadline?.aborted && !io.signal.aborted) {
      throw new WaitTimeoutError(await client.get(id), options.timeout ?? 0);
    }
    throw err;
  }
}

/** 0 when the job reached what was asked (completed, or one of `until`), 3 otherwise. */
export function exitFor(job: Job, until?: readonly JobState[]): number {
  const wanted = until?.length ? until : ["completed"];
  return wanted.includes(job.state) ? EXIT.ok : EXIT.jobFailed;
}
