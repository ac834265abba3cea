/**
 * The one error funnel: handlers throw ApiProblem; onError renders RFC 9457 problem+json.
 */
import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "@hono/zod-openapi";
import type { Problem, ProblemCode } from "../schemas/index.ts";
import { unknownFieldMessage } from "./did-you-mean.ts";

const PROBLEM_BASE = "https://slurmgate.dev/problems/";

/** HTTP status of each problem code; exhaustive so a new code cannot ship without one. */
export function codeToStatus(code: ProblemCode): ContentfulStatusCode {
  switch (code) {
    case "bad_request":
      return 400;
    case "unauthorized":
      return 401;
    case "forbidden":
      return 403;
    case "not_found":
      return 404;
    case "conflict":
    case "idempotency_conflict":
    case "stale_lease":
    case "illegal_transition":
      return 409;
    case "payload_too_large":
      return 413;
    case "validation_failed":
    case "unsatisfiable":
      return 422;
    case "rate_limited":
      return 429;
    case "unavailable":
      return 503;
    case "internal":
      return 500;
  }
}

const TITLES: Record<ProblemCode, string> = {
  bad_request: "Bad request",
  unauthorized: "Unauthorized",
  forbidden: "Forbidden",
  not_found: "Not found",
  conflict: "Conflict",
  idempotency_conflict: "Idempotency key reused with a different request",
  stale_lease: "Stale lease",
  illegal_transition: "Illegal state transition",
  validation_failed: "Request validation failed",
  unsatisfiable: "No cluster can run this job",
  payload_too_large: "Payload too large",
  rate_limited: "Too many requests",
  unavailable: "Service unavailable",
  internal: "Internal error",
};

export type FieldError = { field: string; message: string };

export class ApiProblem extends HTTPException {
  readonly code: ProblemCode;
  readonly field: string | undefined;
  readonly errors: FieldError[] | undefined;
  readonly headers: Record<string, string>;

  constructor(
    code: ProblemCode,
    detail: string,
    extra: { field?: string; errors?: FieldError[]; headers?: Record<string, string> } = {},
  ) {
    super(codeToStatus(code), { message: detail });
    this.code = code;
    this.field = extra.field;
    this.errors = extra.errors;
    this.headers = extra.headers ?? {};
  }
}

export function problemBody(problem: ApiProblem, instance?: string): Problem {
  return {
    type: PROBLEM_BASE + problem.code,
    title: TITLES[problem.code],
    status: problem.status,
    detail: problem.message,
    code: problem.code,
    ...(instance ? { instance } : {}),
    ...(problem.field ? { field: problem.field } : {}),
    ...(problem.errors ? { errors: problem.errors } : {}),
  };
}

export function problemResponse(c: Context, problem: ApiProblem): Response {
  return c.json(problemBody(problem, new URL(c.req.url).pathname), problem.status as ContentfulStatusCode, {
    "content-type": "application/problem+json",
    ...problem.headers,
  });
}

function fromHttpException(err: HTTPException): ApiProblem {
  if (err.status === 413) {
    return new ApiProblem("payload_too_large", err.message || "request body is too large");
  }
  if (err.status === 401) {
    return new ApiProblem("unauthorized", err.message || "missing or invalid bearer token", {
      field: "header.authorization",
    });
  }
  if (err.status === 400) {
    return new ApiProblem("bad_request", err.message || "malformed request", { field: "body" });
  }
  return new ApiProblem("internal", "unexpected error");
}

export function createErrorHandler(log: (entry: Record<string, unknown>) => void): ErrorHandler {
  return (err, c) => {
    if (err instanceof ApiProblem) {
      return problemResponse(c, err);
    }
    if (err instanceof HTTPException) {
      return problemResponse(c, fromHttpException(err));
    }
    if (err instanceof SyntaxError) {
      return problemResponse(
        c,
        new ApiProblem("bad_request", `malformed JSON body: ${err.message}`, { field: "body" }),
      );
    }
    log({ level: "error", msg: "unhandled error", path: c.req.path, error: String(err), stack: (err as Error).stack });
    return problemResponse(c, new ApiProblem("internal", "unexpected error; it has been logged"));
  };
}

export const notFound: NotFoundHandler = (c) =>
  problemResponse(c, new ApiProblem("not_found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`));

/** How many field errors one answer lists; past it, `detail` says how many more there were. */
const MAX_FIELD_ERRORS = 100;

/**
 * Turns zod issues into field errors named like `body.resources.time`, one per refused key, and
 * counts them all. With the schema that was applied, an unknown key's message names the field
 * probably meant. Messages are built for the first `limit` only: a body of 100,000 unknown keys
 * costs a count, not 100,000 suggestions.
 */
export function zodFieldErrors(
  error: z.ZodError,
  target: string,
  schema?: unknown,
  limit = Number.POSITIVE_INFINITY,
): { errors: FieldError[]; total: number } {
  const errors: FieldError[] = [];
  let total = 0;
  const noun = target === "body" ? "field" : `${target} parameter`;
  for (const issue of error.issues) {
    const path = issue.path.map(String);
    const keys = issue.code === "unrecognized_keys" ? issue.keys : [undefined];
    for (const key of keys) {
      total++;
      if (errors.length >= limit) {
        continue;
      }
      errors.push(
        key === undefined
          ? { field: [target, ...path].join("."), message: issue.message }
          : { field: [target, ...path, key].join("."), message: unknownFieldMessage(schema, issue.path, key, noun) },
      );
    }
  }
  return { errors, total };
}

/**
 * The shared defaultHook of every route: one 422 listing every field at fault and why, so a body
 * with five mistakes takes one round trip, not five.
 */
export function validationProblem(error: z.ZodError, target: string, schema?: unknown): ApiProblem {
  const { errors, total } = zodFieldErrors(error, target, schema, MAX_FIELD_ERRORS);
  const lines = errors.map((e) => (e.message.startsWith("unknown ") ? e.message : `${e.field}: ${e.message}`));
  const more = total > errors.length ? `; and ${total - errors.length} more not listed` : "";
  const detail =
    lines.length === 0
      ? "request did not validate"
      : lines.length === 1
        ? (lines[0] ?? "")
        : `${total} problems: ${lines.map((line, i) => `(${i + 1}) ${line}`).join(" ")}${more}`;
  return new ApiProblem("validation_failed", detail, { field: errors[0]?.field, errors });
}
