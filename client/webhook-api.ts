/**
 * The webhook routes as client methods: register (the answer holds the secret, shown once), list,
 * read, delete, re-enable, and the delivery log across pages. Verifying a delivery is in webhooks.ts.
 */
import type { components } from "./generated/api.ts";
import type { RawClient } from "./raw.ts";
import { shapes, unwrap } from "./unwrap.ts";

type Schemas = components["schemas"];
export type Webhook = Schemas["Webhook"];
export type WebhookCreated = Schemas["WebhookCreated"];
export type WebhookDelivery = Schemas["WebhookDelivery"];
export type WebhookEventType = Schemas["WebhookEventType"];
/** What you register; `allUsers` and `allowPrivate` are for admins and default to false. */
export type WebhookInput = Omit<Schemas["WebhookRequest"], "allUsers" | "allowPrivate"> &
  Partial<Pick<Schemas["WebhookRequest"], "allUsers" | "allowPrivate">>;

export type WebhookApi = {
  /** @example const { id, secret } = await client.createWebhook({ url, events: ["job.completed", "job.failed"] }); */
  createWebhook(input: WebhookInput): Promise<WebhookCreated>;
  listWebhooks(): Promise<Webhook[]>;
  getWebhook(id: string): Promise<Webhook>;
  deleteWebhook(id: string): Promise<void>;
  /** Turns a webhook that a failure streak disabled back on; delivery resumes where it stopped. */
  enableWebhook(id: string): Promise<Webhook>;
  /** The delivery log, newest event first, across pages. */
  webhookDeliveries(id: string, options?: { pageSize?: number }): AsyncGenerator<WebhookDelivery>;
};

export function createWebhookApi(raw: RawClient): WebhookApi {
  const path = (id: string) => ({ params: { path: { id } } });
  return {
    createWebhook: (input) =>
      unwrap(
        raw.POST("/v1/webhooks", { body: { allUsers: false, allowPrivate: false, ...input } }),
        shapes.object,
      ) as Promise<WebhookCreated>,
    listWebhooks: async () => (await unwrap(raw.GET("/v1/webhooks"), shapes.items)).items as Webhook[],
    getWebhook: (id) => unwrap(raw.GET("/v1/webhooks/{id}", path(id)), shapes.object) as Promise<Webhook>,
    deleteWebhook: async (id) => {
      await unwrap(raw.DELETE("/v1/webhooks/{id}", path(id)));
    },
    enableWebhook: (id) => unwrap(raw.POST("/v1/webhooks/{id}/enable", path(id)), shapes.object) as Promise<Webhook>,
    async *webhookDeliveries(id, options = {}) {
      let cursor: string | undefined;
      do {
        const page = (await unwrap(
          raw.GET("/v1/webhooks/{id}/deliveries", {
            params: { path: { id }, query: { limit: options.pageSize ?? 100, ...(cursor ? { cursor } : {}) } },
          }),
          shapes.items,
        )) as { items: WebhookDelivery[]; nextCursor: string | null };
        yield* page.items;
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
    },
  };
}
