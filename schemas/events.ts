/**
 * Following changes as they happen: the events of all of a user's jobs in one feed (`GET /v1/events`),
 * as server-sent events or as a long-poll page.
 */
import { z } from "@hono/zod-openapi";
import { JobEvent, JobId } from "./job.ts";

export const FeedEvent = JobEvent.extend({
  jobId: JobId,
  cursor: z.string().openapi({
    description: "Position in the feed: resume after it with `after` or, on a stream, Last-Event-ID.",
  }),
}).openapi("FeedEvent");
export type FeedEvent = z.infer<typeof FeedEvent>;

export const FeedPage = z
  .object({
    events: z.array(FeedEvent),
    cursor: z.string().openapi({ description: "Pass as `after` to get what comes next." }),
  })
  .openapi("FeedPage");
export type FeedPage = z.infer<typeof FeedPage>;

/** Most events one feed read returns; a stream reads again at once while a read comes back full. */
export const MAX_FEED_EVENTS = 500;
