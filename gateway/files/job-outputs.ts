/**
 * Job outputs on the gateway: the agent's streamed upload (hashed into deps.blobs, then one
 * `job_files` row per attempt and path), the owner's listing and download. A row is written only
 * after every byte arrived and matched the sha256 the agent named, so nothing half-uploaded is ever
 * listed. Each attempt's files stay apart: a retry's file never replaces an earlier attempt's.
 */
import { jobPathFault } from "../../schemas/files.ts";
import { JobSpec, LIVE_STATES } from "../../schemas/job.ts";
import { type JobFile, type JobFileList, MAX_OUTPUT_FILE_BYTES, globMatcher } from "../../schemas/outputs.ts";
import type { Deps, Principal } from "../deps.ts";
import { ApiProblem } from "../problem.ts";
import { visibleJob } from "../services/jobs.ts";
import { BlobHashMismatch, BlobStoreUnavailable, BlobTooLarge } from "./blob-store.ts";
import { readVerified } from "./verified-read.ts";

/** `sha256` named up front, or (absent) sent by the agent after the file's bytes: see {@link splitTrailer}. */
export type OutputUpload = { epoch: number; path: string; sha256?: string; size: number };

/** The agent's sha256 after the bytes: 64 lowercase hex digits, nothing else. */
const TRAILER_BYTES = 64;

/**
 * The first `size` bytes of `body` as a stream of their own, and the bytes after them (the
 * agent's sha256, which it knows only once it has read the whole file: it hashes while sending
 * rather than reading twice). The stream ends only when `body` does, so the bytes are stored
 * only once the trailer has arrived too; more than {@link TRAILER_BYTES} after them is refused.
 */
function splitTrailer(body: ReadableStream<Uint8Array>, size: number) {
  const reader = body.getReader();
  const tail: Uint8Array[] = [];
  let taken = 0;
  let tailBytes = 0;
  const content = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) {
        controller.close();
        return;
      }
      const head = value.subarray(0, Math.max(0, size - taken));
      taken += head.byteLength;
      if (head.byteLength > 0) {
        controller.enqueue(head);
      }
      if (head.byteLength < value.byteLength) {
        tailBytes += value.byteLength - head.byteLength;
        if (tailBytes > TRAILER_BYTES) {
          controller.error(new BlobTooLarge(size));
          await reader.cancel().catch(() => {});
          return;
        }
        tail.push(value.subarray(head.byteLength));
      }
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return { content, trailer: () => Buffer.concat(tail).toString("latin1") };
}

const notFound = (id: string) => new ApiProblem("not_found", `job ${id} not found`, { field: "path.id" });

/**
 * Stores one output of `id` for the agent of its cluster. Fenced by the lease's epoch; the path is
 * checked lexically and must match one of the job's own `outputs` globs, whatever the agent says.
 */
export async function storeOutput(
  deps: Deps,
  principal: Principal,
  id: string,
  upload: OutputUpload,
  body: ReadableStream<Uint8Array> | null,
): Promise<JobFile> {
  if (principal.kind !== "agent") {
    throw new ApiProblem("forbidden", "only an agent uploads outputs");
  }
  const rs = await deps.db.client.execute({
    sql: "SELECT owner, cluster, state, epoch, attempt, spec FROM jobs WHERE id = ?",
    args: [id],
  });
  const row = rs.rows[0];
  if (!row || row.cluster !== principal.cluster || (principal.user !== null && row.owner !== principal.user)) {
    throw notFound(id);
  }
  if (Number(row.epoch) !== upload.epoch) {
    throw new ApiProblem("stale_lease", `epoch ${upload.epoch} is not the job's current lease (${row.epoch})`, {
      field: "query.epoch",
    });
  }
  if (!(LIVE_STATES as readonly string[]).includes(String(row.state))) {
    throw new ApiProblem("conflict", `job ${id} is ${row.state}: its outputs are already settled`);
  }
  const fault = jobPathFault(upload.path);
  if (fault) {
    throw new ApiProblem("validation_failed", `path ${fault}`, { field: "query.path" });
  }
  const spec = JobSpec.safeParse(JSON.parse(String(row.spec)));
  const globs = spec.success ? (spec.data.outputs ?? []) : [];
  if (!globs.some((glob) => globMatcher(glob)(upload.path))) {
    throw new ApiProblem("validation_failed", `${upload.path} matches none of the job's outputs`, {
      field: "query.path",
    });
  }
  if (upload.size > MAX_OUTPUT_FILE_BYTES) {
    throw new ApiProblem("payload_too_large", `an output may hold at most ${MAX_OUTPUT_FILE_BYTES} bytes`, {
      field: "query.size",
    });
  }
  if (!body) {
    throw new ApiProblem("validation_failed", "the body is the file's bytes", { field: "body" });
  }
  const split = upload.sha256 === undefined ? splitTrailer(body, upload.size) : undefined;
  let stored: { sha256: string; size: number };
  try {
    stored = await deps.blobs.put(split?.content ?? body, { maxBytes: upload.size, expectedSha256: upload.sha256 });
  } catch (error) {
    if (error instanceof BlobTooLarge) {
      throw new ApiProblem("payload_too_large", `more than the ${upload.size} bytes announced`, { field: "body" });
    }
    if (error instanceof BlobHashMismatch) {
      throw new ApiProblem("validation_failed", error.message, { field: "query.sha256" });
    }
    if (error instanceof BlobStoreUnavailable) {
      throw new ApiProblem("unavailable", error.message);
    }
    throw error;
  }
  if (stored.size !== upload.size) {
    throw new ApiProblem("validation_failed", `${stored.size} bytes arrived, not the ${upload.size} announced`, {
      field: "query.size",
    });
  }
  // The epoch check above makes this the lease's own attempt: never a value the agent names.
  const attempt = Number(row.attempt);
  const now = deps.now();
  const blobRow = {
    sql: "INSERT INTO blobs (sha256, size, created_at) VALUES (?, ?, ?) ON CONFLICT (sha256) DO NOTHING",
    args: [stored.sha256, stored.size, now],
  };
  if (split) {
    const agents = split.trailer();
    if (agents !== stored.sha256) {
      // The bytes stay stored under their own hash, unlisted; the row lets retention collect them.
      await deps.db.write([blobRow]);
      throw new ApiProblem(
        "validation_failed",
        /^[0-9a-f]{64}$/.test(agents)
          ? `the bytes that arrived hash to sha256:${stored.sha256}, the agent read sha256:${agents}`
          : "the body must end with the sha256 of the bytes before it, as 64 lowercase hex digits",
        { field: "body" },
      );
    }
  }
  await deps.db.write([
    blobRow,
    {
      // One row per attempt and path: an agent that uploads again after a restart replaces, never duplicates.
      sql: `INSERT INTO job_files (job_id, attempt, path, sha256, size, created_at) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (job_id, attempt, path) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size,
            created_at = excluded.created_at`,
      args: [id, attempt, upload.path, stored.sha256, stored.size, now],
    },
  ]);
  return { path: upload.path, size: stored.size, sha256: stored.sha256, attempt };
}

