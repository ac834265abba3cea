/**
 * Webhook handlers. Thin: validation and the role are in the route contracts (webhooks.routes.ts),
 * the use cases in services/webhooks.ts.
 */
import type { RouteHandler } from "@hono/zod-openapi";
import type { Deps } from "../deps.ts";
import {
  asUser,
  createWebhook,
  listVisibleWebhooks,
  readWebhook,
  reenableWebhook,
  removeWebhook,
  webhookDeliveries,
} from "../services/webhooks.ts";
import { createRouter } from "./common.ts";
import * as routes from "./webhooks.routes.ts";

export function webhooksRouter(deps: Deps) {
  const create: RouteHandler<typeof routes.createWebhook> = async (c) => {
    const hook = await createWebhook(deps, asUser(c.get("principal")), c.req.valid("json"));
    c.header("location", `/v1/webhooks/${hook.id}`);
    c.header("cache-control", "no-store");
    return c.json(hook, 201);
  };

  const list: RouteHandler<typeof routes.listWebhooks> = async (c) =>
    c.json(await listVisibleWebhooks(deps, asUser(c.get("principal"))), 200);

  const get: RouteHandler<typeof routes.getWebhook> = async (c) =>
    c.json(await readWebhook(deps, asUser(c.get("principal")), c.req.valid("param").id), 200);

  const remove: RouteHandler<typeof routes.deleteWebhook> = async (c) => {
    await removeWebhook(deps, asUser(c.get("principal")), c.req.valid("param").id);
    return c.body(null, 204);
  };

  const enable: RouteHandler<typeof routes.enableWebhook> = async (c) =>
    c.json(await reenableWebhook(deps, asUser(c.get("principal")), c.req.valid("param").id), 200);

  const deliveries: RouteHandler<typeof routes.webhookDeliveries> = async (c) =>
    c.json(
      await webhookDeliveries(deps, asUser(c.get("principal")), c.req.valid("param").id, c.req.valid("query")),
      200,
    );

  return createRouter()
    .openapi(routes.createWebhook, create)
    .openapi(routes.listWebhooks, list)
    .openapi(routes.getWebhook, get)
    .openapi(routes.deleteWebhook, remove)
    .openapi(routes.enableWebhook, enable)
    .openapi(routes.webhookDeliveries, deliveries);
}
