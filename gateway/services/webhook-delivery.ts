/**
 * The delivery pass, shared by the Node loop (gateway/webhook-loop.ts) and the Worker's cron: for
 * each due webhook, take its new events into its queue, then send the queue in feed order until one
 * try fails. Stopping at the first failure keeps every job's events in order (event n+1 is never
 * sent before n succeeded) and backs off the whole receiver, which is what is usually down. Only the
 * transport differs by host: Node pins the address it checked (webhook-transport-node.ts), Workers
 * use fetch.
 */
import { readCappedText } from "../../client/read-capped.ts";
import { signWebhook } from "../../client/webhooks.ts";
import {
  WEBHOOK_RESPONSE_CAP_BYTES,
  WEBHOOK_RETRY,
  type WebhookPayload,
  webhookEventType,
} from "../../schemas/index.ts";
import { VERSION } from "../../schemas/version.ts";
import type { Deps } from "../deps.ts";
import {
  type StoredWebhook,
  type TakenEvent,
  claimWebhook,
  dueWebhookIds,
  messageId,
  pruneDeliveries,
  queuedDeliveries,
  recordDelivered,
  recordFailed,
  releaseWebhook,
  takeEvents,
} from "../store/webhooks.ts";
import { openSecret } from "../webhook-secret-box.ts";
import { urlFault } from "../webhook-target.ts";

/** What one try came to: the receiver's status (2xx is success), or why it never answered. */
export type AttemptResult = { status: number; excerpt: string } | { status: null; error: string };

export type WebhookTransport = (
  target: { url: string; allowPrivate: boolean },
  message: { headers: Record<string, string>; body: string },
  timeoutMs: number,
) => Promise<AttemptResult>;

/**
 * The delay before try `failures + 1`: doubling from `baseMs`, capped, the upper half random so
 * many webhooks failing together do not retry together.
 */
export function retryDelayMs(failures: number, baseMs: number, random: () => number = Math.random): number {
  const full = Math.min(WEBHOOK_RETRY.capMs, baseMs * 2 ** Math.min(Math.max(failures - 1, 0), 30));
  return Math.round(full / 2 + (full / 2) * random());
}

/** Why the webhook is disabled after this failure, or null while it keeps trying. */
export function disableReason(failures: number, failingSince: number, now: number): string | null {
  if (failures >= WEBHOOK_RETRY.disableAfterFailures) {
    return `disabled after ${failures} failed deliveries in a row`;
  }
  if (now - failingSince >= WEBHOOK_RETRY.disableAfterMs) {
    const hours = Math.round((now - failingSince) / 3_600_000);
    return `disabled after failing for ${hours} hours without a successful delivery`;
  }
  return null;
}

/** The body of an event's delivery, fixed when it is taken so every try sends the same bytes. */
export function payloadOf(event: TakenEvent): string {
  const { jobState, cursor, ...rest } = event;
  const payload: WebhookPayload = {
    type: webhookEventType(event),
    timestamp: event.at,
    data: { ...rest, cursor: String(cursor), state: (event.state ?? jobState) as WebhookPayload["data"]["state"] },
  };
  return JSON.stringify(payload);
}

export type PassLimits = { webhooks: number; perWebhook: number; budgetMs: number };

/** One pass's bounds: the Worker's cron runs one per minute, the Node loop one per wake-up. */
export const DEFAULT_PASS: PassLimits = { webhooks: 50, perWebhook: 100, budgetMs: 45_000 };

/**
 * Runs one pass. Returns how many deliveries succeeded. Never throws for one webhook's trouble:
 * it is logged and the pass goes on with the next.
 */
export async function runDeliveryPass(
  deps: Deps,
  transport: WebhookTransport,
  limits: PassLimits = DEFAULT_PASS,
  signal?: AbortSignal,
): Promise<number> {
  const start = deps.now();
  const timeoutMs = deps.config.SLURMGATE_WEBHOOK_TIMEOUT_MS;
  let delivered = 0;
  for (const id of await dueWebhookIds(deps.db, start, limits.webhooks)) {
    if (signal?.aborted || deps.now() - start > limits.budgetMs) {
      break;
    }
    // Held a little past the budget and one try, so an overlapping pass elsewhere cannot take it meanwhile.
    const hook = await claimWebhook(deps.db, id, deps.now(), start + limits.budgetMs + 2 * timeoutMs);
    if (!hook) {
      continue;
    }
    try {
      delivered += await deliverWebhook(deps, transport, hook, limits, start, signal);
    } catch (error) {
      deps.log({ level: "error", msg: "webhook pass failed", webhook: id, error: String(error) });
    } finally {
      await releaseWebhook(deps.db, id, deps.now()).catch(() => undefined);
    }
  }
  return delivered;
}