/**
 * The attempt a listing or download of `id` reads: the one asked for (404 past the job's attempts),
 * else the newest that brought files back (undefined: none did).
 */
async function chosenAttempt(
  deps: Deps,
  principal: Principal,
  id: string,
  asked: number | undefined,
): Promise<{ attempt: number | undefined; attempts: number[] }> {
  const job = await visibleJob(deps, principal, id);
  if (asked !== undefined && asked > job.attempt) {
    throw new ApiProblem("not_found", `job ${id} has no attempt ${asked}: it has had ${job.attempt} so far`, {
      field: "query.attempt",
    });
  }
  const rs = await deps.db.client.execute({
    sql: "SELECT DISTINCT attempt FROM job_files WHERE job_id = ? ORDER BY attempt",
    args: [id],
  });
  const attempts = rs.rows.map((r) => Number(r.attempt));
  return { attempt: asked ?? attempts.at(-1), attempts };
}

export async function listOutputs(
  deps: Deps,
  principal: Principal,
  id: string,
  query: { attempt?: number } = {},
): Promise<JobFileList> {
  const { attempt, attempts } = await chosenAttempt(deps, principal, id, query.attempt);
  if (attempt === undefined) {
    return { items: [], attempts };
  }
  const rs = await deps.db.client.execute({
    sql: "SELECT path, size, sha256 FROM job_files WHERE job_id = ? AND attempt = ? ORDER BY path",
    args: [id, attempt],
  });
  const items = rs.rows.map((r) => ({ path: String(r.path), size: Number(r.size), sha256: String(r.sha256), attempt }));
  return { items, attempts };
}

/** `bytes=a-b`, `bytes=a-`, `bytes=-n` against `size`: a range, "unsatisfiable", or undefined (serve it all). */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | "unsatisfiable" | undefined {
  const m = header?.trim().match(/^bytes=(\d*)-(\d*)$/);
  if (!m || (m[1] === "" && m[2] === "")) {
    return undefined; // absent, malformed or several ranges: RFC 9110 lets a server ignore it
  }
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) {
      return "unsatisfiable";
    }
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || (m[2] !== "" && Number(m[2]) < start)) {
    return m[2] !== "" && Number(m[2]) < start ? undefined : "unsatisfiable";
  }
  return { start, end };
}

export type OutputDownload = {
  status: 200 | 206;
  body: ReadableStream<Uint8Array>;
  headers: Record<string, string>;
};

export async function openOutput(
  deps: Deps,
  principal: Principal,
  id: string,
  path: string,
  rangeHeader: string | undefined,
  query: { attempt?: number } = {},
): Promise<OutputDownload> {
  const { attempt } = await chosenAttempt(deps, principal, id, query.attempt);
  const rs = await deps.db.client.execute({
    sql: "SELECT size, sha256 FROM job_files WHERE job_id = ? AND attempt = ? AND path = ?",
    args: [id, attempt ?? 0, path],
  });
  const row = rs.rows[0];
  if (!row) {
    const which = attempt === undefined ? "" : ` from attempt ${attempt}`;
    throw new ApiProblem("not_found", `job ${id} has no output ${path}${which}`, { field: "path.path" });
  }
  const sha256 = String(row.sha256);
  const size = Number(row.size);
  const range = parseRange(rangeHeader, size);
  const name = path.split("/").at(-1)!;
  const headers: Record<string, string> = {
    "content-type": "application/octet-stream",
    "content-disposition": `attachment; filename="${name.replace(/["\\]/g, "_")}"`,
    "x-content-type-options": "nosniff",
    etag: `"${sha256}"`,
    "accept-ranges": "bytes",
    "cache-control": "private, no-cache",
    "x-slurmgate-attempt": String(attempt),
  };
  if (range === "unsatisfiable") {
    throw new ApiProblem("range_not_satisfiable", `the file has ${size} bytes`, {
      field: "header.range",
      headers: { "content-range": `bytes */${size}` },
    });
  }
  // Whole reads are verified as they stream, ranges only from a verified copy (verified-read.ts).
  const body = await readVerified(deps, sha256, size, path, range ?? undefined);
  if (range) {
    headers["content-range"] = `bytes ${range.start}-${range.end}/${size}`;
    headers["content-length"] = String(range.end - range.start + 1);
    return { status: 206, body, headers };
  }
  headers["content-length"] = String(size);
  return { status: 200, body, headers };
}
