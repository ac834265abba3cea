/**
 * Refuses bodies over `maxBytes` with a 413 problem, before any handler reads them: at once from
 * Content-Length, or while reading a chunked body. Like hono/body-limit, except that on overflow
 * it lets go of the body stream, so unread-body.ts can drain the rest and the client reads its 413
 * instead of a reset connection.
 */
import type { MiddlewareHandler } from "hono";
import { readCapped } from "../../client/read-capped.ts";
import { ApiProblem } from "../problem.ts";

function tooLarge(maxBytes: number): ApiProblem {
  return new ApiProblem("payload_too_large", `request body is larger than ${maxBytes} bytes`, { field: "body" });
}

export function bodyLimit(maxBytes: number): MiddlewareHandler {
  return async (c, next) => {
    const raw = c.req.raw;
    if (!raw.body) {
      return next();
    }
    const declared = raw.headers.get("content-length");
    if (declared !== null && !raw.headers.has("transfer-encoding")) {
      if (Number(declared) > maxBytes) {
        throw tooLarge(maxBytes);
      }
      return next();
    }
    const reader = raw.body.getReader();
    const body = await readCapped(reader, maxBytes);
    if (body === null) {
      reader.releaseLock();
      throw tooLarge(maxBytes);
    }
    c.req.raw = new Request(raw, { body });
    return next();
  };
}
