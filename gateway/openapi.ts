/**
 * The OpenAPI document without a database: createApp only wires routes at construction time.
 */
import { createApp, openApiDocument } from "./app.ts";
import { parseGatewayConfig } from "./config.ts";
import type { Deps } from "./deps.ts";
import { unavailableBlobStore } from "./files/blob-store.ts";
import { createRateLimiter } from "./middleware/rate-limit.ts";
import { createNotifier } from "./notifier.ts";

export function buildOpenApiDocument() {
  const deps: Deps = {
    db: undefined as never,
    config: parseGatewayConfig({}),
    now: () => 0,
    notifier: createNotifier(),
    rateLimiter: createRateLimiter(0, 1, () => 0),
    log: () => {},
    blobs: unavailableBlobStore,
    recheckMs: 1_000,
  };
  return openApiDocument(createApp(deps));
}
