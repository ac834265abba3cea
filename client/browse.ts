/**
 * Browsing a job's directory through its cluster's agent: list a directory, read a file's first or
 * last bytes (decoded from the API's base64). Refusals arrive as SlurmgateError: 422 `query.path`
 * (a bad path, a symlink, missing), 409 (the job has not reached Slurm), 503/504 (no agent, or it
 * did not answer in time).
 */
import type { RawClient } from "./raw.ts";
import type { DirListing, FileSlice } from "./types.ts";
import { type Shape, unwrap } from "./unwrap.ts";

export type BrowseOptions = {
  signal?: AbortSignal;
  /** Whose attempt's directory (default: the current attempt once it reached Slurm, else the one before). */
  attempt?: number;
};
export type ReadOptions = BrowseOptions & { /** Bytes to read (default 4096, at most 65536). */ bytes?: number };
/** A slice of a file with its bytes decoded. */
export type FileBytes = FileSlice & { bytes: Uint8Array };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;
const listing: Shape = { what: "a directory listing", test: (v) => isObject(v) && Array.isArray(v.entries) };
const slice: Shape = {
  what: "a file slice",
  test: (v) => isObject(v) && typeof v.data === "string" && typeof v.size === "number",
};

function fromBase64(data: string): Uint8Array {
  const text = atob(data);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    bytes[i] = text.charCodeAt(i);
  }
  return bytes;
}

/** @example const { entries } = await browseDir(raw, "job_01…", "results"); */
export function browseDir(raw: RawClient, id: string, path = "", options: BrowseOptions = {}): Promise<DirListing> {
  return unwrap(
    raw.GET("/v1/jobs/{id}/dir", {
      params: { path: { id }, query: { path, ...(options.attempt === undefined ? {} : { attempt: options.attempt }) } },
      signal: options.signal,
    }),
    listing,
  ) as Promise<DirListing>;
}

/** @example const { bytes } = await readEnd(raw, "job_01…", "stdout", "tail", { bytes: 1024 }); */
export async function readEnd(
  raw: RawClient,
  id: string,
  path: string,
  from: "head" | "tail",
  options: ReadOptions = {},
): Promise<FileBytes> {
  const query = {
    path,
    ...(options.bytes === undefined ? {} : { bytes: options.bytes }),
    ...(options.attempt === undefined ? {} : { attempt: options.attempt }),
  };
  const params = { path: { id }, query };
  const call =
    from === "head"
      ? raw.GET("/v1/jobs/{id}/head", { params, signal: options.signal })
      : raw.GET("/v1/jobs/{id}/tail", { params, signal: options.signal });
  const got = (await unwrap(call, slice)) as FileSlice;
  return { ...got, bytes: fromBase64(got.data) };
}
