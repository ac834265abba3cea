/**
 * Reading a body under a byte cap, whatever Content-Length claims: the one rule for request bodies,
 * stored blobs, and the answers of identity providers, key servers and webhook receivers. Web APIs
 * only, so the client (browsers, Deno) and the gateway (Node, Workers) share it.
 */

/**
 * Hands each chunk `reader` yields to `each`, in order, and answers how many bytes there were; or
 * null as soon as more than `maxBytes` have arrived, without handing on the chunk that crossed the
 * cap and without reading another. Cancelling or releasing the reader is the caller's: a request
 * body is let go so it can be drained, a response is cancelled.
 * @example const size = await eachChunkCapped(body.getReader(), 1024, (chunk) => hash.update(chunk)); // null: larger
 */
export async function eachChunkCapped(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  maxBytes: number,
  each: (chunk: Uint8Array) => void | Promise<void>,
): Promise<number | null> {
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) {
      return size;
    }
    size += value.byteLength;
    if (size > maxBytes) {
      return null;
    }
    await each(value);
  }
}

/** `chunks` (of `total` bytes in all) as one array. */
export function concatBytes(chunks: Uint8Array[], total: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

/** Every byte `reader` yields, as one array; null once more than `maxBytes` arrived ({@link eachChunkCapped}). */
export async function readCapped(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  maxBytes: number,
): Promise<Uint8Array<ArrayBuffer> | null> {
  const chunks: Uint8Array[] = [];
  const size = await eachChunkCapped(reader, maxBytes, (chunk) => {
    chunks.push(chunk);
  });
  return size === null ? null : concatBytes(chunks, size);
}

/**
 * Reads a response body as text, but never more than `max` bytes: an identity provider's or key
 * server's answer is not trusted to be small.
 * @example const text = await readCappedText(response, 256 * 1024); // null: larger than that
 */
export async function readCappedText(response: Response, max: number): Promise<string | null> {
  const reader = response.body?.getReader();
  if (!reader) {
    return "";
  }
  const bytes = await readCapped(reader, max);
  if (bytes === null) {
    await reader.cancel().catch(() => undefined);
    return null;
  }
  return new TextDecoder().decode(bytes);
}
