/**
 * BlobStore on a local directory: `<dir>/ab/cd/<sha256>`. A put writes `<dir>/tmp/<random>` (same
 * filesystem) and renames it into place only once complete and verified, so a reader never sees a
 * partial blob and a killed upload leaves only a temp file, which the next start removes.
 */
import { createHash, randomUUID } from "node:crypto";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { eachChunkCapped } from "../../client/read-capped.ts";
import { SHA256_HEX } from "../../schemas/files.ts";
import { type BlobStore, BlobHashMismatch, BlobTooLarge, hashWhole } from "./blob-store.ts";

function blobPath(dir: string, sha256: string): string {
  if (!SHA256_HEX.test(sha256)) {
    throw new Error(`not a sha-256: ${JSON.stringify(sha256)}`);
  }
  return join(dir, sha256.slice(0, 2), sha256.slice(2, 4), sha256);
}

export async function createFsBlobStore(dir: string): Promise<BlobStore> {
  const tmp = join(dir, "tmp");
  // Temp files of a previous process are uploads that never finished.
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });

  const store: BlobStore = {
    async put(body, { maxBytes, expectedSha256 }) {
      const tmpFile = join(tmp, randomUUID());
      const handle = await open(tmpFile, "wx", 0o600);
      const hash = createHash("sha256");
      const reader = body.getReader();
      let moved = false;
      try {
        const size = await eachChunkCapped(reader, maxBytes, async (chunk) => {
          hash.update(chunk);
          await handle.write(chunk);
        });
        if (size === null) {
          throw new BlobTooLarge(maxBytes);
        }
        await handle.sync();
        await handle.close();
        const sha256 = hash.digest("hex");
        if (expectedSha256 !== undefined && expectedSha256 !== sha256) {
          throw new BlobHashMismatch(expectedSha256, sha256);
        }
        const target = blobPath(dir, sha256);
        await mkdir(join(target, ".."), { recursive: true });
        // Same bytes, same name: replacing an existing blob changes nothing a reader could see.
        await rename(tmpFile, target);
        moved = true;
        return { sha256, size };
      } catch (error) {
        await reader.cancel(error).catch(() => {});
        throw error;
      } finally {
        reader.releaseLock();
        await handle.close().catch(() => {});
        if (!moved) {
          await rm(tmpFile, { force: true });
        }
      }
    },

    async head(sha256) {
      try {
        const info = await stat(blobPath(dir, sha256));
        return { size: info.size };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") {
          return null;
        }
        throw error;
      }
    },

    async get(sha256, range) {
      const path = blobPath(dir, sha256);
      // Open first: a delete between stat and read must not turn into a half answer.
      let handle: Awaited<ReturnType<typeof open>>;
      try {
        handle = await open(path, "r");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") {
          return null;
        }
        throw error;
      }
      const info = await handle.stat({ bigint: true });
      const size = Number(info.size);
      // A rewrite in place moves mtime and ctime; a replacement is another inode.
      const version = `${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
      const start = range?.start ?? 0;
      const end = Math.min(range?.end ?? size - 1, size - 1);
      if (end < start) {
        await handle.close();
        return { body: new Blob([]).stream(), size, version };
      }
      const stream = handle.createReadStream({ start, end, autoClose: true });
      return { body: Readable.toWeb(stream) as ReadableStream<Uint8Array>, size, version };
    },

    rehash: (sha256) => hashWhole(store, sha256),
    digester() {
      const hash = createHash("sha256");
      return {
        update: async (chunk) => {
          hash.update(chunk);
        },
        digest: async () => hash.digest("hex"),
      };
    },
    async delete(sha256) {
      await rm(blobPath(dir, sha256), { force: true });
    },
  };
  return store;
}
