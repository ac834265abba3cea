/**
 * The contract of the user feed: every event of the caller's jobs (an admin's: everyone's).
 */
import { createRoute, z } from "@hono/zod-openapi";
import { FeedPage } from "../../schemas/index.ts";
import { requireRole } from "../middleware/auth.ts";
import { bearer, problems } from "./common.ts";
import { LastEventIdHeader } from "./jobs.routes.ts";

export const feed = createRoute({
  method: "get",
  path: "/v1/events",
  operationId: "feed",
  tags: ["jobs"],
  summary: "Follow all my jobs (long-poll, or server-sent events)",
  description:
    "The events of all the caller's jobs in the order they happened (an admin sees every user's). Returns the events after `after` at once if there are any, else waits up to `wait` seconds for one; without `after` it starts from now. Loop with `after = cursor`. With `Accept: text/event-stream` the answer is a stream: one message per event (`id` = its cursor, `event` = its type, `data` = the event as JSON), comment lines as heartbeats; a reconnect with `Last-Event-ID` resumes after that event. Streams per user are limited (SLURMGATE_SSE_MAX_PER_USER) and end after SLURMGATE_SSE_MAX_SECONDS; clients reconnect.",
  security: bearer,
  middleware: requireRole("user"),
  request: {
    headers: LastEventIdHeader,
    query: z.strictObject({
      after: z
        .string()
        .regex(/^\d{1,15}$/, "a cursor from an earlier answer (digits)")
        .optional()
        .openapi({ description: "Resume after this cursor; default: from now." }),
      wait: z.coerce.number().int().min(0).max(25).default(0),
    }),
  },
  responses: {
    200: {
      description:
        "The events after `after` and the cursor to continue from, or with Accept: text/event-stream a stream of them",
      content: {
        "application/json": { schema: FeedPage },
        "text/event-stream": { schema: z.string().openapi({ description: "Server-sent events" }) },
      },
    },
    ...problems(401, 422, 429),
  },
});
