/**
 * Browsing a job's directory on demand (GET /v1/jobs/{id}/dir|head|tail): the caps, and the job-path
 * rule of schemas/files.ts as browsing applies it. The gateway refuses a bad path before anything is
 * asked; the agent applies the same rule again (it trusts no row), then resolves what is left one
 * component at a time.
 */
import { z } from "@hono/zod-openapi";
import { FILE_LIMITS, jobPathProblems } from "./files.ts";

export const BROWSE_LIMITS = {
  /** Entries in one listing; the rest is cut and `truncated` set. */
  entries: 1_000,
  /** Bytes one head or tail returns at most, and by default. */
  bytes: 65_536,
  defaultBytes: 4_096,
} as const;

/**
 * Every way `path` breaks the job-path rule (schemas/files.ts), in words; empty when it is fine.
 * Browsing also takes the job directory itself (`""`, `"."`, `"./"`), a leading `./` and a
 * trailing `/`, as people type them.
 * @example browsePathProblems("/etc/../x") // ["is absolute: …", "has a '..' component: …"]
 */
export function browsePathProblems(path: string): string[] {
  const trimmed = path.replace(/^(\.\/)+/, "").replace(/\/$/, "");
  return trimmed === "" || trimmed === "." ? [] : jobPathProblems(trimmed);
}

/**
 * The components of a path that passed {@link browsePathProblems}, with empty and `.` ones dropped:
 * `""`, `"."` and `"./"` are the job directory (`[]`).
 */
export function browseSegments(path: string): string[] {
  if (browsePathProblems(path).length > 0) {
    throw new Error(`not a browsable path: ${JSON.stringify(path.slice(0, 100))}`);
  }
  return path.split("/").filter((s) => s !== "" && s !== ".");
}

export const BrowsePath = z
  .string()
  .superRefine((path, ctx) => {
    for (const message of browsePathProblems(path)) {
      ctx.addIssue({ code: "custom", message });
    }
  })
  .openapi({
    description: `A path relative to the job directory (\`""\` is the directory itself): no leading '/', no '..', no NUL, at most ${FILE_LIMITS.pathChars} characters.`,
    example: "results/metrics.json",
  });

export const DirEntryType = z.enum(["file", "dir", "symlink", "other"]);

export const DirEntry = z
  .strictObject({
    name: z
      .string()
      .min(1)
      .max(FILE_LIMITS.segmentChars * 4),
    type: DirEntryType.openapi({ description: "As lstat sees it: a symlink is never followed." }),
    size: z.number().int().min(0),
    mtime: z.string().datetime(),
  })
  .openapi("DirEntry");
export type DirEntry = z.infer<typeof DirEntry>;

export const DirListing = z
  .strictObject({
    path: z.string().max(FILE_LIMITS.pathChars),
    entries: z.array(DirEntry).max(BROWSE_LIMITS.entries).openapi({ description: "Sorted by name." }),
    truncated: z
      .boolean()
      .openapi({ description: `True when the directory has more than ${BROWSE_LIMITS.entries} entries.` }),
    attempt: z.number().int().min(1).optional().openapi({
      description: "Whose attempt's directory was read (the gateway's answer always says; the agent's need not).",
    }),
  })
  .openapi("DirListing");
export type DirListing = z.infer<typeof DirListing>;

export const FileSlice = z
  .strictObject({
    path: z.string().max(FILE_LIMITS.pathChars),
    size: z.number().int().min(0).openapi({ description: "The whole file's size when it was read." }),
    offset: z.number().int().min(0).openapi({ description: "Where in the file `data` starts." }),
    data: z
      .string()
      .max(Math.ceil(BROWSE_LIMITS.bytes / 3) * 4)
      .regex(/^[A-Za-z0-9+/]*={0,2}$/, "base64")
      .openapi({ description: "The bytes, base64." }),
    truncated: z.boolean().openapi({ description: "True when the file has bytes outside `data`." }),
    attempt: z.number().int().min(1).optional().openapi({
      description: "Whose attempt's directory was read (the gateway's answer always says; the agent's need not).",
    }),
  })
  .openapi("FileSlice");
export type FileSlice = z.infer<typeof FileSlice>;

/** How many bytes a head or tail asks for. */
export const BrowseBytes = z.coerce
  .number()
  .int()
  .min(1)
  .max(BROWSE_LIMITS.bytes)
  .default(BROWSE_LIMITS.defaultBytes)
  .openapi({ description: `Bytes to read (1–${BROWSE_LIMITS.bytes}, default ${BROWSE_LIMITS.defaultBytes}).` });

/**
 * An agent's answer when the path cannot be browsed: `path` (missing, a symlink, not a directory or
 * file, not readable by the job's user) or `unsupported` (this agent cannot browse at all).
 */
export const BrowseRefusal = z
  .strictObject({
    refused: z.enum(["path", "unsupported"]),
    reason: z.string().min(1).max(500),
  })
  .openapi("BrowseRefusal");
export type BrowseRefusal = z.infer<typeof BrowseRefusal>;
