/**
 * `watch` and `feed`: events as they happen, over server-sent events. A dropped stream, the
 * gateway's stream time limit or a gateway restart only pause them: they reconnect with
 * Last-Event-ID, so every event arrives once, in order. A gateway (or proxy) that answers JSON
 * instead of a stream is followed by long-poll.
 */
import { SlurmgateError } from "./errors.ts";
import type { RawClient } from "./raw.ts";
import { type RetryPolicy, rideOutOutage, sleep } from "./retry.ts";
import { type SseMessage, readEventStream } from "./sse.ts";
import { type FeedEvent, type FeedPage, type Job, type JobEvent, type JobEvents, isTerminal } from "./types.ts";
import { type Shape, shapes, unwrap } from "./unwrap.ts";

/**
 * Options of `watch`.
 * @example for await (const e of client.watch(id, { after: 3 })) console.log(e.seq, e.state);
 */
export type WatchOptions = {
  /** Start after this event seq (skips history). Default 0: the whole history first. */
  after?: number;
  signal?: AbortSignal;
};

/**
 * Options of `feed`.
 * @example for await (const e of client.feed({ after: saved })) save(e.cursor);
 */
export type FeedOptions = {
  /** Resume after this cursor (a `FeedEvent.cursor` you kept). Default: from now. */
  after?: string;
  signal?: AbortSignal;
};

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

/** A job event with the id of its job. */
export type WatchedEvent = JobEvent & { jobId: string };

const STREAM_HEADERS = { accept: "text/event-stream" };
/** Pause before reconnecting a stream that ended without `end`, unless the gateway said otherwise. */
const RECONNECT_MS = 1_000;
/**
 * A connection that ends this soon with nothing on it, this many times in a row, is something between
 * us and the gateway that cannot hold a stream open: long-poll instead.
 */
const QUICK_END_MS = 1_000;
const QUICK_ENDS_BEFORE_FALLBACK = 3;

type Opened = { kind: "stream"; body: ReadableStream<Uint8Array> } | { kind: "json"; answer?: unknown };

/**
 * The one rule for "no stream here": an answer that is not an event stream (JSON from a gateway or
 * proxy that ignores Accept, a fetch without streaming bodies) or a 406/415 refusal of the media type.
 * A JSON answer is kept (checked against `shape`): it is the first long-poll answer, not a lost request.
 * Any other error is the request's own and is thrown.
 */
async function opened(
  call: Promise<{ data?: unknown; error?: unknown; response: Response }>,
  shape: Shape,
): Promise<Opened> {
  const result = await call;
  const { response } = result;
  const type = response.headers.get("content-type") ?? "";
  if (result.error === undefined && /text\/event-stream/i.test(type) && response.body) {
    return { kind: "stream", body: response.body };
  }
  if (response.status === 406 || response.status === 415) {
    await response.body?.cancel().catch(() => {});
    return { kind: "json" };
  }
  await unwrap(Promise.resolve(result));
  if (!/json/i.test(type) || response.bodyUsed) {
    // An event stream without a streaming body (a fetch that buffers), or something else: long-poll.
    await response.body?.cancel().catch(() => {});
    return { kind: "json" };
  }
  let data: unknown;
  try {
    data = JSON.parse(await response.text());
  } catch {
    data = undefined;
  }
  return { kind: "json", answer: await unwrap(Promise.resolve({ data, response }), shape) };
}

/**
 * Reads one connection's messages and heartbeats; a connection that breaks simply ends (the caller
 * resumes), while an abort is the caller's and is thrown.
 */
