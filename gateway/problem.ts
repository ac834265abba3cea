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
    case "method_not_allowed":
      return 405;
    case "payload_too_large":
      return 413;
    case "unsupported_media_type":
      return 415;
    case "range_not_satisfiable":
      return 416;
    case "validation_failed":
    case "unsatisfiable":
      return 422;
    case "rate_limited":
      return 429;
    case "unavailable":
      return 503;
    case "agent_timeout":
      return 504;
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
  method_not_allowed: "Method not allowed",
  unsupported_media_type: "Unsupported media type",
  range_not_satisfiable: "Range not satisfiable",
  rate_limited: "Too many requests",
  unavailable: "Service unavailable",
  agent_timeout: "The cluster's agent did not answer in time",
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

/** The media type every request body of the API is sent as. */
export const BODY_MEDIA_TYPE = "application/json";

export function problemBody(problem: ApiProblem, instance?: string, requestId?: string): Problem {
  return {
    type: PROBLEM_BASE + problem.code,
    title: TITLES[problem.code],
    status: problem.status,
    detail: problem.message,
    code: problem.code,
    ...(instance ? { instance } : {}),
    ...(problem.field ? { field: problem.field } : {}),
    ...(problem.errors ? { errors: problem.errors } : {}),
    ...(requestId ? { requestId } : {}),
  };
}

export function problemResponse(c: Context, problem: ApiProblem): Response {
  const requestId = c.get("requestId") as string | undefined;
  return c.json(problemBody(problem, new URL(c.req.url).pathname, requestId), problem.status as ContentfulStatusCode, {
    "content-type": "application/problem+json",
    ...problem.headers,
  });
}

/** Hono's and its middlewares' own refusals (validator, media-type gate, body limit), each as its own problem. */
function fromHttpException(err: HTTPException, c: Context): ApiProblem | undefined {
  switch (err.status) {
    case 400:
      return new ApiProblem("bad_request", err.message || "malformed request", { field: "body" });
    case 401:
      return new ApiProblem("unauthorized", err.message || "missing or invalid bearer token", {
        field: "header.authorization",
      });
    case 403:
      return new ApiProblem("forbidden", err.message || "not allowed");
    case 404:
      return new ApiProblem("not_found", err.message || "not found");
    case 405:
      return new ApiProblem("method_not_allowed", err.message || `${c.req.method} is not allowed here`);
    case 413:
      return new ApiProblem("payload_too_large", err.message || "request body is too large", { field: "body" });
    case 415: {
      const sent = c.req.header("content-type");
      return new ApiProblem(
        "unsupported_media_type",
        `${sent ? `Content-Type '${sent.slice(0, 100)}' is not accepted` : "a body without a Content-Type is not accepted"}; send Content-Type: ${BODY_MEDIA_TYPE}`,
        { field: "header.content-type", headers: { "accept-post": BODY_MEDIA_TYPE } },
      );
    }
    case 422:
      return new ApiProblem("validation_failed", err.message || "request did not validate");
    case 429:
      return new ApiProblem("rate_limited", err.message || "too many requests");
    case 503:
      return new ApiProblem("unavailable", err.message || "service unavailable");
    default:
      return undefined;
  }
}

/**
 * Renders every thrown error as problem+json. Every 5xx is logged at level error with the request
 * id that its problem body carries, so a user's report can be matched to the log line.
 */
export function createErrorHandler(log: (entry: Record<string, unknown>) => void): ErrorHandler {
  return (err, c) => {
    const problem = toProblem(err, c);
    if (problem.status >= 500) {
      logServerError(c, log, problem, err);
    }
    return problemResponse(c, problem);
  };
}

