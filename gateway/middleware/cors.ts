/**
 * CORS, so a page on an allowed origin (SLURMGATE_CORS_ORIGINS) can call the API with its bearer
 * token. Mounted before authentication: a browser's preflight never carries the token, so it is
 * answered here (204, or a 403 problem for an origin not on the list) and never reaches a route.
 *
 * hono/cors is not used: it answers every OPTIONS as a preflight (the API answers a plain OPTIONS
 * 405), and gives a refused origin's preflight a 204 with the allowed methods and headers.
 */
import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "../deps.ts";
import { ApiProblem, problemResponse } from "../problem.ts";

/** Request headers a page may send beyond the CORS-safelisted ones: those the client sends and the routes read. */
export const CORS_ALLOW_HEADERS = [
  "authorization",
  "content-type",
  "idempotency-key",
  "if-none-match",
  "last-event-id",
  "x-request-id",
  "x-content-sha256",
  "range",
  "accept",
] as const;

/** Response headers a page's script may read (a browser hides all but the safelisted ones). */
export const CORS_EXPOSE_HEADERS = [
  "x-request-id",
  "retry-after",
  "location",
  "etag",
  "allow",
  "accept-post",
  "www-authenticate",
] as const;

const ALLOW_HEADERS = CORS_ALLOW_HEADERS.join(", ");
const EXPOSE = CORS_EXPOSE_HEADERS.join(", ");

/**
 * How long a browser may reuse a preflight answer. Chromium caps it at 2 hours. Safe to keep long:
 * an origin later removed from the list still gets no Access-Control-Allow-Origin on its requests.
 */
export const CORS_MAX_AGE_SECONDS = 7_200;

export type CorsOptions = {
  /** Exact origins (`https://app.example.org`) and/or `*`, as parsed by gateway/config.ts. */
  origins: readonly string[];
  /** The app's routes, read on the first preflight (they are all registered by then). */
  routes: () => { method: string; path: string }[];
};

type Allowed = { origin: string; credentials: boolean };

/**
 * A listed origin is echoed and may send credentials; `*` is sent as `*`, which browsers never
 * combine with credentials, so a wildcard deployment cannot be called with cookies or HTTP auth.
 */
function allowFor(origins: readonly string[], origin: string | null | undefined): Allowed | undefined {
  if (origin === undefined || origin === null) {
    return undefined;
  }
  if (origin !== "*" && origins.includes(origin)) {
    return { origin, credentials: true };
  }
  return origins.includes("*") ? { origin: "*", credentials: false } : undefined;
}

/**
 * The CORS headers of an actual (not preflight) answer to a request from `origin`, given the
 * answer's own `Vary`. Also for answers made outside the app (the Worker's "not ready" problem).
 * @example corsAnswerHeaders(["https://app.example.org"], "https://evil.example", null) // { vary: "Origin" }
 */
export function corsAnswerHeaders(
  origins: readonly string[],
  origin: string | null | undefined,
  vary: string | null,
): Record<string, string> {
  // Whether the answer allows the caller depends on Origin, so shared caches must key on it.
  const headers: Record<string, string> = { vary: withOrigin(vary) };
  const allowed = allowFor(origins, origin);
  if (allowed) {
    Object.assign(headers, originHeaders(allowed), { "access-control-expose-headers": EXPOSE });
  }
  return headers;
}

/**
 * @example app.use("*", cors({ origins: ["https://app.example.org"], routes: () => app.routes }));
 */
export function cors(options: CorsOptions): MiddlewareHandler<AppEnv> {
  let methods: string | undefined;

  return async (c, next) => {
    const origin = c.req.header("origin");
    const isPreflight =
      c.req.method === "OPTIONS" && origin !== undefined && c.req.header("access-control-request-method") !== undefined;
    if (isPreflight) {
      const allowed = allowFor(options.origins, origin);
      if (!allowed) {
        return problemResponse(
          c,
          new ApiProblem(
            "forbidden",
            `origin '${origin.slice(0, 200)}' may not call this API from a browser; the gateway's SLURMGATE_CORS_ORIGINS lists the origins that may`,
            { field: "header.origin", headers: { vary: "Origin" } },
          ),
        );
      }
      methods ??= routeMethods(options.routes());
      return c.body(null, 204, {
        ...originHeaders(allowed),
        "access-control-allow-methods": methods,
        "access-control-allow-headers": ALLOW_HEADERS,
        "access-control-max-age": String(CORS_MAX_AGE_SECONDS),
        vary: "Origin",
      });
    }
    await next();
    setAll(c, corsAnswerHeaders(options.origins, origin, c.res.headers.get("vary")));
  };
}

function originHeaders(allowed: Allowed): Record<string, string> {
  return {
    "access-control-allow-origin": allowed.origin,
    ...(allowed.credentials ? { "access-control-allow-credentials": "true" } : {}),
  };
}

/** Every method some route serves: the API's, not a fixed list, so a new verb cannot be forgotten. */
function routeMethods(routes: { method: string }[]): string {
  const served = new Set(routes.map((r) => r.method.toUpperCase()).filter((m) => m !== "ALL"));
  if (served.has("GET")) {
    served.add("HEAD");
  }
  return [...served].sort().join(", ");
}

/** `Vary` with Origin added, unless it is already there (or the answer varies on everything). */
function withOrigin(vary: string | null): string {
  if (vary === null || vary.trim() === "") {
    return "Origin";
  }
  const listed = vary.split(",").map((v) => v.trim().toLowerCase());
  return listed.includes("origin") || listed.includes("*") ? vary : `${vary}, Origin`;
}

/**
 * Sets the headers on the answer in place: every answer goes through here, and c.header() would
 * copy a finalized Response once per header. A Response whose headers are immutable (one passed
 * through from fetch) is copied once.
 */
function setAll(c: Context<AppEnv>, headers: Record<string, string>) {
  let target = c.res.headers;
  try {
    target.set("vary", headers.vary ?? "Origin");
  } catch {
    c.res = new Response(c.res.body, c.res);
    target = c.res.headers;
  }
  for (const [name, value] of Object.entries(headers)) {
    target.set(name, value);
  }
}
