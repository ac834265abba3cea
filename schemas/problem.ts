/**
 * RFC 9457 problem details, the one error shape of the API.
 */
import { z } from "@hono/zod-openapi";

export const ProblemCode = z
  .enum([
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "idempotency_conflict",
    "stale_lease",
    "illegal_transition",
    "validation_failed",
    "unsatisfiable",
    "payload_too_large",
    "method_not_allowed",
    "unsupported_media_type",
    "range_not_satisfiable",
    "rate_limited",
    "unavailable",
    "agent_timeout",
    "internal",
  ])
  .openapi("ProblemCode");
export type ProblemCode = z.infer<typeof ProblemCode>;

export const FieldError = z.object({ field: z.string(), message: z.string() }).openapi("FieldError");

export const Problem = z
  .object({
    type: z.string().openapi({ example: "https://slurmgate.dev/problems/validation_failed" }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    instance: z.string().optional(),
    code: ProblemCode,
    field: z
      .string()
      .optional()
      .openapi({ description: "The request field at fault, as a dotted path (body.resources.time)." }),
    errors: z.array(FieldError).optional(),
    requestId: z
      .string()
      .optional()
      .openapi({ description: "The request's id, also in the X-Request-Id response header and the gateway's logs." }),
  })
  .openapi("Problem");
export type Problem = z.infer<typeof Problem>;
