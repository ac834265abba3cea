/**
 * The download rule, for every BlobStore (the one place it lives):
 *
 * - A whole read is hashed as it is sent. The last chunk is held back until the digest is known:
 *   when it matches, the chunk goes out and the stream ends; when it does not (or more bytes come
 *   than the recorded size), the stream is aborted short of its Content-Length, so the client sees
 *   a broken transfer, never a complete body of wrong bytes. The damaged blob is then deleted and
 *   logged (a later upload of the same bytes heals it; downloads meanwhile say it is missing).
 * - A Range read is served only from a copy verified whole within REVERIFY_AFTER_MS whose
 *   `version` (the store's name for the stored copy: inode and times on disk, the R2 object
 *   version) has not changed since. Otherwise the whole blob is hashed first, once, and the range
 *   comes from that verified copy. The record is the blob's row (`blobs.verified_at`,
 *   `verified_version`), so it outlives a restart and every Worker isolate shares it; a row that
 *   cannot be read as a record (garbage, a time in the future) only means "not verified".
 */
import type { Deps } from "../deps.ts";
import { ApiProblem } from "../problem.ts";
import { BlobStoreUnavailable } from "./blob-store.ts";

/** A verified copy is trusted this long for Range reads; after that the next one re-hashes it (bit rot). */
export const REVERIFY_AFTER_MS = 24 * 3_600_000;

/** The stored copy's version when it was verified whole within REVERIFY_AFTER_MS, else undefined. */
async function trustedVersion(deps: Deps, sha256: string): Promise<string | undefined> {
  const rs = await deps.db.client.execute({
    sql: "SELECT verified_at, verified_version FROM blobs WHERE sha256 = ?",
    args: [sha256],
  });
  const row = rs.rows[0];
  const at =
    typeof row?.verified_at === "number" || typeof row?.verified_at === "bigint" ? Number(row.verified_at) : NaN;
  const version = row?.verified_version;
  const age = deps.now() - at;
  return typeof version === "string" && version !== "" && age >= 0 && age < REVERIFY_AFTER_MS ? version : undefined;
}

/** Records (or, with `version` null, forgets) a whole verification; a failed write only costs a re-hash later. */
async function record(deps: Deps, sha256: string, version: string | null): Promise<void> {
  try {
    await deps.db.write([
      {
        sql: "UPDATE blobs SET verified_at = ?, verified_version = ? WHERE sha256 = ?",
        args: [version === null ? null : deps.now(), version, sha256],
      },
    ]);
  } catch (error) {
    deps.log({ level: "warn", msg: "could not record a blob's verification", sha256, error: String(error) });
  }
}

async function damaged(deps: Deps, sha256: string, what: string): Promise<void> {
  await record(deps, sha256, null);
  deps.log({ level: "error", msg: "stored blob does not match its sha256; deleted", sha256, what });
  await deps.blobs.delete(sha256).catch(() => {});
}

const refused = (what: string, why: string) =>
  new ApiProblem("internal", `the stored copy of ${what} ${why}; it is not served`);

/**
 * `sha256`'s bytes (whole, or `range`), never served as good unless verified by the rule above.
 * `size` is the size on record; `what` names the file in problems and logs.
 */
export async function readVerified(
  deps: Deps,
  sha256: string,
  size: number,
  what: string,
  range?: { start: number; end: number },
): Promise<ReadableStream<Uint8Array>> {
  try {
    return await read(deps, sha256, size, what, range);
  } catch (error) {
    throw error instanceof BlobStoreUnavailable ? new ApiProblem("unavailable", error.message) : error;
  }
}

async function read(
  deps: Deps,
  sha256: string,
  size: number,
  what: string,
  range?: { start: number; end: number },
): Promise<ReadableStream<Uint8Array>> {
  if (range) {
    const known = await trustedVersion(deps, sha256);
    if (known !== undefined) {
      const got = await deps.blobs.get(sha256, range);
      if (got?.version === known) {
        return got.body;
      }
      await got?.body.cancel();
    }
    const actual = await deps.blobs.rehash(sha256);
    if (!actual) {
      throw refused(what, "is missing");
    }
    if (actual.sha256 !== sha256 || actual.size !== size) {
      await damaged(deps, sha256, what);
      throw refused(what, "no longer matches its sha256");
    }
    const got = await deps.blobs.get(sha256, range);
    if (got?.version !== actual.version) {
      await got?.body.cancel();
      throw refused(what, "changed while it was being read");
    }
    await record(deps, sha256, actual.version);
    return got.body;
  }

  const got = await deps.blobs.get(sha256);
  if (!got) {
    throw refused(what, "is missing");
  }
  const digester = deps.blobs.digester();
  let held: Uint8Array | undefined;
  let seen = 0;
  return got.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      async transform(chunk, controller) {
        if (chunk.byteLength === 0) {
          return;
        }
        seen += chunk.byteLength;
        if (seen > size) {
          await damaged(deps, sha256, what);
          controller.error(refused(what, "is longer than recorded"));
          return;
        }
        await digester.update(chunk);
        if (held) {
          controller.enqueue(held);
        }
        held = chunk;
      },
      async flush(controller) {
        if (seen !== size || (await digester.digest()) !== sha256) {
          await damaged(deps, sha256, what);
          controller.error(refused(what, "no longer matches its sha256"));
          return;
        }
        if (held) {
          controller.enqueue(held);
        }
        await record(deps, sha256, got.version);
      },
    }),
  );
}
