/**
 * Uploads: blob bytes go to deps.blobs, and an `uploads` row says which user may reference them
 * (their quota is the sum of those rows). A hash alone never grants access: every upload streams
 * and verifies the bytes, so knowing another user's hash does not make their file yours.
 */
import { FILE_REF, type FileRef, type FileUploaded, refHex, SHA256_HEX } from "../../schemas/files.ts";
import { HELD_STATES_SQL } from "../db/state-sql.ts";
import type { Deps } from "../deps.ts";
import { ApiProblem } from "../problem.ts";
import { BlobHashMismatch, BlobStoreUnavailable, BlobTooLarge } from "./blob-store.ts";

type Usage = { bytes: number; files: number };

async function usageOf(deps: Deps, owner: string): Promise<Usage> {
  const rs = await deps.db.client.execute({
    sql: "SELECT coalesce(sum(size), 0) AS bytes, count(*) AS files FROM uploads WHERE owner = ?",
    args: [owner],
  });
  return { bytes: Number(rs.rows[0]?.bytes ?? 0), files: Number(rs.rows[0]?.files ?? 0) };
}

async function holds(deps: Deps, owner: string, sha256: string): Promise<number | undefined> {
  const rs = await deps.db.client.execute({
    sql: "SELECT size FROM uploads WHERE owner = ? AND sha256 = ?",
    args: [owner, sha256],
  });
  return rs.rows[0] ? Number(rs.rows[0].size) : undefined;
}

function quotaProblem(deps: Deps, what: "bytes" | "files", usage: Usage, adding: number): ApiProblem {
  const { SLURMGATE_USER_FILES_BYTES: maxBytes, SLURMGATE_USER_FILES_COUNT: maxFiles } = deps.config;
  return what === "bytes"
    ? new ApiProblem(
        "payload_too_large",
        `upload quota exceeded: you hold ${usage.bytes} bytes and this adds ${adding}; the limit is ${maxBytes} bytes per user (delete files you no longer need)`,
        { field: "quota.bytes" },
      )
    : new ApiProblem(
        "payload_too_large",
        `upload quota exceeded: you hold ${usage.files} files; the limit is ${maxFiles} files per user (delete files you no longer need)`,
        { field: "quota.files" },
      );
}

/** A client's expected hash: `sha256:<hex>` or bare hex, lower or upper case. */
export function parseExpected(value: string | undefined, field: string): string | undefined {
  if (value === undefined || value === "") {
    return undefined;
  }
  const hex = value.toLowerCase().replace(/^sha256:/, "");
  if (!SHA256_HEX.test(hex)) {
    throw new ApiProblem("validation_failed", "must be sha256: followed by 64 hex digits", { field });
  }
  return hex;
}

function storageProblem(error: unknown, maxBytes: number, field: string): unknown {
  if (error instanceof BlobTooLarge) {
    return new ApiProblem("payload_too_large", `a file may hold at most ${maxBytes} bytes`, { field });
  }
  if (error instanceof BlobHashMismatch) {
    return new ApiProblem("validation_failed", error.message, { field: field === "body" ? "sha256" : "body.sha256" });
  }
  if (error instanceof BlobStoreUnavailable) {
    return new ApiProblem("unavailable", error.message);
  }
  return error;
}

/**
 * Records `owner`'s upload of a stored blob, atomically within the quota. An owner who already
 * holds it only refreshes its time (and pays nothing again).
 */
