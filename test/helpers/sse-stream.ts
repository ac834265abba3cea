/**
 * Opens a server-sent event stream the way a test reads one: message by message, with a timeout.
 */
import { expect } from "vitest";
import { type SseMessage, readEventStream } from "../../client/sse.ts";

export type Stream = { next(): Promise<SseMessage>; close(): Promise<void>; status: number };

/** Opens an event stream; `next` skips heartbeats unless asked for comments. */
export async function open(
  url: string,
  token: string,
  headers: Record<string, string> = {},
  comments = false,
): Promise<Stream> {
  const controller = new AbortController();
  const res = await fetch(url, {
    headers: { authorization: `Bearer ${token}`, accept: "text/event-stream", ...headers },
    signal: controller.signal,
  });
  if (!res.ok || !res.body) {
    throw Object.assign(new Error(`${res.status}: ${await res.text()}`), { status: res.status });
  }
  expect(res.headers.get("content-type")).toContain("text/event-stream");
  const messages = readEventStream(res.body);
  return {
    status: res.status,
    async next() {
      for (;;) {
        const { value, done } = await withTimeout(messages.next(), 15_000);
        if (done) {
          throw new Error("stream ended");
        }
        if (value.comment === undefined || comments) {
          return value;
        }
      }
    },
    async close() {
      controller.abort();
      await messages.return(undefined).catch(() => {});
    },
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no message within ${ms} ms`)), ms)),
  ]);
}
