/**
 * Server-sent event streams over the same reads the long-polls use.
 *
 * A stream re-reads its source whenever the notifier wakes it or `recheckMs` passes (the notifier is
 * only a shortcut across one process; the database is the truth), so the same code serves Node and
 * Workers. Each message carries its position as the SSE id: a client that reconnects with
 * Last-Event-ID gets exactly what came after it, none lost and none repeated. A stream ends after
 * SLURMGATE_SSE_MAX_SECONDS (Workers count every database read of a request) with a `retry` hint,
 * and writes wait for the client, so a slow reader holds one read's worth of memory at most.
 */
import type { Context } from "hono";
import { type SSEMessage, streamSSE } from "hono/streaming";
import type { Deps } from "./deps.ts";
import { ApiProblem } from "./problem.ts";

export type StreamRead = {
  messages: SSEMessage[];
  /** The read came back full: read again at once. */
  more: boolean;
  /** Nothing more will ever come (a finished job's stream): say `end` and close. */
  done?: { data: string };
};

/** Media type of an event stream; a request asks for one with this in Accept. */
export const EVENT_STREAM = "text/event-stream";

export const wantsEventStream = (c: Context) => (c.req.header("accept") ?? "").includes(EVENT_STREAM);

const openStreams = new WeakMap<Deps, Map<string, number>>();

/**
 * Takes one of `user`'s stream slots for the life of the stream; a user at the limit gets a 429
 * before anything is streamed, so one script cannot hold a process's sockets.
 */
function takeSlot(deps: Deps, user: string): () => void {
  let counts = openStreams.get(deps);
  if (!counts) {
    counts = new Map();
    openStreams.set(deps, counts);
  }
  const max = deps.config.SLURMGATE_SSE_MAX_PER_USER;
  const held = counts.get(user) ?? 0;
  if (held >= max) {
    throw new ApiProblem("rate_limited", `${user} already has ${held} event streams open here (at most ${max})`, {
      headers: { "retry-after": "5" },
    });
  }
  counts.set(user, held + 1);
  let released = false;
  return () => {
    if (!released) {
      released = true;
      const left = (counts.get(user) ?? 1) - 1;
      left > 0 ? counts.set(user, left) : counts.delete(user);
    }
  };
}

/**
 * Streams what `read` returns until the client leaves, the source is done, or the stream's time is
 * up. `read` is called with no argument and keeps its own cursor.
 */
export function serveEventStream(
  c: Context,
  deps: Deps,
  options: { user: string; topic: string; read: () => Promise<StreamRead> },
): Response {
  const release = takeSlot(deps, options.user);
  const heartbeatMs = deps.config.SLURMGATE_SSE_HEARTBEAT_SECONDS * 1000;
  const deadline = deps.now() + deps.config.SLURMGATE_SSE_MAX_SECONDS * 1000;
  const gone = new AbortController();
  c.req.raw.signal.addEventListener("abort", () => gone.abort(), { once: true });
  c.header("x-accel-buffering", "no");
  return streamSSE(c, async (stream) => {
    stream.onAbort(() => gone.abort());
    try {
      // How long a client waits before reconnecting when the stream ends or breaks.
      await stream.write("retry: 1000\n\n");
      let lastWrite = deps.now();
      while (!gone.signal.aborted && deps.now() < deadline) {
        const { messages, more, done } = await options.read();
        for (const message of messages) {
          await stream.writeSSE(message);
          lastWrite = deps.now();
        }
        if (done && !more) {
          await stream.writeSSE({ event: "end", data: done.data });
          return;
        }
        if (more) {
          continue;
        }
        const now = deps.now();
        if (now - lastWrite >= heartbeatMs) {
          await stream.write(": keep-alive\n\n");
          lastWrite = now;
        }
        const sleep = Math.min(deps.recheckMs, lastWrite + heartbeatMs - now, deadline - now);
        await deps.notifier.wait(options.topic, Math.max(sleep, 1), gone.signal);
      }
    } catch (error) {
      // The client reconnects with Last-Event-ID and loses nothing; the cause stays in our log.
      deps.log({ level: "error", msg: "event stream failed", error: String(error) });
      await stream.writeSSE({ event: "error", data: JSON.stringify({ detail: "the stream broke; reconnect" }) });
    } finally {
      release();
    }
  });
}
