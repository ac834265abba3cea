/**
 * Webhook use cases: register (the secret is shown once), list, read, delete, re-enable, and the
 * delivery log. A user sees and changes only their own webhooks; another user's is "not found".
 */
import { newWebhookSecret } from "../../client/webhooks.ts";
import { MAX_WEBHOOKS_PER_USER, type Webhook, type WebhookDelivery, type WebhookRequest } from "../../schemas/index.ts";
import type { Deps, Principal } from "../deps.ts";
import { newId } from "../ids.ts";
import { FEED_TOPIC } from "../notifier.ts";
import { ApiProblem, listedProblem } from "../problem.ts";
import {
  type StoredWebhook,
  deleteWebhook,
  enableWebhook,
  getWebhook,
  insertWebhook,
  listDeliveries,
  listWebhooks,
  publicWebhook,
} from "../store/webhooks.ts";
import { sealSecret } from "../webhook-secret-box.ts";
import { urlFault } from "../webhook-target.ts";

type UserPrincipal = Extract<Principal, { kind: "user" | "admin" }>;

/** The routes require a user or admin token (requireRole("user")); this only narrows the type. */
export function asUser(principal: Principal): UserPrincipal {
  if (principal.kind === "agent") {
    throw new ApiProblem("forbidden", "webhooks need a user or admin token");
  }
  return principal;
}

export async function createWebhook(
  deps: Deps,
  principal: UserPrincipal,
  request: WebhookRequest,
): Promise<Webhook & { secret: string }> {
  const admin = principal.kind === "admin";
  const faults = [
    ...(request.allUsers && !admin
      ? [{ field: "body.allUsers", message: "only an admin may watch every user's jobs" }]
      : []),
    ...(request.allowPrivate && !admin
      ? [{ field: "body.allowPrivate", message: "only an admin may allow private or loopback targets" }]
      : []),
  ];
  const fault = urlFault(request.url, request.allowPrivate || deps.config.SLURMGATE_WEBHOOK_ALLOW_PRIVATE);
  if (fault) {
    faults.unshift({ field: "body.url", message: fault });
  }
  if (faults.length > 0) {
    throw listedProblem("validation_failed", faults);
  }
  const secret = newWebhookSecret();
  const id = newId("wh", deps.now());
  const inserted = await insertWebhook(
    deps.db,
    {
      id,
      owner: principal.user,
      url: request.url,
      events: [...new Set(request.events)],
      description: request.description ?? "",
      scope: request.scope ?? null,
      allUsers: request.allUsers,
      allowPrivate: request.allowPrivate,
      secret: await sealSecret(secret, id, deps.config.SLURMGATE_WEBHOOK_SECRET_KEY),
    },
    MAX_WEBHOOKS_PER_USER,
    deps.now(),
  );
  if (!inserted) {
    throw new ApiProblem("conflict", `you already have ${MAX_WEBHOOKS_PER_USER} webhooks; delete one first`);
  }
  const stored = await getWebhook(deps.db, id);
  return { ...publicWebhook(stored!), secret };
}

/** The webhook if the caller may see it; an admin sees every one. Otherwise the same 404 as a missing one. */
async function visibleWebhook(deps: Deps, principal: UserPrincipal, id: string): Promise<StoredWebhook> {
  const stored = await getWebhook(deps.db, id);
  if (!stored || (principal.kind !== "admin" && stored.owner !== principal.user)) {
    throw new ApiProblem("not_found", `webhook ${id} not found`, { field: "path.id" });
  }
  return stored;
}

export async function listVisibleWebhooks(deps: Deps, principal: UserPrincipal): Promise<{ items: Webhook[] }> {
  const rows = await listWebhooks(deps.db, principal.kind === "admin" ? undefined : principal.user);
  return { items: rows.map(publicWebhook) };
}

export async function readWebhook(deps: Deps, principal: UserPrincipal, id: string): Promise<Webhook> {
  return publicWebhook(await visibleWebhook(deps, principal, id));
}

export async function removeWebhook(deps: Deps, principal: UserPrincipal, id: string): Promise<void> {
  await visibleWebhook(deps, principal, id);
  await deleteWebhook(deps.db, id);
}

export async function reenableWebhook(deps: Deps, principal: UserPrincipal, id: string): Promise<Webhook> {
  await visibleWebhook(deps, principal, id);
  await enableWebhook(deps.db, id);
  deps.notifier.notify(FEED_TOPIC);
  return publicWebhook((await getWebhook(deps.db, id))!);
}

export async function webhookDeliveries(
  deps: Deps,
  principal: UserPrincipal,
  id: string,
  query: { cursor?: string; limit: number },
): Promise<{ items: WebhookDelivery[]; nextCursor: string | null }> {
  await visibleWebhook(deps, principal, id);
  return listDeliveries(deps.db, {
    webhookId: id,
    before: query.cursor === undefined ? undefined : Number(query.cursor),
    limit: query.limit,
  });
}
