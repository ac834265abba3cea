/**
 * JobSpec `outputs`: globs inside the job directory whose matches the agent brings back after the
 * job ends, with the caps on how many and how much. The gateway checks the globs lexically here;
 * the agent checks every matched path again against the directory itself (agent/outputs.ts).
 */
import { z } from "@hono/zod-openapi";
import { FILE_LIMITS, jobPathFault } from "./files.ts";

/** Most globs one job may declare. */
export const MAX_OUTPUT_GLOBS = 64;
/** Most files all globs together may bring back; past it the rest are skipped and named. */
export const MAX_OUTPUT_FILES = 1_000;
/** Largest single output file (bytes). */
export const MAX_OUTPUT_FILE_BYTES = 2 * 1024 ** 3;
/** Most bytes one job's outputs may add up to. */
export const MAX_OUTPUT_TOTAL_BYTES = 8 * 1024 ** 3;
/** How deep a `**` may search below the job directory. */
export const MAX_OUTPUT_DEPTH = FILE_LIMITS.pathDepth;

/** One path segment of a glob: plain characters, with `*` and `?` wildcards; or `**` alone. */
const GLOB_SEGMENT = /^(\*\*|[A-Za-z0-9_.+@=,*?-]+)$/;

/**
 * Why `glob` is not an output glob, or undefined when it is one: a job path (schemas/files.ts, with
 * `*` and `?` as plain characters there) whose components are names, wildcards or `**` alone.
 * @example outputGlobProblem("../*") // => "has a '..' component: only paths inside the job directory are allowed"
 */
export function outputGlobProblem(glob: string): string | undefined {
  const lexical = jobPathFault(glob);
  if (lexical !== undefined) {
    return lexical;
  }
  for (const segment of glob.split("/")) {
    if (!GLOB_SEGMENT.test(segment) || (segment !== "**" && segment.includes("**"))) {
      return segment.includes("**")
        ? "'**' must be a whole path segment"
        : "letters, digits, '_', '.', '+', '@', '=', ',', '-' and the wildcards '*' and '?' only";
    }
  }
  return undefined;
}

export const OutputGlob = z
  .string()
  .superRefine((glob, ctx) => {
    const problem = outputGlobProblem(glob);
    if (problem) {
      ctx.addIssue({ code: "custom", message: problem });
    }
  })
  .openapi({ example: "results/*.json" });

export const Outputs = z
  .array(OutputGlob)
  .max(MAX_OUTPUT_GLOBS)
  .openapi({
    description: `Globs inside the job directory (\`*\`, \`?\` within a name, \`**\` for any depth) whose regular files are brought back after the job ends: at most ${MAX_OUTPUT_FILES} files, ${MAX_OUTPUT_FILE_BYTES / 1024 ** 3} GiB each, ${MAX_OUTPUT_TOTAL_BYTES / 1024 ** 3} GiB in all. Symlinks are never followed: a match that is one is skipped and named in the job's reason. Listed by GET /v1/jobs/{id}/files once the job is terminal.`,
    example: ["results/*.json", "model/final.pt"],
  });

function segmentRegex(segment: string): RegExp {
  const body = segment
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, "[^/]*")
    .replace(/\?/g, "[^/]");
  return new RegExp(`^${body}$`);
}

/**
 * A matcher for one valid glob against a relative path (`/`-separated, no `.`/`..`): `*` and `?`
 * never cross a `/`, `**` is zero or more whole segments. A path that is not a plain relative path
 * never matches, whatever the glob.
 * @example globMatcher("results/*.json")("results/a.json") // => true
 */
export function globMatcher(glob: string): (path: string) => boolean {
  if (outputGlobProblem(glob)) {
    return () => false;
  }
  const parts = glob.split("/").map((s) => (s === "**" ? ("**" as const) : segmentRegex(s)));
  const match = (pi: number, segs: string[], si: number): boolean => {
    if (pi === parts.length) {
      return si === segs.length;
    }
    const part = parts[pi]!;
    if (part === "**") {
      for (let k = si; k <= segs.length; k++) {
        if (match(pi + 1, segs, k)) {
          return true;
        }
      }
      return false;
    }
    return si < segs.length && part.test(segs[si]!) && match(pi + 1, segs, si + 1);
  };
  return (path) => {
    const segs = path.split("/");
    if (path.startsWith("/") || segs.some((s) => s === "" || s === "." || s === "..")) {
      return false;
    }
    return match(0, segs, 0);
  };
}

/** The literal directory a glob starts in (its segments before the first wildcard), "" for the job directory. */
export function globBase(glob: string): string {
  const segments = glob.split("/");
  const literal: string[] = [];
  for (const segment of segments.slice(0, -1)) {
    if (/[*?]/.test(segment)) {
      break;
    }
    literal.push(segment);
  }
  return literal.join("/");
}

export const JobFile = z
  .object({
    path: z.string().openapi({ example: "results/metrics.json" }),
    size: z.number().int().min(0),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    attempt: z.number().int().min(1).openapi({ description: "The attempt whose run produced the file." }),
  })
  .openapi("JobFile");
export type JobFile = z.infer<typeof JobFile>;

export const JobFileList = z
  .object({
    items: z.array(JobFile),
    attempts: z.array(z.number().int().min(1)).openapi({
      description: "Every attempt that brought files back, oldest first; `?attempt=` lists another one.",
    }),
  })
  .openapi("JobFileList", { description: "One attempt's outputs the agent brought back, by path." });
export type JobFileList = z.infer<typeof JobFileList>;

/**
 * `?attempt=` of a job's files and directory (1 is the first run). Query strings are text, so the
 * number is coerced; anything not a whole number in range is a 422 naming `query.attempt`.
 */
export const AttemptQuery = z.coerce.number().int().min(1).max(1_000);
