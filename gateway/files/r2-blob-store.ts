/**
 * BlobStore on an R2 bucket binding (Workers): `blobs/<sha256>`. R2 has no rename, so a put whose
 * hash is not known yet cannot land under its name at once:
 * - a body of at most PART_BYTES is held in memory, hashed, then written under its name;
 * - a larger one goes up as a multipart upload to `tmp/<uuid>` while it is hashed (its parts are
 *   invisible until completed, and aborted on any error), then is copied R2-to-R2 under its name
 *   and the temp object removed. A Worker killed between the two leaves a `tmp/` object, which a
 *   bucket lifecycle rule on `tmp/` expires, unfinished parts included (docs/deploy-cloudflare.md).
 * Either way R2 checks the bytes it stores under a name against that name (`sha256` on put).
 * Hashing is crypto.DigestStream, Workers' streaming SHA-256.
 */
import { concatBytes, eachChunkCapped } from "../../client/read-capped.ts";
import { SHA256_HEX } from "../../schemas/files.ts";
import { type BlobStore, BlobHashMismatch, BlobTooLarge, type Digester, hashWhole } from "./blob-store.ts";

/** The parts of Workers' R2 binding this store uses (no @cloudflare/workers-types in the tree). */
export type R2ObjectLike = { size: number; version: string };
export type R2BodyLike = R2ObjectLike & { body: ReadableStream<Uint8Array> };
export type R2UploadedPartLike = { partNumber: number; etag: string };
export type R2MultipartUploadLike = {
  uploadPart(partNumber: number, value: Uint8Array): Promise<R2UploadedPartLike>;
  complete(parts: R2UploadedPartLike[]): Promise<R2ObjectLike>;
  abort(): Promise<void>;
};
export type R2BucketLike = {
  head(key: string): Promise<R2ObjectLike | null>;
  get(key: string, options?: { range?: { offset: number; length?: number } }): Promise<R2BodyLike | null>;
  put(
    key: string,
    value: ReadableStream<Uint8Array> | Uint8Array,
    options?: { sha256?: string; httpMetadata?: { contentType?: string } },
  ): Promise<R2ObjectLike | null>;
  delete(key: string): Promise<void>;
  createMultipartUpload(key: string): Promise<R2MultipartUploadLike>;
};

/** R2 wants every part but the last the same size, at least 5 MiB. */
export const PART_BYTES = 8 * 1024 * 1024;

type DigestStreamLike = WritableStream<Uint8Array> & { digest: Promise<ArrayBuffer> };
type DigestStreamCtor = new (algorithm: string) => DigestStreamLike;

function hex(buffer: ArrayBuffer): string {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

function workersDigester(): Digester {
  const Ctor = (crypto as unknown as { DigestStream?: DigestStreamCtor }).DigestStream;
  if (!Ctor) {
    throw new Error("crypto.DigestStream is missing: the R2 store runs only on Workers");
  }
  const stream = new Ctor("SHA-256");
  const writer = stream.getWriter();
  return {
    update: (chunk) => writer.write(chunk),
    async digest() {
      await writer.close();
      return hex(await stream.digest);
    },
  };
}

function blobKey(sha256: string): string {
  if (!SHA256_HEX.test(sha256)) {
    throw new Error(`not a sha-256: ${JSON.stringify(sha256)}`);
  }
  return `blobs/${sha256}`;
}

const CONTENT = { httpMetadata: { contentType: "application/octet-stream" } };

export function createR2BlobStore(bucket: R2BucketLike): BlobStore {
  const store: BlobStore = {
    async put(body, { maxBytes, expectedSha256 }) {
      const digester = workersDigester();
      const reader = body.getReader();
      let pending: Uint8Array[] = [];
      let pendingBytes = 0;
      const tmpKey = `tmp/${crypto.randomUUID()}`;
      let upload: R2MultipartUploadLike | undefined;
      let completed = false;
      const parts: R2UploadedPartLike[] = [];
      try {
        const size = await eachChunkCapped(reader, maxBytes, async (chunk) => {
          await digester.update(chunk);
          pending.push(chunk);
          pendingBytes += chunk.byteLength;
          while (pendingBytes >= PART_BYTES) {
            const all = concatBytes(pending, pendingBytes);
            upload ??= await bucket.createMultipartUpload(tmpKey);
            parts.push(await upload.uploadPart(parts.length + 1, all.slice(0, PART_BYTES)));
            pending = [all.subarray(PART_BYTES)];
            pendingBytes -= PART_BYTES;
          }
        });
        if (size === null) {
          throw new BlobTooLarge(maxBytes);
        }
        const sha256 = await digester.digest();
        if (expectedSha256 !== undefined && expectedSha256 !== sha256) {
          throw new BlobHashMismatch(expectedSha256, sha256);
        }
        const key = blobKey(sha256);
        // Same bytes, same name: writing again changes nothing a reader could see, and heals a damaged copy.
        if (!upload) {
          await bucket.put(key, concatBytes(pending, pendingBytes), { sha256, ...CONTENT });
          return { sha256, size };
        }
        if (pendingBytes > 0) {
          parts.push(await upload.uploadPart(parts.length + 1, concatBytes(pending, pendingBytes)));
        }
        await upload.complete(parts);
        completed = true;
        const whole = await bucket.get(tmpKey);
        if (!whole) {
          throw new Error(`R2 lost ${tmpKey} right after completing it`);
        }
        await bucket.put(key, whole.body, { sha256, ...CONTENT });
        return { sha256, size };
      } catch (error) {
        await reader.cancel(error).catch(() => {});
        if (upload && !completed) {
          await upload.abort().catch(() => {});
        }
        throw error;
      } finally {
        reader.releaseLock();
        if (completed) {
          await bucket.delete(tmpKey).catch(() => {});
        }
      }
    },

    async head(sha256) {
      const found = await bucket.head(blobKey(sha256));
      return found ? { size: found.size } : null;
    },

    async get(sha256, range) {
      const key = blobKey(sha256);
      if (!range) {
        const got = await bucket.get(key);
        return got ? { body: got.body, size: got.size, version: got.version } : null;
      }
      // The size first: R2 refuses a range past the end, the fs store clamps it.
      const found = await bucket.head(key);
      if (!found) {
        return null;
      }
      const end = Math.min(range.end ?? found.size - 1, found.size - 1);
      if (end < range.start) {
        return { body: new Blob([]).stream(), size: found.size, version: found.version };
      }
      const got = await bucket.get(key, { range: { offset: range.start, length: end - range.start + 1 } });
      return got ? { body: got.body, size: got.size, version: got.version } : null;
    },

    async delete(sha256) {
      await bucket.delete(blobKey(sha256));
    },

    rehash: (sha256) => hashWhole(store, sha256),
    digester: workersDigester,
  };
  return store;
}