async function recordUpload(deps: Deps, owner: string, blob: { sha256: string; size: number }): Promise<void> {
  const now = deps.now();
  const { SLURMGATE_USER_FILES_BYTES: maxBytes, SLURMGATE_USER_FILES_COUNT: maxFiles } = deps.config;
  const [, refreshed, inserted] = await deps.db.write([
    {
      // Refreshed on every upload: retention leaves young blobs alone (files/retention.ts).
      sql: "INSERT INTO blobs (sha256, size, created_at) VALUES (?, ?, ?) ON CONFLICT (sha256) DO UPDATE SET created_at = excluded.created_at",
      args: [blob.sha256, blob.size, now],
    },
    { sql: "UPDATE uploads SET created_at = ? WHERE owner = ? AND sha256 = ?", args: [now, owner, blob.sha256] },
    {
      // The quota check and the insert are one statement, so two uploads at once cannot both squeeze in.
      sql: `INSERT OR IGNORE INTO uploads (owner, sha256, size, created_at)
            SELECT ?, ?, ?, ? WHERE (SELECT coalesce(sum(size), 0) FROM uploads WHERE owner = ?) + ? <= ?
              AND (SELECT count(*) FROM uploads WHERE owner = ?) < ?`,
      args: [owner, blob.sha256, blob.size, now, owner, blob.size, maxBytes, owner, maxFiles],
    },
  ]);
  if (refreshed!.rowsAffected > 0 || inserted!.rowsAffected > 0) {
    return;
  }
  const usage = await usageOf(deps, owner);
  throw quotaProblem(deps, usage.files >= maxFiles ? "files" : "bytes", usage, blob.size);
}

/** POST /v1/files: streams `body` into the store, verified against `expected` when given. */
export async function uploadFile(
  deps: Deps,
  owner: string,
  body: ReadableStream<Uint8Array> | null,
  options: { declaredSize?: number; expected?: string },
): Promise<FileUploaded> {
  const maxBytes = deps.config.SLURMGATE_FILE_MAX_BYTES;
  if (options.declaredSize !== undefined) {
    // Refused before a byte is read: the declared size alone is over a limit.
    if (options.declaredSize > maxBytes) {
      throw new ApiProblem("payload_too_large", `a file may hold at most ${maxBytes} bytes`, { field: "body" });
    }
    const already = options.expected ? await holds(deps, owner, options.expected) : undefined;
    if (already === undefined) {
      const usage = await usageOf(deps, owner);
      if (usage.files >= deps.config.SLURMGATE_USER_FILES_COUNT) {
        throw quotaProblem(deps, "files", usage, options.declaredSize);
      }
      if (usage.bytes + options.declaredSize > deps.config.SLURMGATE_USER_FILES_BYTES) {
        throw quotaProblem(deps, "bytes", usage, options.declaredSize);
      }
    }
  }
  let blob: { sha256: string; size: number };
  try {
    blob = await deps.blobs.put(body ?? new Blob([]).stream(), { maxBytes, expectedSha256: options.expected });
  } catch (error) {
    throw storageProblem(error, maxBytes, "body");
  }
  await recordUpload(deps, owner, blob);
  return { file: `sha256:${blob.sha256}`, size: blob.size };
}

/** GET/HEAD /v1/files/{ref}: the caller's own upload, or 404 (no oracle for other users' files). */
export async function ownUpload(deps: Deps, owner: string, ref: string) {
  const hex = FILE_REF.test(ref) ? refHex(ref) : undefined;
  const size = hex ? await holds(deps, owner, hex) : undefined;
  if (size === undefined) {
    throw new ApiProblem("not_found", `you have uploaded no file ${ref.slice(0, 80)}`, { field: "ref" });
  }
  return { file: ref as FileRef, size };
}

/** DELETE /v1/files/{ref}: gives up the caller's claim (and its quota); retention removes the bytes. */
export async function forgetUpload(deps: Deps, owner: string, ref: string): Promise<void> {
  await ownUpload(deps, owner, ref);
  await deps.db.write([{ sql: "DELETE FROM uploads WHERE owner = ? AND sha256 = ?", args: [owner, refHex(ref)] }]);
}

