/**
 * Contracts of what users see of clusters, and who the caller is (kept apart from the handlers so
 * gateway/auth/scope.ts can name them without importing the handlers).
 */
import { createRoute, z } from "@hono/zod-openapi";
import { ClusterView, TokenKind, Via } from "../../schemas/index.ts";
import { requireRole } from "../middleware/auth.ts";
import { bearer, problems } from "./common.ts";

export const clustersRoute = createRoute({
  method: "get",
  path: "/v1/clusters",
  operationId: "listClusters",
  tags: ["clusters"],
  summary: "Clusters you may use: what they offer and whether their agent is alive",
  security: bearer,
  middleware: requireRole("user"),
  request: { query: z.strictObject({}) },
  responses: {
    200: {
      description: "Clusters",
      content: { "application/json": { schema: z.object({ items: z.array(ClusterView) }) } },
    },
    ...problems(401, 403, 429),
  },
});

export const meRoute = createRoute({
  method: "get",
  path: "/v1/me",
  operationId: "whoAmI",
  tags: ["clusters"],
  summary: "Who this token belongs to, and the gateway's clock",
  security: bearer,
  responses: {
    200: {
      description: "The caller",
      content: {
        "application/json": {
          schema: z
            .object({
              kind: TokenKind,
              user: z.string().nullable(),
              cluster: z.string().nullable(),
              via: Via,
              serverTime: z.string(),
            })
            .openapi("Me"),
        },
      },
    },
    ...problems(401, 429),
  },
});
