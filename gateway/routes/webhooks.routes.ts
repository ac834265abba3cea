/**
 * The webhook API's contracts: register, list, read, delete, re-enable, and the delivery log.
 */
import { createRoute } from "@hono/zod-openapi";
import {
  MAX_WEBHOOKS_PER_USER,
  Webhook,
  WebhookCreated,
  WebhookDeliveryPage,
  WebhookList,
  WebhookRequest,
} from "../../schemas/index.ts";
import { requireRole } from "../middleware/auth.ts";
import { IdParam, bearer, numericPageQuery, problems } from "./common.ts";

export const createWebhook = createRoute({
  method: "post",
  path: "/v1/webhooks",
  operationId: "createWebhook",
  tags: ["webhooks"],
  summary: "Register an endpoint that receives your jobs' events, signed",
  description: `Deliveries are POSTs signed the Standard Webhooks way (webhook-id, webhook-timestamp, webhook-signature); the answer carries the signing secret, shown only here. At most ${MAX_WEBHOOKS_PER_USER} webhooks per user (409 past it). Targets must be https:// and public, also after DNS resolution at delivery time; an admin may allow private ones (\`allowPrivate\`) and watch every user's jobs in a scope (\`allUsers\`).`,
  security: bearer,
  middleware: requireRole("user"),
  request: { body: { content: { "application/json": { schema: WebhookRequest } }, required: true } },
  responses: {
    201: {
      description: "Registered; `secret` is shown only now",
      content: { "application/json": { schema: WebhookCreated } },
    },
    ...problems(400, 401, 403, 409, 413, 422, 429),
  },
});

export const listWebhooks = createRoute({
  method: "get",
  path: "/v1/webhooks",
  operationId: "listWebhooks",
  tags: ["webhooks"],
  summary: "Your webhooks (an admin's list shows everyone's)",
  security: bearer,
  middleware: requireRole("user"),
  responses: {
    200: { description: "The webhooks, oldest first", content: { "application/json": { schema: WebhookList } } },
    ...problems(401, 403, 429),
  },
});

export const getWebhook = createRoute({
  method: "get",
  path: "/v1/webhooks/{id}",
  operationId: "getWebhook",
  tags: ["webhooks"],
  summary: "A webhook: whether it is enabled, why not, and its failure streak",
  security: bearer,
  middleware: requireRole("user"),
  request: { params: IdParam },
  responses: {
    200: { description: "The webhook", content: { "application/json": { schema: Webhook } } },
    ...problems(401, 404, 429),
  },
});

export const deleteWebhook = createRoute({
  method: "delete",
  path: "/v1/webhooks/{id}",
  operationId: "deleteWebhook",
  tags: ["webhooks"],
  summary: "Delete a webhook and its delivery log; nothing more is sent",
  security: bearer,
  middleware: requireRole("user"),
  request: { params: IdParam },
  responses: {
    204: { description: "Deleted" },
    ...problems(401, 404, 429),
  },
});

export const enableWebhook = createRoute({
  method: "post",
  path: "/v1/webhooks/{id}/enable",
  operationId: "enableWebhook",
  tags: ["webhooks"],
  summary: "Re-enable a webhook that a failure streak disabled; delivery resumes where it stopped",
  security: bearer,
  middleware: requireRole("user"),
  request: { params: IdParam },
  responses: {
    200: { description: "The webhook, enabled", content: { "application/json": { schema: Webhook } } },
    ...problems(401, 404, 429),
  },
});

export const webhookDeliveries = createRoute({
  method: "get",
  path: "/v1/webhooks/{id}/deliveries",
  operationId: "webhookDeliveries",
  tags: ["webhooks"],
  summary: "The delivery log, newest event first: attempts, last status or error, next try, delivered at",
  security: bearer,
  middleware: requireRole("user"),
  request: {
    params: IdParam,
    query: numericPageQuery(18),
  },
  responses: {
    200: { description: "A page of deliveries", content: { "application/json": { schema: WebhookDeliveryPage } } },
    ...problems(401, 404, 422, 429),
  },
});
