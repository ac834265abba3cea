/**
 * The user feed's handler. Thin: the contract is in events.routes.ts, the reads in services/.
 */
import type { RouteHandler } from "@hono/zod-openapi";
import { MAX_FEED_EVENTS } from "../../schemas/index.ts";
import type { Deps } from "../deps.ts";
import { FEED_TOPIC, longPoll } from "../notifier.ts";
import { feedOwner, streamFeed } from "../services/event-streams.ts";
import { wantsEventStream } from "../sse.ts";
import { feedAfter, latestFeedCursor } from "../store/event-feed.ts";
import { createRouter } from "./common.ts";
import * as routes from "./events.routes.ts";

export function eventsRouter(deps: Deps) {
  const feed: RouteHandler<typeof routes.feed> = async (c) => {
    const principal = c.get("principal");
    if (principal.kind === "agent") {
      throw new Error("requireRole('user') admits no agent");
    }
    const { after, wait } = c.req.valid("query");
    const resume = c.req.valid("header")["last-event-id"] ?? after;
    const from = resume === undefined ? await latestFeedCursor(deps.db) : Number(resume);
    if (wantsEventStream(c)) {
      return streamFeed(c, deps, principal, from) as never;
    }
    const owner = feedOwner(principal);
    const check = async () => {
      const events = await feedAfter(deps.db, { owner, after: from, limit: MAX_FEED_EVENTS });
      return events.length ? events : undefined;
    };
    const options = { recheckMs: deps.recheckMs, now: deps.now, signal: c.req.raw.signal };
    const events = (await longPoll(deps.notifier, FEED_TOPIC, wait, check, options)) ?? [];
    return c.json({ events, cursor: events.at(-1)?.cursor ?? String(from) }, 200);
  };

  return createRouter().openapi(routes.feed, feed);
}
