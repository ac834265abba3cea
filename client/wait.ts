/**
 * `wait`: follow a job through the long-poll events endpoint until it reaches a state. Each call
 * is held by the gateway up to `pollSeconds` and returns the moment an event happens, so a wait
 * costs one request per event or per 25 s — never a tight poll.
 */
import { WaitTimeoutError } from "./errors.ts";
import type { RawClient } from "./raw.ts";
import { type RetryPolicy, resolveRetry, rideOutOutage, sleep } from "./retry.ts";
import { type Job, type JobEvent, type JobEvents, type JobState, isTerminal } from "./types.ts";
import { shapes, unwrap } from "./unwrap.ts";

/**
 * Options of `events`.
 * @example await client.events(id, { after: 3, wait: 20 });
 */
export type EventsOptions = {
  /** Return events with seq greater than this. Default 0 (all). */
  after?: number;
  /** Seconds the gateway may hold the call when nothing new happened (0–25). Default 0. */
  wait?: number;
  signal?: AbortSignal;
};

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
  /** Longest hold per request, in seconds (1–25). Default 25, the gateway's maximum. */
  pollSeconds?: number;
};

/**
 * One call of the events endpoint.
 * @example const { job, events, lastSeq } = await fetchEvents(raw, id, { after: 0, wait: 10 });
 */
export function fetchEvents(raw: RawClient, id: string, options: EventsOptions = {}): Promise<JobEvents> {
  return unwrap(
    raw.GET("/v1/jobs/{id}/events", {
      params: { path: { id }, query: { after: options.after ?? 0, wait: options.wait ?? 0 } },
      signal: options.signal,
    }),
    shapes.events,
  ) as Promise<JobEvents>;
}

/**
 * The one rule for when a wait is over: the job's CURRENT state is terminal, or it is (or an event
 * passed through) one of the states asked for. A terminal event alone does not end a wait: with
 * `retries`, a timeout is followed at once by a new attempt (`queued`), and the job is not done.
 * @example waitReached({ state: "queued" }, [{ state: "timeout" }], undefined) === false
 */
export function waitReached(
  job: Pick<Job, "state">,
  events: readonly Pick<JobEvent, "state">[],
  targets: ReadonlySet<JobState> | undefined,
): boolean {
  if (isTerminal(job.state) || targets?.has(job.state)) {
    return true;
  }
  return targets !== undefined && events.some((e) => e.state != null && targets.has(e.state));
}

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
  const { until = "terminal", timeout, signal, onEvent } = options;
  const targets = until === "terminal" ? undefined : new Set<JobState>(until);
  const pollSeconds = Math.min(25, Math.max(1, Math.floor(options.pollSeconds ?? 25)));
  const deadline = timeout === undefined ? Number.POSITIVE_INFINITY : Date.now() + timeout;
  let after = options.after ?? 0;
  let job: Job | undefined;
  for (;;) {
    signal?.throwIfAborted();
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw new WaitTimeoutError(job ?? { id, state: "unknown" }, timeout ?? 0);
    }
    const wait = Math.max(1, Math.min(pollSeconds, Math.ceil(remaining / 1000)));
    const started = Date.now();
    // The gateway holds for whole seconds; the deadline signal ends the last hold on time.
    const deadlineSignal = Number.isFinite(remaining) ? AbortSignal.timeout(remaining) : undefined;
    const both = deadlineSignal && signal ? AbortSignal.any([signal, deadlineSignal]) : (deadlineSignal ?? signal);
    let answer: JobEvents;
    try {
      // A gateway restart must not end the wait: ride it out (bounded by policy.outageMs).
      answer = await rideOutOutage(policy, () => fetchEvents(raw, id, { after, wait, signal: both }), both);
    } catch (err) {
      if (deadlineSignal?.aborted && !signal?.aborted) {
        throw new WaitTimeoutError(job ?? { id, state: "unknown" }, timeout ?? 0);
      }
      throw err;
    }
    job = answer.job;
    for (const event of answer.events) {
      onEvent?.(event, answer.job);
    }
    after = Math.max(after, answer.lastSeq);
    if (waitReached(job, answer.events, targets)) {
      return job;
    }
    // A gateway (or proxy) that answers at once with nothing new would turn this into a tight poll.
    if (answer.events.length === 0 && Date.now() - started < (wait * 1000) / 2) {
      await sleep(Math.min(1_000, Math.max(0, deadline - Date.now())), signal);
    }
  }
}
