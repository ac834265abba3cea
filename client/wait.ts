/**
 * `wait`: follow a job until it reaches a state. Over the job's server-sent event stream when the
 * gateway offers one (one request for the whole wait, and each event the moment it happens);
 * otherwise through the long-poll events endpoint, held up to `pollSeconds` per call, so a wait
 * costs one request per event or per 25 s — never a tight poll.
 */
import { WaitTimeoutError } from "./errors.ts";
import type { RawClient } from "./raw.ts";
import { type RetryPolicy, resolveRetry, rideOutOutage, sleep } from "./retry.ts";
import { type Job, type JobEvent, type JobEvents, type JobState, isTerminal } from "./types.ts";
import { shapes, unwrap } from "./unwrap.ts";
import { fetchEvents, streamJob } from "./watch.ts";

/**
 * Options of `wait`.
 * @example await client.wait(id, { until: ["running"], timeout: 600_000, onEvent: (e) => console.log(e.state) });
 */
export type WaitOptions = {
  /** `"terminal"` (default) or the states to wait for. A terminal state always ends the wait. */
  until?: "terminal" | readonly JobState[];
  /** Give up after this many milliseconds with a WaitTimeoutError. Default: no limit. */
  timeout?: number;
  /** Abort the wait (and the request in flight); the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called once per event, oldest first, including the history before the wait started. */
  onEvent?: (event: JobEvent, job: Job) => void;
  /** Start after this event seq (skips history). Default 0. */
  after?: number;
  /** Longest hold per long-poll request, in seconds (1–25). Default 25, the gateway's maximum. */
  pollSeconds?: number;
};

/**
 * The one rule for when a wait is over: the job's CURRENT state is terminal, or it is (or an event
 * passed through) one of the states asked for. A terminal event alone does not end a wait: with
 * `retries`, a timeout is followed at once by a new attempt (`queued`), and the job is not done.
 * Over a stream the job is known only at its `end`, so events alone are checked until then.
 * @example waitReached({ state: "queued" }, [{ state: "timeout" }], undefined) === false
 */
export function waitReached(
  job: Pick<Job, "state"> | undefined,
  events: readonly Pick<JobEvent, "state">[],
  targets: ReadonlySet<JobState> | undefined,
): boolean {
  if (job && (isTerminal(job.state) || targets?.has(job.state))) {
    return true;
  }
  return targets !== undefined && events.some((e) => e.state != null && targets.has(e.state));
}

/** What a wait knows so far: the job as last fetched and the last event seq seen. */
type Progress = { job: Job | undefined; after: number; first?: JobEvents };

/**
 * Resolves with the job once it reaches one of `until` (or a terminal state it will not leave: a
 * retried attempt's ending is not one). Rides out a gateway outage of up to `policy.outageMs`.
 * @example const job = await waitForJob(raw, id, { timeout: 60_000 });
 */
export async function waitForJob(
  raw: RawClient,
  id: string,
  options: WaitOptions = {},
  policy: RetryPolicy = resolveRetry(),
): Promise<Job> {
  const { until = "terminal", timeout, signal } = options;
  const targets = until === "terminal" ? undefined : new Set<JobState>(until);
  const deadline = timeout === undefined ? Number.POSITIVE_INFINITY : Date.now() + timeout;
  const progress: Progress = { job: undefined, after: options.after ?? 0 };
  const deadlineSignal = timeout === undefined ? undefined : AbortSignal.timeout(Math.max(0, timeout));
  const both = deadlineSignal && signal ? AbortSignal.any([signal, deadlineSignal]) : (deadlineSignal ?? signal);
  try {
    signal?.throwIfAborted();
    if (timeout !== undefined && timeout <= 0) {
      throw new WaitTimeoutError({ id, state: "unknown" }, timeout);
    }
    const streamed = await waitOnStream(raw, id, options, targets, progress, both, policy);
    return streamed ?? (await longPollWait(raw, id, options, targets, deadline, progress, policy));
  } catch (err) {
    if (deadlineSignal?.aborted && !signal?.aborted) {
      throw new WaitTimeoutError(await lastKnown(raw, id, progress, signal), timeout ?? 0);
    }
    throw err;
  }
}

/** The job for a WaitTimeoutError: as fetched, or (a stream does not carry it) asked for once, briefly. */
async function lastKnown(
  raw: RawClient,
  id: string,
  progress: Progress,
  signal: AbortSignal | undefined,
): Promise<Job | { id: string; state: "unknown" }> {
  const known = progress.job ?? { id, state: "unknown" as const };
  if (progress.job && progress.job.lastSeq >= progress.after) {
    return known;
  }
  const brief = signal ? AbortSignal.any([signal, AbortSignal.timeout(1_000)]) : AbortSignal.timeout(1_000);
  return unwrap(raw.GET("/v1/jobs/{id}", { params: { path: { id } }, signal: brief }), shapes.job).catch(() => known);
}

