/**
 * Pieces every route definition shares: problem responses, the router factory with the one
 * validation hook, and security requirements.
 */
import { OpenAPIHono, z } from "@hono/zod-openapi";
import { Problem } from "../../schemas/index.ts";
import type { AppEnv } from "../deps.ts";
import { validationProblem } from "../problem.ts";

const DESCRIPTIONS: Record<number, string> = {
  400: "Malformed request",
  401: "Missing, unknown, revoked or expired token",
  403: "The token may not do this",
  404: "No such object, or not yours",
  409: "Conflict with the current state",
  413: "Body too large",
  422: "The request is well-formed but invalid; `field` names the culprit",
  429: "Rate limited; see Retry-After",
  503: "Nobody can serve this now (e.g. no agent of the cluster is connected)",
  504: "The cluster's agent did not answer in time",
};

/** Spread into a route's responses: `...problems(401, 404)`. */
export function problems(...statuses: (keyof typeof DESCRIPTIONS)[]) {
  return Object.fromEntries(
    statuses.map((status) => [
      status,
      { description: DESCRIPTIONS[status] ?? "Error", content: { "application/problem+json": { schema: Problem } } },
    ]),
  ) as Record<number, { description: string; content: { "application/problem+json": { schema: typeof Problem } } }>;
}

export const bearer = [{ bearer: [] }];

/**
 * The query of a keyset page whose cursor is a number of at most `digits` digits (an element
 * index, a row id): `?cursor=<nextCursor>&limit=<1-500, default 100>`.
 */
export function numericPageQuery(digits: number) {
  return z.strictObject({
    cursor: z
      .string()
      .regex(new RegExp(`^\\d{1,${digits}}$`), "nextCursor from the previous page")
      .optional()
      .openapi({ description: "nextCursor from the previous page." }),
    limit: z.coerce.number().int().min(1).max(500).default(100),
  });
}

type Contract = {
  request?: { body?: { content?: Record<string, { schema?: unknown }> }; query?: unknown; params?: unknown };
};

function schemaOf(route: Contract, target: string): unknown {
  if (target === "json") {
    return route.request?.body?.content?.["application/json"]?.schema;
  }
  return target === "query" ? route.request?.query : target === "param" ? route.request?.params : undefined;
}

/**
 * A router whose failed validations become one 422 problem naming every field at fault. Each
 * route's hook knows the route's own schemas, so an unknown key's message can name the field meant.
 */
export function createRouter() {
  const app = new OpenAPIHono<AppEnv>();
  const register = app.openapi;
  app.openapi = ((route: Contract, handler: unknown, hook?: unknown) =>
    register(
      route as never,
      handler as never,
      (hook ??
        ((result: { success: boolean; error?: z.ZodError; target: string }) => {
          if (!result.success && result.error) {
            const target = result.target === "json" ? "body" : result.target;
            throw validationProblem(result.error, target, schemaOf(route, result.target));
          }
        })) as never,
    )) as typeof register;
  return app;
}

export const IdParam = z.object({
  id: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "id", in: "path" } }),
});
