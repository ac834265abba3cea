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
import { type FeedEvent, type FeedPage, type Job, type JobEvent, isTerminal } from "./types.ts";
import { shapes, unwrap } from "./unwrap.ts";
import { fetchEvents } from "./wait.ts";

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

/** A job event with the id of its job. */
export type WatchedEvent = JobEvent & { jobId: string };

const STREAM_HEADERS = { accept: "text/event-stream" };
/** Pause before reconnecting a stream that ended without `end`, unless the gateway said otherwise. */
const RECONNECT_MS = 1_000;

type Opened = { kind: "stream"; body: ReadableStream<Uint8Array> } | { kind: "json" };

async function opened(call: Promise<{ data?: unknown; error?: unknown; response: Response }>): Promise<Opened> {
  const result = await call;
  const type = result.response.headers.get("content-type") ?? "";
  if (result.error === undefined && /text\/event-stream/i.test(type) && result.response.body) {
    return { kind: "stream", body: result.response.body };
  }
  await unwrap(Promise.resolve(result));
  return { kind: "json" };
}

/**
 * Reads one connection's messages; a connection that breaks simply ends (the caller resumes), while
 * an abort is the caller's and is thrown.
 */
async function* messagesOf(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<SseMessage> {
  try {
    for await (const message of readEventStream(body)) {
      if (message.comment === undefined && message.event !== "error") {
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

/**
 * A job's events from `after` on, ending after the job has finished. Returns the finished job.
 * @example for await (const e of watchJob(raw, id, {}, policy)) console.log(e.state);
 */
export async function* watchJob(
  raw: RawClient,
  id: string,
  options: WatchOptions,
  policy: RetryPolicy,
): AsyncGenerator<WatchedEvent, Job> {
  const { signal } = options;
  let after = options.after ?? 0;
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
        ),
      signal,
    );
    if (connection.kind === "json") {
      return yield* longPollJob(raw, id, after, options, policy);
    }
    let retryMs = RECONNECT_MS;
    for await (const message of messagesOf(connection.body, signal)) {
      retryMs = message.retry ?? retryMs;
      if (message.event === "end") {
        return JSON.parse(message.data) as Job;
      }
      const event = JSON.parse(message.data) as WatchedEvent;
      if (event.seq > after) {
        after = event.seq;
        yield event;
      }
    }
    await sleep(retryMs, signal);
  }
}

async function* longPollJob(
  raw: RawClient,
  id: string,
  from: number,
  options: WatchOptions,
  policy: RetryPolicy,
): AsyncGenerator<WatchedEvent, Job> {
  let after = from;
  for (;;) {
    const answer = await rideOutOutage(
      policy,
      () => fetchEvents(raw, id, { after, wait: 25, signal: options.signal }),
      options.signal,
    );
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
      () => opened(raw.GET("/v1/events", { params: resume, headers: STREAM_HEADERS, parseAs: "stream", signal })),
      signal,
    );
    if (connection.kind === "json") {
      yield* longPollFeed(raw, after, options, policy);
      return;
    }
    let retryMs = RECONNECT_MS;
    for await (const message of messagesOf(connection.body, signal)) {
      retryMs = message.retry ?? retryMs;
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
