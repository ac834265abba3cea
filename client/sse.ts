/**
 * Reads a server-sent event stream (the WHATWG event-stream format) from a fetch body, with Web
 * APIs only, so it runs in Node, Deno and browsers alike. EventSource cannot send an
 * Authorization header; this can.
 */

/** One dispatched message; `comment` is set instead for a comment line (a heartbeat). */
export type SseMessage = { event: string; data: string; id: string | undefined; retry?: number; comment?: string };

/**
 * Yields each message as it is completed by a blank line, and each comment line.
 * @example for await (const m of readEventStream(res.body!)) if (m.event === "state") console.log(m.data);
 */
export async function* readEventStream(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let buffer = "";
  let data: string[] = [];
  let event = "";
  let id: string | undefined;
  let retry: number | undefined;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      // A lone \r at the end may be the first half of \r\n: keep it for the next chunk.
      const lines = buffer.split(/\r\n|\r(?!$)|\n/);
      buffer = done ? "" : (lines.pop() ?? "");
      for (const line of lines) {
        if (line === "") {
          if (data.length > 0) {
            yield { event: event || "message", data: data.join("\n"), id, ...(retry === undefined ? {} : { retry }) };
          }
          data = [];
          event = "";
          continue;
        }
        if (line.startsWith(":")) {
          yield { event: "", data: "", id, comment: line.slice(1).trimStart() };
          continue;
        }
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        const raw = colon === -1 ? "" : line.slice(colon + 1);
        const value = raw.startsWith(" ") ? raw.slice(1) : raw;
        if (field === "data") {
          data.push(value);
        } else if (field === "event") {
          event = value;
        } else if (field === "id" && !value.includes("\0")) {
          id = value;
        } else if (field === "retry" && /^\d+$/.test(value)) {
          retry = Number(value);
        }
      }
      if (done) {
        return;
      }
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => {});
  }
}
