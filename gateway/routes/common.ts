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

/** A router whose failed validations become 422 problems naming the field. */
export function createRouter() {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        throw validationProblem(result.error, result.target === "json" ? "body" : result.target);
      }
    },
  });
}

export const IdParam = z.object({
  id: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "id", in: "path" } }),
});
