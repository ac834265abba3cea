/**
 * Webhooks: a user's HTTPS endpoint that receives their jobs' events, signed the Standard Webhooks
 * way (`webhook-id`, `webhook-timestamp`, `webhook-signature`). The limits and the retry rule live
 * here, once; the gateway and the docs derive from them.
 */
import { z } from "@hono/zod-openapi";
import { FeedEvent } from "./events.ts";
import { JobEvent, JobState } from "./job.ts";
import { CLUSTER_NAME, LABEL_KEY } from "./patterns.ts";

/** Most webhooks one user may register. */
export const MAX_WEBHOOKS_PER_USER = 20;

/**
 * When a delivery fails, the next try waits `min(capMs, baseMs * 2^(failures-1))`, of which a
 * random half is jitter; after `disableAfterFailures` failures in a row, or failures for
 * `disableAfterMs` without one success, the webhook is disabled with the reason.
 */
export const WEBHOOK_RETRY = {
  baseMs: 5_000,
  capMs: 60 * 60 * 1_000,
  disableAfterFailures: 100,
  disableAfterMs: 3 * 24 * 60 * 60 * 1_000,
} as const;

/** Delivered log rows are kept this long, and at most this many per webhook; undelivered ones until delivered. */
export const WEBHOOK_LOG_RETENTION = { ms: 7 * 24 * 60 * 60 * 1_000, rows: 1_000 } as const;

/** Most events a webhook holds undelivered; past it the webhook's cursor waits, so nothing is lost. */
export const MAX_WEBHOOK_BACKLOG = 1_000;

/** Bytes of a receiver's answer kept for the delivery log; the rest is never read. */
export const WEBHOOK_RESPONSE_CAP_BYTES = 1_024;

/**
 * The event types a webhook subscribes to, derived from the job event schema: `job.<state>` for a
 * state change (`job.completed`, `job.running`, …) and `job.<type>` for the other events.
 */
export const WEBHOOK_EVENT_TYPES = [
  ...JobState.options.map((state) => `job.${state}` as const),
  ...JobEvent.shape.type.options.filter((type) => type !== "state").map((type) => `job.${type}` as const),
];
export const WebhookEventType = z
  .enum(WEBHOOK_EVENT_TYPES as [string, ...string[]])
  .openapi("WebhookEventType", { description: "`job.<state>` for a state change; `job.<event type>` otherwise." });
export type WebhookEventType = z.infer<typeof WebhookEventType>;

/** The webhook event type of a job event. */
export const webhookEventType = (event: { type: string; state?: string | null }) =>
  `job.${event.type === "state" && event.state ? event.state : event.type}`;

export const WebhookScope = z
  .strictObject({
    cluster: z.string().regex(CLUSTER_NAME, "a cluster name").optional(),
    sweep: z
      .string()
      .regex(/^swp_[0-9a-z]{20,40}$/, "a sweep id")
      .optional(),
    label: z
      .strictObject({
        key: z.string().regex(LABEL_KEY, "label keys are [A-Za-z0-9][A-Za-z0-9_./-]*"),
        value: z.string().max(128),
      })
      .optional(),
  })
  .openapi("WebhookScope", { description: "Only jobs that match every given field." });
export type WebhookScope = z.infer<typeof WebhookScope>;

export const WebhookRequest = z
  .strictObject({
    url: z.string().max(2_048).openapi({
      description:
        "https:// only; private, loopback, link-local, CGNAT, multicast and `localhost` targets are refused, also after DNS resolution at delivery time, unless an admin allows them.",
      example: "https://ci.example.org/hooks/slurmgate",
    }),
    events: z.array(WebhookEventType).min(1).max(WEBHOOK_EVENT_TYPES.length),
    description: z.string().max(256).optional(),
    scope: WebhookScope.optional(),
    allUsers: z.boolean().default(false).openapi({ description: "Admins only: every user's jobs in `scope`." }),
    allowPrivate: z
      .boolean()
      .default(false)
      .openapi({ description: "Admins only: allow private and loopback targets, and http:// for them." }),
  })
  .openapi("WebhookRequest");
export type WebhookRequest = z.infer<typeof WebhookRequest>;

export const WebhookId = z
  .string()
  .regex(/^wh_[0-9a-z]{20,40}$/)
  .openapi({ example: "wh_01jd7x2k9m4q8r6t5v3w1y0z" });

export const Webhook = z
  .object({
    id: WebhookId,
    owner: z.string(),
    url: z.string(),
    events: z.array(WebhookEventType),
    description: z.string(),
    scope: WebhookScope.nullable(),
    allUsers: z.boolean(),
    allowPrivate: z.boolean(),
    enabled: z.boolean(),
    disabledReason: z.string().nullable().openapi({ description: "Why it was disabled (a failure streak)." }),
    consecutiveFailures: z.number().int(),
    cursor: z.string().openapi({ description: "The last feed position it has taken events up to." }),
    createdAt: z.string(),
  })
  .openapi("Webhook");
export type Webhook = z.infer<typeof Webhook>;

export const WebhookCreated = Webhook.extend({
  secret: z.string().openapi({
    description: "`whsec_` + base64 of the signing key. Shown only in this answer.",
    example: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  }),
}).openapi("WebhookCreated");

export const WebhookList = z.object({ items: z.array(Webhook) }).openapi("WebhookList");

export const WebhookDelivery = z
  .object({
    messageId: z.string().openapi({ description: "The `webhook-id` header: the same on every try of this event." }),
    cursor: z.string().openapi({ description: "The event's feed position." }),
    jobId: z.string(),
    seq: z.number().int(),
    type: z.string(),
    attempts: z.number().int(),
    lastStatus: z.number().int().nullable().openapi({ description: "The receiver's last HTTP status." }),
    lastError: z.string().nullable(),
    nextAttemptAt: z.string().nullable(),
    deliveredAt: z.string().nullable(),
  })
  .openapi("WebhookDelivery");
export type WebhookDelivery = z.infer<typeof WebhookDelivery>;

export const WebhookDeliveryPage = z
  .object({ items: z.array(WebhookDelivery), nextCursor: z.string().nullable() })
  .openapi("WebhookDeliveryPage");

/** The body of every delivery. */
export const WebhookPayload = z
  .object({
    type: z.string().openapi({ example: "job.completed" }),
    timestamp: z.string().openapi({ description: "When the event happened (ISO 8601, gateway clock)." }),
    data: FeedEvent.extend({
      state: JobState.openapi({ description: "The job's state at this event." }),
      owner: z.string(),
      cluster: z.string(),
      name: z.string(),
    }),
  })
  .openapi("WebhookPayload");
export type WebhookPayload = z.infer<typeof WebhookPayload>;
