/**
 * `client.upload(source)`: a local file path (Node/Deno), bytes, a Blob or a byte stream to the
 * gateway's content-addressed store. Up to FILE_LIMITS.chunkBytes it is one request; above, it is
 * cut into parts, each part already on the gateway (HEAD) is skipped, so re-running an interrupted
 * upload sends only what is missing, and the parts are composed into the verified whole.
 */
import { FILE_LIMITS } from "../schemas/file-limits.ts";
import { SlurmgateError } from "./errors.ts";
import type { Problem } from "./types.ts";
import { nodeOnly } from "./node-only.ts";

export type UploadSource = string | Uint8Array | ArrayBuffer | Blob | ReadableStream<Uint8Array>;

/** What `upload` answers: spread it into a job's `inputs` (`path` is the file's name when a path was given). */
export type UploadedFile = { file: `sha256:${string}`; path?: string };

export type UploadOptions = {
  /** Where the job will find it, relative to its directory (default: the local file's name). */
  path?: string;
  /** Part size above which the file goes in parts (default FILE_LIMITS.chunkBytes). */
  chunkBytes?: number;
  signal?: AbortSignal;
};

type Send = (request: Request) => Promise<Response>;

const hex = (bytes: ArrayBuffer) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
const digest = async (bytes: Uint8Array) => hex(await crypto.subtle.digest("SHA-256", bytes as BufferSource));

/** An incremental sha-256: node:crypto where there is one (a whole file never sits in memory), else WebCrypto over the kept bytes. */
async function wholeHasher(): Promise<{ update(b: Uint8Array): void; digest(): Promise<string> }> {
  try {
    const { createHash } = await nodeOnly<typeof import("node:crypto")>("node:crypto");
    const hash = createHash("sha256");
    return { update: (b) => hash.update(b), digest: async () => hash.digest("hex") };
  } catch {
    const kept: Uint8Array[] = [];
    return {
      update: (b) => kept.push(b),
      digest: async () => digest(new Uint8Array(await new Blob(kept as BlobPart[]).arrayBuffer())),
    };
  }
}

async function streamOf(source: UploadSource): Promise<{ stream: ReadableStream<Uint8Array>; name?: string }> {
  if (typeof source === "string") {
    const [{ open }, { basename }, { Readable }] = await Promise.all([
      nodeOnly<typeof import("node:fs/promises")>("node:fs/promises"),
      nodeOnly<typeof import("node:path")>("node:path"),
      nodeOnly<typeof import("node:stream")>("node:stream"),
    ]);
    // Opened here, so a missing file fails before any request; the stream closes it when read to the end.
    const handle = await open(source, "r");
    const stream = Readable.toWeb(handle.createReadStream({ autoClose: true })) as ReadableStream<Uint8Array>;
    return { stream, name: basename(source) };
  }
  if (source instanceof ReadableStream) {
    return { stream: source };
  }
  if (source instanceof Blob) {
    return { stream: source.stream() };
  }
  return { stream: new Blob([source as BlobPart]).stream() };
}

/** Cuts a byte stream into parts of exactly `size` bytes (the last one shorter). */
async function* parts(stream: ReadableStream<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  let buffer = new Uint8Array(size);
  let filled = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        break;
      }
      let offset = 0;
      while (offset < value.length) {
        const take = Math.min(size - filled, value.length - offset);
        buffer.set(value.subarray(offset, offset + take), filled);
        filled += take;
        offset += take;
        if (filled === size) {
          yield buffer;
          buffer = new Uint8Array(size);
          filled = 0;
        }
      }
    }
    if (filled > 0) {
      yield buffer.subarray(0, filled);
    }
  } finally {
    reader.releaseLock();
  }
}

async function problemOf(response: Response): Promise<never> {
  let problem: Problem;
  try {
    problem = (await response.json()) as Problem;
  } catch {
    problem = {
      type: "about:blank",
      title: `HTTP ${response.status}`,
      status: response.status,
      code: "internal",
    } as Problem;
  }
  throw new SlurmgateError(problem);
}

export async function uploadFile(
  send: Send,
  baseUrl: string,
  source: UploadSource,
  options: UploadOptions = {},
): Promise<UploadedFile> {
  const chunkBytes = options.chunkBytes ?? FILE_LIMITS.chunkBytes;
  const { stream, name } = await streamOf(source);
  const path = options.path ?? name;
  const post = async (bytes: Uint8Array, sha: string) => {
    const response = await send(
      new Request(`${baseUrl}/v1/files`, {
        method: "POST",
        headers: { "content-type": "application/octet-stream", "x-content-sha256": `sha256:${sha}` },
        body: bytes as BodyInit,
        signal: options.signal,
      }),
    );
    if (response.status !== 201) {
      await problemOf(response);
    }
    return (await response.json()) as { file: `sha256:${string}`; size: number };
  };
  const whole = await wholeHasher();
  const refs: `sha256:${string}`[] = [];
  let first: Uint8Array | undefined;
  for await (const part of parts(stream, chunkBytes)) {
    whole.update(part);
    const sha = await digest(part);
    if (first === undefined && refs.length === 0) {
      // Held back: a file of one part is uploaded as itself, not composed.
      first = part;
      refs.push(`sha256:${sha}`);
      continue;
    }
    if (first !== undefined) {
      await sendPart(first, refs[0]!.slice(7));
      first = undefined;
    }
    await sendPart(part, sha);
    refs.push(`sha256:${sha}`);
  }
  async function sendPart(bytes: Uint8Array, sha: string) {
    const head = await send(
      new Request(`${baseUrl}/v1/files/sha256:${sha}`, { method: "HEAD", signal: options.signal }),
    );
    if (head.status !== 200) {
      await post(bytes, sha);
    }
  }
  if (refs.length <= 1) {
    const bytes = first ?? new Uint8Array(0);
    const stored = await post(bytes, await digest(bytes));
    return { file: stored.file, ...(path ? { path } : {}) };
  }
  const response = await send(
    new Request(`${baseUrl}/v1/files/compose`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ parts: refs, sha256: `sha256:${await whole.digest()}` }),
      signal: options.signal,
    }),
  );
  if (response.status !== 201) {
    await problemOf(response);
  }
  const stored = (await response.json()) as { file: `sha256:${string}` };
  return { file: stored.file, ...(path ? { path } : {}) };
}
