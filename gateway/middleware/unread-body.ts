/**
 * Keeps keep-alive connections usable after an early answer (401, 403, 413, 429, 415 …) to a request
 * whose body was never read. On Node the unread bytes would otherwise sit in front of the next
 * request on the socket, and @hono/node-server closes such a socket shortly after the response
 * although that response said keep-alive: a pooled client then fails its next request.
 *
 * So after the answer is ready, the rest of the body is read and dropped (up to `maxDrainBytes`, for
 * at most `drainMs`) and the connection stays open; when that is not possible (too long, too slow,
 * or the body is still held by a reader) the answer says
 * `Connection: close`, so the client opens a fresh connection instead of reusing a dying one.
 *
 * Only Node has `incoming` in the bindings; on Workers the runtime owns the connection and this
 * middleware does nothing.
 */
import type { Context, MiddlewareHandler } from "hono";

/** The part of node:http's IncomingMessage this middleware reads. */
type Incoming = {
  readableEnded: boolean;
  destroyed: boolean;
  headers: Record<string, string | string[] | undefined>;
};

function incomingOf(c: Context): Incoming | undefined {
  const env = c.env as { incoming?: unknown } | undefined;
  const incoming = env?.incoming as Incoming | undefined;
  return incoming && typeof incoming === "object" && "readableEnded" in incoming ? incoming : undefined;
}

export function settleUnreadBody(options: { maxDrainBytes: number; drainMs: number }): MiddlewareHandler {
  return async (c, next) => {
    await next();
    const incoming = incomingOf(c);
    // No body (GET, HEAD), or all of it read: nothing stands between this answer and the next request.
    if (!incoming || c.req.raw.body === null || incoming.readableEnded || incoming.destroyed) {
      return;
    }
    // A declared length over the cap is not worth reading; a chunked body is read up to the cap.
    const declared = incoming.headers["content-length"];
    const body = c.req.raw.body;
    const drainable = (declared === undefined || Number(declared) <= options.maxDrainBytes) && !body.locked;
    if (drainable && (await drain(body, options))) {
      return;
    }
    c.header("connection", "close");
  };
}

/** Reads and drops the body; true when it ended within the limits. */
async function drain(body: ReadableStream<Uint8Array>, options: { maxDrainBytes: number; drainMs: number }) {
  const reader = body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), options.drainMs);
  });
  let bytes = 0;
  try {
    for (;;) {
      const chunk = await Promise.race([reader.read(), late]);
      if (chunk === "late") {
        return false;
      }
      if (chunk.done) {
        return true;
      }
      bytes += chunk.value.byteLength;
      if (bytes > options.maxDrainBytes) {
        return false;
      }
    }
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    // Cancelling would destroy the socket before the answer is written; leaving the lock is enough.
    reader.releaseLock();
  }
}