/** Concatenates the stored parts, one after the other, as they are read. */
function concat(deps: Deps, parts: string[]): ReadableStream<Uint8Array> {
  let i = 0;
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        if (!reader) {
          const hex = parts[i];
          if (hex === undefined) {
            controller.close();
            return;
          }
          const got = await deps.blobs.get(hex);
          if (!got) {
            throw new ApiProblem("validation_failed", "this part is no longer stored; upload it again", {
              field: `body.parts.${i}`,
            });
          }
          reader = got.body.getReader();
        }
        const { done, value } = await reader.read();
        if (!done) {
          controller.enqueue(value);
          return;
        }
        reader = undefined;
        i++;
      }
    },
    async cancel(reason) {
      await reader?.cancel(reason);
    },
  });
}

/**
 * POST /v1/files/compose: joins parts the caller uploaded into one verified file; the parts'
 * claims are then given up (their quota returns), the whole is the caller's upload.
 */
export async function composeFile(
  deps: Deps,
  owner: string,
  request: { parts: string[]; sha256: string },
): Promise<FileUploaded> {
  const hexes: string[] = [];
  for (const [i, part] of request.parts.entries()) {
    const hex = refHex(part);
    if ((await holds(deps, owner, hex)) === undefined) {
      throw new ApiProblem("validation_failed", `you have uploaded no file ${part}`, { field: `body.parts.${i}` });
    }
    hexes.push(hex);
  }
  const maxBytes = deps.config.SLURMGATE_FILE_MAX_BYTES;
  let blob: { sha256: string; size: number };
  try {
    blob = await deps.blobs.put(concat(deps, hexes), { maxBytes, expectedSha256: refHex(request.sha256) });
  } catch (error) {
    throw storageProblem(error, maxBytes, "body.parts");
  }
  const partsOnly = [...new Set(hexes)].filter((hex) => hex !== blob.sha256);
  // The parts' rows go first, so their quota pays for the whole.
  await deps.db.write(
    partsOnly.map((hex) => ({ sql: "DELETE FROM uploads WHERE owner = ? AND sha256 = ?", args: [owner, hex] })),
  );
  await recordUpload(deps, owner, blob);
  return { file: `sha256:${blob.sha256}`, size: blob.size };
}

/**
 * Whether a job held by this agent names `sha256` among its inputs: an agent may download only
 * the inputs of jobs it leased.
 */
export async function agentMayRead(
  deps: Deps,
  agent: { cluster: string; leaseOwner: string },
  sha256: string,
): Promise<boolean> {
  const rs = await deps.db.client.execute({
    sql: `SELECT 1 FROM job_inputs i JOIN jobs j ON j.id = i.job_id
          WHERE i.sha256 = ? AND j.cluster = ? AND j.lease_owner = ? AND j.state IN ${HELD_STATES_SQL} LIMIT 1`,
    args: [sha256, agent.cluster, agent.leaseOwner],
  });
  return rs.rows.length > 0;
}

/**
 * Submission check: every input is a file its submitter uploaded. `at` is the spec's field path
 * (`body`, `body.jobs[3]`).
 */
export async function checkInputsOwned(
  deps: Deps,
  owner: string,
  inputs: { file: string }[] | undefined,
  at: string,
): Promise<void> {
  if (!inputs?.length) {
    return;
  }
  const hexes = [...new Set(inputs.map((input) => refHex(input.file)))];
  const rs = await deps.db.client.execute({
    sql: `SELECT sha256 FROM uploads WHERE owner = ? AND sha256 IN (${hexes.map(() => "?").join(",")})`,
    args: [owner, ...hexes],
  });
  const held = new Set(rs.rows.map((row) => String(row.sha256)));
  const errors = inputs.flatMap((input, i) =>
    held.has(refHex(input.file))
      ? []
      : [{ field: `${at}.inputs.${i}.file`, message: "not a file you uploaded (POST /v1/files first)" }],
  );
  if (errors.length) {
    throw new ApiProblem("validation_failed", `${errors[0]!.field}: ${errors[0]!.message}`, {
      field: errors[0]!.field,
      errors,
    });
  }
}
