/**
 * Request ids: hono/request-id keeps a caller's X-Request-Id when it is at most REQUEST_ID_MAX
 * characters of [A-Za-z0-9_=-], else makes a UUID. The id goes out in the X-Request-Id header, in
 * every problem body and in every error log line.
 */
import type { MiddlewareHandler } from "hono";
import { requestId } from "hono/request-id";

export const REQUEST_ID_MAX = 128;

export function requestIds(): MiddlewareHandler {
  return requestId({ limitLength: REQUEST_ID_MAX });
}

/** The same rule for answers made outside the app (the Worker's "not ready" problem). */
export function requestIdFor(header: string | null): string {
  return header && header.length <= REQUEST_ID_MAX && !/[^\w\-=]/.test(header) ? header : crypto.randomUUID();
}