async function deliverWebhook(
  deps: Deps,
  transport: WebhookTransport,
  hook: StoredWebhook,
  limits: PassLimits,
  start: number,
  signal: AbortSignal | undefined,
): Promise<number> {
  await takeEvents(deps.db, hook, deps.now(), payloadOf);
  const allowPrivate = hook.allowPrivate || deps.config.SLURMGATE_WEBHOOK_ALLOW_PRIVATE;
  // A secret that cannot be opened or a URL the rule now refuses (the setting changed) fails every
  // try with the reason, like an unreachable receiver, so the streak and the log show it.
  let secret = "";
  let refusal: string | undefined;
  try {
    secret = await openSecret(hook.secret, hook.id, deps.config.SLURMGATE_WEBHOOK_SECRET_KEY);
    const fault = urlFault(hook.url, allowPrivate);
    refusal = fault && `refused: ${fault}`;
  } catch (error) {
    refusal = (error as Error).message;
  }
  let delivered = 0;
  let failures = hook.consecutiveFailures;
  let failingSince = hook.failingSince;
  for (const item of await queuedDeliveries(deps.db, hook.id, limits.perWebhook)) {
    if (signal?.aborted || deps.now() - start > limits.budgetMs) {
      break;
    }
    const id = messageId(hook.id, item.cursor);
    const timestamp = Math.floor(deps.now() / 1000);
    const result: AttemptResult = refusal
      ? { status: null, error: refusal }
      : await transport(
          { url: hook.url, allowPrivate },
          {
            headers: {
              "content-type": "application/json",
              "user-agent": `slurmgate-webhooks/${VERSION}`,
              "webhook-id": id,
              "webhook-timestamp": String(timestamp),
              "webhook-signature": await signWebhook(secret, id, timestamp, item.body),
            },
            body: item.body,
          },
          deps.config.SLURMGATE_WEBHOOK_TIMEOUT_MS,
        ).catch((error: unknown): AttemptResult => ({ status: null, error: String(error) }));
    const now = deps.now();
    if (result.status !== null && result.status >= 200 && result.status < 300) {
      await recordDelivered(deps.db, hook.id, item.cursor, result.status, now);
      delivered++;
      failures = 0;
      failingSince = null;
      continue;
    }
    failures++;
    failingSince ??= now;
    const error =
      result.status === null
        ? result.error
        : `HTTP ${result.status}${result.status >= 300 && result.status < 400 ? " (redirects are not followed)" : ""}${result.excerpt ? `: ${result.excerpt}` : ""}`;
    const disable = disableReason(failures, failingSince, now);
    await recordFailed(
      deps.db,
      hook.id,
      item.cursor,
      {
        status: result.status,
        error,
        retryAt: now + retryDelayMs(failures, deps.config.SLURMGATE_WEBHOOK_RETRY_BASE_MS),
        failingSince,
        disable: disable ? `${disable}; last: ${error}`.slice(0, 512) : null,
      },
      now,
    );
    deps.log({
      level: "warn",
      msg: "webhook delivery failed",
      webhook: hook.id,
      event: id,
      error,
      disabled: !!disable,
    });
    break;
  }
  await pruneDeliveries(deps.db, hook.id, deps.now());
  return delivered;
}

/**
 * The transport on Workers (and wherever fetch is all there is): no redirects, a timeout, and at
 * most WEBHOOK_RESPONSE_CAP_BYTES of the answer read. Workers cannot reach private addresses, and
 * the URL's literal host was checked before this is called.
 */
export const fetchTransport: WebhookTransport = async (target, message, timeoutMs) => {
  const response = await fetch(target.url, {
    method: "POST",
    headers: message.headers,
    body: message.body,
    redirect: "manual",
    signal: AbortSignal.timeout(timeoutMs),
  });
  const excerpt = response.ok ? null : await readCappedText(response, WEBHOOK_RESPONSE_CAP_BYTES).catch(() => null);
  if (response.ok) {
    await response.body?.cancel().catch(() => undefined);
  }
  return { status: response.status, excerpt: (excerpt ?? "").slice(0, 200) };
};
