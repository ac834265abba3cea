/**
 * What the event streams read: one job's events by sequence, or a user's feed by cursor.
 */
import type { Context } from "hono";
import { type Job, MAX_FEED_EVENTS, isTerminal } from "../../schemas/index.ts";
import type { Deps, Principal } from "../deps.ts";
import { FEED_TOPIC } from "../notifier.ts";
import { serveEventStream } from "../sse.ts";
import { feedAfter } from "../store/event-feed.ts";
import { listEvents } from "../store/jobs.ts";
import { visibleJob } from "./jobs.ts";

type UserPrincipal = Extract<Principal, { kind: "user" | "admin" }>;

const userOf = (principal: Principal) => (principal.kind === "agent" ? `agent:${principal.tokenId}` : principal.user);

/**
 * A job's events after sequence `after`, then its new ones as they happen; ends with `end` (the job
 * as JSON) once the job has finished and every event up to its end has been sent.
 */
export function streamJobEvents(c: Context, deps: Deps, principal: Principal, job: Job, after: number): Response {
  let cursor = after;
  let finished = isTerminal(job.state);
  return serveEventStream(c, deps, {
    user: userOf(principal),
    topic: `job:${job.id}`,
    read: async () => {
      const events = await listEvents(deps.db, job.id, cursor, MAX_FEED_EVENTS);
      for (const event of events) {
        finished ||= event.state !== undefined && isTerminal(event.state);
      }
      cursor = events.at(-1)?.seq ?? cursor;
      const more = events.length === MAX_FEED_EVENTS;
      const messages = events.map((event) => ({
        id: String(event.seq),
        event: event.type,
        data: JSON.stringify({ ...event, jobId: job.id }),
      }));
      if (!finished || more) {
        return { messages, more };
      }
      // A terminal event is not the end when a retry requeued the job; a late note is still sent first.
      const now = await visibleJob(deps, principal, job.id);
      if (!isTerminal(now.state)) {
        finished = false;
        return { messages, more: now.lastSeq > cursor };
      }
      return now.lastSeq > cursor ? { messages, more: true } : { messages, more, done: { data: JSON.stringify(now) } };
    },
  });
}

/** Whose jobs a feed shows: an admin's shows everyone's. */
export const feedOwner = (principal: UserPrincipal) => (principal.kind === "admin" ? undefined : principal.user);

/** The feed after `after`, then what happens next. */
export function streamFeed(c: Context, deps: Deps, principal: UserPrincipal, after: number): Response {
  let cursor = after;
  return serveEventStream(c, deps, {
    user: principal.user,
    topic: FEED_TOPIC,
    read: async () => {
      const events = await feedAfter(deps.db, { owner: feedOwner(principal), after: cursor, limit: MAX_FEED_EVENTS });
      cursor = Number(events.at(-1)?.cursor ?? cursor);
      const messages = events.map((event) => ({ id: event.cursor, event: event.type, data: JSON.stringify(event) }));
      return { messages, more: events.length === MAX_FEED_EVENTS };
    },
  });
}