async function* messagesOf(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<SseMessage> {
  try {
    for await (const message of readEventStream(body)) {
      if (message.event !== "error") {
        yield message;
      }
    }
  } catch (err) {
    signal?.throwIfAborted();
    if (err instanceof SlurmgateError) {
      throw err;
    }
  }
}

/** How a job's stream ended: with the finished job, or with "no stream here" and where to go on from. */
export type JobStreamEnd = { job: Job } | { fallbackAfter: number; answer?: JobEvents };

/**
 * A job's events after `from` over server-sent events, reconnecting with Last-Event-ID after a break
 * (riding out an outage of `policy.outageMs`); returns the finished job from the stream's `end`, or
 * `fallbackAfter` when no stream can be had, so the caller long-polls from there.
 * @example const end = yield* streamJob(raw, id, 0, signal, policy);
 */
export async function* streamJob(
  raw: RawClient,
  id: string,
  from: number,
  signal: AbortSignal | undefined,
  policy: RetryPolicy,
): AsyncGenerator<WatchedEvent, JobStreamEnd> {
  let after = from;
  let quickEnds = 0;
  for (;;) {
    const connection = await rideOutOutage(
      policy,
      () =>
        opened(
          raw.GET("/v1/jobs/{id}/events", {
            params: { path: { id }, query: { after, wait: 0 }, header: { "last-event-id": String(after) } },
            headers: STREAM_HEADERS,
            parseAs: "stream",
            signal,
          }),
          shapes.events,
        ),
      signal,
    );
    if (connection.kind === "json") {
      return { fallbackAfter: after, answer: connection.answer as JobEvents | undefined };
    }
    const openedAt = Date.now();
    let heard = false;
    let retryMs = RECONNECT_MS;
    for await (const message of messagesOf(connection.body, signal)) {
      heard = true;
      retryMs = message.retry ?? retryMs;
      if (message.comment !== undefined) {
        continue;
      }
      if (message.event === "end") {
        return { job: JSON.parse(message.data) as Job };
      }
      const event = JSON.parse(message.data) as WatchedEvent;
      if (event.seq > after) {
        after = event.seq;
        yield event;
      }
    }
    quickEnds = !heard && Date.now() - openedAt < QUICK_END_MS ? quickEnds + 1 : 0;
    if (quickEnds >= QUICK_ENDS_BEFORE_FALLBACK) {
      return { fallbackAfter: after };
    }
    await sleep(retryMs, signal);
  }
}

/**
 * A job's events from `after` on, ending after the job has finished. Returns the finished job.
 * @example for await (const e of watchJob(raw, id, {}, policy)) console.log(e.seq, e.state);
 */
export async function* watchJob(
  raw: RawClient,
  id: string,
  options: WatchOptions,
  policy: RetryPolicy,
): AsyncGenerator<WatchedEvent, Job> {
  const end = yield* streamJob(raw, id, options.after ?? 0, options.signal, policy);
  if ("job" in end) {
    return end.job;
  }
  return yield* longPollJob(raw, id, end.fallbackAfter, end.answer, options, policy);
}

async function* longPollJob(
  raw: RawClient,
  id: string,
  from: number,
  first: JobEvents | undefined,
  options: WatchOptions,
  policy: RetryPolicy,
): AsyncGenerator<WatchedEvent, Job> {
  let after = from;
  let carried = first;
  for (;;) {
    const answer =
      carried ??
      (await rideOutOutage(
        policy,
        () => fetchEvents(raw, id, { after, wait: 25, signal: options.signal }),
        options.signal,
      ));
    carried = undefined;
    for (const event of answer.events) {
      yield { ...event, jobId: id };
    }
    after = Math.max(after, answer.lastSeq);
    if (isTerminal(answer.job.state) && after >= answer.job.lastSeq) {
      return answer.job;
    }
  }
}

/**
 * Every event of the caller's jobs (an admin's: everyone's) from `after` on; never ends by itself:
 * break out of the loop or abort the signal.
 * @example for await (const e of followFeed(raw, {}, policy)) if (e.state === "failed") alert(e.jobId);
 */
export async function* followFeed(
  raw: RawClient,
  options: FeedOptions,
  policy: RetryPolicy,
): AsyncGenerator<FeedEvent> {
  const { signal } = options;
  // "From now" is pinned to a cursor first, so a reconnect resumes from it and misses nothing.
  let after = options.after ?? (await currentCursor(raw, options, policy));
  for (;;) {
    const resume = { header: { "last-event-id": after } };
    const connection = await rideOutOutage(
      policy,
      () =>
        opened(
          raw.GET("/v1/events", { params: resume, headers: STREAM_HEADERS, parseAs: "stream", signal }),
          shapes.feed,
        ),
      signal,
    );
    if (connection.kind === "json") {
      yield* longPollFeed(raw, after, options, policy);
      return;
    }
    let retryMs = RECONNECT_MS;
    for await (const message of messagesOf(connection.body, signal)) {
      retryMs = message.retry ?? retryMs;
      if (message.comment !== undefined) {
        continue;
      }
      const event = JSON.parse(message.data) as FeedEvent;
      if (Number(event.cursor) > Number(after)) {
        after = event.cursor;
        yield event;
      }
    }
    await sleep(retryMs, signal);
  }
}

async function currentCursor(raw: RawClient, options: FeedOptions, policy: RetryPolicy): Promise<string> {
  const page = await rideOutOutage(
    policy,
    () =>
      unwrap(
        raw.GET("/v1/events", { params: { query: { wait: 0 } }, signal: options.signal }),
        shapes.feed,
      ) as Promise<FeedPage>,
    options.signal,
  );
  return page.cursor;
}

async function* longPollFeed(
  raw: RawClient,
  from: string,
  options: FeedOptions,
  policy: RetryPolicy,
): AsyncGenerator<FeedEvent> {
  let after = from;
  for (;;) {
    const query = { after, wait: 25 };
    const page = await rideOutOutage(
      policy,
      () =>
        unwrap(raw.GET("/v1/events", { params: { query }, signal: options.signal }), shapes.feed) as Promise<FeedPage>,
      options.signal,
    );
    yield* page.events;
    after = page.cursor;
  }
}
