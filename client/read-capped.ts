/**
 * Reads a response body as text, but never more than `max` bytes, whatever Content-Length claims:
 * an identity provider's or key server's answer is not trusted to be small. Web APIs only, so the
 * client (browsers, Deno) and the gateway (Node, Workers) share it.
 * @example const text = await readCappedText(response, 256 * 1024); // null: larger than that
 */
export async function readCappedText(response: Response, max: number): Promise<string | null> {
  const reader = response.body?.getReader();
  if (!reader) {
    return "";
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) {
      break;
    }
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      return null;
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.byteLength;
  }
  return new TextDecoder().decode(all);
}