/**
 * The wait over the job's event stream; undefined when no stream can be had (then long-poll, from
 * `progress.after`, for the rest of this wait). `onEvent` gets the job as fetched once it covers the
 * event (one GET per burst of new events, only when there is an `onEvent`).
 */
async function waitOnStream(
  raw: RawClient,
  id: string,
  options: WaitOptions,
  targets: ReadonlySet<JobState> | undefined,
  progress: Progress,
  signal: AbortSignal | undefined,
  policy: RetryPolicy,
): Promise<Job | undefined> {
  const current = () =>
    rideOutOutage(
      policy,
      () => unwrap(raw.GET("/v1/jobs/{id}", { params: { path: { id } }, signal }), shapes.job),
      signal,
    );
  const stream = streamJob(raw, id, progress.after, signal, policy);
  try {
    for (;;) {
      const step = await stream.next();
      if (step.done) {
        if ("fallbackAfter" in step.value) {
          progress.first = step.value.answer;
          return undefined;
        }
        progress.job = step.value.job;
        // Only a finished job's stream ends; should one end otherwise, the long-poll decides.
        return waitReached(progress.job, [], targets) ? progress.job : undefined;
      }
      const { jobId: _, ...event } = step.value;
      progress.after = event.seq;
      if (options.onEvent) {
        if (!progress.job || progress.job.lastSeq < event.seq) {
          progress.job = await current();
        }
        options.onEvent(event, progress.job);
      }
      if (waitReached(undefined, [event], targets)) {
        progress.job = await current();
        return progress.job;
      }
    }
  } finally {
    await stream.return({ fallbackAfter: progress.after });
  }
}

/** The wait by long-poll, from `progress.after` (and the stream request's JSON answer, if it got one). */
async function longPollWait(
  raw: RawClient,
  id: string,
  options: WaitOptions,
  targets: ReadonlySet<JobState> | undefined,
  deadline: number,
  progress: Progress,
  policy: RetryPolicy,
): Promise<Job> {
  const { timeout, signal, onEvent } = options;
  const pollSeconds = Math.min(25, Math.max(1, Math.floor(options.pollSeconds ?? 25)));
  for (;;) {
    signal?.throwIfAborted();
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw new WaitTimeoutError(progress.job ?? { id, state: "unknown" }, timeout ?? 0);
    }
    const wait = Math.max(1, Math.min(pollSeconds, Math.ceil(remaining / 1000)));
    const started = Date.now();
    const carried = progress.first;
    progress.first = undefined;
    const answer = carried ?? (await longPoll(raw, id, wait, remaining, progress, options, policy));
    progress.job = answer.job;
    for (const event of answer.events) {
      onEvent?.(event, answer.job);
    }
    progress.after = Math.max(progress.after, answer.lastSeq);
    if (waitReached(answer.job, answer.events, targets)) {
      return answer.job;
    }
    // A gateway (or proxy) that answers at once with nothing new would turn this into a tight poll.
    if (!carried && answer.events.length === 0 && Date.now() - started < (wait * 1000) / 2) {
      await sleep(Math.min(1_000, Math.max(0, deadline - Date.now())), signal);
    }
  }
}

/** One long-poll call, held up to `wait` seconds and ended on time by the wait's deadline. */
async function longPoll(
  raw: RawClient,
  id: string,
  wait: number,
  remaining: number,
  progress: Progress,
  options: WaitOptions,
  policy: RetryPolicy,
): Promise<JobEvents> {
  const { signal, timeout } = options;
  // The gateway holds for whole seconds; the deadline signal ends the last hold on time.
  const deadlineSignal = Number.isFinite(remaining) ? AbortSignal.timeout(remaining) : undefined;
  const both = deadlineSignal && signal ? AbortSignal.any([signal, deadlineSignal]) : (deadlineSignal ?? signal);
  try {
    // A gateway restart must not end the wait: ride it out (bounded by policy.outageMs).
    return await rideOutOutage(policy, () => fetchEvents(raw, id, { after: progress.after, wait, signal: both }), both);
  } catch (err) {
    if (deadlineSignal?.aborted && !signal?.aborted) {
      throw new WaitTimeoutError(progress.job ?? { id, state: "unknown" }, timeout ?? 0);
    }
    throw err;
  }
}