function toProblem(err: Error, c: Context): ApiProblem {
  if (err instanceof ApiProblem) {
    return err;
  }
  if (err instanceof HTTPException) {
    const mapped = fromHttpException(err, c);
    if (mapped) {
      return mapped;
    }
    if (err.status < 500) {
      // A refusal this table does not know yet: still the client's fault, never an internal error.
      return new ApiProblem("bad_request", err.message || `refused with HTTP ${err.status}`);
    }
  }
  if (err instanceof SyntaxError) {
    return new ApiProblem("bad_request", `malformed JSON body: ${err.message}`, { field: "body" });
  }
  return new ApiProblem("internal", "unexpected error; it has been logged");
}

/** One error line per failed request, with its id; marks the context so logServerResponse does not repeat it. */
export function logServerError(
  c: Context,
  log: (entry: Record<string, unknown>) => void,
  problem: ApiProblem,
  err?: unknown,
) {
  c.set("errorLogged", true);
  log({
    level: "error",
    msg: err === problem ? `answered ${problem.status} ${problem.code}` : "unhandled error",
    requestId: c.get("requestId"),
    method: c.req.method,
    path: c.req.path,
    status: problem.status,
    ...(err !== undefined && err !== problem
      ? { error: String(err), stack: err instanceof Error ? err.stack : undefined }
      : { detail: problem.message }),
  });
}

/** For 5xx answers that were returned rather than thrown: still one error line with the request id. */
export function logServerResponse(c: Context, log: (entry: Record<string, unknown>) => void) {
  if (c.res.status >= 500 && !c.get("errorLogged")) {
    c.set("errorLogged", true);
    log({
      level: "error",
      msg: `answered ${c.res.status}`,
      requestId: c.get("requestId"),
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
    });
  }
}

/** `/v1/jobs/:id` → /^\/v1\/jobs\/[^/]+$/ */
function routePattern(path: string): RegExp {
  const escaped = path.replace(/[.+?^$()|[\]\\]/g, "\\$&").replace(/:[^/]+/g, "[^/]+");
  return new RegExp(`^${escaped}$`);
}

/**
 * Unknown paths are 404; a known path with a method it does not serve is 405 with Allow, so a
 * client learns what it got wrong rather than that the route does not exist.
 */
export function createNotFoundHandler(routes: () => { method: string; path: string }[]): NotFoundHandler {
  let table: { pattern: RegExp; method: string }[] | undefined;
  return (c) => {
    table ??= routes()
      .filter((r) => r.method !== "ALL" && !r.path.includes("*"))
      .map((r) => ({
        method: r.method.toUpperCase(),
        pattern: routePattern(r.path),
      }));
    const path = c.req.path;
    const allowed = [...new Set(table.filter((r) => r.pattern.test(path)).map((r) => r.method))];
    if (allowed.length > 0) {
      if (allowed.includes("GET")) {
        allowed.push("HEAD");
      }
      return problemResponse(
        c,
        new ApiProblem("method_not_allowed", `${c.req.method} is not allowed on ${path}; use ${allowed.join(", ")}`, {
          headers: { allow: allowed.join(", ") },
        }),
      );
    }
    return problemResponse(c, new ApiProblem("not_found", `no route for ${c.req.method} ${path}`));
  };
}

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
  return listedProblem("validation_failed", errors, total);
}

/**
 * One problem listing field errors (at most MAX_FIELD_ERRORS of `total`), its `field` the first's.
 * Also how a sweep names every element's refusal at once.
 */
export function listedProblem(code: ProblemCode, all: FieldError[], total = all.length): ApiProblem {
  const errors = all.slice(0, MAX_FIELD_ERRORS);
  const lines = errors.map((e) => (e.message.startsWith("unknown ") ? e.message : `${e.field}: ${e.message}`));
  const more = total > errors.length ? `; and ${total - errors.length} more not listed` : "";
  const detail =
    lines.length === 0
      ? "request did not validate"
      : lines.length === 1
        ? (lines[0] ?? "")
        : `${total} problems: ${lines.map((line, i) => `(${i + 1}) ${line}`).join(" ")}${more}`;
  return new ApiProblem(code, detail, { field: errors[0]?.field, errors });
}
