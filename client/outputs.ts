/**
 * A job's outputs: list them, and download one file or every file under a prefix to local disk,
 * streaming each to a temporary file and keeping it only when its sha256 is the listed one.
 * Downloading needs a filesystem (Node, Deno, Bun): `node:fs` is loaded only when called.
 */
import type { JobFile, Problem } from "./types.ts";
import { SlurmgateError } from "./errors.ts";
import type { RawClient } from "./raw.ts";
import { unwrap } from "./unwrap.ts";
import { nodeOnly } from "./node-only.ts";

/** The bytes that arrived do not hash to the sha256 the gateway lists: nothing was kept. */
export class IntegrityError extends Error {
  override readonly name = "IntegrityError";
  readonly path: string;
  readonly expected: string;
  readonly actual: string;
  constructor(path: string, expected: string, actual: string) {
    super(`${path}: downloaded bytes hash to ${actual}, not the listed ${expected}; nothing was kept`);
    this.path = path;
    this.expected = expected;
    this.actual = actual;
  }
}

/** One downloaded file: where it came from and where it went. */
export type Downloaded = JobFile & { dest: string };

/** Which attempt's outputs (1 is the first run); default: the newest attempt that brought files back. */
export type FilesOptions = { signal?: AbortSignal; attempt?: number };

export async function listFiles(raw: RawClient, jobId: string, options: FilesOptions = {}): Promise<JobFile[]> {
  const query = options.attempt === undefined ? {} : { attempt: options.attempt };
  const list = await unwrap(
    raw.GET("/v1/jobs/{id}/files", { params: { path: { id: jobId }, query }, signal: options.signal }),
  );
  return (list as { items: JobFile[] }).items;
}

function notFound(jobId: string, path: string): SlurmgateError {
  const problem = {
    type: "https://slurmgate.dev/problems/not_found",
    title: "Not found",
    status: 404,
    code: "not_found",
    detail: `job ${jobId} has no output ${path}`,
    field: "path",
  } as Problem;
  return new SlurmgateError(problem);
}

/**
 * Which listed files `path` names: the file itself, or with a trailing `/` (or when no file has
 * that exact path) every file under it, each with its path relative to the prefix.
 */
export function selectFiles(files: JobFile[], path: string): { file: JobFile; rel: string }[] {
  const exact = path.endsWith("/") ? undefined : files.find((f) => f.path === path);
  if (exact) {
    return [{ file: exact, rel: exact.path.split("/").at(-1)! }];
  }
  const prefix = path === "" || path === "/" ? "" : `${path.replace(/\/+$/, "")}/`;
  return files.filter((f) => f.path.startsWith(prefix)).map((f) => ({ file: f, rel: f.path.slice(prefix.length) }));
}

/**
 * Downloads `path` of `jobId` to `dest`. One file: `dest` is the file to write, or a directory
 * (existing, or written with a trailing `/`) to put it in. A prefix (`results/`): `dest` is a
 * directory and the files keep their paths below the prefix. Each file is verified against its sha256.
 */
export async function downloadFiles(
  raw: RawClient,
  jobId: string,
  path: string,
  dest: string,
  options: FilesOptions = {},
): Promise<Downloaded[]> {
  const fs = await nodeOnly<typeof import("node:fs")>("node:fs");
  const { join, dirname, resolve, relative, isAbsolute } = await nodeOnly<typeof import("node:path")>("node:path");
  const { createHash } = await nodeOnly<typeof import("node:crypto")>("node:crypto");
  const chosen = selectFiles(await listFiles(raw, jobId, options), path);
  if (chosen.length === 0) {
    throw notFound(jobId, path);
  }
  const single = chosen.length === 1 && chosen[0]!.file.path === path;
  const intoDir = !single || dest.endsWith("/") || fs.statSync(dest, { throwIfNoEntry: false })?.isDirectory();
  const root = resolve(dest);
  const done: Downloaded[] = [];
  for (const { file, rel } of chosen) {
    const target = intoDir ? resolve(root, rel) : root;
    const inside = relative(root, target);
    if (intoDir && (inside.startsWith("..") || isAbsolute(inside))) {
      continue; // the gateway checks paths; this never lets one write outside dest anyway
    }
    fs.mkdirSync(dirname(target), { recursive: true });
    const { data, error, response } = await raw.GET("/v1/jobs/{id}/files/{path}", {
      // The listed file's own attempt: a retry that uploads meanwhile cannot swap the bytes.
      params: { path: { id: jobId, path: file.path }, query: { attempt: file.attempt } },
      parseAs: "stream",
      headers: { accept: "application/octet-stream, application/problem+json" },
      signal: options.signal,
    });
    if (error !== undefined || !data) {
      throw new SlurmgateError(error as Problem);
    }
    const tmp = join(dirname(target), `.${target.split("/").at(-1)}.${process.pid}.part`);
    const hash = createHash("sha256");
    const out = fs.createWriteStream(tmp, { mode: 0o600 });
    try {
      for await (const chunk of data as unknown as AsyncIterable<Uint8Array>) {
        hash.update(chunk);
        if (!out.write(chunk)) {
          await new Promise<void>((r) => out.once("drain", () => r()));
        }
      }
      await new Promise<void>((res, rej) => out.end((err?: Error | null) => (err ? rej(err) : res())));
      const actual = hash.digest("hex");
      const etag = response.headers.get("etag")?.replace(/"/g, "");
      if (actual !== file.sha256 || (etag && etag !== file.sha256)) {
        throw new IntegrityError(file.path, file.sha256, actual);
      }
      fs.renameSync(tmp, target);
    } catch (err) {
      out.destroy();
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    done.push({ ...file, dest: target });
  }
  return done;
}
